"""The live alert pipeline: a killed lab primary is detected and remediated with nobody typing.

prometheus-postgres-exporter -> prometheus (rule PostgresPrimaryDown) -> prometheus-alertmanager
-> ansible-rulebook (eda.builtin.webhook with a token, extensions/eda/rulebooks/dbops_alerts.yml,
run_playbook) -> playbooks/incident_db_outage.yml, all real processes (tests/alertlab.py), on a
lean lab: one oltp primary, one standby, PgBouncer (module-scoped).

Alertmanager re-sends the firing alert every 2 s here (repeat_interval), a flapping/repeated
alert for real: the rulebook's throttle must keep it to one run.

Ports and directories (env, with defaults):
    DBOPS_ALERTS_TEST_PORT_BASE  lab servers from base+1, PgBouncer at base+1000, the pipeline at
                                 base+20..base+123 (default 6700)
    DBOPS_ALERTS_TEST_ROOT       lab root; the pipeline keeps its data in <root>-pipeline
                                 (default /var/tmp/penguinmails-dbops-alerts-pytest)
Needs the Debian packages prometheus, prometheus-alertmanager, prometheus-postgres-exporter and
Java 17 (tools/install-system-packages.sh).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import time
from pathlib import Path

import alertlab
import lablib
import pytest

PORT_BASE = int(os.environ.get("DBOPS_ALERTS_TEST_PORT_BASE", "6700"))
LAB_ROOT = os.environ.get("DBOPS_ALERTS_TEST_ROOT", "/var/tmp/penguinmails-dbops-alerts-pytest")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    lablib.require_binaries(*alertlab.missing_binaries(), needs="the alert pipeline")
    lab = lablib.write_inventory(
        tmp_path_factory.mktemp("alerts-lab"), tiers={"oltp": 1}, port_base=PORT_BASE, lab_root=LAB_ROOT
    )
    incidents = tmp_path_factory.mktemp("incidents")
    root = Path(LAB_ROOT + "-pipeline")
    shutil.rmtree(root, ignore_errors=True)
    with lablib.running(lab):
        alerts = alertlab.AlertPipeline(
            lab.inventory,
            root,
            PORT_BASE + 20,
            timings=alertlab.Timings(repeat_interval=2.0),
            rulebook_vars={"eda_auto_failover": True},
            inventory_vars={
                "dbops_incident_dir": str(incidents),
                "dbops_lock_dir": str(incidents / "locks"),
            },
        )
        try:
            alerts.up()
            yield lab, alerts, incidents
        finally:
            alerts.down()


def epoch(text: str) -> float:
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return datetime.datetime.fromisoformat(text).timestamp()


def closed_records(incidents: Path):
    records = []
    for path in sorted(incidents.glob("*/record.json")):
        record = json.loads(path.read_text())
        records.append(record)
    return records


def test_killed_primary_is_failed_over_by_the_alert_pipeline(pipeline):
    lab, alerts, incidents = pipeline
    old = lab.primary("oltp")
    (standby,) = [server for server in lab.tier("oltp") if server is not old]
    assert not alerts.prometheus_alerts(), "nothing fires on a healthy tier"

    lablib.kill_postmaster(old.data_dir)

    def promoted():
        return lab.role(standby, connect_timeout=2) == "primary" and any(
            (record.get("status") == "closed") for record in closed_records(incidents)
        )

    assert lablib.wait_until(promoted, timeout=120, interval=0.5), alerts.rulebook_log()[-4000:]

    # The alert that drove it, as Alertmanager holds it (still firing: the old primary stays down).
    (alert,) = [a for a in alerts.alertmanager_alerts() if a["labels"]["alertname"] == "PostgresPrimaryDown"]
    assert alert["labels"]["tier"] == "oltp" and alert["labels"]["dbops_host"] == old.name
    (record,) = closed_records(incidents)
    assert record["id"] == "am-%s-oltp-db_outage" % alert["fingerprint"], record["id"]
    # detected_at is the alert's startsAt (the record keeps milliseconds, Alertmanager nanoseconds).
    assert abs(epoch(record["detected_at"]) - epoch(alert["startsAt"])) < 0.001, (
        record["detected_at"],
        alert["startsAt"],
    )
    assert record["outcome"] == "resolved" and record["tier"] == "oltp", record

    # The new primary is verified by the run, and takes writes through PgBouncer.
    assert lab.primary("oltp") == standby
    with lab.connect_pgbouncer("penguinmails_oltp") as conn, conn.cursor() as cursor:
        cursor.execute("INSERT INTO lab_writes (note) VALUES ('after the alert') RETURNING id")
        assert cursor.fetchone()[0]

    started = time.monotonic()
    # Alertmanager keeps re-sending the firing alert (every 2 s here): the throttle holds it to one run.
    time.sleep(max(0.0, 8 - (time.monotonic() - started)))
    log = alerts.rulebook_log()
    assert log.count("PLAY RECAP") == 1, log[-3000:]
    assert log.count("PLAY [Database outage - verify, fence, promote, re-point, verify]") == 1
    assert log.count("POST /alertmanager") >= 3, "Alertmanager repeated the alert (the throttle had work to do)"
    assert len(list(incidents.glob("*/record.json"))) == 1
    assert len(json.loads((incidents / record["id"] / "record.json").read_text())["runs"]) == 1
