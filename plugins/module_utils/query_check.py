# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_query_check's I/O: read sessions, statements and table statistics, time the probe.

Everything here only reads; the probe runs in a read-only transaction. The rules are in
performance.py.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Dict, List

from ansible_collections.penguinmails.dbops.plugins.module_utils.activity import SessionFilter, list_sessions
from ansible_collections.penguinmails.dbops.plugins.module_utils.performance import (
    STATEMENT_PREVIEW_CHARS,
    STATEMENTS_AVAILABLE_SQL,
    TABLE_STATS_SQL,
    TOP_ORDERS,
    TOP_STATEMENTS_SQL,
    blockers_over,
    blocking_chains,
    heavy_seq_scans,
    missing_index_candidates,
    sessions_over,
    stale_statistics,
    waits_by_type,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams, execute, fetch_dicts
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import redact_value

WATCHED_SQL = """SELECT coalesce(sum(s.calls), 0)::bigint AS calls,
       coalesce(sum(s.total_exec_time), 0)::float8 AS total_ms
FROM pg_stat_statements s
JOIN pg_database d ON d.oid = s.dbid AND d.datname = current_database()
WHERE position(lower(%(text)s) IN lower(s.query)) > 0"""


def statements_available(conn: Any, params: ConnectionParams) -> bool:
    return bool(execute(conn, params, STATEMENTS_AVAILABLE_SQL).fetchone()[0])


def top_statements(conn: Any, params: ConnectionParams, order: str, limit: int) -> List[Dict[str, Any]]:
    text = TOP_STATEMENTS_SQL.format(order=TOP_ORDERS[order])
    rows = fetch_dicts(conn, params, text, {"preview": STATEMENT_PREVIEW_CHARS, "limit": limit})
    return [redact_value(row) for row in rows]


def watched_statement(conn: Any, params: ConnectionParams, text: str) -> Dict[str, Any]:
    """Calls and total time, summed over the pg_stat_statements entries whose text contains `text`."""
    return fetch_dicts(conn, params, WATCHED_SQL, {"text": text})[0]


def time_probe(conn: Any, params: ConnectionParams, statement: str, runs: int) -> Dict[str, Any]:
    """Median and each duration (ms) of `runs` executions of the probe, in a read-only transaction rolled back."""
    durations = []
    conn.autocommit = False
    try:
        execute(conn, params, "SET TRANSACTION READ ONLY")
        for _run in range(runs):
            started = time.monotonic()
            execute(conn, params, statement).fetchall()
            durations.append(round((time.monotonic() - started) * 1000, 3))
    finally:
        conn.rollback()
        conn.autocommit = True
    return {"runs": runs, "median_ms": round(statistics.median(durations), 3), "durations_ms": durations}


def longest_active(sessions: List[Dict[str, Any]], limit: int) -> List[Dict[str, Any]]:
    active = [session for session in sessions if session.get("state") == "active"]
    return sorted(active, key=lambda session: -(session.get("duration_seconds") or 0))[:limit]


def check_queries(conn: Any, params: ConnectionParams, options: Dict[str, Any]) -> Dict[str, Any]:
    sessions = list_sessions(conn, params, SessionFilter(states=[]))
    chains = blocking_chains(sessions)
    tables = fetch_dicts(conn, params, TABLE_STATS_SQL)
    heavy = heavy_seq_scans(tables, options["seq_scan_min_rows"], options["seq_scan_ratio"])
    result: Dict[str, Any] = {
        "changed": False,
        "longest_active": longest_active(sessions, options["top"]),
        "blocking_chains": chains,
        "waits_by_type": waits_by_type(sessions),
        "heavy_seq_scans": heavy,
        "stale_statistics": stale_statistics(tables),
        "plan": {
            "blockers": blockers_over(chains, options["block_max_s"]),
            "long_queries": sessions_over(sessions, options["query_max_s"]),
        },
        "watched": None,
        "probe": None,
        "warnings": [],
        "endpoint": params.endpoint,
    }
    result.update(statement_report(conn, params, options, heavy))
    if options.get("probe"):
        result["probe"] = time_probe(conn, params, options["probe"], options["probe_runs"])
    return result


def statement_report(
    conn: Any, params: ConnectionParams, options: Dict[str, Any], heavy: List[Dict[str, Any]]
) -> Dict[str, Any]:
    """Top statements, missing-index candidates and the watched statement.

    Says so when pg_stat_statements is missing, and goes on without them.
    """
    if not statements_available(conn, params):
        return {
            "statements_available": False,
            "top_by_total": [],
            "top_by_mean": [],
            "missing_index_candidates": missing_index_candidates(heavy, []),
            "warnings": [
                "pg_stat_statements is not loaded (shared_preload_libraries) or not created in this database: "
                "no top statements and no mean-time evidence; the run goes on with the rest"
            ],
        }
    by_total = top_statements(conn, params, "total", options["top"])
    by_mean = top_statements(conn, params, "mean", options["top"])
    report: Dict[str, Any] = {
        "statements_available": True,
        "top_by_total": by_total,
        "top_by_mean": by_mean,
        "missing_index_candidates": missing_index_candidates(heavy, by_total + by_mean),
    }
    if options.get("watch"):
        report["watched"] = watched_statement(conn, params, options["watch"])
    return report
