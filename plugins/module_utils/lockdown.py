# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security breach runbook's rules: which roles may be locked out, what locking them out changes,
and how each configuration file (pg_hba.conf, PgBouncer's auth_file) gains and loses its lines.

Pure functions, no I/O: tests/unit/test_lockdown_rules.py has a table for each. The module
pg_role_lockdown (PostgreSQL) and pgbouncer_admin's lock-out (PgBouncer) do the I/O.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

# A role name we accept from people: PostgreSQL's identifier length, no quote, semicolon, backslash
# or control character (line breaks included). Anything else is refused before anything runs.
_FORBIDDEN = re.compile(r"[\"';\\\x00-\x1f\x7f]")
MAX_NAME_BYTES = 63
# The mark that makes our pg_hba.conf lines ours (and only ours removed at the lift).
HBA_MARK = "# penguinmails.dbops security lockdown"
# Settings turned on for what follows a breach (remembered and restored at the lift).
LOG_SETTINGS = ("log_connections", "log_disconnections")


def role_name_problem(name: Any) -> Optional[str]:
    """Why `name` is not acceptable as a role name from an operator, or None."""
    if not isinstance(name, str) or not name:
        return "a suspect role name must be a non-empty string (got %r)" % (name,)
    if _FORBIDDEN.search(name):
        return "refusing suspect role name %r: quotes, semicolons, backslashes and line breaks are not accepted" % name
    if len(name.encode()) > MAX_NAME_BYTES:
        return "refusing suspect role name %r: longer than %d bytes" % (name, MAX_NAME_BYTES)
    return None


def role_names_problems(names: Any) -> List[str]:
    """Every problem of the list of suspect roles (empty list: acceptable)."""
    if not isinstance(names, (list, tuple)) or not names:
        return ["security_suspect_roles must be a non-empty list of role names"]
    problems = [problem for problem in (role_name_problem(name) for name in names) if problem]
    if not problems and len(set(names)) != len(names):
        problems.append("security_suspect_roles names a role twice")
    return problems


def lockdown_refusal(suspects: Sequence[str], roles: Mapping[str, Mapping[str, Any]], login_user: str) -> Optional[str]:
    """Why locking out `suspects` is refused, or None.

    `roles` maps every role name of the server to its pg_roles row (rolsuper, rolcanlogin). Refused:
    a role that does not exist, the role this run logs in with, and locking out every superuser
    that can still log in (nobody could undo it).
    """
    unknown = [name for name in suspects if name not in roles]
    if unknown:
        return "no role %s on the server; nothing was changed" % ", ".join(sorted(unknown))
    if login_user in suspects:
        return (
            "refusing to lock out %s: it is the role this run logs in with (dbops_login_user); "
            "nothing was changed" % login_user
        )
    able = [name for name, row in roles.items() if row.get("rolsuper") and row.get("rolcanlogin")]
    left = [name for name in able if name not in suspects]
    if able and not left:
        return "refusing to lock out %s: no other superuser could log in afterwards; nothing was changed" % ", ".join(
            sorted(able)
        )
    return None


def remembered_role(row: Mapping[str, Any], connect_grants: Sequence[str]) -> Dict[str, Any]:
    """What the lift must put back for one role: login, connection limit, explicit CONNECT grants."""
    return {
        "rolcanlogin": bool(row.get("rolcanlogin")),
        "rolconnlimit": int(row.get("rolconnlimit", -1)),
        "connect_grants": sorted(connect_grants),
    }


def role_changes(row: Mapping[str, Any], connect_grants: Sequence[str]) -> Dict[str, Any]:
    """What containment changes for a role as it is now: {alter: bool, revoke: [databases]}."""
    alter = bool(row.get("rolcanlogin")) or int(row.get("rolconnlimit", -1)) != 0
    return {"alter": alter, "revoke": sorted(connect_grants)}


def role_restores(
    remembered: Mapping[str, Any], row: Mapping[str, Any], connect_grants: Sequence[str]
) -> Dict[str, Any]:
    """What the lift changes to get back to `remembered`: {login, connlimit, grant: [databases]} or {}."""
    changes: Dict[str, Any] = {}
    if bool(row.get("rolcanlogin")) != remembered["rolcanlogin"] or int(row.get("rolconnlimit", -1)) != int(
        remembered["rolconnlimit"]
    ):
        changes["login"] = remembered["rolcanlogin"]
        changes["connlimit"] = int(remembered["rolconnlimit"])
    grant = sorted(set(remembered.get("connect_grants", [])) - set(connect_grants))
    if grant:
        changes["grant"] = grant
    return changes


def settings_to_turn_on(live: Mapping[str, str]) -> Dict[str, str]:
    """The log settings that are off now: {name: value before}."""
    return {name: live.get(name, "off") for name in LOG_SETTINGS if str(live.get(name, "off")) != "on"}


# -- pg_hba.conf ----------------------------------------------------------------------------------


def hba_reject_lines(role: str) -> List[str]:
    """The lines that reject `role` for every database and address, TCP and local socket."""
    quoted = '"%s"' % role
    return [
        "host    all    %s    all    reject    %s" % (quoted, HBA_MARK),
        "local   all    %s    reject    %s" % (quoted, HBA_MARK),
    ]


def hba_with_rejects(text: str, roles: Sequence[str]) -> Tuple[str, List[str]]:
    """`text` with the reject lines of `roles` at the very top (first match wins); (text, lines added)."""
    present = set(text.splitlines())
    added = [line for role in roles for line in hba_reject_lines(role) if line not in present]
    if not added:
        return text, []
    return "\n".join(added) + "\n" + text, added


def hba_without_rejects(text: str, roles: Sequence[str]) -> Tuple[str, List[str]]:
    """`text` without our reject lines of `roles`; (text, lines removed). Other lines are kept as they are."""
    ours = {line for role in roles for line in hba_reject_lines(role)}
    kept, removed = [], []
    for line in text.splitlines(keepends=True):
        (removed if line.rstrip("\n") in ours else kept).append(line)
    return "".join(kept), [line.rstrip("\n") for line in removed]


# -- PgBouncer's auth_file ("user" "secret" per line) ----------------------------------------------

_AUTH_LINE = re.compile(r'^\s*"((?:[^"]|"")*)"')


def auth_file_user(line: str) -> Optional[str]:
    """The user an auth_file line is for, or None for a comment or blank line."""
    found = _AUTH_LINE.match(line)
    return found.group(1).replace('""', '"') if found else None


def auth_file_without(text: str, roles: Sequence[str]) -> Tuple[str, List[str]]:
    """`text` without the lines of `roles`; (text, the lines removed, to be remembered for the lift)."""
    kept, removed = [], []
    for line in text.splitlines(keepends=True):
        (removed if auth_file_user(line) in roles else kept).append(line)
    return "".join(kept), [line.rstrip("\n") for line in removed]


def auth_file_with(text: str, lines: Sequence[str]) -> Tuple[str, List[str]]:
    """`text` with the remembered `lines` back, each only when its user has no line now; (text, lines added)."""
    present = {auth_file_user(line) for line in text.splitlines()}
    added = [line for line in lines if auth_file_user(line) not in present]
    if not added:
        return text, []
    body = text if text.endswith("\n") or not text else text + "\n"
    return body + "".join(line + "\n" for line in added), added


# -- PgBouncer clients ----------------------------------------------------------------------------


def clients_of(rows: Sequence[Mapping[str, Any]], roles: Sequence[str]) -> List[Dict[str, Any]]:
    """SHOW CLIENTS rows of `roles` (the admin console's own clients excluded)."""
    return [
        {
            key: row.get(key)
            for key in ("user", "database", "state", "addr", "port", "local_addr", "local_port", "ptr", "id")
        }
        for row in rows
        if row.get("user") in roles and row.get("database") != "pgbouncer"
    ]


def client_drop_method(version: Sequence[int], client: Mapping[str, Any]) -> str:
    """How one PgBouncer client is dropped: KILL_CLIENT (1.24+), else its TCP connection closed at
    PgBouncer's side (socket destroy); a Unix-socket client on an older PgBouncer cannot be dropped alone."""
    if tuple(version[:2]) >= (1, 24):
        return "kill_client"
    if str(client.get("addr") or "").startswith("unix") or not client.get("port"):
        return "none"
    return "socket_destroy"


def socket_destroy_argv(client: Mapping[str, Any]) -> List[str]:
    """ss -K for exactly one client connection: PgBouncer's local address and port, the client's address and port."""
    return [
        "ss",
        "-K",
        "-t",
        "src",
        "%s" % client["local_addr"],
        "sport",
        "=",
        ":%d" % int(client["local_port"]),
        "dst",
        "%s" % client["addr"],
        "dport",
        "=",
        ":%d" % int(client["port"]),
    ]


def contained(
    sessions_left: int, can_login: bool, hba_rejects: bool, bouncer_clients_left: Optional[int] = None
) -> Dict[str, Any]:
    """The containment verdict of one server (and its PgBouncer when given)."""
    problems = []
    if sessions_left:
        problems.append("%d session(s) of the suspect roles still open" % sessions_left)
    if can_login:
        problems.append("a suspect role can still log in")
    if not hba_rejects:
        problems.append("pg_hba.conf does not reject the suspect roles")
    if bouncer_clients_left:
        problems.append("%d PgBouncer client(s) of the suspect roles still connected" % bouncer_clients_left)
    return {"contained": not problems, "reason": "; ".join(problems) or "contained"}


def run_closing(
    verdicts: Sequence[Mapping[str, Any]], lift: bool, changed: bool, failure: Optional[str] = None
) -> Dict[str, str]:
    """The run's outcome and note. A lift: resolved (or no_action when nothing was locked). A lockdown:
    mitigated when every server is contained (people must still rotate credentials and review grants),
    escalated when one is not or a step failed."""
    if failure:
        return {"outcome": "escalated", "note": "the run stopped: %s" % failure}
    if lift:
        if changed:
            return {"outcome": "resolved", "note": "lockdown lifted: access restored as it was before"}
        return {"outcome": "no_action", "note": "nothing to lift: no lockdown was recorded"}
    open_servers = [verdict for verdict in verdicts if not verdict.get("contained")]
    if open_servers or not verdicts:
        reasons = "; ".join(
            "%s: %s" % (verdict.get("server", "?"), verdict.get("reason", "not verified")) for verdict in open_servers
        )
        return {"outcome": "escalated", "note": "not contained: %s" % (reasons or "no server was verified")}
    return {
        "outcome": "mitigated",
        "note": "contained on %d server(s); rotate the suspects' credentials in applications and review grants"
        % len(verdicts),
    }


# -- the server log the investigation reads --------------------------------------------------------


def log_file_to_read(
    current_logfile: Optional[str], data_directory: Optional[str], configured: Optional[str]
) -> Dict[str, Any]:
    """Which file the investigation reads the suspects' lines from: only the server's current log.

    `current_logfile` is pg_current_logfile() (relative to the data directory unless absolute; NULL
    without the logging collector), `configured` the host's pg_log_file (a server started with
    pg_ctl -l). The server's own answer wins; nothing else on the host is read.
    {path: str or None, source: pg_current_logfile|log_file|none, note: str}."""
    if current_logfile:
        path = current_logfile
        if not os.path.isabs(path):
            if not data_directory:
                return {
                    "path": None,
                    "source": "none",
                    "note": "pg_current_logfile() is relative and the data directory is not readable",
                }
            path = os.path.join(data_directory, path)
        path = os.path.normpath(path)
        note = "the server's current log file (pg_current_logfile())"
        if configured and os.path.normpath(configured) != path:
            note += "; log_file %s was not read: the server writes to %s" % (configured, path)
        return {"path": path, "source": "pg_current_logfile", "note": note}
    if configured:
        return {
            "path": os.path.normpath(configured),
            "source": "log_file",
            "note": "the server has no logging collector: its log_file",
        }
    return {
        "path": None,
        "source": "none",
        "note": "no log file: pg_current_logfile() is empty and log_file is not set",
    }


def suspect_lines(text: str, roles: Sequence[str], keep: int = 200) -> List[str]:
    """The lines of `text` that name one of `roles` (connection, authentication failure), the last `keep`."""
    marks = ['"%s"' % role for role in roles] + ["user=%s" % role for role in roles]
    return [line for line in text.splitlines() if any(mark in line for mark in marks)][-keep:]


def hba_put_back(
    path: str,
    errors: Sequence[Mapping[str, Any]],
    failure: Optional[str],
    put_back: bool,
    left: Sequence[Mapping[str, Any]],
) -> Dict[str, Any]:
    """The report of a pg_hba.conf change that went wrong: why, whether the old bytes are back and
    whether pg_hba_file_rules is clean again. Not reloaded either way: the server keeps the rules it loaded."""
    why = failure or "pg_hba_file_rules reported %s" % "; ".join(
        "line %s: %s" % (row.get("line_number"), row.get("error")) for row in errors
    )
    if put_back and not left:
        outcome = "the old file was put back byte for byte and not reloaded: the server keeps the rules it had"
    elif put_back:
        outcome = "the old file was put back byte for byte, but pg_hba_file_rules still reports errors; not reloaded"
    else:
        outcome = "the old file could NOT be put back; do not reload before %s is repaired" % path
    return {
        "path": path,
        "put_back": put_back,
        "reloaded": False,
        "errors": list(errors),
        "errors_left": list(left),
        "message": "the new %s was refused (%s); %s" % (path, why, outcome),
    }
