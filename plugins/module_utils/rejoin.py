# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bringing a fenced old primary back as a standby: files and commands, no decisions.

pg_rewind and pg_basebackup copy the source's configuration files over the target's;
a server whose postgresql.conf lives in its data directory would come back with the
new primary's port and settings. The target's own files are saved first and put back.
"""

from __future__ import annotations

import os
import pwd
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed, connected
from ansible_collections.penguinmails.dbops.plugins.module_utils.fence import (
    PID_FILE,
    is_alive,
    read_pid_file,
    server_processes,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    StatementRunner,
    execute,
    require_primary,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.replication import slot_name_for
from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import build_conninfo, follow_conninfo
from ansible_collections.penguinmails.dbops.plugins.module_utils.safe_files import Directory, make_owned_directory

KEPT_FILES = ("postgresql.conf", "pg_hba.conf", "pg_ident.conf", "postgresql.auto.conf")
SIGNAL_FILES = ("standby.signal", "recovery.signal")
MANAGED_SETTINGS = ("primary_conninfo", "primary_slot_name")
AUTO_CONF = "postgresql.auto.conf"
STANDBY_SIGNAL = "standby.signal"

STREAMING = "SELECT state FROM pg_stat_replication WHERE application_name = %s"
SLOT_EXISTS = "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s"
CREATE_SLOT = "SELECT pg_create_physical_replication_slot(%s, true)"


# Why pg_rewind failed, from what it printed, in words an operator can act on. First match wins.
REWIND_FAILURES = (
    (
        ("could not open file", "pg_wal"),
        "the old primary no longer holds the WAL back to the last checkpoint before the timelines "
        "diverged (a checkpoint it ran after it was cut off, e.g. the shutdown when it was fenced, "
        "removed it): pg_rewind cannot find where they diverged",
    ),
    (
        ("could not find previous wal record",),
        "the old primary no longer holds the WAL back to the last checkpoint before the timelines "
        "diverged: pg_rewind cannot find where they diverged",
    ),
    (
        ("wal_log_hints",),
        "the old primary has neither data checksums nor wal_log_hints=on, which pg_rewind needs",
    ),
    (
        ("could not connect",),
        "the old primary's host cannot connect to the new primary (network, pg_hba.conf or credentials)",
    ),
    (
        ("connection to server",),
        "the old primary's host cannot connect to the new primary (network, pg_hba.conf or credentials)",
    ),
    (
        ("target server must be shut down cleanly",),
        "the old primary was not shut down cleanly and pg_rewind could not finish its crash recovery",
    ),
)


def rewind_failure_reason(output: str) -> Optional[str]:
    """The cause of a failed pg_rewind in operator's words, or None when it is not a known one."""
    lowered = output.lower()
    for needles, reason in REWIND_FAILURES:
        if all(needle in lowered for needle in needles):
            return reason
    return None


def save_config(data_dir: str) -> Dict[str, bytes]:
    """The target's own configuration files, to put back after a rewind or re-clone."""
    saved = {}
    with Directory(data_dir) as directory:
        for name in KEPT_FILES:
            content = directory.read(name)
            if content is not None:
                saved[name] = content
    return saved


def restore_config(data_dir: str, saved: Dict[str, bytes]) -> None:
    with Directory(data_dir) as directory:
        for name, content in saved.items():
            directory.replace(name, content)


def remove_signal_files(data_dir: str) -> List[str]:
    """pg_rewind's crash recovery runs a single-user server, which refuses standby mode."""
    with Directory(data_dir) as directory:
        return [name for name in SIGNAL_FILES if directory.remove(name)]


def remove_stale_pid_file(data_dir: str) -> Tuple[Optional[int], List[str]]:
    """A killed postmaster can linger as a zombie; its pid file and socket lock file would block a start.

    PostgreSQL refuses to start while the socket lock file (.s.PGSQL.<port>.lock) names a
    process that answers kill(pid, 0), which a zombie does. Both files are removed only when
    they name this dead postmaster. Returns its pid (or None) and the files removed.
    """
    lines = read_pid_file(data_dir)
    pid = int(lines[0].strip()) if lines and lines[0].strip().isdigit() else None
    if pid is None or is_alive(pid):
        return None, []
    with Directory(data_dir) as directory:
        directory.remove(PID_FILE)
    removed = [os.path.join(data_dir, PID_FILE)]
    if len(lines) >= 5 and lines[3].strip().isdigit() and lines[4].strip():
        socket_dir, lock_name = lines[4].strip(), ".s.PGSQL.%s.lock" % lines[3].strip()
        if lock_names(socket_dir, lock_name) == pid:
            with Directory(socket_dir) as directory:
                directory.remove(lock_name)
            removed.append(os.path.join(socket_dir, lock_name))
    return pid, removed


def lock_names(socket_dir: str, lock_name: str) -> Optional[int]:
    try:
        with Directory(socket_dir) as directory:
            text = directory.read_text(lock_name) or ""
    except OSError:
        return None
    first_line = text.split("\n", 1)[0].strip()
    return int(first_line) if first_line.isdigit() else None


