# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_indexes's I/O: read the indexes and tables, check the approved entries, run the plan.

The rules (what to do with which index) are in indexes.py and performance.py; this file only
reads, probes and executes through StatementRunner, so check mode plans the same statements.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils.indexes import (
    INDEXES_SQL,
    action,
    analyze_statement,
    approved_index_action,
    approved_problems,
    create_index_statement,
    definition_key,
    drop_statement,
    duplicate_indexes,
    index_name,
    invalid_index_actions,
    is_leftover,
    parse_probe_statement,
    plan_has_subquery,
    reindex_statement,
    split_table,
    still_invalid,
    unused_indexes,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.performance import TABLE_STATS_SQL, stale_statistics
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    StatementRunner,
    execute,
    fetch_dicts,
    first_line,
    quote_ident,
)

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by ensure_psycopg2
    sql = None

PROBE_TABLE = "dbops_index_probe"
PROBE_INDEX = "dbops_index_probe_idx"


def read_indexes(conn: Any, params: ConnectionParams) -> List[Dict[str, Any]]:
    return fetch_dicts(conn, params, INDEXES_SQL)


def probe_definition(conn: Any, params: ConnectionParams, spec: Dict[str, Any], schema: str, table: str) -> str:
    """The approved index's definition key as the server renders it, on an empty temporary copy of the table.

    The copy and its index are rolled back: nothing remains, and a bad entry fails here, before any change.
    """
    conn.autocommit = False
    try:
        execute(
            conn,
            params,
            sql.SQL("CREATE TEMP TABLE {} (LIKE {}.{})").format(
                quote_ident(PROBE_TABLE), quote_ident(schema), quote_ident(table)
            ),
        )
        execute(conn, params, create_index_statement(spec, PROBE_INDEX, "pg_temp", PROBE_TABLE, concurrently=False))
        cursor = execute(conn, params, "SELECT pg_get_indexdef(%s::regclass)", ["pg_temp.%s" % PROBE_INDEX])
        return definition_key(cursor.fetchone()[0])
    finally:
        conn.rollback()
        conn.autocommit = True


TABLE_COLUMNS_SQL = """SELECT a.attname FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum"""


def server_parse_problem(conn: Any, params: ConnectionParams, spec: Dict[str, Any], schema: str, table: str):
    """Why the server refuses the entry's columns, expression or predicate on its table, or None.

    Read-only: EXPLAIN (nothing runs, nothing is built) inside a READ ONLY transaction, rolled back.
    """
    conn.autocommit = False
    try:
        execute(conn, params, "SET TRANSACTION READ ONLY")
        plan_rows = execute(conn, params, parse_probe_statement(spec, schema, table)).fetchone()[0]
    except ConnectionFailure as failure:
        return "the server refuses it: %s" % first_line(str(failure))
    finally:
        conn.rollback()
        conn.autocommit = True
    if plan_has_subquery(plan_rows):
        return "an index expression or predicate may not contain a subquery"
    return None


