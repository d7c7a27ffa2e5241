# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_restore_diff's I/O: restore a tier's pgBackRest backup to a point in time into a throw-away
instance, diff tables against the live primary by primary key, and (when asked) apply the missing
and changed rows back in one transaction.

The throw-away instance has its own data directory (under restore_root, one per run) and port,
listens on 127.0.0.1 only and never archives; it is stopped and removed at the end unless kept.
pgBackRest and PostgreSQL run as `run_as` (postgres) when this runs as root. The rules (target,
which backup, which rows, table order) are in backups.py; row_diff is in integrity.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ansible_collections.penguinmails.dbops.plugins.module_utils.backups import (
    apply_order,
    backups_from_info,
    check_stanza,
    diff_summary,
    restore_decision,
    restore_dir_name,
    restore_target,
    restored_server_options,
    rows_to_apply,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import qualified, row_diff, split_name
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    StatementRunner,
    close_quietly,
    connect,
    execute,
    first_line,
    quote_ident,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.quarantine_run import one_transaction
from ansible_collections.penguinmails.dbops.plugins.module_utils.safe_files import open_directory

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by ensure_psycopg2
    sql = None

COLUMNS_SQL = """
SELECT a.attname::text AS name, a.attgenerated <> '' AS generated,
       coalesce(a.attnum = ANY (i.indkey::int2[]), false) AS in_key
FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

PKEY_SQL = """
SELECT array_agg(a.attname::text ORDER BY k.ord)
FROM pg_index i CROSS JOIN unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s::regclass AND i.indisprimary
"""

REFERENCES_SQL = """
SELECT format('%s.%s', cn.nspname, c.relname), format('%s.%s', pn.nspname, p.relname)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE k.contype = 'f'
"""


@dataclasses.dataclass
class OsUser:
    name: str
    uid: int
    gid: int
    prefix: List[str]


def os_user(run_as: str) -> OsUser:
    """Who runs pgBackRest and the throw-away server: run_as through runuser when root, else this user."""
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(run_as)
        except KeyError:
            raise ValueError("run_as: no OS user %s on this host" % run_as) from None
        if entry.pw_uid == 0:
            raise ValueError("run_as: PostgreSQL and pgBackRest do not run as root; name their OS user (postgres)")
        return OsUser(run_as, entry.pw_uid, entry.pw_gid, ["runuser", "-u", run_as, "--"])
    entry = pwd.getpwuid(os.geteuid())
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, [])


def run_command(user: OsUser, argv: Sequence[str], timeout: float, what: str, cwd: str = "/") -> str:
    """argv as the OS user; its stdout, or ValueError with the command's own last line."""
    try:
        done = subprocess.run(
            [*user.prefix, *argv], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
        )
    except FileNotFoundError:
        raise ValueError("%s: %s is not installed on this host" % (what, argv[0])) from None
    except subprocess.TimeoutExpired:
        raise ValueError("%s did not finish within %ss" % (what, timeout)) from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
        raise ValueError("%s failed (rc=%d): %s" % (what, done.returncode, lines[-1] if lines else "no output"))
    return done.stdout


def pgbackrest_argv(options: Mapping[str, Any], *args: str) -> List[str]:
    return [
        "pgbackrest",
        "--config=%s" % options["pgbackrest_config"],
        "--stanza=%s" % check_stanza(options["stanza"]),
        "--log-level-console=warn",
        *args,
    ]


def read_backups(user: OsUser, options: Mapping[str, Any]) -> Dict[str, Any]:
    """The stanza's backups (pgbackrest info, read-only)."""
    if not str(options.get("stanza") or "").strip():
        return {"stanza_ok": False, "status": "no stanza", "backups": []}
    if not os.path.isfile(options["pgbackrest_config"]):
        return {
            "stanza_ok": False,
            "status": "no pgBackRest configuration at %s" % options["pgbackrest_config"],
            "backups": [],
        }
    text = run_command(user, pgbackrest_argv(options, "--output=json", "info"), 60, "pgbackrest info")
    try:
        info = json.loads(text)
    except ValueError:
        raise ValueError("pgbackrest info did not answer JSON: %s" % first_line(text)) from None
    return backups_from_info(info, options["stanza"])


def table_shape(conn: Any, params: ConnectionParams, table: str) -> Dict[str, Any]:
    """{table, schema, name, key, columns (not generated)}; ValueError for an unknown table or no primary key."""
    schema, name = split_name(table)
    full = qualified(schema, name)
    if execute(conn, params, "SELECT to_regclass(%s)", [full]).fetchone()[0] is None:
        raise ValueError("cannot restore %s: database %s has no such table" % (full, params.dbname))
    key = execute(conn, params, PKEY_SQL, [full]).fetchone()[0] or []
    if not key:
        raise ValueError("cannot diff %s: it has no primary key to match rows by" % full)
    columns = [row[0] for row in execute(conn, params, COLUMNS_SQL, [full]).fetchall() if not row[1]]
    return {"table": full, "schema": schema, "name": name, "key": list(key), "columns": columns}


def _table_ref(shape: Mapping[str, Any]) -> Any:
    return sql.SQL("{}.{}").format(quote_ident(shape["schema"]), quote_ident(shape["name"]))


def read_rows(conn: Any, params: ConnectionParams, shape: Mapping[str, Any]) -> Dict[str, Any]:
    """{key tuple: (row as JSON text, row as dict)}: jsonb keeps every value exact (numeric stays text)."""
    cursor = execute(conn, params, sql.SQL("SELECT to_jsonb(t)::text FROM {} AS t").format(_table_ref(shape)))
    rows = {}
    for (text,) in cursor.fetchall():
        row = json.loads(text, parse_float=str)
        rows[tuple(row[column] for column in shape["key"])] = (text, row)
    return rows


def table_diff(restored: Mapping[Any, Any], live: Mapping[Any, Any], key: Sequence[str]) -> Dict[str, Any]:
    return row_diff([pair[1] for pair in restored.values()], [pair[1] for pair in live.values()], key)


def upsert_statement(shape: Mapping[str, Any]) -> Any:
    """One restored row back into the live table: inserted when missing, set back when changed."""
    columns = sql.SQL(", ").join(quote_ident(column) for column in shape["columns"])
    others = [column for column in shape["columns"] if column not in shape["key"]]
    action = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(quote_ident(column)) for column in others)
        )
        if others
        else sql.SQL("DO NOTHING")
    )
    return sql.SQL(
        "INSERT INTO {table} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM jsonb_populate_record("
        "NULL::{table}, %s::jsonb) ON CONFLICT ({key}) {action}"
    ).format(
        table=_table_ref(shape),
        columns=columns,
        key=sql.SQL(", ").join(quote_ident(column) for column in shape["key"]),
        action=action,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pg_bin_dir(conn: Any, params: ConnectionParams, given: str) -> str:
    """The PostgreSQL binaries of the live server's major version (or the given directory)."""
    if given:
        directory = given
    else:
        major = int(execute(conn, params, "SELECT current_setting('server_version_num')::int / 10000").fetchone()[0])
        found = glob.glob("/usr/lib/postgresql/%d/bin" % major)
        if not found:
            raise ValueError("no PostgreSQL %d binaries in /usr/lib/postgresql/%d/bin: set pg_bin_dir" % (major, major))
        directory = found[0]
    if not os.access(os.path.join(directory, "pg_ctl"), os.X_OK):
        raise ValueError("pg_bin_dir %s has no pg_ctl" % directory)
    return directory


def prepared_root(root: str, user: OsUser) -> None:
    """The restore root exists, is a real directory (not a link) and belongs to root or the OS user."""
    if not os.path.isabs(root) or os.path.normpath(root) in ("/", "/tmp", "/var/tmp", "/var/lib"):
        raise ValueError("restore_root must be an absolute directory of its own (got %s)" % root)
    if not os.path.lexists(root):
        os.makedirs(os.path.dirname(root), exist_ok=True)
        os.mkdir(root, 0o700)
        descriptor = open_directory(root)
        try:
            os.fchown(descriptor, user.uid, user.gid)
        finally:
            os.close(descriptor)
    descriptor = open_directory(root)
    try:
        info = os.fstat(descriptor)
    finally:
        os.close(descriptor)
    traversable = info.st_uid == user.uid or info.st_mode & stat.S_IXOTH
    if info.st_uid not in (0, user.uid) or info.st_mode & stat.S_IWOTH or not traversable:
        raise ValueError(
            "restore_root %s must belong to %s (or to root, and let others enter it) and not be writable by others"
            % (root, user.name)
        )


class ThrowAway:
    """The restored instance: its directory, port, and how to stop and remove it."""

    def __init__(self, user: OsUser, bin_dir: str, root: str, name: str, port: int, timeout_s: float) -> None:
        self.user, self.bin_dir, self.root, self.port, self.timeout_s = user, bin_dir, root, port, timeout_s
        self.data_dir = os.path.join(root, name)
        # Log and socket inside the instance's own directory (owned by its OS user, removed with it).
        self.log_file = os.path.join(self.data_dir, "dbops_restore.log")
        self.started = False
        self.actions: List[str] = []

    def create(self) -> None:
        if os.path.lexists(self.data_dir):
            raise ValueError("restore directory %s already exists" % self.data_dir)
        os.mkdir(self.data_dir, 0o700)
        descriptor = open_directory(self.data_dir)
        try:
            os.fchown(descriptor, self.user.uid, self.user.gid)
        finally:
            os.close(descriptor)

    def pg_ctl(self, *args: str, timeout: Optional[float] = None) -> str:
        argv = [os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data_dir, *args]
        return run_command(self.user, argv, timeout or self.timeout_s + 10, "pg_ctl %s" % args[-1], cwd=self.data_dir)

    def start(self) -> None:
        options = " ".join(restored_server_options(self.port, self.data_dir))
        self.actions.append("start the restored instance on 127.0.0.1:%d (%s)" % (self.port, self.data_dir))
        self.started = True
        self.pg_ctl("-l", self.log_file, "-w", "-t", str(int(self.timeout_s)), "-o", options, "start")

    def stop(self) -> None:
        if not self.started:
            return
        if not os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            self.started = False
            return
        try:
            self.pg_ctl("-m", "fast", "-w", "-t", "60", "stop", timeout=70)
        except ValueError:
            self.pg_ctl("-m", "immediate", "-w", "-t", "30", "stop", timeout=40)
        self.started = False
        self.actions.append("stop the restored instance")

    def remove(self) -> None:
        if os.path.isdir(self.data_dir) and not os.path.islink(self.data_dir):
            shutil.rmtree(self.data_dir)
        self.actions.append("remove %s" % self.data_dir)

    def fatal_line(self) -> str:
        """The server's FATAL line from its log (why it stopped), or ''."""
        try:
            with open(self.log_file, errors="replace") as handle:
                lines = [line.strip() for line in handle if "FATAL:" in line]
        except OSError:
            return ""
        return lines[-1].split("FATAL:", 1)[1].strip() if lines else ""


def wait_promoted(
    params: ConnectionParams, deadline_s: float, instance: ThrowAway, clock: Callable[[], float] = time.monotonic
) -> Any:
    """A connection to the restored instance once it has replayed to the target and left recovery."""
    end = clock() + deadline_s
    last = "not tried"
    while clock() < end:
        fatal = instance.fatal_line()
        if fatal:
            raise ValueError("the restored instance stopped: %s" % fatal)
        conn = None
        try:
            conn = connect(params)
            if not execute(conn, params, "SELECT pg_is_in_recovery()").fetchone()[0]:
                return conn
            last = "still in recovery"
        except ConnectionFailure as failure:
            last = str(failure)
        close_quietly(conn)
        time.sleep(0.2)
    raise ValueError("the restored instance did not finish recovery within %ss: %s" % (deadline_s, last))


def restore_and_diff(
    conn: Any,
    params: ConnectionParams,
    options: Mapping[str, Any],
    check_mode: bool,
    now: Optional[dt.datetime] = None,
) -> Dict[str, Any]:
    now = now or dt.datetime.now(dt.timezone.utc)
    user = os_user(options["run_as"])
    target = restore_target(options.get("target_time"), options.get("detected_at"), now)
    backups = read_backups(user, options) if not target.get("refused") else {"backups": []}
    decision = restore_decision(options.get("stanza") or "", backups, target)
    if decision.get("refused"):
        raise ValueError(decision["refused"])
    shapes = [table_shape(conn, params, table) for table in options["tables"]]
    references = [tuple(row) for row in execute(conn, params, REFERENCES_SQL).fetchall()]
    order = apply_order([shape["table"] for shape in shapes], references)
    shapes.sort(key=lambda shape: order.index(shape["table"]))
    base = {
        "changed": False,
        "decision": decision,
        "tables": [shape["table"] for shape in shapes],
        "differences": [],
        "rows": [],
        "applied": [],
        "after": [],
        "unreadable": [],
        "restore": {},
        "actions": [],
        "executed_queries": [],
        "endpoint": params.endpoint,
    }
    if options.get("validate_only"):
        return base
    name = restore_dir_name(options["stanza"], now)
    root = options["restore_root"]
    restore_cmd = pgbackrest_argv(
        options,
        "--type=time",
        "--target=%s" % decision["target"],
        "--target-action=promote",
        "--set=%s" % decision["backup"],
        "--archive-mode=off",
        "--pg1-path=%s" % os.path.join(root, name),
        "restore",
    )
    if check_mode:
        base["actions"] = [
            "would run: %s" % " ".join(pgbackrest_argv(options, "check")),
            "would run: %s" % " ".join(restore_cmd),
            "would start it on 127.0.0.1 (port %s), diff %s by primary key, then %s"
            % (
                options["restore_port"] or "free",
                ", ".join(base["tables"]),
                "stop and remove it" if not options.get("keep") else "keep it",
            ),
        ]
        base["executed_queries"] = ["SELECT pg_current_xact_id()"]
        if options.get("apply"):
            base["actions"].append("would apply the missing and changed rows in one transaction")
        return base
    prepared_root(root, user)
    bin_dir = pg_bin_dir(conn, params, options.get("pg_bin_dir") or "")
    port = int(options["restore_port"] or free_port())
    instance = ThrowAway(user, bin_dir, root, name, port, float(options["start_timeout_s"]))
    actions: List[str] = []
    restored_conn = None
    kept = bool(options.get("keep"))
    runner = StatementRunner(False)
    try:
        # Recovery to a time stops at the first commit after it: an idle database may have none yet,
        # so one empty transaction is committed now; pgbackrest check then switches WAL and waits
        # until it is archived, so the target's WAL is in the repository.
        runner.run(conn, params, "SELECT pg_current_xact_id()")
        run_command(user, pgbackrest_argv(options, "check"), options["command_timeout_s"], "pgbackrest check")
        actions.append(" ".join(pgbackrest_argv(options, "check")))
        instance.create()
        run_command(user, restore_cmd, options["command_timeout_s"], "pgbackrest restore")
        actions.append(" ".join(restore_cmd))
        instance.start()
        restored_params = dataclasses.replace(params, host="127.0.0.1", port=port, unix_socket="")
        restored_conn = wait_promoted(restored_params, float(options["start_timeout_s"]), instance)
        for shape in shapes:
            if (
                execute(restored_conn, restored_params, "SELECT to_regclass(%s)", [shape["table"]]).fetchone()[0]
                is None
            ):
                raise ValueError(
                    "%s did not exist at %s (the restored copy has no such table): choose a later restore target"
                    % (shape["table"], decision["target"])
                )
        restored = {shape["table"]: read_rows(restored_conn, restored_params, shape) for shape in shapes}
    finally:
        close_quietly(restored_conn)
        if not kept:
            try:
                instance.stop()
            finally:
                instance.remove()
        actions.extend(instance.actions)
    limit = int(options["row_limit"])
    diffs, applied, after, evidence = [], [], [], []
    live, unreadable = {}, []
    for shape in shapes:
        try:
            live[shape["table"]] = read_rows(conn, params, shape)
        except ConnectionFailure as failure:
            # A damaged page of the live table: nothing to diff against, nothing to apply to it.
            unreadable.append({"table": shape["table"], "problem": str(failure)})
    shapes = [shape for shape in shapes if shape["table"] in live]
    for shape in shapes:
        diff = table_diff(restored[shape["table"]], live[shape["table"]], shape["key"])
        diffs.append(dict(diff_summary(shape["table"], diff), key=shape["key"]))
        evidence.append({"table": shape["table"], **{kind: items[:limit] for kind, items in diff.items()}})
    if options.get("apply"):
        with one_transaction(conn, False):
            for shape, summary in zip(shapes, diffs):
                chosen = rows_to_apply(
                    {
                        "missing": [{"key": k} for k in summary["missing"]],
                        "changed": [{"key": k} for k in summary["changed"]],
                    }
                )
                for key in chosen["insert"] + chosen["update"]:
                    text = restored[shape["table"]][tuple(key)][0]
                    runner.run(conn, params, upsert_statement(shape), [text], shown_args=["<restored row %s>" % key])
                applied.append(
                    {"table": shape["table"], "inserted": len(chosen["insert"]), "updated": len(chosen["update"])}
                )
        for shape in shapes:
            again = table_diff(restored[shape["table"]], read_rows(conn, params, shape), shape["key"])
            after.append(dict(diff_summary(shape["table"], again), key=shape["key"]))
    return dict(
        base,
        changed=bool(applied and any(entry["inserted"] or entry["updated"] for entry in applied)),
        differences=diffs,
        rows=evidence,
        applied=applied,
        after=after,
        unreadable=unreadable,
        restore={"data_dir": instance.data_dir, "port": port, "kept": kept, "backup": decision["backup"]},
        actions=actions,
        executed_queries=runner.executed,
    )
