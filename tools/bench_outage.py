"""Benchmark: the outage playbook against a killed oltp primary, with the application writing.

Prints figures, asserts nothing. Run by `make bench` (tools/bench.py) or alone:

    .venv/bin/python tools/bench_outage.py [--runs 5]

Per run, on its own 3-server oltp lab behind PgBouncer (ports DBOPS_BENCH_PORT_BASE, default
5800; stopped by PID at the end):

* a client commits one row through PgBouncer every 50 ms (tests/appwriter.py);
* the primary's postmaster is SIGKILLed and incident_db_outage.yml starts at that moment;
* measured: the playbook's wall time (start to verified new primary and closed record), the
  client-observed write outage (last acknowledged commit before the kill to the first commit
  issued after it and acknowledged; with the tier held by PAUSE that is a stall, not an error),
  and acknowledged commits missing on the new primary (must be 0: oltp commits wait for ANY 1 of
  the standbys);
* where the time goes: each task's duration from the run's audit trail;
* then the old primary rejoins (not timed) so the next run starts from a healthy tier.

Medians over --runs. The machine's other load shows in the figures; quote medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import lablib  # noqa: E402
from appwriter import AppWriter  # noqa: E402

OUTAGE = REPO / "playbooks" / "incident_db_outage.yml"
REJOIN = REPO / "playbooks" / "rejoin_old_primary.yml"


def task_durations(incident_dir: Path, incident_id: str) -> dict:
    durations = {}
    audit = incident_dir / incident_id / "audit.jsonl"
    if not audit.exists():
        return durations
    for line in audit.read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == "task" and record.get("duration") is not None:
            name = record["task"].split(" : ", 1)[-1]
            durations[name] = durations.get(name, 0.0) + record["duration"]
    return durations


def promote_seconds(incident_dir: Path, incident_id: str):
    """The server-side promotion time pg_promote reported, from the incident record."""
    record_file = incident_dir / incident_id / "record.json"
    if not record_file.exists():
        return None
    for entry in json.loads(record_file.read_text()).get("timeline", []):
        seconds = (entry.get("details") or {}).get("promote_seconds")
        if seconds is not None:
            return float(seconds)
    return None


def one_run(lab, incident_dir: Path, number: int) -> dict:
    old = lab.primary("oltp")
    writer = AppWriter(lab)
    writer.start()
    time.sleep(2.0)
    incident_id = "BENCH-%d-%d" % (os.getpid(), number)
    lablib.kill_postmaster(old.data_dir)
    started = time.monotonic()
    writer.fault_injected(started)
    run = lablib.run_playbook(
        lab.inventory,
        OUTAGE,
        {"incident_tier": "oltp", "incident_id": incident_id, "dbops_incident_dir": str(incident_dir)},
    )
    playbook_seconds = time.monotonic() - started
    recovered = writer.stop_after_recovery(timeout=30)
    if run.rc != 0:
        raise RuntimeError("outage playbook failed in run %d:\n%s" % (number, run.stdout[-3000:]))
    new = lab.primary("oltp")
    with lab.connect(new, dbname="penguinmails_oltp") as conn:
        lost = writer.missing_on(conn)
    rejoin = lablib.run_playbook(lab.inventory, REJOIN, {"rejoin_host": old.name})
    if rejoin.rc != 0:
        raise RuntimeError("rejoin failed after run %d:\n%s" % (number, rejoin.stdout[-3000:]))
    return {
        "playbook_s": playbook_seconds,
        "write_outage_s": writer.outage_seconds if recovered else float("nan"),
        "acknowledged": len(writer.acknowledged),
        "lost": len(lost),
        "tasks": task_durations(incident_dir, incident_id),
        "promote_s": promote_seconds(incident_dir, incident_id),
        "promoted": new.name,
    }


def report(results: list) -> None:
    print("\nrun  playbook_s  write_outage_s  acknowledged  lost  promote_s  promoted")
    for number, result in enumerate(results, 1):
        print(
            "%3d  %10.2f  %14.2f  %12d  %4d  %9s  %s"
            % (
                number,
                result["playbook_s"],
                result["write_outage_s"],
                result["acknowledged"],
                result["lost"],
                "-" if result["promote_s"] is None else "%.3f" % result["promote_s"],
                result["promoted"],
            )
        )
    print(
        "median  playbook %.2f s   write outage %.2f s   acknowledged writes lost (all runs) %d"
        % (
            statistics.median(result["playbook_s"] for result in results),
            statistics.median(result["write_outage_s"] for result in results),
            sum(result["lost"] for result in results),
        )
    )
    promote = [result["promote_s"] for result in results if result["promote_s"] is not None]
    if promote:
        print("pg_promote inside the promote task (server side): median %.3f s" % statistics.median(promote))
    per_task = defaultdict(list)
    for result in results:
        for name, seconds in result["tasks"].items():
            per_task[name].append(seconds)
    print("\nwhere the time goes (median seconds per task, from the audit trail):")
    for name, values in sorted(per_task.items(), key=lambda item: -statistics.median(item[1])):
        print("  %6.3f  %s" % (statistics.median(values), name))
    print("  %6.3f  sum of tasks" % sum(statistics.median(values) for values in per_task.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    missing = lablib.missing_binaries()
    if missing:
        print("bench_outage: needs %s (tools/install-system-packages.sh)" % ", ".join(missing), file=sys.stderr)
        return 1
    port_base = int(os.environ.get("DBOPS_BENCH_PORT_BASE", "5800"))
    with tempfile.TemporaryDirectory(prefix="dbops-bench-outage-") as scratch:
        scratch_path = Path(scratch)
        lab = lablib.write_inventory(
            scratch_path / "inventory",
            tiers={"oltp": 2},
            port_base=port_base,
            lab_root="/var/tmp/penguinmails-dbops-bench-outage",
        )
        with lablib.running(lab):
            results = [one_run(lab, scratch_path / "incidents", number) for number in range(1, args.runs + 1)]
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
