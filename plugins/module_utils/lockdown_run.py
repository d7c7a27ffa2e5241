# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One pg_role_lockdown run against one PostgreSQL server: snapshot, then contain (or lift).

The rules are in lockdown.py; this file reads the server, executes or plans through
StatementRunner, edits pg_hba.conf through safe_files and remembers what it changed in a
private state file so that the lift puts back exactly what was there.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils import lockdown, passwords
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed, connected
from ansible_collections.penguinmails.dbops.plugins.module_utils.files import (
    ensure_private_directory,
    read_text,
    write_atomically,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    StatementRunner,
    connection_argument_spec,
    connection_params,
    ensure_psycopg2,
    execute,
    fetch_dicts,
    quote_ident,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import redact_value
from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import read_ini_text, replace_ini_text
from ansible_collections.penguinmails.dbops.plugins.module_utils.safe_files import Directory, LinkRefused

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - ensure_psycopg2 reports it
    sql = None

SESSIONS = """
SELECT pid, usename, datname, client_addr::text AS client_addr, client_port, application_name,
       backend_start::text AS backend_start, state, left(query, 200) AS query
FROM pg_stat_activity
WHERE usename = ANY(%s) AND pid <> pg_backend_pid()
ORDER BY pid
"""
# The pids are chosen first (MATERIALIZED): the planner may otherwise call the terminate before the user filter.
TERMINATE = """
WITH targets AS MATERIALIZED (
  SELECT pid FROM pg_stat_activity WHERE usename = ANY(%s) AND pid <> pg_backend_pid()
)
SELECT pid, pg_terminate_backend(pid, 5000) AS terminated FROM targets
"""
ROLES = "SELECT rolname, rolsuper, rolcanlogin, rolconnlimit, rolvaliduntil::text AS rolvaliduntil FROM pg_roles"
CONNECT_GRANTS = """
SELECT d.datname FROM pg_database d, aclexplode(d.datacl) a
WHERE d.datname = ANY(%s) AND a.privilege_type = 'CONNECT'
  AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)
"""
SETTINGS = "SELECT name, setting, sourcefile FROM pg_settings WHERE name = ANY(%s)"
HBA_ERRORS = "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL"
HBA_REJECTS = """
SELECT count(*) FROM pg_hba_file_rules
WHERE auth_method = 'reject' AND user_name = ARRAY[%s]::text[] AND 'all' = ANY(database)
"""
INVESTIGATION_SETTINGS = (
    "ssl",
    "password_encryption",
    "log_connections",
    "log_disconnections",
    "listen_addresses",
    "authentication_timeout",
    "hba_file",
)
MEMBERSHIPS = """
SELECT r.rolname AS role, m.rolname AS member, g.rolname AS grantor, am.admin_option
FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
LEFT JOIN pg_roles g ON g.oid = am.grantor ORDER BY 1, 2
"""
TABLE_GRANTS = """
SELECT table_schema || '.' || table_name AS table_name, grantee, privilege_type
FROM information_schema.role_table_grants
WHERE table_schema || '.' || table_name = ANY(%s) ORDER BY 1, 2, 3
"""
HBA_RULES = """
SELECT line_number, type, database, user_name, address, netmask, auth_method, error
FROM pg_hba_file_rules ORDER BY line_number
"""
LOG_TAIL_BYTES = 1024 * 1024


def empty_result(endpoint: str) -> Dict[str, Any]:
    return {
        "changed": False,
        "server": endpoint,
        "in_recovery": None,
        "sessions_before": [],
        "terminated": [],
        "executed_queries": [],
        "actions": [],
        "hba_errors_before": [],
        "hba_errors_after": [],
        "verification": {},
    }


class RoleLockdown:
    """pg_role_lockdown's work on one server; raises ActionFailed with what was done so far."""

    def __init__(self, options: Dict[str, Any], params: ConnectionParams, check_mode: bool) -> None:
        self.options = options
        self.params = params
        self.check_mode = check_mode
        self.roles: List[str] = list(options["roles"])
        self.databases: List[str] = list(options.get("databases") or [])
        self.runner = StatementRunner(check_mode)
        self.result = empty_result(params.endpoint)
        self.conn: Any = None

    # -- plumbing -------------------------------------------------------------------------------

    def fail(self, message: str) -> ActionFailed:
        self.result["executed_queries"] = self.runner.executed
        return ActionFailed(message, self.result)

    def rows(self, statement: Any, args: Any = None) -> List[Dict[str, Any]]:
        return fetch_dicts(self.conn, self.params, statement, args)

    def run(self, statement: Any, args: Any = None) -> None:
        self.runner.run(self.conn, self.params, statement, args)
        self.result["changed"] = True

    def act(self, text: str, doit: Callable[[], None]) -> None:
        self.result["actions"].append(text)
        self.result["changed"] = True
        if not self.check_mode:
            doit()

    # -- what is there --------------------------------------------------------------------------

    def role_rows(self) -> Dict[str, Dict[str, Any]]:
        return {row["rolname"]: row for row in self.rows(ROLES)}

    def connect_grants(self, role: str) -> List[str]:
        return sorted(row["datname"] for row in self.rows(CONNECT_GRANTS, (self.databases, role)))

    def settings(self, names: Any) -> Dict[str, Dict[str, Any]]:
        return {row["name"]: row for row in self.rows(SETTINGS, (list(names),))}

    def sessions(self) -> List[Dict[str, Any]]:
        return self.rows(SESSIONS, (self.roles,))

    def hba_errors(self) -> List[Dict[str, Any]]:
        return self.rows(HBA_ERRORS)

    def hba_path(self) -> str:
        return str(execute(self.conn, self.params, "SHOW hba_file").fetchone()[0])

    def read_hba(self, path: str) -> str:
        text = read_ini_text(path)
        if text is None:
            raise self.fail(
                "pg_hba.conf of %s (%s) is not on this host; run the task on the server's host"
                % (self.params.endpoint, path)
            )
        return text

    # -- the state file -------------------------------------------------------------------------

    def state_path(self) -> str:
        return self.options["state_file"]

    def load_state(self) -> Dict[str, Any]:
        text = read_text(self.state_path())
        return json.loads(text) if text else {}

    def save_state(self, state: Dict[str, Any], before: Dict[str, Any]) -> None:
        if state == before or self.check_mode:
            return
        ensure_private_directory(os.path.dirname(self.state_path()))
        write_atomically(self.state_path(), json.dumps(state, indent=1, sort_keys=True) + "\n")

    def drop_state(self) -> None:
        if not self.check_mode and os.path.lexists(self.state_path()):
            os.unlink(self.state_path())

    # -- refusals -------------------------------------------------------------------------------

    def refuse(self, roles: Dict[str, Dict[str, Any]]) -> None:
        self.refuse_names_only()
        refusal = lockdown.lockdown_refusal(self.roles, roles, self.params.user)
        if refusal:
            raise self.fail("%s: %s" % (self.params.endpoint, refusal))

    # -- contain --------------------------------------------------------------------------------

    def contain_roles(self, roles: Dict[str, Dict[str, Any]], state: Dict[str, Any]) -> None:
        remembered = state.setdefault("roles", {})
        for name in self.roles:
            grants = self.connect_grants(name)
            remembered.setdefault(name, lockdown.remembered_role(roles[name], grants))
            if self.result["in_recovery"]:
                continue  # a standby takes the role's catalog changes from its primary
            changes = lockdown.role_changes(roles[name], grants)
            if changes["alter"]:
                self.run(sql.SQL("ALTER ROLE {} NOLOGIN CONNECTION LIMIT 0").format(quote_ident(name)))
            for database in changes["revoke"]:
                self.run(
                    sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(quote_ident(database), quote_ident(name))
                )

    def turn_logging_on(self, state: Dict[str, Any]) -> bool:
        live = self.settings(lockdown.LOG_SETTINGS)
        off = lockdown.settings_to_turn_on({name: row["setting"] for name, row in live.items()})
        remembered = state.setdefault("settings", {})
        for name in off:
            row = live[name]
            in_auto_conf = str(row.get("sourcefile") or "").endswith("postgresql.auto.conf")
            remembered.setdefault(name, {"setting": row["setting"], "alter_system": in_auto_conf})
            self.run(sql.SQL("ALTER SYSTEM SET {} = 'on'").format(sql.Identifier(name)))
        return bool(off)

    def reject_in_hba(self, state: Dict[str, Any]) -> bool:
        path = self.hba_path()
        text = self.read_hba(path)
        errors = self.hba_errors()
        self.result["hba_errors_before"] = errors
        new_text, added = lockdown.hba_with_rejects(text, self.roles)
        if not added:
            return False
        if errors:
            raise self.fail(
                "%s has errors already (%s); fix it before it is changed; nothing was written"
                % (path, "; ".join("line %s: %s" % (row["line_number"], row["error"]) for row in errors))
            )
        state["hba_file"] = path
        self.write_hba_checked(path, text, new_text, "added %d reject line(s) at the top of %s" % (len(added), path))
        return True

    def write_hba_checked(self, path: str, before: str, after: str, action: str) -> None:
        """Write, read the file back through pg_hba_file_rules, and put the old bytes back on any error.

        The check runs before the reload: PostgreSQL reads pg_hba.conf only at a reload, so a file put
        back before it leaves the server on the rules it had. lockdown.hba_put_back says what was done."""

        def write() -> None:
            original = read_hba_bytes(path)
            failure: Optional[str] = None
            try:
                replace_ini_text(path, after)
                errors = self.hba_errors()
            except OSError as error:
                errors, failure = [], "writing it failed: %s" % error
            self.result["hba_errors_after"] = errors
            if not errors and failure is None:
                return
            put_back = read_hba_bytes(path) == original
            if not put_back:
                write_hba_bytes(path, original)
                put_back = read_hba_bytes(path) == original
            left = self.hba_errors()
            self.result["hba_put_back"] = lockdown.hba_put_back(path, errors, failure, put_back, left)
            raise self.fail(self.result["hba_put_back"]["message"])

        self.act(action, write)

    def terminate(self) -> None:
        """Terminate the suspects' sessions: those of the snapshot, and any that opened before the lockdown held."""
        if not self.result["sessions_before"] and (self.check_mode or not self.sessions()):
            return
        cursor = self.runner.run(self.conn, self.params, TERMINATE, (self.roles,))
        self.result["changed"] = True
        if cursor is not None:
            self.result["terminated"] = [row[0] for row in cursor.fetchall()]

    def reload(self) -> None:
        self.run("SELECT pg_reload_conf()")

    def contain(self) -> None:
        roles = self.role_rows()
        self.refuse(roles)
        self.result["sessions_before"] = self.sessions()
        state = self.load_state()
        before = json.loads(json.dumps(state))
        state.setdefault("server", self.params.endpoint)
        try:
            self.contain_roles(roles, state)
            reload_needed = self.reject_in_hba(state)
            reload_needed = self.turn_logging_on(state) or reload_needed
        finally:
            # Saved whatever happens, before the reload: the lift must know what was there, also
            # after a run that stopped half way (roles already NOLOGIN, pg_hba.conf put back).
            self.save_state(state, before)
        if reload_needed:
            self.reload()
        self.terminate()

    # -- lift -----------------------------------------------------------------------------------

    def lift_roles(self, roles: Dict[str, Dict[str, Any]], state: Dict[str, Any]) -> None:
        for name, remembered in sorted(state.get("roles", {}).items()):
            if name not in roles or self.result["in_recovery"]:
                continue
            changes = lockdown.role_restores(remembered, roles[name], self.connect_grants(name))
            if "login" in changes:
                self.run(
                    sql.SQL("ALTER ROLE {} {} CONNECTION LIMIT {}").format(
                        quote_ident(name),
                        sql.SQL("LOGIN" if changes["login"] else "NOLOGIN"),
                        sql.Literal(changes["connlimit"]),
                    )
                )
            for database in changes.get("grant", []):
                self.run(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(quote_ident(database), quote_ident(name)))

    def lift_settings(self, state: Dict[str, Any]) -> bool:
        remembered = state.get("settings", {})
        for name, before in sorted(remembered.items()):
            if before["alter_system"]:
                self.run(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(before["setting"]))
                )
            else:
                self.run(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
        return bool(remembered)

    def lift_hba(self, state: Dict[str, Any]) -> bool:
        path = state.get("hba_file") or self.hba_path()
        text = self.read_hba(path)
        new_text, removed = lockdown.hba_without_rejects(text, sorted(state.get("roles", {})))
        if not removed:
            return False
        self.write_hba_checked(path, text, new_text, "removed %d reject line(s) from %s" % (len(removed), path))
        return True

    def lift(self) -> None:
        state = self.load_state()
        if not state:
            return
        roles = self.role_rows()
        self.lift_roles(roles, state)
        reload_needed = self.lift_hba(state)
        reload_needed = self.lift_settings(state) or reload_needed
        if reload_needed:
            self.reload()
        self.act("removed the lockdown state %s" % self.state_path(), self.drop_state)

    # -- verify -------------------------------------------------------------------------------------

    def verify(self) -> None:
        if self.check_mode:
            return
        roles = self.role_rows()
        # A standby takes NOLOGIN from its primary a moment later; its own pg_hba.conf rejects meanwhile.
        can_login = not self.result["in_recovery"] and any(roles[name]["rolcanlogin"] for name in self.roles)
        rejects = all(execute(self.conn, self.params, HBA_REJECTS, (name,)).fetchone()[0] > 0 for name in self.roles)
        left = self.sessions()
        verdict = lockdown.contained(len(left), can_login, rejects)
        verdict["sessions_left"] = left
        self.result["verification"] = verdict

    def work(self, conn: Any, state: str) -> Dict[str, Any]:
        self.conn = conn
        self.result["in_recovery"] = bool(execute(conn, self.params, "SELECT pg_is_in_recovery()").fetchone()[0])
        if state == "present":
            self.contain()
            self.verify()
        else:
            self.refuse_names_only()
            self.lift()
        self.result["executed_queries"] = self.runner.executed
        return self.result

    def refuse_names_only(self) -> None:
        for name in self.roles:
            problem = lockdown.role_name_problem(name)
            if problem:
                raise self.fail(problem)


def parse_roles(options: Dict[str, Any]) -> Optional[str]:
    """The first problem of the module's roles option, or None."""
    problems = lockdown.role_names_problems(options.get("roles"))
    return problems[0] if problems else None


def role_argument_spec(**options: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The connection options, the suspect roles and `options` (pg_role_lockdown, pg_security_facts)."""
    spec = connection_argument_spec()
    spec.update(roles={"type": "list", "elements": "str", "required": True}, **options)
    return spec


def run_on_server(module: Any, work: Callable[[Any, ConnectionParams], Dict[str, Any]], name: str) -> None:
    """The shared main of the two modules: names checked, one connection, work(conn, params), exit or fail."""
    problem = parse_roles(module.params)
    if problem:
        module.fail_json(msg=problem)
    ensure_psycopg2(module)
    params = connection_params(module)
    try:
        with connected(params) as conn:
            result = work(conn, params)
    except ConnectionFailure as failure:
        module.fail_json(msg=str(failure), conn_err_kind=failure.kind, **empty_result(params.endpoint))
    except ActionFailed as failure:
        module.fail_json(msg=str(failure), **redact_value(failure.result))
    except (OSError, ValueError) as error:
        module.fail_json(msg="%s at %s: %s" % (name, params.endpoint, error), **empty_result(params.endpoint))
    module.exit_json(**redact_value(result))


class SecurityFacts:
    """pg_security_facts' reading of one server: the investigation, and why a lockdown would be refused."""

    def __init__(self, options: Dict[str, Any], params: ConnectionParams) -> None:
        self.options = options
        self.params = params
        self.roles: List[str] = list(options["roles"])
        self.conn: Any = None

    def rows(self, statement: Any, args: Any = None) -> List[Dict[str, Any]]:
        return fetch_dicts(self.conn, self.params, statement, args)

    def read(self, conn: Any) -> Dict[str, Any]:
        self.conn = conn
        roles = {row["rolname"]: row for row in self.rows(ROLES)}
        result = {
            "changed": False,
            "server": self.params.endpoint,
            "in_recovery": bool(execute(conn, self.params, "SELECT pg_is_in_recovery()").fetchone()[0]),
            "refusal": lockdown.lockdown_refusal(self.roles, roles, self.params.user),
            "missing_roles": sorted(name for name in self.roles if name not in roles),
            "sessions": self.rows(SESSIONS, (self.roles,)),
            "superusers": sorted(name for name, row in roles.items() if row["rolsuper"]),
            "login_roles": sorted(name for name, row in roles.items() if row["rolcanlogin"]),
            "valid_until": {name: row["rolvaliduntil"] for name, row in roles.items() if row["rolvaliduntil"]},
            "suspects": {name: roles[name] for name in self.roles if name in roles},
        }
        if self.options.get("investigate", True):
            settings = self.rows(SETTINGS, (list(INVESTIGATION_SETTINGS),))
            result.update(
                memberships=self.rows(MEMBERSHIPS),
                table_grants=self.rows(TABLE_GRANTS, (list(self.options.get("sensitive_tables") or []),)),
                hba_rules=self.rows(HBA_RULES),
                settings={row["name"]: row["setting"] for row in settings},
            )
            result["log_lines"], result["log_file_read"] = suspect_log_lines(self, self.roles)
        return result


CURRENT_LOG = """
SELECT CASE WHEN has_function_privilege('pg_current_logfile()', 'execute')
            THEN pg_current_logfile() END AS current_logfile,
       (SELECT setting FROM pg_settings WHERE name = 'data_directory') AS data_directory
"""


def read_hba_bytes(path: str) -> Optional[bytes]:
    """pg_hba.conf's bytes as they are (no decoding: the put-back is byte-identical), no link followed."""
    with Directory(os.path.dirname(path) or ".") as directory:
        return directory.read(os.path.basename(path))


def write_hba_bytes(path: str, content: Optional[bytes]) -> None:
    """Put pg_hba.conf's bytes back in one rename, keeping owner and mode."""
    if content is None:
        return
    with Directory(os.path.dirname(path) or ".") as directory:
        directory.replace_keeping_owner(os.path.basename(path), content)


def read_log_tail(path: str, max_bytes: int = LOG_TAIL_BYTES) -> Optional[Tuple[str, int]]:
    """The last `max_bytes` of the log file (no link followed, a regular file only) and its size, or None."""
    with Directory(os.path.dirname(path) or ".") as directory:
        found = directory.read_tail(os.path.basename(path), max_bytes)
    return None if found is None else (found[0].decode("utf-8", "replace"), found[1])


def suspect_log_lines(facts: SecurityFacts, roles: List[str]) -> Tuple[List[str], Dict[str, Any]]:
    """The suspect roles' lines of the server's current log file (its last megabyte) and what was read."""
    row = facts.rows(CURRENT_LOG)[0]
    chosen = lockdown.log_file_to_read(row["current_logfile"], row["data_directory"], facts.options.get("log_file"))
    chosen.update(bytes_read=0, size=None)
    if not chosen["path"]:
        return [], chosen
    try:
        found = read_log_tail(chosen["path"])
    except (OSError, LinkRefused) as error:
        chosen["note"] += "; not read: %s" % error
        return [], chosen
    if found is None:
        chosen["note"] += "; not read: no such file on this host"
        return [], chosen
    text, chosen["size"] = found
    chosen["bytes_read"] = min(chosen["size"], LOG_TAIL_BYTES)
    return lockdown.suspect_lines(text, roles), chosen


class PasswordRotation:
    """pg_role_password's work on one primary: new secrets to the operator's file first, then the verifiers.

    The secrets live in this object only until the file is written; they are never in the result."""

    def __init__(self, options: Dict[str, Any], params: ConnectionParams, check_mode: bool) -> None:
        self.options = options
        self.params = params
        self.check_mode = check_mode
        self.roles: List[str] = list(options["roles"])
        self.runner = StatementRunner(check_mode)
        self.result: Dict[str, Any] = {
            "changed": False,
            "server": params.endpoint,
            "rotated": [],
            "out_file": options["out_file"],
            "vault": bool(options.get("vault_password_file")),
            "plan": passwords.rotation_plan(self.roles),
            "actions": [],
            "executed_queries": [],
        }

    def fail(self, message: str) -> ActionFailed:
        self.result["executed_queries"] = self.runner.executed
        return ActionFailed(message, self.result)

    def vault_password(self) -> Optional[bytes]:
        path = self.options.get("vault_password_file")
        if not path:
            return None
        with Directory(os.path.dirname(path) or ".") as directory:
            content = directory.read(os.path.basename(path))
        if not content or not content.strip():
            raise self.fail("the vault password file %s is missing or empty; no password was changed" % path)
        return content.strip()

    def check_out_file(self) -> None:
        path = self.options["out_file"]
        with Directory(os.path.dirname(path) or ".") as directory:
            if directory.exists(os.path.basename(path)):
                raise self.fail(
                    "%s exists already; name a new file (it is never overwritten); no password was changed" % path
                )

    def write_out_file(self, content: bytes) -> None:
        path = self.options["out_file"]
        with Directory(os.path.dirname(path) or ".") as directory:
            directory.create_with(os.path.basename(path), content, 0o600)

    def work(self, conn: Any) -> Dict[str, Any]:
        standby = bool(execute(conn, self.params, "SELECT pg_is_in_recovery()").fetchone()[0])
        if standby and not self.check_mode:
            raise self.fail("%s is a standby: passwords are changed on the primary" % self.params.endpoint)
        existing = {row["rolname"]: row for row in fetch_dicts(conn, self.params, ROLES)}
        refusal = passwords.rotation_refusal(self.roles, existing, self.params.user)
        if refusal:
            raise self.fail("%s: %s" % (self.params.endpoint, refusal))
        self.check_out_file()
        vault_password = self.vault_password()
        statement = sql.SQL("ALTER ROLE {} PASSWORD %s")
        if self.check_mode:
            for role in self.roles:
                self.runner.run(conn, self.params, statement.format(quote_ident(role)), ("x",), ("<new verifier>",))
            self.result["executed_queries"] = self.runner.executed
            return self.result
        new = {role: passwords.new_secret() for role in self.roles}
        content = passwords.secrets_file_text(new).encode()
        if vault_password is not None:
            content = passwords.vault_encrypt(content, vault_password)
        # The file first: a password is never set that the operator could not read back.
        self.write_out_file(content)
        self.result["actions"].append(
            "wrote the new password(s) to %s (%s, mode 0600)"
            % (self.options["out_file"], "ansible-vault encrypted" if vault_password is not None else "plain text")
        )
        self.result["changed"] = True
        for role in self.roles:
            verifier = passwords.scram_verifier(new.pop(role))
            self.runner.run(conn, self.params, statement.format(quote_ident(role)), (verifier,), ("<new verifier>",))
            self.result["rotated"].append(role)
        self.result["executed_queries"] = self.runner.executed
        return self.result
