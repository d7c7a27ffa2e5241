# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Re-pointing after a promotion: standbys follow the new primary, PgBouncer sends clients there.

Two pure parts (conninfo rewriting, PgBouncer ini editing) and the statements that
apply them. Since PostgreSQL 13, primary_conninfo and primary_slot_name are reloadable:
changing them restarts the WAL receiver without restarting the server.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed, connected
from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import streams_from
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import (
    _CONSOLE_NAME,
    AdminConsole,
    check_setting,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    StatementRunner,
    execute,
    require_primary,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.promote import TIMELINE
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import MASK, redact_text
from ansible_collections.penguinmails.dbops.plugins.module_utils.replication import slot_name_for
from ansible_collections.penguinmails.dbops.plugins.module_utils.safe_files import Directory

try:
    from psycopg2.extensions import parse_dsn
except ImportError:  # pragma: no cover - reported by the modules
    parse_dsn = None

SECRET_KEYS = ("password",)
# libpq: a value is bare up to white space, or single-quoted with \' and \\ escaped.
_LIBPQ_BARE_VALUE = re.compile(r"^[^\s'\\]+$")
_LIBPQ_KEY = re.compile(r"^[a-z_]+$")
_LINE_BREAKS = ("\n", "\r", "\0")


def quote_conninfo_value(key: str, value: str) -> str:
    """One libpq connection-string value: bare when it can be, else single-quoted with \\ escapes.

    The value may be a password: messages name the key only.
    """
    if any(char in value for char in _LINE_BREAKS):
        raise ValueError("refusing connection setting %s: its value has a line break or NUL character" % key)
    if _LIBPQ_BARE_VALUE.match(value):
        return value
    return "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'")


def build_conninfo(settings: Dict[str, str]) -> str:
    """A libpq connection string of the settings, in order; every value quoted as libpq reads it back."""
    for key in settings:
        if not _LIBPQ_KEY.match(key):
            raise ValueError("refusing connection setting name %r" % key)
    return " ".join("%s=%s" % (key, quote_conninfo_value(key, str(value))) for key, value in settings.items())


def follow_conninfo(current: str, host: str, port: int, application_name: str) -> str:
    """current primary_conninfo with host and port replaced; everything else kept."""
    settings = parse_dsn(current) if current else {}
    settings.update(host=host, port=str(port))
    settings.setdefault("application_name", application_name)
    return build_conninfo(settings)


def same_conninfo(left: str, right: str) -> bool:
    """Equal as settings, whatever the order or quoting of the strings."""
    return (parse_dsn(left) if left else {}) == (parse_dsn(right) if right else {})


def mask_conninfo(conninfo: str) -> str:
    """primary_conninfo fit for output: secrets replaced."""
    if not conninfo:
        return conninfo
    settings = parse_dsn(conninfo)
    for key in SECRET_KEYS:
        if key in settings:
            settings[key] = MASK
    return build_conninfo(settings)


# PgBouncer's ini: '[section]', 'key = value' up to the end of the line, comment lines
# start with ';' or '#'. A [databases] value is 'key=value ...', a value bare up to
# white space or single-quoted with '' for a quote (pgbouncer's loader.c).
_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")
_ENTRY = re.compile(r"^\s*(?P<name>[^=\s;#]+)\s*=\s*(?P<value>.*?)\s*$")
_DB_PAIR = re.compile(r"(\w+)\s*=\s*('(?:[^']|'')*'|\S+)")
_DB_KEY = re.compile(r"^[A-Za-z0-9_]+$")
_DB_BARE_VALUE = re.compile(r"^[A-Za-z0-9_.,:/@+%-]+$")


def check_database_name(name: str) -> str:
    """A [databases] entry name PgBouncer's ini and admin console both take as it is."""
    if not _CONSOLE_NAME.match(name or ""):
        raise ValueError(
            "refusing PgBouncer database name %r: only letters, digits, '_', '.', '-' (1 to 63) are accepted" % name
        )
    return name


def quote_db_value(key: str, value: str) -> str:
    """The value of `key` in a [databases] entry as PgBouncer reads it back: bare when plainly safe, else quoted."""
    if not _DB_KEY.match(key or ""):
        raise ValueError("refusing PgBouncer database setting name %r: letters, digits and '_' only" % key)
    if any(char in value for char in _LINE_BREAKS):
        raise ValueError("refusing PgBouncer setting %s: its value has a line break or NUL character" % key)
    if _DB_BARE_VALUE.match(value):
        return value
    return "'%s'" % value.replace("'", "''")