def quote_setting(value: str) -> str:
    """A postgresql.conf string value; refuses characters a configuration line cannot hold."""
    if any(char in value for char in "\n\r\0"):
        raise ValueError("refusing a setting value with a line break or NUL character")
    return "'%s'" % value.replace("\\", "\\\\").replace("'", "''")


def set_auto_conf(text: str, settings: Dict[str, str]) -> str:
    """postgresql.auto.conf with the managed settings replaced (last one wins in PostgreSQL)."""
    kept = [
        line
        for line in text.splitlines()
        if not any(line.strip().startswith(name) and "=" in line for name in settings)
    ]
    kept.extend("%s = %s" % (name, quote_setting(value)) for name, value in settings.items())
    return "\n".join(kept) + "\n"


def configure_standby(data_dir: str, primary_conninfo: str, slot_name: str) -> None:
    """standby.signal plus primary_conninfo and primary_slot_name, owned like the data directory."""
    with Directory(data_dir) as directory:
        current = directory.read_text(AUTO_CONF) or ""
        wanted = set_auto_conf(current, {"primary_conninfo": primary_conninfo, "primary_slot_name": slot_name})
        directory.replace(AUTO_CONF, wanted.encode())
        directory.create_empty(STANDBY_SIGNAL)


def set_aside(data_dir: str, suffix: str) -> str:
    """Move a data directory out of the way before a re-clone; the caller reports where."""
    aside = "%s.discarded-%s" % (data_dir.rstrip("/"), suffix)
    Directory(data_dir).close()  # refuses a data directory that is a link
    os.rename(data_dir, aside)
    return aside