def validated_approved(conn: Any, params: ConnectionParams, approved: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Each approved entry with schema, table and name, checked read-only; ValueError naming the first bad one.

    Its fields (indexes.approved_problems: one expression each), its table and columns in the catalog,
    then its expression and predicate parsed by the server without building anything.
    """
    checked = []
    for position, spec in enumerate(approved):
        where = "approved index %d (%s)" % (position, spec.get("name") or spec.get("table"))
        problems = approved_problems(spec)
        if problems:
            raise ValueError("%s: %s" % (where, "; ".join(problems)))
        schema, table = split_table(spec["table"])
        columns = [row["attname"] for row in fetch_dicts(conn, params, TABLE_COLUMNS_SQL, [schema, table])]
        if not columns:
            raise ValueError("%s: unknown table %s.%s" % (where, schema, table))
        unknown = [str(column) for column in spec.get("columns") or [] if str(column) not in columns]
        if unknown:
            raise ValueError("%s: unknown column %s of %s.%s" % (where, ", ".join(unknown), schema, table))
        problem = server_parse_problem(conn, params, spec, schema, table)
        if problem:
            raise ValueError("%s: %s" % (where, problem))
        checked.append(dict(spec, schema=schema, table=table, name=index_name(spec)))
    return checked


def checked_approved(conn: Any, params: ConnectionParams, approved: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """validated_approved, each with its definition key as the server renders it (on an empty copy)."""
    checked = []
    for spec in validated_approved(conn, params, approved):
        try:
            key = probe_definition(conn, params, spec, spec["schema"], spec["table"])
        except ConnectionFailure as failure:
            raise ValueError("approved index %s: the server refuses it: %s" % (spec["name"], failure)) from None
        checked.append(dict(spec, key=key))
    return checked


def validate_only(conn: Any, params: ConnectionParams, approved: List[Dict[str, Any]]) -> Dict[str, Any]:
    """pg_indexes with validate_only: the approved entries checked read-only, nothing else read or planned."""
    checked = validated_approved(conn, params, approved)
    return {
        "changed": False,
        "actions": [],
        "failures": [],
        "approved": [{"name": spec["name"], "action": "valid"} for spec in checked],
        "invalid": [],
        "duplicates": [],
        "unused": [],
        "stale_tables": [],
        "executed_queries": [],
        "endpoint": params.endpoint,
    }


def named_indexes(indexes: List[Dict[str, Any]], names: List[str]) -> List[Dict[str, Any]]:
    """The indexes `names` (schema.index, or index in public) asks to rebuild; ValueError for an unknown one."""
    by_name = {"%s.%s" % (index["schema"], index["name"]): index for index in indexes}
    wanted = [name if "." in name else "public." + name for name in names]
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise ValueError("reindex names unknown index(es): %s" % ", ".join(unknown))
    return [{key: by_name[name][key] for key in ("schema", "table", "name")} for name in wanted]


def plan(
    indexes: List[Dict[str, Any]], approved: List[Dict[str, Any]], stale: List[Dict[str, Any]], options: Dict[str, Any]
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(the actions in order, what each approved index needed)."""
    actions = invalid_index_actions(indexes) if options["rebuild_invalid"] else []
    actions.extend(
        action("reindex", index)
        for index in named_indexes(indexes, options.get("reindex") or [])
        if not any(
            a["action"] == "reindex" and (a["schema"], a["name"]) == (index["schema"], index["name"]) for a in actions
        )
    )
    needs = []
    for spec in approved:
        table_indexes = [
            index for index in indexes if (index["schema"], index["table"]) == (spec["schema"], spec["table"])
        ]
        need = approved_index_action(spec["name"], spec["key"], table_indexes)
        needs.append(need)
        target = {"schema": spec["schema"], "table": spec["table"], "name": need["name"]}
        if need["action"] == "create":
            actions.append(dict(target, action="create", spec=spec))
        elif need["action"] == "reindex" and not any(
            a["action"] == "reindex" and a["name"] == need["name"] for a in actions
        ):
            actions.append(dict(target, action="reindex"))
    if options["analyze_stale"]:
        actions.extend(
            {"action": "analyze", "schema": table["schema"], "table": table["table"], "name": None} for table in stale
        )
    return actions, needs


def statement_for(step: Dict[str, Any]) -> Any:
    if step["action"] == "drop_leftover":
        return drop_statement(step["schema"], step["name"])
    if step["action"] == "reindex":
        return reindex_statement(step["schema"], step["name"])
    if step["action"] == "create":
        return create_index_statement(step["spec"], step["name"], step["schema"], step["table"], concurrently=True)
    return analyze_statement(step["schema"], step["table"])


def run_steps(runner: StatementRunner, conn: Any, params: ConnectionParams, steps: List[Dict[str, Any]]) -> List[str]:
    """Run each step; a failed one is reported (first line of the server's message) and the others still run."""
    failures = []
    for step in steps:
        try:
            runner.run(conn, params, statement_for(step))
        except ConnectionFailure as failure:
            target = "%s.%s" % (step["schema"], step["name"] or step["table"])
            failures.append("%s %s: %s" % (step["action"], target, first_line(str(failure))))
            if step["action"] == "create":
                runner.run(conn, params, drop_statement(step["schema"], step["name"]))
    return failures


def clean_new_leftovers(
    runner: StatementRunner, conn: Any, params: ConnectionParams, before: List[Dict[str, Any]]
) -> List[Dict[str, Any]]:
    """Drop the _ccnew copies a failed rebuild of this run left behind; the indexes as they are then."""
    known = {(index["schema"], index["name"]) for index in before}
    after = read_indexes(conn, params)
    new = [index for index in after if is_leftover(index) and (index["schema"], index["name"]) not in known]
    for index in new:
        runner.run(conn, params, drop_statement(index["schema"], index["name"]))
    return read_indexes(conn, params) if new else after


def public_action(step: Dict[str, Any]) -> Dict[str, Any]:
    return {key: step[key] for key in ("action", "schema", "table", "name")}


def optimize_indexes(conn: Any, params: ConnectionParams, options: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    approved = checked_approved(conn, params, options["approved"])
    indexes = read_indexes(conn, params)
    stale = stale_statistics(fetch_dicts(conn, params, TABLE_STATS_SQL))
    steps, needs = plan(indexes, approved, stale, options)
    runner = StatementRunner(check_mode)
    failures = run_steps(runner, conn, params, steps)
    if not check_mode and steps:
        after = clean_new_leftovers(runner, conn, params, indexes)
        built = [step["name"] for step in steps if step["action"] in ("reindex", "create")]
        failures.extend(
            "%s is still invalid after the run" % name
            for name in still_invalid(built, after)
            if not any(name in failure for failure in failures)
        )
    failures.extend(
        "approved index %s: %s" % (need["name"], need["reason"]) for need in needs if need["action"] == "name_taken"
    )
    return {
        "changed": bool(steps),
        "actions": [public_action(step) for step in steps],
        "failures": failures,
        "approved": needs,
        "invalid": ["%s.%s" % (index["schema"], index["name"]) for index in indexes if not index["valid"]],
        "duplicates": duplicate_indexes(indexes),
        "unused": unused_indexes(indexes, options["unused_min_bytes"]),
        "stale_tables": stale,
        "executed_queries": runner.executed,
        "endpoint": params.endpoint,
    }
