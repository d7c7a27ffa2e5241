# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_integrity's I/O: read the catalog, check the inputs with the server, run each check read-only.

Every check runs in its own READ ONLY transaction with its own statement_timeout and is rolled back:
a check that fails (a page that fails its checksum, amcheck's complaint) is a finding and the scan
goes on; a check that passes its deadline is listed as timed out; checks left when the scan's budget
is spent are listed as not reached. The rules are in integrity.py.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import (
    BT_INDEX_CHECK,
    BT_PARENT_CHECK,
    CHECKSUMS,
    FK_ORPHANS,
    INVARIANT,
    NOT_VALID,
    QUARANTINE_SCHEMA,
    VERIFY_HEAPAM,
    budget_left,
    check_plan,
    checksum_finding,
    error_finding,
    heapam_finding,
    invariant_problems,
    plan_modifies,
    qualified,
    recovery_plan,
    row_finding,
    scope_problems,
    select_tables,
    split_name,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    OperationTimeout,
    describe_failure,
    execute,
    fetch_dicts,
    first_line,
    quote_ident,
    rows_as_dicts,
)

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by ensure_psycopg2
    psycopg2 = sql = None

QUERY_CANCELED = "57014"

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast", QUARANTINE_SCHEMA)

TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS name, pg_relation_size(c.oid) AS bytes,
       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM pg_index i CROSS JOIN unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisprimary), '{}') AS pkey,
       (pg_stat_file(pg_relation_filepath(c.oid), true)).modification AS file_modified
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname <> ALL (%s) AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1, 2
"""

INDEXES_SQL = """
SELECT n.nspname AS schema, ic.relname AS name, tc.relname AS table, am.amname AS method,
       i.indisvalid AS valid, pg_relation_size(ic.oid) AS bytes
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace JOIN pg_am am ON am.oid = ic.relam
WHERE n.nspname <> ALL (%s) AND ic.relpersistence <> 't'
ORDER BY 1, 3, 2
"""

CONSTRAINTS_SQL = """
SELECT n.nspname AS schema, c.relname AS table, k.conname AS name, k.contype AS type,
       k.convalidated AS validated,
       CASE WHEN k.contype = 'c' THEN pg_get_expr(k.conbin, k.conrelid) END AS expression,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.ord) AS columns,
       rn.nspname AS ref_schema, rc.relname AS ref_table,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS u(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum ORDER BY u.ord) AS ref_columns
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class rc ON rc.oid = k.confrelid LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE k.contype IN ('c', 'f') AND n.nspname <> ALL (%s)
ORDER BY 1, 2, 3
"""

CHECKSUM_SQL = """
SELECT datname AS database, checksum_failures, checksum_last_failure, now() AS checked_at,
       current_setting('data_checksums') AS data_checksums