class Rejoin:
    """Bring the stopped server of `options['data_dir']` back as a standby of the primary at `params`.

    `run_command(argv, environ_update=..., cwd=...)` runs a program and returns (rc, out, err)
    (AnsibleModule.run_command). Failures raise ActionFailed with what was done until then.
    """

    def __init__(
        self, params: ConnectionParams, options: Dict[str, Any], run_command: Callable, check_mode: bool = False
    ) -> None:
        self.params = params
        self.options = options
        self.run_command = run_command
        self.check_mode = check_mode
        self.data_dir = options["data_dir"]
        self.slot = slot_name_for(options["member_name"])
        with Directory(self.data_dir) as directory:
            self.run_as = options.get("run_as") or pwd.getpwuid(directory.uid).pw_name
        self.runner = StatementRunner(check_mode)
        self.actions: List[str] = []
        self.result: Dict[str, Any] = {
            "changed": False,
            "method": "none",
            "streaming": False,
            "actions": self.actions,
            "executed_queries": self.runner.executed,
        }

    def fail(self, message: str, **details: Any) -> ActionFailed:
        return ActionFailed(message, dict(self.result, **details))

    def tool(self, name: str, *args: str, with_password: bool = True) -> Tuple[int, str, str]:
        """Run a PostgreSQL program as the server's OS user.

        The password reaches pg_rewind and pg_basebackup through the environment, never a
        command line. The server itself (pg_ctl start) must not inherit it: the postmaster
        would carry the superuser password in its environment, and its WAL receiver would
        use it instead of the passfile in primary_conninfo.
        """
        command = [os.path.join(self.options["bin_dir"], name), *args]
        if not with_password:
            command = ["env", "-u", "PGPASSWORD", "-u", "PGPASSFILE", *command]
        if os.geteuid() == 0 and self.run_as != "root":
            command = ["runuser", "-u", self.run_as, "--", *command]
        environment = {"PGCONNECT_TIMEOUT": str(int(max(2, self.params.connect_timeout)))}
        if with_password:
            environment["PGPASSWORD"] = self.params.password
        return self.run_command(command, environ_update=environment, cwd="/")

    def source_conninfo(self) -> str:
        return build_conninfo(
            {"host": self.params.host, "port": str(self.params.port), "user": self.params.user, "dbname": "postgres"}
        )

    def primary_conninfo(self) -> str:
        return follow_conninfo(self.options["replication_conninfo"], self.params.host, self.params.port, self.slot)

    def streaming(self, conn: Any) -> bool:
        row = execute(conn, self.params, STREAMING, (self.slot,)).fetchone()
        return bool(row) and row[0] == "streaming"

    def prepare_primary(self, conn: Any) -> None:
        self.runner.run(conn, self.params, "CHECKPOINT")
        if not execute(conn, self.params, SLOT_EXISTS, (self.slot,)).fetchone():
            self.runner.run(conn, self.params, CREATE_SLOT, (self.slot,))

    def plan(self) -> None:
        self.actions.extend(
            [
                "CHECKPOINT on %s and a slot %s" % (self.params.endpoint, self.slot),
                "pg_rewind %s from %s%s"
                % (
                    self.data_dir,
                    self.params.endpoint,
                    " (re-clone if it fails)" if self.options["allow_reclone"] else "",
                ),
                "keep the configuration files, write standby.signal and primary_conninfo, start, wait to stream",
            ]
        )

    def rewind_or_reclone(self) -> None:
        stale, stale_files = remove_stale_pid_file(self.data_dir)
        if stale:
            self.actions.append("removed %s of dead postmaster %d" % (", ".join(stale_files), stale))
        saved = save_config(self.data_dir)
        removed = remove_signal_files(self.data_dir)
        if removed:
            self.actions.append("removed %s for pg_rewind's crash recovery" % ", ".join(removed))
        rc, out, err = self.tool(
            "pg_rewind", "--target-pgdata", self.data_dir, "--source-server", self.source_conninfo()
        )
        output = (out + err).strip()
        if rc == 0:
            self.result["method"] = "rewind"
            self.actions.append("pg_rewind from %s" % self.params.endpoint)
        elif self.options["allow_reclone"]:
            self.actions.append("pg_rewind failed: %s" % output.splitlines()[-1:])
            self.result["discarded_data_dir"], output = self.reclone()
            self.result["method"] = "reclone"
        else:
            configure_standby(self.data_dir, self.primary_conninfo(), self.slot)
            reason = rewind_failure_reason(output)
            raise self.fail(
                "pg_rewind of %s from %s failed (rc %d): %s%s. The server stays stopped with standby.signal; "
                "rerun with rejoin_allow_reclone=true to discard its data directory and re-clone it"
                % (
                    self.data_dir,
                    self.params.endpoint,
                    rc,
                    output.splitlines()[-1] if output else "no output",
                    " (%s)" % reason if reason else "",
                ),
                tool_output=output[-2000:],
                rewind_failure=reason or "",
            )
        restore_config(self.data_dir, saved)
        configure_standby(self.data_dir, self.primary_conninfo(), self.slot)
        self.actions.append("kept the server's own configuration files; wrote standby.signal and primary_conninfo")
        self.result["tool_output"] = "\n".join(output.splitlines()[-5:])

    def reclone(self) -> Tuple[str, str]:
        with Directory(self.data_dir) as directory:
            uid, gid = directory.uid, directory.gid
        aside = set_aside(self.data_dir, time.strftime("%Y%m%dT%H%M%S", time.gmtime()))
        self.actions.append("moved the data directory aside to %s" % aside)
        make_owned_directory(self.data_dir, uid, gid)
        rc, out, err = self.tool(
            "pg_basebackup", "-D", self.data_dir, "-X", "stream", "-c", "fast", "-d", self.source_conninfo()
        )
        if rc != 0:
            raise self.fail(
                "pg_basebackup from %s failed (rc %d): %s; the old data directory is at %s"
                % (self.params.endpoint, rc, (out + err).strip().splitlines()[-1:], aside)
            )
        self.actions.append("re-cloned with pg_basebackup from %s" % self.params.endpoint)
        return aside, (out + err).strip()

    def start(self) -> None:
        log_file = self.options.get("log_file") or os.path.join(
            os.path.dirname(self.data_dir.rstrip("/")), "postgresql.log"
        )
        timeout = str(self.options["start_timeout"])
        rc, out, err = self.tool(
            "pg_ctl", "-D", self.data_dir, "-l", log_file, "-w", "-t", timeout, "start", with_password=False
        )
        if rc != 0:
            raise self.fail("pg_ctl start of %s failed: %s; see %s" % (self.data_dir, (out + err).strip(), log_file))
        self.actions.append("started the server")

    def wait_streaming(self, conn: Any) -> bool:
        deadline = time.monotonic() + self.options["start_timeout"]
        while time.monotonic() < deadline:
            if self.streaming(conn):
                return True
            time.sleep(0.2)
        return self.streaming(conn)

    def run(self) -> Dict[str, Any]:
        """The whole rejoin; returns the module result or raises ActionFailed."""
        try:
            with connected(self.params) as conn:
                require_primary(conn, self.params)
                self.act(conn)
        except ConnectionFailure as failure:
            raise self.fail(str(failure)) from None
        except (OSError, ValueError) as error:
            raise self.fail("rejoining %s: %s" % (self.data_dir, error)) from None
        return self.result

    def act(self, conn: Any) -> None:
        if self.streaming(conn):
            self.result["streaming"] = True
            return
        if server_processes(self.data_dir):
            raise self.fail(
                "%s is running but not streaming from %s; fence it (pg_fence) before it rejoins"
                % (self.data_dir, self.params.endpoint)
            )
        self.result["changed"] = True
        if self.check_mode:
            self.plan()
            return
        self.prepare_primary(conn)
        self.rewind_or_reclone()
        self.start()
        self.result["streaming"] = self.wait_streaming(conn)
        if not self.result["streaming"]:
            raise self.fail(
                "%s started but is not streaming from %s within %d s"
                % (self.data_dir, self.params.endpoint, self.options["start_timeout"])
            )