def parse_db_value(value: str) -> List[Tuple[str, str]]:
    """'host=a port=1 dbname=x' -> ordered pairs, values as written (PgBouncer's [databases] syntax)."""
    return list(_DB_PAIR.findall(value))


def render_db_value(pairs: List[Tuple[str, str]]) -> str:
    return " ".join("%s=%s" % (key, value) for key, value in pairs)


def set_pairs(pairs: List[Tuple[str, str]], wanted: Dict[str, str]) -> List[Tuple[str, str]]:
    """Replace values in place, append new keys at the end; order is kept for a readable diff.

    `wanted` values are taken as they are to be written (already quoted).
    """
    result = []
    seen = set()
    for key, value in pairs:
        if key in wanted:
            result.append((key, wanted[key]))
            seen.add(key)
        else:
            result.append((key, value))
    result.extend((key, value) for key, value in wanted.items() if key not in seen)
    return result


def find_database_line(lines: List[str], database: str) -> Tuple[Optional[int], Optional[int]]:
    """(index of the entry line or None, index after the [databases] section's last line or None)."""
    return find_setting_line(lines, "databases", database)


def update_database_entry(text: str, database: str, wanted: Dict[str, str]) -> Tuple[str, Optional[str], str]:
    """(new ini text, old entry line or None, new entry line) for one [databases] entry.

    Every name and value is checked against PgBouncer's grammar and quoted where it
    allows; what it cannot express raises ValueError, so no input adds a line or a setting.
    """
    check_database_name(database)
    quoted = {key: quote_db_value(key, str(value)) for key, value in wanted.items()}
    lines = text.splitlines()
    index, section_end = find_database_line(lines, database)
    if section_end is None:
        raise ValueError("the PgBouncer ini file has no [databases] section")
    if index is None:
        new_line = "%s = %s" % (database, render_db_value(list(quoted.items())))
        lines.insert(section_end, new_line)
        return "\n".join(lines) + "\n", None, new_line
    old_line = lines[index]
    pairs = parse_db_value(_ENTRY.match(old_line).group("value"))
    new_line = "%s = %s" % (database, render_db_value(set_pairs(pairs, quoted)))
    lines[index] = new_line
    return "\n".join(lines) + "\n", old_line.strip(), new_line


def find_setting_line(lines: List[str], section: str, key: str) -> Tuple[Optional[int], Optional[int]]:
    """(index of `key = ...` in [section] or None, index after the section's last non-blank line or None)."""
    in_section = False
    section_end = None
    for index, line in enumerate(lines):
        header = _SECTION.match(line)
        if header:
            if in_section:
                break
            in_section = header.group("name").strip().lower() == section
            section_end = index + 1 if in_section else section_end
            continue
        if not in_section:
            continue
        section_end = index + 1 if line.strip() else section_end
        entry = _ENTRY.match(line)
        if entry and entry.group("name") == key:
            return index, section_end
    return None, section_end


def update_setting(text: str, section: str, key: str, value: str) -> Tuple[str, Optional[str], str]:
    """(new ini text, old line or None, new line) for `key = value` in [section] (e.g. [pgbouncer]).

    The key and value are checked by check_setting (what the console's SET takes too);
    a section that is missing raises ValueError rather than being guessed.
    """
    check_setting(key, value)
    lines = text.splitlines()
    index, section_end = find_setting_line(lines, section, key)
    if section_end is None:
        raise ValueError("the PgBouncer ini file has no [%s] section" % section)
    new_line = "%s = %s" % (key, value)
    if index is None:
        lines.insert(section_end, new_line)
        return "\n".join(lines) + "\n", None, new_line
    old_line = lines[index].strip()
    lines[index] = new_line
    return "\n".join(lines) + "\n", old_line, new_line


def read_ini_text(path: str) -> Optional[str]:
    """The ini file's text, or None when there is none; a link is refused (LinkRefused)."""
    with Directory(os.path.dirname(path) or ".") as directory:
        return directory.read_text(os.path.basename(path))


def replace_ini_text(path: str, text: str) -> None:
    """Replace the file in one rename, keeping owner and mode (PgBouncer must still read it)."""
    with Directory(os.path.dirname(path) or ".") as directory:
        directory.replace_keeping_owner(os.path.basename(path), text.encode())


def masked_entry(line: Optional[str]) -> Optional[str]:
    """An entry line fit for output: password= and other secrets masked."""
    return None if line is None else redact_text(line)


