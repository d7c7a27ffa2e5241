"""Benchmark: the pool exhaustion playbook against a leak plus sustained load, the application querying.

Prints figures, asserts nothing. Run by `make bench` (tools/bench.py) or alone:

    .venv/bin/python tools/bench_pool.py [--runs 3]

On its own olap lab behind PgBouncer (ports DBOPS_BENCH_PORT_BASE + 100, default 5900: olap on
5931, PgBouncer on 6900; stopped at the end), per run:

* an application client sends SELECT 1 through PgBouncer, scheduled every 50 ms on one connection,
  and keeps each latency from the query's scheduled start (a query stuck behind the exhausted pool
  delays the next ones, which count that wait: the stall shows) by phase: before the incident, during
  it (from the leak until the playbook ends), after the playbook;
* olap's pool is shrunk to 3, three sessions are left idle in transaction (the leak) and pgbench
  sends 6 clients of sustained load; 4 s later incident_pool_exhaustion.yml starts;
* measured: the time from the playbook's start until PgBouncer shows the application's pool relieved
  (SHOW POOLS every 0.2 s: no waiting client, maxwait under 1 s, for 2 s), the playbook's wall time
  (to relieved, verified and closed), waiting clients and maxwait before and after (from the incident
  record), the application's latency p50/p99 in each phase, what a second run reports (outcome,
  changed tasks, wall time), and the 1-minute load average when the run started.

Medians over --runs. The machine's other load shows in the figures; quote medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

import lablib  # noqa: E402
from diag_support import run_module  # noqa: E402

PLAYBOOK = REPO / "playbooks" / "incident_pool_exhaustion.yml"
REHEARSAL = REPO / "extensions" / "molecule" / "pool_exhaustion" / "files"
DATABASE = "penguinmails_olap"


class Prober(threading.Thread):
    """The application: SELECT 1 through PgBouncer on one connection, scheduled every 50 ms.

    Latencies are taken from each query's *scheduled* start, not from when it could be sent: a query
    that waits for a server connection delays the ones scheduled after it, and they count that wait
    too (no coordinated omission), so a stall shows in the percentiles of the phase it happened in.
    Each latency is kept with the phase its query was scheduled in.
    """

    INTERVAL_S = 0.05

    def __init__(self, lab) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.phase = "before"
        self.latencies = []
        self.errors = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = None
        scheduled = time.monotonic()
        while not self.stopping.is_set():
            time.sleep(max(0.0, scheduled - time.monotonic()))
            phase = self.phase
            try:
                conn = conn or self.lab.connect_pgbouncer(DATABASE)
                conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute("SELECT 1")
                self.latencies.append((phase, time.monotonic() - scheduled))
            except Exception:  # a failed query is a figure here, not a crash
                self.errors += 1
                conn = None
            scheduled += self.INTERVAL_S

    def percentile(self, phase: str, share: float):
        values = sorted(seconds for name, seconds in self.latencies if name == phase)
        if not values:
            return None
        return round(1000.0 * values[min(len(values) - 1, int(share * len(values)))], 1)


class PoolWatch(threading.Thread):
    """SHOW POOLS every 0.2 s: when the application's pool was first relieved after the playbook started
    (no waiting client and maxwait under 1 s, staying so for 2 s: the playbook's own test)."""

    def __init__(self, lab) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.started_at = None
        self.relieved_at = None
        self.stopping = threading.Event()

    def relieved_now(self) -> bool:
        user = self.lab.credentials["lab_app_user"]
        for row in self.lab.pgbouncer_show("POOLS"):
            if row["database"] == DATABASE and row["user"] == user:
                maxwait = float(row["maxwait"]) + float(row.get("maxwait_us") or 0) / 1e6
                return int(row["cl_waiting"]) == 0 and maxwait < 1.0
        return True

    def run(self) -> None:
        calm_since = None
        while not self.stopping.is_set() and self.relieved_at is None:
            now = time.monotonic()
            try:
                calm = self.started_at is not None and self.relieved_now()
            except Exception:  # the console busy or restarting: not a verdict
                calm = False
            calm_since = (calm_since or now) if calm else None
            if calm_since is not None and now - calm_since >= 2.0:
                self.relieved_at = calm_since
            time.sleep(0.2)

    def seconds_to_relief(self):
        if self.started_at is None or self.relieved_at is None:
            return None
        return round(self.relieved_at - self.started_at, 2)


def admin_args(lab, **extra):
    return dict(
        pgbouncer_port=lab.pgbouncer_port,
        pgbouncer_user=lab.credentials["pgbouncer_admin_user"],
        pgbouncer_password=lab.credentials["pgbouncer_admin_password"],
        **extra,
    )


def start_incident(lab, seconds: int):
    """Pool to 3, three leaked sessions, 6 pgbench clients; the two processes. PgBouncer keeps starved
    clients for 10 minutes (online only; the lab's query_wait_timeout of 30 s drops them on a slow machine)."""
    run_module(
        "pgbouncer_admin",
        admin_args(lab, database=DATABASE, pool_settings={"pool_size": 3}, ini_path=str(lab.pgbouncer_ini)),
    )
    run_module("pgbouncer_admin", admin_args(lab, settings={"query_wait_timeout": 600}))  # after the RELOAD
    env = dict(os.environ, PGPASSWORD=lab.credentials["lab_app_password"])
    user = lab.credentials["lab_app_user"]
    leak = subprocess.Popen(
        [sys.executable, str(REHEARSAL / "leak.py"), str(lab.pgbouncer_port), DATABASE, user, "3", str(seconds)],
        env=env,
    )
    time.sleep(1.5)
    load = subprocess.Popen(
        [
            "pgbench",
            "-n",
            "-c",
            "6",
            "-j",
            "2",
            "-T",
            str(seconds),
            "-f",
            str(REHEARSAL / "load.sql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(lab.pgbouncer_port),
            "-U",
            user,
            DATABASE,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return [leak, load]


def run_playbook(lab, incident_dir: Path, incident_id: str):
    extra = {
        "incident_tier": "olap",
        "incident_id": incident_id,
        "dbops_incident_dir": str(incident_dir),
        "dbops_lock_dir": str(incident_dir / "locks"),
        "pool_idle_tx_max_s": 3,
        "pool_verify_window_s": 3,
    }
    started = time.monotonic()
    done = lablib.run_playbook(lab.inventory, PLAYBOOK, extra, timeout=300)
    return done, time.monotonic() - started


def pool_figures(incident_dir: Path, incident_id: str) -> dict:
    record = json.loads((incident_dir / incident_id / "record.json").read_text())
    steps = {step.get("name"): step for step in record.get("timeline", [])}
    before = (steps.get("monitor the pool and decide", {}).get("details") or {}).get("pool") or {}
    verify = next((step for name, step in steps.items() if name.startswith("verify the pool")), {})
    after = (verify.get("details") or {}).get("after") or {}
    return {
        "outcome": record.get("outcome"),
        "waiting_before": before.get("cl_waiting"),
        "maxwait_before_s": before.get("maxwait_seconds"),
        "waiting_after": after.get("cl_waiting"),
        "maxwait_after_s": after.get("maxwait_seconds"),
        "pool_size_after": after.get("pool_size"),
    }


def one_run(lab, incident_dir: Path, number: int) -> dict:
    prober, watch = Prober(lab), PoolWatch(lab)
    prober.start()
    watch.start()
    time.sleep(2)
    load_average = os.getloadavg()[0]
    prober.phase = "during"
    processes = start_incident(lab, seconds=60)
    try:
        time.sleep(4)
        incident_id = "BENCH-POOL-%d" % number
        watch.started_at = time.monotonic()
        done, seconds = run_playbook(lab, incident_dir, incident_id)
        prober.phase = "after"
        time.sleep(3)
        again, again_seconds = run_playbook(lab, incident_dir, incident_id + "-again")
    finally:
        prober.stopping.set()
        watch.stopping.set()
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
    figures = pool_figures(incident_dir, incident_id)
    figures.update(
        rc=done.rc,
        playbook_s=round(seconds, 2),
        start_to_relieved_s=watch.seconds_to_relief(),
        errors=prober.errors,
        second_outcome=pool_figures(incident_dir, incident_id + "-again")["outcome"],
        second_changed=again.recap.get("localhost", {}).get("changed"),
        second_s=round(again_seconds, 2),
        load_average_1m=round(load_average, 2),
    )
    for phase in ("before", "during", "after"):
        figures["p50_%s_ms" % phase] = prober.percentile(phase, 0.5)
        figures["p99_%s_ms" % phase] = prober.percentile(phase, 0.99)
    run_module("pgbouncer_admin", admin_args(lab, command="RELOAD"))
    return figures


def median(results: list, key: str):
    values = [result[key] for result in results if isinstance(result.get(key), (int, float))]
    return round(statistics.median(values), 3) if values else None


def report(results: list) -> None:
    for number, result in enumerate(results, 1):
        print("run %d: %s" % (number, json.dumps(result, sort_keys=True)))
    keys = sorted({key for result in results for key in result if key not in ("outcome", "second_outcome")})
    print("median of %d runs:" % len(results))
    for key in keys:
        print("  %-22s %s" % (key, median(results, key)))
    print("  outcomes               %s" % sorted({result["outcome"] for result in results}))
    print("  second runs            %s" % sorted({result["second_outcome"] for result in results}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if lablib.missing_binaries():
        print("skipped: the lab needs %s" % ", ".join(lablib.missing_binaries()))
        return 0
    port_base = int(os.environ.get("DBOPS_BENCH_PORT_BASE", "5800")) + 100
    with tempfile.TemporaryDirectory() as directory:
        lab = lablib.write_inventory(
            Path(directory) / "inventory",
            tiers={"olap": 0},
            port_base=port_base,
            lab_root="/var/tmp/penguinmails-dbops-bench-pool",
        )
        with lablib.running(lab):
            results = [one_run(lab, Path(directory) / "incidents", number) for number in range(1, args.runs + 1)]
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
