# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_tune's I/O: check every requested setting with the server, then change it or put it back.

Every setting is checked before any is changed: its name is known, its role exists and its value
is one the server accepts (SET LOCAL in a transaction rolled back, for settings a session may set;
for the others, which only a reload applies, their range or choices from pg_settings, the same in
check mode as in a run; ALTER SYSTEM checks them again before it writes). The rules are in settings.py.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    StatementRunner,
    execute,
    fetch_dicts,
    first_line,
    quote_ident,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.settings import (
    ROLE_CONTEXTS,
    ROLE_VALUES_SQL,
    SETTING_SQL,
    SYSTEM_VALUE_SQL,
    change_entry,
    needs_change,
    not_applied_reason,
    role_value,
    scope_of,
    value_problem,
)

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by ensure_psycopg2
    sql = None


def setting_of(conn: Any, params: ConnectionParams, name: str) -> Dict[str, Any]:
    """The setting's pg_settings row (context, vartype, unit, min_val, max_val, enumvals)."""
    rows = fetch_dicts(conn, params, SETTING_SQL, [name])
    if not rows:
        raise ValueError("%s is not a PostgreSQL setting" % name)
    return dict(rows[0], name=name)


def check_value(conn: Any, params: ConnectionParams, name: str, value: str) -> None:
    """ValueError with the server's reason when it would refuse `value` (SET LOCAL, rolled back)."""
    conn.autocommit = False
    try:
        execute(conn, params, "SELECT set_config(%s, %s, true)", [name, value])
    except ConnectionFailure as failure:
        raise ValueError("%s = %s: %s" % (name, value, first_line(str(failure)))) from None
    finally:
        conn.rollback()
        conn.autocommit = True


def check_role(conn: Any, params: ConnectionParams, role: str) -> None:
    if execute(conn, params, "SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None:
        raise ValueError("role %s does not exist" % role)


def current_value(conn: Any, params: ConnectionParams, spec: Dict[str, Any]) -> Optional[str]:
    """The value set where this change goes (postgresql.auto.conf, or the role's settings); None when unset."""
    if scope_of(spec) == "system":
        row = execute(conn, params, SYSTEM_VALUE_SQL, [spec["name"]]).fetchone()
        return None if row is None else row[0]
    row = execute(conn, params, ROLE_VALUES_SQL, [spec["role"]]).fetchone()
    return role_value(row[0] if row else None, spec["name"])


def checked(conn: Any, params: ConnectionParams, specs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Each setting with its context and the reason it will not be applied (None: it will)."""
    result = []
    for spec in specs:
        spec = dict(spec, name=str(spec["name"]).lower())
        setting = setting_of(conn, params, spec["name"])
        context = setting["context"]
        if spec.get("role"):
            check_role(conn, params, spec["role"])
        reason = not_applied_reason(spec, context)
        if reason is None and spec.get("value") is not None:
            if context in ROLE_CONTEXTS:
                check_value(conn, params, spec["name"], str(spec["value"]))
            else:  # no session may SET it: its range or choices from pg_settings, in check mode as in a run
                problem = value_problem(setting, str(spec["value"]))
                if problem:
                    raise ValueError(problem)
        result.append(dict(spec, context=context, reason=reason))
    return result


def change_statement(spec: Dict[str, Any]) -> Any:
    name = sql.SQL(spec["name"])  # a name pg_settings knows: letters, digits, '_' and '.'
    if scope_of(spec) == "system":
        head = sql.SQL("ALTER SYSTEM ")
    else:
        head = sql.SQL("ALTER ROLE {} ").format(quote_ident(spec["role"]))
    if spec.get("value") is None:
        return sql.Composed([head, sql.SQL("RESET "), name])
    return sql.Composed([head, sql.SQL("SET "), name, sql.SQL(" = "), sql.Literal(str(spec["value"]))])


def apply_settings(
    conn: Any, params: ConnectionParams, specs: List[Dict[str, Any]], check_mode: bool
) -> Dict[str, Any]:
    """Change what differs; reload once when a server-wide value changed."""
    runner = StatementRunner(check_mode)
    replaced, not_applied, unchanged = [], [], []
    for spec in checked(conn, params, specs):
        if spec["reason"]:
            not_applied.append({"name": spec["name"], "role": spec.get("role"), "reason": spec["reason"]})
            continue
        previous = current_value(conn, params, spec)
        wanted = None if spec.get("value") is None else str(spec["value"])
        if not needs_change(previous, wanted):
            unchanged.append(spec["name"])
            continue
        try:
            runner.run(conn, params, change_statement(spec))
        except ConnectionFailure as failure:
            raise ValueError("%s: %s" % (spec["name"], first_line(str(failure)))) from None
        replaced.append(change_entry(dict(spec, value=wanted), previous))
    if any(entry["scope"] == "system" for entry in replaced):
        runner.run(conn, params, "SELECT pg_reload_conf()")
    return {
        "changed": bool(replaced),
        "replaced": replaced,
        "not_applied": not_applied,
        "unchanged": unchanged,
        "executed_queries": runner.executed,
        "endpoint": params.endpoint,
    }
