# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_quarantine's I/O: copy affected rows aside, revoke the application roles' privileges, lift it.

Everything a quarantine does is written, in the same transaction, to quarantine.dbops_quarantine_log
(table, role, privileges revoked) so `state: absent` grants back exactly that, once. The rules
(names, which privileges, never the run's own role) are in integrity.py.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Mapping, Sequence

from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import (
    QUARANTINE_LOG,
    QUARANTINE_SCHEMA,
    quarantine_problems,
    quarantine_table_name,
    revocations,
    split_name,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionParams,
    StatementRunner,
    execute,
    quote_ident,
    statement_text,
)

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by ensure_psycopg2
    sql = None

HELD_SQL = """
SELECT r.rolname AS role, array_agg(a.privilege_type::text) AS privileges
FROM pg_class c CROSS JOIN aclexplode(c.relacl) AS a JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = %s::regclass AND r.rolname = ANY (%s)
GROUP BY r.rolname
"""


@contextlib.contextmanager
def one_transaction(conn: Any, check_mode: bool) -> Iterator[None]:
    """The block's statements in one transaction: committed, or rolled back in check mode or on failure."""
    conn.autocommit = False
    try:
        yield
        if check_mode:
            conn.rollback()
        else:
            conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True


def _table(schema: str, name: str) -> Any:
    return sql.SQL("{}.{}").format(quote_ident(schema), quote_ident(name))


def _log_table() -> Any:
    return _table(QUARANTINE_SCHEMA, QUARANTINE_LOG)


def grant_statement(schema: str, table: str, role: str, privileges: Sequence[str], grant: bool) -> Any:
    words = sql.SQL(", ").join(sql.SQL(privilege) for privilege in privileges)
    template = "GRANT {} ON TABLE {} TO {}" if grant else "REVOKE {} ON TABLE {} FROM {}"
    return sql.SQL(template).format(words, _table(schema, table), quote_ident(role))


def checked_targets(conn: Any, params: ConnectionParams, options: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The targets with schema and table; ValueError for anything wrong, before any change."""
    problems = quarantine_problems(options["targets"], options["incident_id"], options["privileges"])
    if problems:
        raise ValueError("; ".join(problems))
    targets = []
    for target in options["targets"]:
        schema, table = split_name(target["table"])
        if execute(conn, params, "SELECT to_regclass(%s)", ["%s.%s" % (schema, table)]).fetchone()[0] is None:
            raise ValueError("unknown table %s.%s" % (schema, table))
        columns = execute(
            conn,
            params,
            "SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped",
            ["%s.%s" % (schema, table)],
        ).fetchone()[0]
        missing = [column for column in target["key"] if column not in columns]
        if missing:
            raise ValueError("%s.%s has no column %s" % (schema, table, ", ".join(missing)))
        targets.append(
            dict(target, schema=schema, name=table, copy=quarantine_table_name(target["table"], options["incident_id"]))
        )
    unknown = [
        role
        for role in options["roles"]
        if not execute(conn, params, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", [role]).fetchone()[0]
    ]
    if unknown:
        raise ValueError("unknown role(s): %s" % ", ".join(unknown))
    return targets


def _key_match(alias: str, key: Sequence[str], keys: Sequence[Sequence[Any]]) -> Any:
    """(alias.k1::text, ...) IN ((%s, ...), ...) with the values as text parameters."""
    columns = sql.SQL(", ").join(sql.SQL("{}.{}::text").format(sql.Identifier(alias), quote_ident(k)) for k in key)
    row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(key)))
    return sql.SQL("({}) IN ({})").format(columns, sql.SQL(", ").join([row] * len(keys)))


def _key_args(keys: Sequence[Sequence[Any]]) -> List[str]:
    return [str(value) for key in keys for value in key]


def _schema_statements(conn: Any, params: ConnectionParams) -> List[Any]:
    statements = []
    if not execute(conn, params, "SELECT to_regnamespace(%s)", [QUARANTINE_SCHEMA]).fetchone()[0]:
        statements.append(sql.SQL("CREATE SCHEMA {}").format(quote_ident(QUARANTINE_SCHEMA)))
    log = "%s.%s" % (QUARANTINE_SCHEMA, QUARANTINE_LOG)
    if not statements and execute(conn, params, "SELECT to_regclass(%s)", [log]).fetchone()[0]:
        return statements
    statements.append(
        sql.SQL(
            "CREATE TABLE {} (incident_id text NOT NULL, schema_name text NOT NULL, table_name text NOT NULL,"
            " role_name text NOT NULL, privileges text[] NOT NULL, revoked_at timestamptz NOT NULL DEFAULT now(),"
            " lifted_at timestamptz)"
        ).format(_log_table())
    )
    return statements


def quarantine(conn: Any, params: ConnectionParams, options: Mapping[str, Any], check_mode: bool) -> Dict[str, Any]:
    targets = checked_targets(conn, params, options)
    runner = StatementRunner(check_mode)
    own = execute(conn, params, "SELECT current_user::text, session_user::text").fetchone()
    incident = options["incident_id"]
    copied, revoked, undo = [], [], []
    left_alone: List[str] = []
    with one_transaction(conn, check_mode):
        for statement in _schema_statements(conn, params):
            runner.run(conn, params, statement)
        for target in targets:
            source, copy = _table(target["schema"], target["name"]), _table(QUARANTINE_SCHEMA, target["copy"])
            if (
                execute(
                    conn, params, "SELECT to_regclass(%s)", ["%s.%s" % (QUARANTINE_SCHEMA, target["copy"])]
                ).fetchone()[0]
                is None
            ):
                runner.run(
                    conn,
                    params,
                    sql.SQL(
                        "CREATE TABLE {} AS SELECT NULL::text AS dbops_incident_id,"
                        " NULL::timestamptz AS dbops_quarantined_at, t.* FROM {} AS t WITH NO DATA"
                    ).format(copy, source),
                )
                already = []
            else:
                already = _already_copied(conn, params, copy, target)
            keys = [key for key in target["keys"] if [str(value) for value in key] not in already]
            if keys:
                statement = sql.SQL("INSERT INTO {} SELECT %s, now(), t.* FROM {} AS t WHERE {}").format(
                    copy, source, _key_match("t", target["key"], keys)
                )
                cursor = runner.run(conn, params, statement, [incident, *_key_args(keys)])
                rows = cursor.rowcount if cursor is not None else len(keys)
                if rows:
                    copied.append(
                        {
                            "table": target["table"],
                            "quarantine_table": "%s.%s" % (QUARANTINE_SCHEMA, target["copy"]),
                            "rows": rows,
                        }
                    )
            held = {
                row[0]: list(row[1])
                for row in execute(
                    conn, params, HELD_SQL, ["%s.%s" % (target["schema"], target["name"]), list(options["roles"])]
                ).fetchall()
            }
            to_revoke, alone = revocations(held, own, options["privileges"])
            left_alone.extend(role for role in alone if role not in left_alone)
            for role, privileges in to_revoke.items():
                runner.run(
                    conn, params, grant_statement(target["schema"], target["name"], role, privileges, grant=False)
                )
                runner.run(
                    conn,
                    params,
                    sql.SQL(
                        "INSERT INTO {} (incident_id, schema_name, table_name, role_name, privileges)"
                        " VALUES (%s, %s, %s, %s, %s)"
                    ).format(_log_table()),
                    [incident, target["schema"], target["name"], role, privileges],
                )
                revoked.append({"table": target["table"], "role": role, "privileges": privileges})
        undo = _undo_texts(conn, params, incident, check_mode, revoked)
    return {
        "changed": bool(runner.executed),
        "copied": copied,
        "revoked": revoked,
        "left_alone": left_alone,
        "undo": undo,
        "executed_queries": runner.executed,
        "endpoint": params.endpoint,
    }


def _already_copied(conn: Any, params: ConnectionParams, copy: Any, target: Mapping[str, Any]) -> List[List[str]]:
    columns = sql.SQL(", ").join(sql.SQL("{}::text").format(quote_ident(column)) for column in target["key"])
    rows = execute(conn, params, sql.SQL("SELECT {} FROM {}").format(columns, copy)).fetchall()
    return [list(row) for row in rows]


def _logged(conn: Any, params: ConnectionParams, incident: str) -> List[Dict[str, Any]]:
    if (
        execute(conn, params, "SELECT to_regclass(%s)", ["%s.%s" % (QUARANTINE_SCHEMA, QUARANTINE_LOG)]).fetchone()[0]
        is None
    ):
        return []
    rows = execute(
        conn,
        params,
        sql.SQL(
            "SELECT schema_name, table_name, role_name, privileges FROM {} WHERE incident_id = %s AND lifted_at IS NULL"
            " ORDER BY revoked_at, table_name, role_name"
        ).format(_log_table()),
        [incident],
    ).fetchall()
    return [{"schema": r[0], "table": r[1], "role": r[2], "privileges": list(r[3])} for r in rows]


def _undo_texts(
    conn: Any, params: ConnectionParams, incident: str, check_mode: bool, planned: Sequence[Mapping[str, Any]]
) -> List[str]:
    """The statements that lift the incident's quarantine (every revocation logged for it, this run's too)."""
    entries = _logged(conn, params, incident) if not check_mode else []
    if check_mode:
        entries = [
            dict(entry, schema=split_name(entry["table"])[0], table=split_name(entry["table"])[1]) for entry in planned
        ]
    return [
        statement_text(conn, grant_statement(e["schema"], e["table"], e["role"], e["privileges"], grant=True))
        for e in entries
    ]


def lift(conn: Any, params: ConnectionParams, options: Mapping[str, Any], check_mode: bool) -> Dict[str, Any]:
    """Grant back every privilege the incident's quarantine revoked, once; the copied rows stay."""
    if not str(options["incident_id"] or "").strip():
        raise ValueError("incident_id is required: the quarantine to lift is the incident's")
    runner = StatementRunner(check_mode)
    with one_transaction(conn, check_mode):
        entries = _logged(conn, params, options["incident_id"])
        for entry in entries:
            runner.run(
                conn, params, grant_statement(entry["schema"], entry["table"], entry["role"], entry["privileges"], True)
            )
        if entries:
            runner.run(
                conn,
                params,
                sql.SQL("UPDATE {} SET lifted_at = now() WHERE incident_id = %s AND lifted_at IS NULL").format(
                    _log_table()
                ),
                [options["incident_id"]],
            )
    return {
        "changed": bool(entries),
        "granted": [
            {"table": "%s.%s" % (e["schema"], e["table"]), "role": e["role"], "privileges": e["privileges"]}
            for e in entries
        ],
        "copied": [],
        "revoked": [],
        "left_alone": [],
        "undo": [],
        "executed_queries": runner.executed,
        "endpoint": params.endpoint,
    }
