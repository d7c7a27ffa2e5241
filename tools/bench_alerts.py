"""Benchmark: the end-to-end time of an oltp primary loss through the live alert pipeline.

Prints figures, asserts nothing. Run by `make bench` (tools/bench.py) or alone:

    .venv/bin/python tools/bench_alerts.py [--runs 5]

An oltp lab (primary + 2 standbys, PgBouncer; ports DBOPS_BENCH_ALERTS_PORT_BASE, default 6100;
the pipeline at base+20..base+123; lab root DBOPS_BENCH_ALERTS_ROOT) with the pipeline of
tests/alertlab.py at its lab timings (scrape and evaluation 1 s, for 0 s, group_wait 0 s) and
eda_auto_failover true. Per run: a client commits through PgBouncer every 50 ms
(tests/appwriter.py), the primary's postmaster is SIGKILLed, and nobody types anything. Marks,
in seconds after the fault (wall clock):

    alert fired      Alertmanager's startsAt of PostgresPrimaryDown (Prometheus' activeAt)
    webhook          ansible-rulebook received Alertmanager's POST (its access log)
    playbook started the run's first audit record
    verified         the audit record of the last verification task
    first write      the first acknowledged commit issued after the fault

and the client write outage (last acknowledged commit before the fault to the first after it),
plus acknowledged commits missing on the new primary (must be 0). The pipeline is restarted per
run (a fresh rulebook: the same host killed again would otherwise be the same, throttled,
incident) and the old primary rejoins between runs (not timed). Medians over --runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import alertlab  # noqa: E402
import lablib  # noqa: E402
from appwriter import AppWriter  # noqa: E402

REJOIN = REPO / "playbooks" / "rejoin_old_primary.yml"
VERIFY_TASK = "Verify one writable primary"
MARKS = ["alert_fired", "webhook", "playbook_started", "verified", "first_write"]


def epoch(text: str) -> float:
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return datetime.datetime.fromisoformat(text).timestamp()


def log_epoch(line: str) -> float:
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def one_run(lab, root: Path, port_base: int, number: int) -> dict:
    incidents = root / ("incidents-%d" % number)
    shutil.rmtree(root / "pipeline", ignore_errors=True)
    pipeline = alertlab.AlertPipeline(
        lab.inventory,
        root / "pipeline",
        port_base,
        rulebook_vars={"eda_auto_failover": True},
        inventory_vars={"dbops_incident_dir": str(incidents), "dbops_lock_dir": str(root / "locks")},
    )
    pipeline.up()
    try:
        old = lab.primary("oltp")
        writer = AppWriter(lab)
        writer.start()
        time.sleep(2.0)
        offset = time.time() - time.monotonic()
        fault_mono = time.monotonic()
        lablib.kill_postmaster(old.data_dir)
        writer.fault_injected(fault_mono)
        fault = fault_mono + offset

        def verified():
            return any(path.read_text().count(VERIFY_TASK) for path in incidents.glob("*/audit.jsonl"))

        lablib.wait_until(verified, timeout=120, interval=0.2)
        recovered = writer.stop_after_recovery(timeout=30)
        alerts = [a for a in pipeline.alertmanager_alerts() if a["labels"]["alertname"] == "PostgresPrimaryDown"]
        marks = {"alert_fired": epoch(alerts[0]["startsAt"]) - fault if alerts else float("nan")}
        posts = [log_epoch(line) for line in pipeline.rulebook_log().splitlines() if "POST /alertmanager" in line]
        posts = [at for at in posts if at >= fault - 0.5]
        marks["webhook"] = posts[0] - fault if posts else float("nan")
        (audit,) = list(incidents.glob("*/audit.jsonl"))
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        stamps = [epoch(r["ts"]) for r in records if r.get("ts")]
        marks["playbook_started"] = min(stamps) - fault
        marks["verified"] = max(epoch(r["ts"]) for r in records if VERIFY_TASK in str(r.get("task", ""))) - fault
        marks["first_write"] = (writer.first_success_after - fault_mono) if writer.first_success_after else float("nan")
        new = lab.primary("oltp")
        with lab.connect(new, dbname="penguinmails_oltp") as conn:
            lost = writer.missing_on(conn)
    finally:
        pipeline.down()
    rejoin = lablib.run_playbook(lab.inventory, REJOIN, {"rejoin_host": old.name})
    if rejoin.rc != 0:
        raise RuntimeError("rejoin failed after run %d:\n%s" % (number, rejoin.stdout[-3000:]))
    return dict(marks, write_outage=writer.outage_seconds if recovered else float("nan"), lost=len(lost))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    missing = lablib.missing_binaries() + alertlab.missing_binaries()
    if missing:
        print("bench_alerts: needs %s (tools/install-system-packages.sh)" % ", ".join(missing), file=sys.stderr)
        return 1
    port_base = int(os.environ.get("DBOPS_BENCH_ALERTS_PORT_BASE", "6100"))
    lab_root = os.environ.get("DBOPS_BENCH_ALERTS_ROOT", "/var/tmp/penguinmails-dbops-bench-alerts")
    with tempfile.TemporaryDirectory(prefix="dbops-bench-alerts-") as scratch:
        lab = lablib.write_inventory(
            Path(scratch) / "inventory", tiers={"oltp": 2}, port_base=port_base, lab_root=lab_root
        )
        with lablib.running(lab):
            results = [one_run(lab, Path(lab_root + "-pipeline"), port_base + 20, n) for n in range(1, args.runs + 1)]
    print(
        "\nseconds after the fault (SIGKILL of the oltp primary), load average %s"
        % " ".join("%.2f" % x for x in os.getloadavg())
    )
    print("run  " + "  ".join("%16s" % m for m in MARKS) + "  write_outage  lost")
    for n, r in enumerate(results, 1):
        print(
            "%3d  " % n + "  ".join("%16.2f" % r[m] for m in MARKS) + "  %12.2f  %4d" % (r["write_outage"], r["lost"])
        )
    medians = "  ".join("%16.2f" % statistics.median(r[m] for r in results) for m in MARKS)
    outage = statistics.median(r["write_outage"] for r in results)
    print("med  %s  %12.2f  %4d" % (medians, outage, sum(r["lost"] for r in results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