class PgBouncerEntry:
    """Hold a PgBouncer database (PAUSE, KILL as the fallback) or point its ini entry at a server.

    `options` are pgbouncer_database's: name, ini_path, host, port, settings, pause_timeout.
    `result` collects entry_before/entry_after (masked), actions, changed and diff.
    Failures raise ActionFailed carrying the result so far.
    """

    def __init__(self, options: Dict[str, Any], check_mode: bool) -> None:
        self.options = options
        self.check_mode = check_mode
        self.name = options["name"]
        self.result: Dict[str, Any] = {"changed": False, "entry_before": None, "entry_after": None, "actions": []}

    def fail(self, message: str) -> ActionFailed:
        return ActionFailed(message, self.result)

    def database_row(self, console: AdminConsole) -> Optional[Dict[str, Any]]:
        for row in console.show("DATABASES"):
            if row.get("name") == self.name:
                return row
        return None

    @staticmethod
    def is_paused(row: Optional[Dict[str, Any]]) -> bool:
        return bool(row) and str(row.get("paused", "0")) not in ("0", "", "None")

    def hold(self, console: AdminConsole) -> None:
        row = self.database_row(console)
        if row is None:
            raise self.fail("PgBouncer at %s has no database %s" % (console.params.endpoint, self.name))
        if self.is_paused(row):
            return
        self.result["changed"] = True
        actions = self.result["actions"]
        if self.check_mode:
            actions.append('PAUSE "%s"' % self.name)
            return
        pausing = dataclasses.replace(console.params, query_timeout=self.options["pause_timeout"])
        try:
            with AdminConsole(pausing) as pause_console:
                pause_console.command("PAUSE", self.name)
            actions.append('PAUSE "%s"' % self.name)
        except ConnectionFailure as failure:
            if failure.kind != "timeout":
                raise
            actions.append('PAUSE "%s" (server connections still open after %s s)' % (self.name, pausing.query_timeout))
            console.command("KILL", self.name)
            actions.append('KILL "%s"' % self.name)

    def wanted_settings(self) -> Dict[str, str]:
        wanted = {"host": self.options["host"], "port": str(self.options["port"])}
        wanted.update({key: str(value) for key, value in (self.options.get("settings") or {}).items()})
        return wanted

    def plan_entry(self) -> Optional[str]:
        """The ini text with the entry pointed where wanted (None when it already is); records before/after."""
        path = self.options["ini_path"]
        text = read_ini_text(path)
        if text is None:
            raise FileNotFoundError("no PgBouncer ini file at %s" % path)
        new_text, before, after = update_database_entry(text, self.name, self.wanted_settings())
        self.result.update(entry_before=masked_entry(before), entry_after=masked_entry(after))
        if new_text == text:
            return None
        self.result["diff"] = {
            "before": (masked_entry(before) or "") + "\n",
            "after": masked_entry(after) + "\n",
            "before_header": path,
            "after_header": path,
        }
        return new_text

    def write_ini(self, text: str) -> None:
        replace_ini_text(self.options["ini_path"], text)

    def point(self, console: AdminConsole) -> None:
        path = self.options["ini_path"]
        new_text = self.plan_entry()
        paused = self.is_paused(self.database_row(console))
        if new_text is not None:
            self.result["actions"].extend(["rewrote %s" % path, "RELOAD"])
        if paused:
            self.result["actions"].append('RESUME "%s"' % self.name)
        self.result["changed"] = new_text is not None or paused
        if self.check_mode:
            return
        if new_text is not None:
            self.write_ini(new_text)
            console.command("RELOAD")
        if paused:
            console.command("RESUME", self.name)

    def point_file_only(self, failure: ConnectionFailure) -> ActionFailed:
        """PgBouncer does not answer: still point the ini file, so it serves the right server once started."""
        path = self.options["ini_path"]
        new_text = self.plan_entry()
        if new_text is not None:
            self.result["actions"].append("rewrote %s" % path)
            self.result["changed"] = True
            if not self.check_mode:
                self.write_ini(new_text)
        return self.fail(
            "%s; %s %s %s at %s:%s, so PgBouncer serves it once started (check why it is not running)"
            % (
                failure,
                path,
                "would point" if self.check_mode else "now points",
                self.name,
                self.options["host"],
                self.options["port"],
            )
        )

    def run(self, console_params: ConnectionParams, state: str) -> Dict[str, Any]:
        """Hold or point; returns the module result or raises ActionFailed."""
        try:
            check_database_name(self.name)
            with AdminConsole(console_params) as console:
                if state == "held":
                    self.hold(console)
                else:
                    self.point(console)
        except ConnectionFailure as failure:
            if state == "present" and not self.result["actions"]:
                raise self._file_only_or_error(failure) from None
            raise self.fail(str(failure)) from None
        except (OSError, ValueError) as error:
            raise self.fail("PgBouncer entry %s: %s" % (self.name, error)) from None
        return self.result

    def _file_only_or_error(self, failure: ConnectionFailure) -> ActionFailed:
        try:
            return self.point_file_only(failure)
        except (OSError, ValueError) as error:
            return self.fail("PgBouncer entry %s: %s" % (self.name, error))


