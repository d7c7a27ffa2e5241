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

With --restore, on a lab tier with pgBackRest (tests/lablib.py; ports
DBOPS_INTEGRITY_BENCH_PORT_BASE, default 5980: the content server on base + 11, the throw-away
restored instance on base + 50; lab_root DBOPS_INTEGRITY_BENCH_ROOT):

* what pgBackRest costs the lab coming up: `lab up` of one content server without backups and with
  them (archive_mode, stanza-create, a full backup), each brought up and down --runs times;
* restore-and-diff (pg_restore_diff) of accounts and orders (--restore-rows accounts) to a time
  before the same bad deploy: `pgbackrest check`, restore into a new directory, start, recover to the
  target, diff by primary key, stop, remove; then with apply, and what a second apply reports.

With --standby, on a lab tier of a primary and one streaming standby (tests/lablib.py; ports
DBOPS_INTEGRITY_BENCH_PORT_BASE, the standby on base + 12; no PgBouncer, no backups): the same
tables (--rows documents), then pg_integrity on the primary and on the standby (what
integrity_check_standbys adds to a run), and on the standby again with wait_for_replay_lsn right
after a write on the primary (the verification's wait for the repairs to be replayed).

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


def lab_sql(lab, server, *statements: str) -> tuple:
    """Run statements in turn on a lab server's tier database (autocommit); the last one's first row."""
    conn = lab.connect(server, dbname="penguinmails_content")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return cur.fetchone() if cur.description else ()
    finally:
        conn.close()


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


def bench_restore(runs: int, rows: int) -> int:
    """Lab-up cost of pgBackRest and restore-and-diff times, on a lab of its own."""
    import tempfile

    import lablib

    port_base = int(os.environ.get("DBOPS_INTEGRITY_BENCH_PORT_BASE", "5980"))
    root = os.environ.get("DBOPS_INTEGRITY_BENCH_ROOT", "/var/tmp/penguinmails-dbops-integrity-bench")
    work = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    ups = {}
    for backups in ([], ["content"]):
        lab = lablib.write_inventory(
            work / ("with" if backups else "without"),
            tiers={"content": 0},
            port_base=port_base,
            lab_root=root,
            with_pgbouncer=False,
            backups=backups,
        )
        times = []
        for number in range(runs):
            started = time.perf_counter()
            lab.up()
            times.append(time.perf_counter() - started)
            if backups and number == runs - 1:
                break  # keep the last lab with backups for the restores
            lab.down()
        ups["with" if backups else "without"] = statistics.median(times)
    server = lab.primary("content")
    # Its own statement: a multi-statement string is one transaction, and now() its start.
    target, size = lab_sql(
        lab,
        server,
        "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);"
        "CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts (id),"
        " amount numeric);"
        "INSERT INTO accounts SELECT g, 'owner' || g, 100 FROM generate_series(1, %d) g;"
        "INSERT INTO orders SELECT g, 1 + g %% %d, g FROM generate_series(1, %d) g;" % (rows, rows, 2 * rows),
        "SELECT now()::text, pg_total_relation_size('accounts') + pg_total_relation_size('orders')",
    )
    lab_sql(
        lab,
        server,
        "UPDATE accounts SET balance = -1 WHERE id IN (7, 8);"
        "SET session_replication_role = replica; DELETE FROM accounts WHERE id IN (21, 22)",
    )
    args = {
        "login_host": "127.0.0.1",
        "login_port": server.port,
        "login_user": lab.credentials["dbops_login_user"],
        "login_password": lab.credentials["dbops_login_password"],
        "login_db": "penguinmails_content",
        "tables": ["public.accounts", "public.orders"],
        "target_time": target,
        "pgbackrest_config": str(lab.lab_root / server.name / "pgbackrest.conf"),
        "stanza": "content",
        "restore_root": str(lab.lab_root / "restore"),
        "restore_port": port_base + 50,
    }
    try:
        diffs = []
        for _run in range(runs):
            started = time.perf_counter()
            result = run_module("pg_restore_diff", args, timeout=900)
            diffs.append(time.perf_counter() - started)
            if result.get("failed"):
                raise SystemExit("pg_restore_diff failed: %s" % result.get("msg"))
        started = time.perf_counter()
        applied = run_module("pg_restore_diff", dict(args, apply=True), timeout=900)
        apply_s = time.perf_counter() - started
        second = run_module("pg_restore_diff", dict(args, apply=True), timeout=900)
    finally:
        lab.down()
    print("restore-and-diff (pgBackRest), %d run(s), load average %s:" % (runs, os.getloadavg()))
    print("  lab up, one content server, no backups      median %.1f s" % ups["without"])
    print("  lab up, same with pgBackRest (full backup)  median %.1f s" % ups["with"])
    print(
        "  restore-and-diff, 2 tables, %d+%d rows (%.1f MB)  median %.2f s"
        % (rows, 2 * rows, size / 1024**2, statistics.median(diffs))
    )
    print(
        "  differences: %s" % [(d["table"], d["missing"], d["changed"], len(d["extra"])) for d in result["differences"]]
    )
    print("  restore and apply      %.2f s, applied %s" % (apply_s, applied["applied"]))
    print("  second apply: changed=%s, applied %s" % (second["changed"], second["applied"]))
    return 0


def bench_standby(runs: int, rows: int) -> int:
    """Scan time on the primary and on a streaming standby, and the wait for replay before a re-check."""
    import tempfile

    import lablib

    port_base = int(os.environ.get("DBOPS_INTEGRITY_BENCH_PORT_BASE", "5980"))
    root = os.environ.get("DBOPS_INTEGRITY_BENCH_ROOT", "/var/tmp/penguinmails-dbops-integrity-bench")
    lab = lablib.write_inventory(
        Path(tempfile.mkdtemp(prefix="bench-standby-")),
        tiers={"content": 1},
        port_base=port_base,
        lab_root=root,
        with_pgbouncer=False,
    )
    lab.up()
    try:
        primary = lab.primary("content")
        standby = next(server for server in lab.tier("content") if server != primary)

        def args(server, **extra):
            return dict(
                login_host="127.0.0.1",
                login_port=server.port,
                login_user=lab.credentials["dbops_login_user"],
                login_password=lab.credentials["dbops_login_password"],
                login_db="penguinmails_content",
                invariants=[INVARIANT],
                **extra,
            )

        def write_on_primary() -> str:
            lab_sql(lab, primary, "UPDATE accounts SET balance = balance WHERE id = 1")
            return lab_sql(lab, primary, "SELECT pg_current_wal_lsn()::text")[0]

        lab_sql(
            lab,
            primary,
            "CREATE EXTENSION IF NOT EXISTS amcheck;"
            "CREATE TABLE documents (id bigint PRIMARY KEY, body text NOT NULL);"
            "INSERT INTO documents SELECT g, repeat('d', 200) || g FROM generate_series(1, %d) g;"
            "CREATE TABLE accounts (id bigint PRIMARY KEY, balance numeric NOT NULL);"
            "INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 2000) g;"
            "CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts (id));"
            "INSERT INTO orders SELECT g, 1 + g %% 2000 FROM generate_series(1, 4000) g" % int(rows),
            "VACUUM (FREEZE, ANALYZE)",
        )
        lsn = write_on_primary()
        run_module("pg_integrity", args(standby, wait_for_replay_lsn=lsn, query_timeout=600), timeout=900)
        times = {"primary": [], "standby": [], "standby_after_write": []}
        for _run in range(runs):
            for name, server in (("primary", primary), ("standby", standby)):
                started = time.perf_counter()
                scan = run_module("pg_integrity", args(server, query_timeout=600), timeout=900)
                times[name].append(time.perf_counter() - started)
                if scan.get("failed") or scan["findings"]:
                    raise SystemExit("pg_integrity on %s: %s" % (name, scan.get("msg") or scan["findings"]))
            started = time.perf_counter()
            run_module("pg_integrity", args(standby, wait_for_replay_lsn=write_on_primary(), query_timeout=600))
            times["standby_after_write"].append(time.perf_counter() - started)
    finally:
        lab.down()
    size_gb = scan["bytes_in_scope"] / 1024**3
    print("data integrity on a standby, %d documents, %d run(s), load average %s:" % (rows, runs, os.getloadavg()))
    for name, label in (
        ("primary", "scan on the primary                  "),
        ("standby", "scan on the standby                  "),
        ("standby_after_write", "standby re-check after a write (wait)"),
    ):
        median = statistics.median(times[name])
        print("  %s median %.2f s (%.1f s/GB over %.1f MB)" % (label, median, median / size_gb, size_gb * 1024))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200000)
    parser.add_argument("--restore", action="store_true", help="bench pgBackRest in the lab and restore-and-diff")
    parser.add_argument("--restore-rows", type=int, default=20000)
    parser.add_argument("--standby", action="store_true", help="bench the scan on a streaming standby")
    args = parser.parse_args()
    if args.restore:
        return bench_restore(args.runs, args.restore_rows)
    if args.standby:
        return bench_standby(args.runs, args.rows)
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
