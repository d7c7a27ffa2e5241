"""AWX job slicing of triage, under AWX's engine: two slices of one inventory as two runner jobs.

One lab (oltp primary + 2 standbys, content primary + 1 standby, PgBouncer) on its own ports:
DBOPS_SLICING_TEST_PORT_BASE (default 5800; PgBouncer on base + 1000 = 6800), data under
DBOPS_SLICING_TEST_ROOT. The private data directories are test_awx_runner.py's (AWX-shaped); each
slice's inventory script lists only its slice, cut the way AWX cuts it (slicing.slice_inventory:
hosts sorted by name, every second one, groups restricted to them). Both slices carry the workflow
job's id (awx_workflow_job_id) like AWX's slice jobs, and run at once against one shared storage.

With the oltp primary killed, the slices are (sorted: content-1 content-2 oltp-1 oltp-2 oltp-3
pgbouncer-1): 1 = content-1 oltp-1 oltp-3, 2 = content-2 oltp-2 pgbouncer-1. Slice 2 sees content's
standby only, streaming: no content incident. Both slices see oltp's standbys lose their upstream:
one db_outage incident, opened by one and continued by the other.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import lablib
import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.rejoin import remove_stale_pid_file
from ansible_collections.penguinmails.dbops.plugins.module_utils.slicing import inventory_hosts, slice_inventory
from test_awx_runner import awx_inventory, private_data_dir, run_job

PORT_BASE = int(os.environ.get("DBOPS_SLICING_TEST_PORT_BASE", "5800"))
LAB_ROOT = os.environ.get("DBOPS_SLICING_TEST_ROOT", "/var/tmp/penguinmails-dbops-slicing-pytest")
WORKFLOW_JOB_ID = 500
SLICES = 2


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lablib.require_binaries()
    lab = lablib.write_inventory(
        tmp_path_factory.mktemp("slicing-lab"),
        tiers={"oltp": 2, "content": 1},
        port_base=PORT_BASE,
        lab_root=LAB_ROOT,
    )
    with lablib.running(lab):
        yield lab


def receiver_status(lab, server):
    with lab.connect(server, connect_timeout=2) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT status FROM pg_stat_wal_receiver")
        row = cursor.fetchone()
    return row[0] if row else None


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def sliced_job(tmp_path, lab, storage, number, slices=SLICES, survey=None, job_id=None):
    """Slice `number` of the triage template (job_slice_count 2): AWX's sliced inventory and the
    template's extra_vars (diagnose_sliced), the slice job's own id and the workflow job's."""
    pdd = private_data_dir(
        tmp_path,
        lab,
        storage,
        job_id or WORKFLOW_JOB_ID + number,
        survey or {"incident_tier": ""},
        {"diagnose_sliced": True, "awx_workflow_job_id": WORKFLOW_JOB_ID},
    )
    inventory = slice_inventory(awx_inventory(lab, storage), number, slices)
    (pdd / "inventory" / "hosts").write_text(
        "#!%s\nimport json, sys\nif '--host' in sys.argv:\n    print('{}')\nelse:\n    print(json.dumps(%r))\n"
        % (sys.executable, inventory)
    )
    return pdd, inventory


def test_a_sliced_triage_probes_every_host_once_and_opens_each_incident_once(lab, tmp_path):
    storage = {"incidents": tmp_path / "shared" / "incidents", "locks": tmp_path / "shared" / "locks"}
    old = lab.primary("oltp")
    lablib.kill_postmaster(old.data_dir)
    try:
        standbys = [server for server in lab.tier("oltp") if server.name != old.name]
        assert wait_until(lambda: all(receiver_status(lab, server) != "streaming" for server in standbys))

        slices = [sliced_job(tmp_path, lab, storage, number) for number in range(1, SLICES + 1)]
        everyone = inventory_hosts(awx_inventory(lab, storage))
        covered = [host for job in slices for host in inventory_hosts(job[1])]
        assert sorted(covered) == everyone and len(covered) == len(set(covered))

        jobs = {}
        threads = [
            threading.Thread(target=lambda p=pdd: jobs.__setitem__(p.name, run_job(p, "triage")))
            for pdd in (job[0] for job in slices)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        names = ["job-%d" % (WORKFLOW_JOB_ID + number) for number in range(1, SLICES + 1)]
        assert {name: (jobs[name].rc, jobs[name].status) for name in names} == {
            name: (0, "successful") for name in names
        }, {name: job.stdout[-3000:] for name, job in jobs.items()}

        # Every PostgreSQL server probed exactly once, each by the slice that holds it.
        probed = {}
        for inventory, name in zip((job[1] for job in slices), names):
            (sweep,) = jobs[name].task_results("penguinmails.dbops.pg_health")
            probed[name] = sorted(sweep["res"]["servers"])
            assert probed[name] == sorted(h for h in inventory_hosts(inventory) if h != "pgbouncer-1"), probed
        all_probed = probed[names[0]] + probed[names[1]]
        assert sorted(all_probed) == sorted(server.name for server in lab.servers.values())
        assert len(all_probed) == len(set(all_probed))

        # Each slice judged only its own part; content's lone streaming standby is no outage.
        (first,) = jobs[names[0]].task_results("penguinmails.dbops.dbops_triage")
        (second,) = jobs[names[1]].task_results("penguinmails.dbops.dbops_triage")
        assert second["res"]["tiers"]["content"]["members"] == ["content-2"]
        assert second["res"]["tiers"]["content"]["slice_view"]["verdict"] == "upstream_alive"
        assert second["res"]["tiers"]["content"]["types"] == []
        assert first["res"]["tiers"]["content"]["primary"] == "content-1"
        for result in (first, second):
            assert result["res"]["tiers"]["oltp"]["types"] == ["db_outage"], result["res"]["tiers"]["oltp"]["summary"]

        # One incident, one record: opened by one slice, continued by the other.
        incident_id = "awx-%d-oltp-db_outage" % WORKFLOW_JOB_ID
        assert sorted(path.name for path in storage["incidents"].iterdir() if path.is_dir()) == [incident_id]
        for name in names:
            assert jobs[name].set_stats()["dbops_triage"]["by_type"]["db_outage"]["incident_id"] == incident_id
        record = json.loads((storage["incidents"] / incident_id / "record.json").read_text())
        job_ids = [str(run.get("job_id")) for run in record["runs"]]
        assert sorted(set(job_ids)) == ["501", "502"], job_ids

        # A slice with no server of the asked tier (slice 3 of 3: oltp-1, pgbouncer-1) has no share
        # of the work: it ends successfully, probes nothing and records nothing.
        empty, inventory = sliced_job(
            tmp_path, lab, storage, 3, slices=3, survey={"incident_tier": "content"}, job_id=603
        )
        assert inventory["content"]["hosts"] == []
        job = run_job(empty, "triage")
        assert (job.rc, job.status) == (0, "successful"), job.stdout[-3000:]
        assert job.task_results("penguinmails.dbops.pg_health") == []
        assert sorted(path.name for path in storage["incidents"].iterdir()) == [incident_id]
    finally:
        if lab.role(old, connect_timeout=2) != "primary":
            remove_stale_pid_file(str(old.data_dir))
            lablib.start_server(old)