CURRENT = (
    "SELECT current_setting('primary_conninfo'), current_setting('primary_slot_name'), "
    "current_setting('recovery_target_timeline'), pg_is_in_recovery(), "
    "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END"
)
SLOT_EXISTS = "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s"
CREATE_SLOT = "SELECT pg_create_physical_replication_slot(%s, true)"
RESUME = "SELECT pg_wal_replay_resume()"
SET_CONNINFO = "ALTER SYSTEM SET primary_conninfo = %s"
SET_SLOT = "ALTER SYSTEM SET primary_slot_name = %s"
RELOAD = "SELECT pg_reload_conf()"
# What a re-pointed standby's WAL receiver does now, and how far it has replayed.
RECEIVER = (
    "SELECT (SELECT row_to_json(w) FROM (SELECT status, sender_host, sender_port, received_tli "
    "FROM pg_stat_wal_receiver) w), pg_last_wal_replay_lsn()::text"
)
FOLLOW_POLL_S = 0.2


def not_following_reason(
    name: str, receiver: Optional[Dict[str, Any]], replayed: Optional[str], primary: str, waited_s: float
) -> str:
    """Why a re-pointed standby is taken for one that does not follow the primary, with what to do."""
    if receiver:
        state = "its WAL receiver is %s (from %s:%s, timeline %s)" % (
            receiver.get("status"),
            receiver.get("sender_host"),
            receiver.get("sender_port"),
            receiver.get("received_tli"),
        )
    else:
        state = "it has no WAL receiver running"
    return (
        "%s does not stream from %s %gs after it was re-pointed: %s, replayed up to %s. A standby that replayed "
        "WAL the new primary never had (an old primary left running kept taking writes) cannot follow its "
        "timeline: rejoin it (playbooks/rejoin_old_primary.yml rewinds it, or re-clones it)"
        % (name, primary, waited_s, state, replayed or "?")
    )


