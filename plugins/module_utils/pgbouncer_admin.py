# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbouncer_admin: admin console commands and settings, SHOW first and only the difference changed.

Settings of the [pgbouncer] section go online with SET, or into the ini file and online
with RELOAD when an ini file is given (SET alone is lost at the next RELOAD or restart).
Pool settings of one [databases] entry (pool_size, reserve_pool, ...) are ini-only in
PgBouncer, so they always go through the ini file and RELOAD. Each command looks first:
PAUSE of a paused database, RECONNECT of a database without server connections, KILL_CLIENT
of a client that is gone change nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any, Dict, List, Optional

from ansible_collections.penguinmails.dbops.plugins.module_utils import lockdown
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed
from ansible_collections.penguinmails.dbops.plugins.module_utils.files import (
    ensure_private_directory,
    read_text,
    write_atomically,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import (
    AdminConsole,
    check_setting,
    console_command,
    kill_client_command,
    parse_version,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionFailure, ConnectionParams
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import redact_text
from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import (
    check_database_name,
    read_ini_text,
    replace_ini_text,
    update_database_entry,
    update_setting,
)

COMMANDS = ("RELOAD", "PAUSE", "RESUME", "RECONNECT", "KILL", "KILL_CLIENT", "WAIT_CLOSE")
# ini key of a [databases] entry -> its column in SHOW DATABASES.
POOL_COLUMNS = {
    "pool_size": "pool_size",
    "min_pool_size": "min_pool_size",
    "reserve_pool": "reserve_pool",
    "max_db_connections": "max_connections",
    "pool_mode": "pool_mode",
}


def setting_text(value: Any) -> str:
    """A setting as PgBouncer shows it back: booleans as 1/0, everything else as its text."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def differing(live: Dict[str, Any], wanted: Dict[str, str]) -> Dict[str, str]:
    """The wanted settings whose live value differs (compared as text)."""
    return {key: value for key, value in wanted.items() if setting_text(live.get(key)) != value}


def unknown_keys(wanted: Dict[str, str], known: Any) -> List[str]:
    return sorted(key for key in wanted if key not in known)


class ConsoleAdmin:
    """One pgbouncer_admin run. `options` are the module's; `result` is its result so far.

    Failures raise ActionFailed carrying what was done until then.
    """

    def __init__(self, options: Dict[str, Any], check_mode: bool) -> None:
        self.options = options
        self.check_mode = check_mode
        self.database: Optional[str] = options.get("database")
        self.reload_needed = False
        self.version: tuple = ()
        self.diff_before: List[str] = []
        self.diff_after: List[str] = []
        self.result: Dict[str, Any] = {
            "changed": False,
            "actions": [],
            "version": None,
            "settings_before": {},
            "settings_after": {},
            "pool_before": {},
            "pool_after": {},
            "restart_required": [],
            "clients_before": [],
            "clients_left": [],
        }

    # -- plumbing -------------------------------------------------------------------------------

    def fail(self, message: str) -> ActionFailed:
        return ActionFailed(message, self.result)

    def act(self, console: AdminConsole, text: str, run: Any) -> None:
        """Record `text` as done (or planned) and run it unless in check mode."""
        self.result["actions"].append(text)
        self.result["changed"] = True
        if not self.check_mode:
            run()

    def database_row(self, console: AdminConsole) -> Dict[str, Any]:
        for row in console.show("DATABASES"):
            if row.get("name") == self.database:
                return row
        raise self.fail("PgBouncer at %s has no database %s" % (console.params.endpoint, self.database))

    def rows_of_database(self, console: AdminConsole, subject: str) -> List[Dict[str, Any]]:
        rows = console.show(subject)
        if self.database is None:
            return [row for row in rows if row.get("database") != "pgbouncer"]
        return [row for row in rows if row.get("database") == self.database]

    @staticmethod
    def is_paused(row: Dict[str, Any]) -> bool:
        return str(row.get("paused", "0")) not in ("0", "", "None")

    # -- the ini file ---------------------------------------------------------------------------

    def ini_text(self) -> str:
        path = self.options["ini_path"]
        text = read_ini_text(path)
        if text is None:
            raise self.fail("no PgBouncer ini file at %s" % path)
        return text

    def write_ini(self, before: str, after: str) -> None:
        if after == before:
            return
        path = self.options["ini_path"]
        self.result["actions"].append("rewrote %s" % path)
        self.result["changed"] = True
        self.result["diff"] = {
            "before": "".join(redact_text(line) + "\n" for line in self.diff_before),
            "after": "".join(redact_text(line) + "\n" for line in self.diff_after),
            "before_header": path,
            "after_header": path,
        }
        if not self.check_mode:
            replace_ini_text(path, after)

    def note_line(self, old: Optional[str], new: str) -> None:
        if old != new:
            self.diff_before.append(old or "")
            self.diff_after.append(new)

    # -- settings -------------------------------------------------------------------------------

    def plan_settings(self, console: AdminConsole, text: str) -> str:
        """[pgbouncer] settings: SET online, or into `text` (returned) with a RELOAD to follow."""
        wanted = {key: setting_text(value) for key, value in (self.options.get("settings") or {}).items()}
        if not wanted:
            return text
        for key, value in wanted.items():
            check_setting(key, value)
        config = {row["key"]: row for row in console.show("CONFIG")}
        unknown = unknown_keys(wanted, config)
        if unknown:
            raise self.fail("%s has no setting %s" % (self.result["version"], ", ".join(unknown)))
        live = {key: config[key]["value"] for key in wanted}
        changes = differing(live, wanted)
        self.result["settings_before"] = {key: live[key] for key in changes}
        self.result["settings_after"] = dict(changes)
        fixed = sorted(key for key in changes if str(config[key].get("changeable", "yes")) == "no")
        if self.options.get("ini_path"):
            for key, value in wanted.items():
                text, old, new = update_setting(text, "pgbouncer", key, value)
                self.note_line(old, new)
            self.result["restart_required"] = fixed
            self.reload_needed = self.reload_needed or bool(set(changes) - set(fixed))
            return text
        if fixed:
            raise self.fail("PgBouncer cannot change %s online; give ini_path and restart PgBouncer" % ", ".join(fixed))
        for key, value in changes.items():
            self.act(console, "SET %s = '%s'" % (key, value), lambda k=key, v=value: console.set(k, v))
        return text

    def plan_pool(self, console: AdminConsole, text: str) -> str:
        """Pool settings of the database's entry into `text` (returned), with a RELOAD to follow."""
        wanted = {key: setting_text(value) for key, value in (self.options.get("pool_settings") or {}).items()}
        if not wanted:
            return text
        unknown = unknown_keys(wanted, POOL_COLUMNS)
        if unknown:
            raise self.fail("unsupported pool setting %s; known: %s" % (", ".join(unknown), ", ".join(POOL_COLUMNS)))
        row = self.database_row(console)
        live = {key: row.get(column) for key, column in POOL_COLUMNS.items() if key in wanted}
        changes = differing(live, wanted)
        self.result["pool_before"] = {key: setting_text(live[key]) for key in changes}
        self.result["pool_after"] = dict(changes)
        new_text, old, new = update_database_entry(text, self.database, wanted)
        if old is None:
            raise self.fail("%s has no [databases] entry %s" % (self.options["ini_path"], self.database))
        self.note_line(old, new)
        self.reload_needed = self.reload_needed or bool(changes)
        return new_text

    def verify_settings(self, console: AdminConsole) -> None:
        """After a RELOAD: the live values are the wanted ones, or the run fails saying which are not."""
        if self.check_mode:
            return
        wrong = []
        fixed = self.result["restart_required"]
        settings = {key: value for key, value in self.result["settings_after"].items() if key not in fixed}
        if settings:
            config = console.config()
            wrong += ["%s is %s" % (key, config.get(key)) for key in differing(config, settings)]
        pool = self.result["pool_after"]
        if pool:
            row = self.database_row(console)
            live = {key: row.get(POOL_COLUMNS[key]) for key in pool}
            wrong += ["%s of %s is %s" % (key, self.database, live[key]) for key in differing(live, pool)]
        if wrong:
            raise self.fail("PgBouncer did not take the new settings: %s" % "; ".join(wrong))

    # -- commands -------------------------------------------------------------------------------

    def command(self, console: AdminConsole, verb: str) -> None:
        text = console_command(verb, self.database)
        getattr(self, "command_" + verb.lower())(console, text, lambda: console.command(verb, self.database))

    def command_reload(self, console: AdminConsole, text: str, run: Any) -> None:
        if "RELOAD" not in self.result["actions"]:
            self.act(console, text, run)

    def command_pause(self, console: AdminConsole, text: str, run: Any) -> None:
        if self.database is None or not self.is_paused(self.database_row(console)):
            self.act(console, text, run)

    def command_resume(self, console: AdminConsole, text: str, run: Any) -> None:
        if self.database is None or self.is_paused(self.database_row(console)):
            self.act(console, text, run)

    def command_reconnect(self, console: AdminConsole, text: str, run: Any) -> None:
        """Only when a server connection is not already marked to close (close_needed)."""
        servers = self.rows_of_database(console, "SERVERS")
        if any(str(row.get("close_needed", "0")) in ("0", "") for row in servers):
            self.act(console, text, run)

    def command_kill(self, console: AdminConsole, text: str, run: Any) -> None:
        busy = self.rows_of_database(console, "SERVERS") or self.rows_of_database(console, "CLIENTS")
        if busy or not self.is_paused(self.database_row(console)):
            self.act(console, text, run)

    def command_wait_close(self, console: AdminConsole, text: str, run: Any) -> None:
        """Waits, changes nothing: run for real only, planned in check mode."""
        self.result["actions"].append(text)
        if not self.check_mode:
            run()

    def kill_client(self, console: AdminConsole) -> None:
        client = str(self.options.get("client") or "")
        text = kill_client_command(client, self.version)
        if any(str(row.get("ptr")) == client or str(row.get("id")) == client for row in console.show("CLIENTS")):
            self.act(console, text, lambda: console.kill_client(client, self.version))

    # -- locking users out (the security breach runbook) ----------------------------------------

    def auth_file_path(self, console: AdminConsole) -> Optional[str]:
        return self.options.get("auth_file") or console.config().get("auth_file") or None

    def lock_out(self, console: AdminConsole) -> None:
        """Keep lock_out_users out (their auth_file lines removed, RELOAD) and drop their clients."""
        users = list(self.options.get("lock_out_users") or [])
        path = self.auth_file_path(console)
        state_file = self.options["lock_out_state_file"]
        if path:
            text = read_ini_text(path)
            if text is None:
                raise self.fail("no PgBouncer auth_file at %s on this host" % path)
            new_text, removed = lockdown.auth_file_without(text, users)
            if removed:
                state = json.loads(read_text(state_file) or "{}")
                kept = state.get("auth_lines", [])
                state.update(auth_file=path, auth_lines=kept + [line for line in removed if line not in kept])
                self.act(console, "removed the auth_file lines of %s from %s" % (", ".join(users), path), lambda: None)
                if not self.check_mode:
                    ensure_private_directory(os.path.dirname(state_file))
                    write_atomically(state_file, json.dumps(state, indent=1) + "\n")
                    replace_ini_text(path, new_text)
                self.act(console, "RELOAD", lambda: console.command("RELOAD"))
        self.drop_clients(console, users)

    def drop_clients(self, console: AdminConsole, users: List[str]) -> None:
        clients = lockdown.clients_of(console.show("CLIENTS"), users)
        self.result["clients_before"] = clients
        for client in clients:
            method = lockdown.client_drop_method(self.version, client)
            if method == "kill_client":
                client_id = str(client.get("id") or client.get("ptr"))
                self.act(
                    console,
                    kill_client_command(client_id, self.version),
                    lambda c=client_id: console.kill_client(c, self.version),
                )
            elif method == "socket_destroy":
                argv = lockdown.socket_destroy_argv(client)
                self.act(
                    console,
                    " ".join(argv),
                    lambda a=argv: subprocess.run(a, check=True, capture_output=True, timeout=10),
                )
        if clients and not self.check_mode:
            self.result["clients_left"] = self.wait_clients_gone(console, users)

    def wait_clients_gone(self, console: AdminConsole, users: List[str]) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + float(self.options.get("query_timeout") or 5)
        while True:
            left = lockdown.clients_of(console.show("CLIENTS"), users)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def lift_lock_out(self, console: AdminConsole) -> None:
        """Put the remembered auth_file lines back, RELOAD, forget them."""
        state_file = self.options["lock_out_state_file"]
        state = json.loads(read_text(state_file) or "{}")
        if not state:
            return
        path = state["auth_file"]
        text = read_ini_text(path)
        if text is None:
            raise self.fail("no PgBouncer auth_file at %s on this host" % path)
        new_text, added = lockdown.auth_file_with(text, state.get("auth_lines", []))
        if added:
            self.act(console, "put %d auth_file line(s) back into %s" % (len(added), path), lambda: None)
            if not self.check_mode:
                replace_ini_text(path, new_text)
            self.act(console, "RELOAD", lambda: console.command("RELOAD"))
        self.act(console, "removed the lock-out state %s" % state_file, lambda: os.unlink(state_file))

    # -- the run --------------------------------------------------------------------------------

    def look(self, console: AdminConsole) -> None:
        rows = console.show("VERSION")
        version_text = str(next(iter(rows[0].values()))) if rows else ""
        self.result["version"] = version_text
        self.version = parse_version(version_text)

    def change_settings(self, console: AdminConsole) -> None:
        if not (self.options.get("settings") or self.options.get("pool_settings")):
            return
        ini_path = self.options.get("ini_path")
        before = self.ini_text() if ini_path else ""
        after = self.plan_pool(console, self.plan_settings(console, before))
        if ini_path:
            self.write_ini(before, after)
        if self.reload_needed:
            self.act(console, "RELOAD", lambda: console.command("RELOAD"))
            self.verify_settings(console)

    def run(self, console_params: ConnectionParams) -> Dict[str, Any]:
        """Settings, then the command; the module result, or ActionFailed."""
        verb = (self.options.get("command") or "").upper()
        try:
            if self.database is not None:
                check_database_name(self.database)
            with AdminConsole(console_params) as console:
                self.look(console)
                self.change_settings(console)
                if self.options.get("lock_out_users") and self.options.get("lock_out_state") == "absent":
                    self.lift_lock_out(console)
                elif self.options.get("lock_out_users"):
                    self.lock_out(console)
                if verb == "KILL_CLIENT":
                    self.kill_client(console)
                elif verb:
                    self.command(console, verb)
        except ConnectionFailure as failure:
            raise self.fail(str(failure)) from None
        except (OSError, ValueError) as error:
            raise self.fail("pgbouncer_admin: %s" % error) from None
        return self.result