FROM pg_stat_database WHERE datname = current_database()
"""


# The WAL position the scan saw: written on a primary, replayed on a standby.
CATALOG_SQL = """
SELECT pg_is_in_recovery(), (SELECT extversion FROM pg_extension WHERE extname = 'amcheck'),
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text
"""

REPLAYED_SQL = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= %s::pg_lsn, pg_last_wal_replay_lsn()::text"


def wait_for_replay(
    conn: Any, params: ConnectionParams, lsn: str, timeout_s: float, clock: Callable[[], float] = time.monotonic
) -> None:
    """On a standby, wait until it has replayed WAL up to `lsn` (the primary's, after its repairs), so its
    checks see them; ValueError when it has not within timeout_s. A primary does not wait."""
    deadline = clock() + timeout_s
    while True:
        in_recovery, replayed, position = execute(conn, params, REPLAYED_SQL, [lsn]).fetchone()
        if not in_recovery or replayed:
            return
        if clock() >= deadline:
            raise ValueError(
                "the standby has not replayed the primary's WAL up to %s within %ss (it is at %s)"
                % (lsn, timeout_s, position)
            )
        time.sleep(0.1)


def read_catalog(conn: Any, params: ConnectionParams) -> Dict[str, Any]:
    system = list(SYSTEM_SCHEMAS)
    in_recovery, amcheck, wal_lsn = execute(conn, params, CATALOG_SQL).fetchone()
    return {
        "standby": bool(in_recovery),
        "amcheck": amcheck,
        "wal_lsn": wal_lsn,
        "tables": fetch_dicts(conn, params, TABLES_SQL, [system]),
        "indexes": fetch_dicts(conn, params, INDEXES_SQL, [system]),
        "constraints": fetch_dicts(conn, params, CONSTRAINTS_SQL, [system]),
    }


def _table_ref(table: str) -> Any:
    schema, name = split_name(table)
    return sql.SQL("{}.{}").format(quote_ident(schema), quote_ident(name))


def invariant_statement(spec: Mapping[str, Any], limit: int) -> Any:
    """The invariant wrapped as a subquery: only a query can stand there (no INSERT, no SELECT INTO)."""
    query = str(spec["query"]).strip().rstrip(";")
    return sql.SQL("SELECT * FROM ({}) AS dbops_invariant LIMIT {}").format(sql.SQL(query), sql.Literal(int(limit)))


def in_read_only(conn: Any, params: ConnectionParams, timeout_s: float, work: Callable[[], Any]) -> Any:
    """work() in a READ ONLY transaction with statement_timeout, always rolled back."""
    execute(conn, params, "BEGIN READ ONLY")
    try:
        execute(conn, params, "SELECT set_config('statement_timeout', %s, true)", ["%dms" % int(timeout_s * 1000)])
        return work()
    finally:
        if not conn.closed:
            execute(conn, params, "ROLLBACK")


def checked_invariants(conn: Any, params: ConnectionParams, invariants: Sequence[Mapping[str, Any]]) -> None:
    """ValueError naming the first invariant the server will not parse as a read-only query."""
    problems = invariant_problems(invariants)
    if problems:
        raise ValueError("; ".join(problems))
    for position, spec in enumerate(invariants):
        where = "invariant %d (%s)" % (position, spec["name"])
        if (
            execute(conn, params, "SELECT to_regclass(%s)", [qualified(*split_name(spec["table"]))]).fetchone()[0]
            is None
        ):
            raise ValueError("%s: unknown table %s" % (where, spec["table"]))
        statement = sql.SQL("EXPLAIN (FORMAT JSON) {}").format(invariant_statement(spec, 1))
        try:
            plan = in_read_only(
                conn, params, params.query_timeout, lambda text=statement: execute(conn, params, text).fetchone()[0]
            )
        except ConnectionFailure as failure:
            raise ValueError("%s: the server refuses it as a query: %s" % (where, _server_message(failure))) from None
        if plan_modifies(plan):
            raise ValueError("%s: the query must only read (it would write or lock rows)" % where)


def validated_scope(conn: Any, params: ConnectionParams, catalog: Mapping[str, Any], options: Mapping[str, Any]):
    """(tables in scope, checks): ValueError for a bad scope, an unknown table, a scope matching nothing,
    a bad invariant or amcheck missing; nothing has run yet."""
    scope = options.get("scope") or {}
    problems = scope_problems(scope)
    if problems:
        raise ValueError("; ".join(problems))
    if not catalog["amcheck"]:
        raise ValueError(
            "the amcheck extension is not installed in database %s: CREATE EXTENSION amcheck "
            "(PostgreSQL contrib) as a superuser, then run again" % params.dbname
        )
    changed = None
    if scope.get("changed_since"):
        since = execute(conn, params, "SELECT %s::timestamptz", [scope["changed_since"]]).fetchone()[0]
        changed = [
            qualified(t["schema"], t["name"])
            for t in catalog["tables"]
            if t["file_modified"] is not None and t["file_modified"] >= since
        ]
    tables, unknown = select_tables(catalog["tables"], scope, changed)
    if unknown:
        raise ValueError(
            "integrity_scope names tables database %s does not have: %s" % (params.dbname, ", ".join(unknown))
        )
    if not tables:
        raise ValueError("integrity_scope matches no table in database %s: %s" % (params.dbname, dict(scope)))
    checked_invariants(conn, params, options.get("invariants") or [])
    checks = check_plan(
        tables, catalog["indexes"], catalog["constraints"], options.get("invariants") or [], options, catalog["standby"]
    )
    return tables, checks


def _server_message(failure: ConnectionFailure) -> str:
    """The server's own line from a query failure ('query to ... failed (error): <message>; <advice>')."""
    text = str(failure)
    if "): " in text:
        text = text.split("): ", 1)[1]
    return first_line(text.rsplit("; ", 1)[0])


def check_statement(check: Mapping[str, Any], pkey: Sequence[str], limit: int) -> Any:
    kind = check["check"]
    if kind in (BT_INDEX_CHECK, BT_PARENT_CHECK):
        return sql.SQL("SELECT {}(%s::regclass, %s)").format(sql.Identifier(kind))
    if kind == VERIFY_HEAPAM:
        return sql.SQL(
            "SELECT blkno, offnum, attnum, msg FROM verify_heapam(%s::regclass, on_error_stop => false) LIMIT {}"
        ).format(sql.Literal(limit))
    if kind == INVARIANT:
        return invariant_statement(check, limit)
    columns = list(pkey) or list(check["columns"])
    shown = sql.SQL(", ").join(sql.SQL("c.{}").format(quote_ident(column)) for column in columns)
    table = _table_ref(check["table"])
    if kind == NOT_VALID:
        return sql.SQL("SELECT {} FROM {} AS c WHERE NOT ({}) LIMIT {}").format(
            shown, table, sql.SQL(check["expression"]), sql.Literal(limit)
        )
    not_null = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(quote_ident(col)) for col in check["columns"])
    joined = sql.SQL(" AND ").join(
        sql.SQL("p.{} = c.{}").format(quote_ident(ref), quote_ident(col))
        for col, ref in zip(check["columns"], check["ref_columns"])
    )
    return sql.SQL("SELECT {} FROM {} AS c WHERE {} AND NOT EXISTS (SELECT FROM {} AS p WHERE {}) LIMIT {}").format(
        shown,
        table,
        not_null,
        _table_ref(qualified(check["ref_schema"], check["ref_table"])),
        joined,
        sql.Literal(limit),
    )


