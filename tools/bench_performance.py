"""Benchmark: the performance runbook's index step on real data.

Prints figures, asserts nothing. Run by `make bench` (tools/bench.py) or alone:

    .venv/bin/python tools/bench_performance.py [--runs 5] [--rows 200000]

On a throwaway PostgreSQL (tests/integration/diag_support.py; ports DBOPS_TEST_PORT_BASE + 90):

* a table of --rows orders looked up by an unindexed column, and a unique index left invalid by
  a CREATE INDEX CONCURRENTLY that failed on a duplicate (the duplicate then removed);
* the lookup's latency (median of 20 executions) before;
* pg_indexes with the lookup's index approved, timed from start to mitigated (invalid index
  rebuilt, approved index built, statistics analyzed);
* the lookup's latency after, and what a second pg_indexes run reports.

Medians over --runs (a fresh table each run). The machine's other load shows in the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests"))

import psycopg2  # noqa: E402
from diag_support import run_module, throwaway_servers  # noqa: E402

LOOKUP = "SELECT count(*) FROM bench_orders WHERE customer_email = 'c42@example.test'"
APPROVED = [{"table": "bench_orders", "columns": ["customer_email"]}]


def build(conn, rows: int) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "DROP TABLE IF EXISTS bench_orders;"
            "CREATE TABLE bench_orders (id bigint PRIMARY KEY, ref text, customer_email text);"
            "INSERT INTO bench_orders SELECT g, 'r' || g, 'c' || (g %% 20000) || '@example.test'"
            " FROM generate_series(1, %s) g;"
            "INSERT INTO bench_orders VALUES (%s, 'r1', 'dup@example.test'); ANALYZE bench_orders",
            [rows, rows + 1],
        )
        with contextlib.suppress(psycopg2.errors.UniqueViolation):  # left invalid, as intended
            cur.execute("CREATE UNIQUE INDEX CONCURRENTLY bench_orders_ref_key ON bench_orders (ref)")
        cur.execute("DELETE FROM bench_orders WHERE id = %s", [rows + 1])


def lookup_ms(conn, times: int = 20) -> float:
    durations = []
    with conn.cursor() as cur:
        for _execution in range(times):
            started = time.perf_counter()
            cur.execute(LOOKUP)
            cur.fetchall()
            durations.append((time.perf_counter() - started) * 1000)
    return statistics.median(durations)


def one_run(servers, rows: int) -> dict:
    conn = servers.admin_connect()
    try:
        build(conn, rows)
        before = lookup_ms(conn)
        started = time.perf_counter()
        first = run_module("pg_indexes", servers.pg_args(approved=APPROVED, query_timeout=600), timeout=900)
        mitigated = time.perf_counter() - started
        after = lookup_ms(conn)
        second = run_module("pg_indexes", servers.pg_args(approved=APPROVED))
    finally:
        conn.close()
    return {
        "before_ms": before,
        "after_ms": after,
        "mitigated_s": mitigated,
        "first_actions": [a["action"] for a in first.get("actions", [])],
        "first_failures": first.get("failures"),
        "second_changed": second.get("changed"),
        "second_actions": second.get("actions"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200000)
    args = parser.parse_args()
    with throwaway_servers() as servers:
        results = [one_run(servers, args.rows) for _run in range(args.runs)]
    print("performance runbook, index step, %d rows, %d run(s):" % (args.rows, args.runs))
    print("  lookup before  median %.2f ms (seq scan)" % statistics.median(r["before_ms"] for r in results))
    print("  lookup after   median %.2f ms (approved index)" % statistics.median(r["after_ms"] for r in results))
    print("  start to mitigated (pg_indexes) median %.2f s" % statistics.median(r["mitigated_s"] for r in results))
    print("  first run did: %s; failures: %s" % (results[-1]["first_actions"], results[-1]["first_failures"]))
    print("  second run: changed=%s, actions=%s" % (results[-1]["second_changed"], results[-1]["second_actions"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