class Follower:
    """Make standbys stream from a (new) primary; collects what is done (or planned) across servers.

    `options` are pg_standby_follow's: primary_host, primary_port, primary_login_host,
    primary_login_port, resume_replay. Raises ConnectionFailure naming the server.
    """

    def __init__(self, base: ConnectionParams, options: Dict[str, Any], check_mode: bool) -> None:
        self.base = base
        self.options = options
        self.check_mode = check_mode
        self.runner = StatementRunner(check_mode)
        self.slots_created: List[str] = []
        self.standbys: Dict[str, Dict[str, Any]] = {}

    @property
    def executed(self) -> List[str]:
        return self.runner.executed

    def params_for(self, host: str, port: int) -> ConnectionParams:
        return dataclasses.replace(self.base, host=host, port=port)

    def primary_params(self) -> ConnectionParams:
        return self.params_for(
            self.options.get("primary_login_host") or self.options["primary_host"],
            self.options.get("primary_login_port") or self.options["primary_port"],
        )

    def primary_timeline(self) -> int:
        params = self.primary_params()
        with connected(params) as conn:
            return int(execute(conn, params, TIMELINE).fetchone()[0])

    def ensure_slots(self, names: List[str]) -> None:
        params = self.primary_params()
        with connected(params) as conn:
            # In check mode the candidate has not been promoted yet: plan against it as it is.
            if not self.check_mode:
                require_primary(conn, params)
            for name in names:
                if not execute(conn, params, SLOT_EXISTS, (name,)).fetchone():
                    self.runner.run(conn, params, CREATE_SLOT, (name,), label=True)
                    self.slots_created.append(name)

    def follow(self, standby: Dict[str, Any]) -> None:
        params = self.params_for(standby["login_host"], standby["login_port"])
        slot = slot_name_for(standby["name"])
        with connected(params) as conn:
            conninfo, slot_now, target_timeline, recovering, paused = execute(conn, params, CURRENT).fetchone()
            check_followable(standby["name"], params, recovering, target_timeline)
            state = self.repoint(conn, params, conninfo, slot_now, slot)
            state["replay_paused"] = bool(paused)
            if paused and self.options["resume_replay"]:
                self.runner.run(conn, params, RESUME, label=True)
                state.update(changed=True, replay_paused=False, replay_resumed=True)
            self.standbys[standby["name"]] = state

    def repoint(self, conn: Any, params: ConnectionParams, conninfo: str, slot_now: str, slot: str) -> Dict[str, Any]:
        """primary_conninfo and primary_slot_name at the primary, and a reload, where they differ."""
        wanted = follow_conninfo(conninfo, self.options["primary_host"], self.options["primary_port"], slot)
        state = {"slot": slot, "conninfo_before": mask_conninfo(conninfo), "conninfo_after": mask_conninfo(wanted)}
        conninfo_changes = not same_conninfo(wanted, conninfo)
        state["changed"] = conninfo_changes or slot_now != slot
        if conninfo_changes:
            self.runner.run(conn, params, SET_CONNINFO, (wanted,), (mask_conninfo(wanted),), label=True)
        if slot_now != slot:
            self.runner.run(conn, params, SET_SLOT, (slot,), label=True)
        if state["changed"]:
            self.runner.run(conn, params, RELOAD, label=True)
        return state

    def receiver_of(self, standby: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
        params = self.params_for(standby["login_host"], standby["login_port"])
        with connected(params) as conn:
            receiver, replayed = execute(conn, params, RECEIVER).fetchone()
        return receiver, replayed

    def wait_streaming(
        self,
        standbys: List[Dict[str, Any]],
        wait_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Dict[str, str]:
        """Until every standby streams from the primary or wait_s has passed -> {standby: why it does not}.

        Marks each standby's `streaming`. A standby that cannot be reached is one that does not follow.
        Streaming counts on the primary's timeline only: a standby past the fork still streams the old
        timeline's WAL from the new primary for a moment before its replay refuses the switch.
        """
        host, port = self.options["primary_host"], self.options["primary_port"]
        primary = "%s:%s" % (host, port)
        timeline = self.primary_timeline()
        deadline = clock() + wait_s
        pending = {standby["name"]: standby for standby in standbys}
        seen: Dict[str, str] = {}
        while True:
            for name, standby in list(pending.items()):
                try:
                    receiver, replayed = self.receiver_of(standby)
                except ConnectionFailure as failure:
                    seen[name] = "%s could not be asked whether it follows %s: %s" % (name, primary, failure)
                    continue
                on_timeline = (receiver or {}).get("received_tli") == timeline
                if on_timeline and streams_from({"wal_receiver": receiver}, host, port):
                    del pending[name]
                else:
                    seen[name] = not_following_reason(name, receiver, replayed, primary, wait_s)
            if not pending or clock() >= deadline:
                break
            sleep(FOLLOW_POLL_S)
        for standby in standbys:
            self.standbys.setdefault(standby["name"], {})["streaming"] = standby["name"] not in pending
        return {name: seen[name] for name in sorted(pending)}

    def conninfo_lines(self, key: str) -> str:
        return "".join("%s: %s\n" % (name, state[key]) for name, state in self.standbys.items())

    def run(self, standbys: List[Dict[str, Any]], create_slots: bool, wait_streaming_s: float = 0) -> Dict[str, Any]:
        """Slots first, then every standby, then (wait_streaming_s > 0, not in check mode) until they stream
        from the primary; the module result. Raises ActionFailed."""
        try:
            if create_slots:
                self.ensure_slots([slot_name_for(standby["name"]) for standby in standbys])
            for standby in standbys:
                self.follow(standby)
        except (ConnectionFailure, ValueError) as failure:
            raise ActionFailed(str(failure), {"executed_queries": self.executed, "standbys": self.standbys}) from None
        not_streaming = {}
        if wait_streaming_s > 0 and not self.check_mode:
            not_streaming = self.wait_streaming(standbys, wait_streaming_s)
        changed = bool(self.slots_created) or any(state["changed"] for state in self.standbys.values())
        return {
            "changed": changed,
            "standbys": self.standbys,
            "not_streaming": not_streaming,
            "slots_created": self.slots_created,
            "executed_queries": self.executed,
            "diff": {
                "before": "".join(
                    "%s: %s\n" % (name, state["conninfo_before"]) for name, state in self.standbys.items()
                ),
                "after": "".join("%s: %s\n" % (name, state["conninfo_after"]) for name, state in self.standbys.items()),
            },
        }


def check_followable(name: str, params: ConnectionParams, recovering: bool, target_timeline: str) -> None:
    """A standby that can follow a promotion: in recovery, following the latest timeline."""
    if not recovering:
        raise ConnectionFailure(
            "not_standby", "%s (%s) is not in recovery; refusing to re-point a primary" % (name, params.endpoint)
        )
    if target_timeline != "latest":
        raise ConnectionFailure(
            "timeline",
            "%s has recovery_target_timeline=%s; it must be 'latest' to follow a promotion" % (name, target_timeline),
        )