class DamageFound(Exception):
    """The server refused a check because of damaged data (SQLSTATE class XX: data or index corrupted)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def checked_rows(conn: Any, params: ConnectionParams, statement: Any, args: Optional[Sequence[Any]]) -> List[Dict]:
    """The check's rows; DamageFound for a corruption error, ConnectionFailure(kind='timeout') past the
    deadline (statement_timeout, or the client's), ConnectionFailure for anything else (a real failure)."""
    cursor = conn.cursor()
    try:
        cursor.execute(statement, args)
    except OperationTimeout as error:
        raise describe_failure(params, "query", error) from None
    except psycopg2.Error as error:
        if (error.pgcode or "").startswith("XX"):
            raise DamageFound(first_line(error.pgerror or str(error)).replace("ERROR:", "").strip()) from None
        failure = describe_failure(params, "query", error)
        if error.pgcode == QUERY_CANCELED:
            raise ConnectionFailure("timeout", str(failure), params.endpoint) from None
        raise failure from None
    return rows_as_dicts(cursor)


def run_check(
    conn: Any,
    params: ConnectionParams,
    check: Mapping[str, Any],
    pkeys: Mapping[str, List[str]],
    options: Mapping[str, Any],
) -> Optional[Dict[str, Any]]:
    """One check -> a finding or None. Raises ConnectionFailure(kind='timeout') past its deadline."""
    limit = int(options["row_limit"])
    kind = check["check"]
    pkey = pkeys.get(check.get("table", ""), [])
    if kind == CHECKSUMS:
        row = fetch_dicts(conn, params, CHECKSUM_SQL)[0]
        since = options.get("checksum_failures_since")
        if since and row["checksum_last_failure"] is not None:
            newer = execute(conn, params, "SELECT %s > %s::timestamptz", [row["checksum_last_failure"], since])
            if not newer.fetchone()[0]:
                return None
        return checksum_finding(params.dbname, row)
    statement = check_statement(check, pkey, limit)
    if kind in (BT_INDEX_CHECK, BT_PARENT_CHECK):
        args = [check["relation"], bool(check.get("heapallindexed"))]
    else:
        args = [check["relation"]] if kind == VERIFY_HEAPAM else None
    try:
        rows = in_read_only(
            conn, params, options["check_timeout_s"], lambda: checked_rows(conn, params, statement, args)
        )
    except DamageFound as damage:
        return error_finding(check, damage.message)
    if kind in (BT_INDEX_CHECK, BT_PARENT_CHECK):
        return None
    if kind == VERIFY_HEAPAM:
        return heapam_finding(check, rows)
    if kind == FK_ORPHANS:
        check = dict(check, references=qualified(check["ref_schema"], check["ref_table"]))
    return row_finding(check, rows, pkey, limit)


def scan(
    conn: Any, params: ConnectionParams, options: Mapping[str, Any], clock: Callable[[], float] = time.monotonic
) -> Dict[str, Any]:
    if options.get("wait_for_replay_lsn"):
        wait_for_replay(conn, params, options["wait_for_replay_lsn"], float(options["check_timeout_s"]), clock)
    catalog = read_catalog(conn, params)
    tables, checks = validated_scope(conn, params, catalog, options)
    started_at = execute(conn, params, "SELECT now()::text").fetchone()[0]
    pkeys = {qualified(t["schema"], t["name"]): list(t["pkey"]) for t in tables}
    base = {
        "standby": catalog["standby"],
        "wal_lsn": catalog["wal_lsn"],
        "database": params.dbname,
        "tables": sorted(pkeys),
        "bytes_in_scope": sum(int(t["bytes"] or 0) for t in tables)
        + sum(int(i["bytes"] or 0) for i in catalog["indexes"] if qualified(i["schema"], i["table"]) in pkeys),
        "started_at": started_at,
        "endpoint": params.endpoint,
        "changed": False,
    }
    if options.get("validate_only"):
        return dict(
            base,
            checks=[_label(check) for check in checks],
            findings=[],
            not_reached=[],
            timed_out=[],
            plan=recovery_plan([]),
        )
    # The database-wide checksum counter last: failures this scan met are counted by then.
    checks = checks[1:] + checks[:1]
    findings, timed_out, not_reached, ran = [], [], [], []
    start = clock()
    for check in checks:
        if not budget_left(clock() - start, float(options["budget_s"])):
            not_reached.append(_label(check))
            continue
        try:
            finding = run_check(conn, params, check, pkeys, options)
        except ConnectionFailure as failure:
            if failure.kind != "timeout" or conn.closed:
                raise ValueError("%s failed: %s" % (_label(check), failure)) from None
            timed_out.append(_label(check))
            continue
        ran.append(_label(check))
        if finding:
            findings.append(finding)
    return dict(
        base,
        checks=ran,
        findings=findings,
        timed_out=timed_out,
        not_reached=not_reached + timed_out,
        plan=recovery_plan(findings),
        seconds=round(clock() - start, 3),
        finished_at=execute(conn, params, "SELECT now()::text").fetchone()[0],
    )


def _label(check: Mapping[str, Any]) -> str:
    return ("%s %s" % (check["check"], check.get("name") or check["relation"])).strip()
