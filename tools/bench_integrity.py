"""Benchmark: the data integrity runbook's scan and quarantine on real data.

Prints figures, asserts nothing. Run by `make bench` (tools/bench.py) or alone:

    .venv/bin/python tools/bench_integrity.py [--runs 3] [--rows 200000]

On a throwaway PostgreSQL (tests/integration/diag_support.py; ports DBOPS_TEST_PORT_BASE + 90):

* documents (--rows rows, primary key), accounts (2000) and orders (4000, foreign key), with a
  "bad deploy": two balances made negative and two referenced accounts deleted behind the foreign
  key's back;
* pg_integrity over every table (bt_index_check, verify_heapam, checksum failures, foreign-key
  orphans, one invariant): seconds, seconds per GB of the tables and indexes in scope, seconds per
  relation checked;
* start to quarantined: pg_integrity then pg_quarantine (rows copied aside, the application role's
  write privileges revoked), and what a second pg_quarantine reports; then the quarantine is lifted.

Medians over --runs. The machine's other load shows in the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests"))

from diag_support import run_module, throwaway_servers  # noqa: E402

INVARIANT = {
    "name": "no negative balance",
    "table": "public.accounts",
    "query": "SELECT id FROM accounts WHERE balance < 0",
}


def build(servers, rows: int) -> None:
    conn = servers.admin_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE EXTENSION IF NOT EXISTS amcheck;"
                "DROP TABLE IF EXISTS orders, accounts, documents;"
                "CREATE TABLE documents (id bigint PRIMARY KEY, body text NOT NULL);"
                "INSERT INTO documents SELECT g, repeat('d', 200) || g FROM generate_series(1, %s) g;"
                "CREATE TABLE accounts (id bigint PRIMARY KEY, balance numeric NOT NULL);"
                "INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 2000) g;"
                "CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts (id));"
                "INSERT INTO orders SELECT g, 1 + g %% 2000 FROM generate_series(1, 4000) g;"
                "GRANT SELECT, INSERT, UPDATE, DELETE ON documents, accounts, orders TO %s;"
                "UPDATE accounts SET balance = -1 WHERE id IN (7, 8);"
                "SET session_replication_role = replica; DELETE FROM accounts WHERE id IN (21, 22);"
                "ANALYZE" % (int(rows), servers.app_user)
            )
    finally:
        conn.close()


def one_run(servers, number: int) -> dict:
    incident = "BENCH-%d-%d" % (os.getpid(), number)
    options = {"invariants": [INVARIANT], "query_timeout": 600}
    started = time.perf_counter()
    scan = run_module("pg_integrity", servers.pg_args(**options), timeout=900)
    scanned = time.perf_counter() - started
    quarantine = servers.pg_args(incident_id=incident, targets=scan["plan"]["quarantine"], roles=[servers.app_user])
    first = run_module("pg_quarantine", quarantine)
    quarantined = time.perf_counter() - started
    second = run_module("pg_quarantine", quarantine)
    run_module("pg_quarantine", servers.pg_args(incident_id=incident, state="absent"))
    return {
        "scan_s": scanned,
        "bytes": scan["bytes_in_scope"],
        "checks": len(scan["checks"]),
        "findings": [(f["check"], f["relation"]) for f in scan["findings"]],
        "quarantined_s": quarantined,
        "copied": sum(entry["rows"] for entry in first["copied"]),
        "second_changed": second["changed"],
        "second_queries": second["executed_queries"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200000)
    args = parser.parse_args()
    with throwaway_servers() as servers:
        build(servers, args.rows)
        results = [one_run(servers, number) for number in range(args.runs)]
    scan = statistics.median(r["scan_s"] for r in results)
    gigabytes = results[-1]["bytes"] / 1024**3
    print("data integrity runbook, %d documents, %d run(s), load average %s:" % (args.rows, args.runs, os.getloadavg()))
    print(
        "  scan (pg_integrity)     median %.2f s over %.1f MB, %d checks"
        % (scan, gigabytes * 1024, results[-1]["checks"])
    )
    print(
        "  scan per GB             median %.1f s/GB"
        % statistics.median(r["scan_s"] / (r["bytes"] / 1024**3) for r in results)
    )
    print(
        "  scan per relation       median %.3f s/check" % statistics.median(r["scan_s"] / r["checks"] for r in results)
    )
    print(
        "  start to quarantined    median %.2f s (%d rows copied)"
        % (statistics.median(r["quarantined_s"] for r in results), results[-1]["copied"])
    )
    print("  findings: %s" % results[-1]["findings"])
    print(
        "  second pg_quarantine: changed=%s, statements=%s"
        % (results[-1]["second_changed"], results[-1]["second_queries"])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
