"""incident_db_outage.yml and rejoin_old_primary.yml against a real, broken oltp tier.

One lab for the module (oltp primary + 2 synchronous-quorum standbys + PgBouncer) on its
own ports. Every scenario breaks the tier for real (SIGKILL, SIGSTOP of every process,
a second primary, paused replay), runs the playbook, asserts on what the servers say, and
puts the tier back with rejoin_old_primary.yml, which is itself under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import lablib
import psycopg2
import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.rejoin import remove_stale_pid_file
from appwriter import AppWriter

PORT_BASE = int(os.environ.get("DBOPS_OUTAGE_TEST_PORT_BASE", "5700"))
LAB_ROOT = os.environ.get("DBOPS_OUTAGE_TEST_ROOT", "/var/tmp/penguinmails-dbops-outage-pytest")
OUTAGE = lablib.REPO_ROOT / "playbooks" / "incident_db_outage.yml"
REJOIN = lablib.REPO_ROOT / "playbooks" / "rejoin_old_primary.yml"


@pytest.fixture(scope="module")
def tier(tmp_path_factory):
    lablib.require_binaries()
    lab = lablib.write_inventory(
        tmp_path_factory.mktemp("outage-lab"), tiers={"oltp": 2}, port_base=PORT_BASE, lab_root=LAB_ROOT
    )
    with lablib.running(lab):
        yield Tier(lab, tmp_path_factory.mktemp("incidents"))


def restart(server) -> None:
    """Start a server that was killed: a zombie postmaster's pid and socket lock files would block the start."""
    remove_stale_pid_file(str(server.data_dir))
    lablib.start_server(server)


class Tier:
    """The oltp tier under test and the playbooks that act on it."""

    def __init__(self, lab, incident_dir: Path) -> None:
        self.lab = lab
        self.incident_dir = incident_dir
        self.servers = lab.tier("oltp")

    def run(self, playbook=OUTAGE, args=(), inventory=None, **extra):
        extra.setdefault("incident_tier", "oltp")
        extra.setdefault("dbops_incident_dir", str(self.incident_dir))
        return lablib.run_playbook(inventory or self.lab.inventory, playbook, extra, args=args, timeout=300)

    def roles(self):
        return {server.name: self.lab.role(server, connect_timeout=2) for server in self.servers}

    def primary(self):
        return self.lab.primary("oltp")

    def timeline(self, server) -> int:
        with self.lab.connect(server) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
            return cursor.fetchone()[0]

    def restore(self, allow_reclone=False):
        """Every member back: fenced or stopped ones rejoin as standbys of the primary."""
        for server in self.servers:
            lablib.thaw_server(server.data_dir)
        primaries = [server for server in self.servers if self.lab.role(server, connect_timeout=2) == "primary"]
        assert len(primaries) == 1, self.roles()
        for server in self.servers:
            if server is primaries[0]:
                continue
            if self.lab.role(server, connect_timeout=2) != "standby" or not self.streams(server):
                fence(self, server)
                rejoined = self.run(REJOIN, rejoin_host=server.name, rejoin_allow_reclone=allow_reclone)
                assert rejoined.rc == 0, rejoined.stdout[-3000:]
        healthy = self.run()
        assert healthy.rc == 0, healthy.stdout[-3000:]
        assert "HEALTHY" in healthy.stdout

    def streams(self, server) -> bool:
        with self.lab.connect(server) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT status FROM pg_stat_wal_receiver")
            row = cursor.fetchone()
        return bool(row) and row[0] == "streaming"

    def pgbouncer_entry(self) -> str:
        ini = Path(self.lab.lab_root) / "pgbouncer-1" / "pgbouncer.ini"
        return next(line for line in ini.read_text().splitlines() if line.startswith("penguinmails_oltp"))


def fence(tier: Tier, server) -> None:
    argv = [
        lablib.ansible_playbook().replace("ansible-playbook", "ansible"),
        "localhost",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=%s" % lablib.ansible_playbook().replace("ansible-playbook", "python"),
        "-m",
        "penguinmails.dbops.pg_fence",
        "-a",
        json.dumps({"data_dir": str(server.data_dir)}),
    ]
    done = subprocess.run(
        argv, cwd=lablib.REPO_ROOT, env=lablib.playbook_env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def decision_of(run) -> str:
    for action in ("HEALTHY", "FAILOVER", "SPLIT_BRAIN", "REFUSED"):
        if '"%s: ' % action in run.stdout:
            return action.lower()
    return "unknown"


def test_healthy_primary_changes_nothing(tier):
    primary = tier.primary()
    entry = tier.pgbouncer_entry()
    run = tier.run()
    assert run.rc == 0, run.stdout[-3000:]
    assert decision_of(run) == "healthy"
    assert run.changed == 0
    assert tier.primary().name == primary.name
    assert tier.pgbouncer_entry() == entry


def test_check_mode_plans_the_failover_and_changes_nothing(tier, tmp_path):
    old = tier.primary()
    lablib.kill_postmaster(old.data_dir)
    incident_dir = tmp_path / "incidents"
    lock_dir = tmp_path / "locks"
    try:
        run = tier.run(args=["--check"], dbops_incident_dir=str(incident_dir), failover_lock_dir=str(lock_dir))
        assert run.rc == 0, run.stdout[-3000:]
        # Check mode writes nothing: no record, audit trail, lock or lock guard, and no report path.
        assert not incident_dir.exists(), sorted(str(path) for path in incident_dir.rglob("*"))
        assert not lock_dir.exists(), sorted(str(path) for path in lock_dir.rglob("*"))
        assert "no report written" in run.stdout
        assert "report.md" not in run.stdout
        assert decision_of(run) == "failover"
        assert "SELECT pg_promote(true, 30)" in run.stdout
        assert "standby.signal" in run.stdout
        assert not (Path(old.data_dir) / "standby.signal").exists()
        roles = tier.roles()
        assert roles[old.name] == "down"
        assert sorted(role for name, role in roles.items() if name != old.name) == ["standby", "standby"]
    finally:
        restart(old)
    assert tier.lab.role(old) == "primary"


def test_killed_primary_fails_over_without_losing_acknowledged_writes(tier):
    old = tier.primary()
    timeline_before = tier.timeline(old)
    writer = AppWriter(tier.lab)
    writer.start()
    assert lablib.wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30), "the writer never got going"
    lablib.kill_postmaster(old.data_dir)
    killed_at = time.monotonic()
    writer.fault_injected(killed_at)
    run = tier.run()
    writer.stop_after_recovery(timeout=20)
    assert run.rc == 0, run.stdout[-4000:]
    assert decision_of(run) == "failover"
    new = tier.primary()
    assert new.name != old.name
    assert tier.timeline(new) == timeline_before + 1
    assert (Path(old.data_dir) / "standby.signal").exists()
    assert "port=%d" % new.port in tier.pgbouncer_entry()
    with tier.lab.connect(new, dbname="penguinmails_oltp") as conn:
        lost = writer.missing_on(conn)
    assert writer.acknowledged, "the writer never got a commit acknowledged"
    assert lost == [], "acknowledged writes lost: %s" % lost
    assert writer.first_success_after is not None and writer.first_success_after > killed_at

    again = tier.run()
    assert again.rc == 0
    assert decision_of(again) == "healthy"
    assert again.changed == 0


def test_rejoin_brings_the_old_primary_back_as_a_streaming_standby(tier):
    fenced = [server for server in tier.servers if tier.lab.role(server, connect_timeout=2) == "down"]
    assert fenced, tier.roles()
    for server in fenced:
        run = tier.run(REJOIN, rejoin_host=server.name)
        assert run.rc == 0, run.stdout[-3000:]
        assert tier.lab.role(server) == "standby"
        assert tier.streams(server)
        again = tier.run(REJOIN, rejoin_host=server.name)
        assert again.rc == 0 and again.changed == 0
        assert "PGPASSWORD" not in Path("/proc/%d/environ" % server.postmaster_pid()).read_text()


def test_hung_primary_is_detected_hard_fenced_and_never_comes_back_writable(tier):
    tier.restore()
    old = tier.primary()
    frozen = lablib.freeze_server(old.data_dir)
    started = time.monotonic()
    run = tier.run()
    elapsed = time.monotonic() - started
    lablib.thaw_server(old.data_dir, frozen)
    assert run.rc == 0, run.stdout[-4000:]
    assert "%s is down (timeout)" % old.name in run.stdout
    assert "SIGKILL" in latest_report(tier), "the record does not show a hard fence"
    assert not [pid for pid in frozen if lablib.process_alive(pid)], "a process of the hung server survived the fence"
    assert (Path(old.data_dir) / "standby.signal").exists()
    assert elapsed < 120
    restart(old)
    assert tier.lab.role(old) == "standby", "the fenced server came back writable"
    tier.restore()


def test_two_primaries_is_refused_and_nothing_changes(tier):
    standby = next(server for server in tier.servers if tier.lab.role(server) == "standby")
    with tier.lab.connect(standby) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT pg_promote(true, 30)")
    entry = tier.pgbouncer_entry()
    run = tier.run()
    assert run.rc != 0
    assert decision_of(run) == "split_brain"
    assert "Nothing was changed" in run.stdout
    assert sorted(tier.roles().values()).count("primary") == 2
    assert tier.pgbouncer_entry() == entry
    summary = latest_summary(tier)
    assert summary["outcome"] == "refused"
    fence(tier, standby)
    tier.restore()


def test_lagging_candidate_is_refused_and_allowed_only_explicitly(tier):
    old = tier.primary()
    standbys = [server for server in tier.servers if server is not old]
    for server in standbys:
        with tier.lab.connect(server) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT pg_wal_replay_pause()")
    with tier.lab.connect(old, dbname="penguinmails_oltp") as conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO lab_writes (note) SELECT repeat('x', 1000) FROM generate_series(1, 4000) RETURNING 1"
        )
        written = cursor.rowcount
    time.sleep(1.0)
    lablib.kill_postmaster(old.data_dir)

    refused = tier.run()
    assert refused.rc != 0
    assert decision_of(refused) == "refused"
    assert "failover_allow_data_loss" in refused.stdout
    assert [tier.lab.role(server) for server in standbys] == ["standby", "standby"]

    allowed = tier.run(failover_allow_data_loss=True)
    assert allowed.rc == 0, allowed.stdout[-4000:]
    assert "estimated_data_loss_bytes" in latest_report(tier)
    new = tier.primary()
    with tier.lab.connect(new, dbname="penguinmails_oltp") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM lab_writes WHERE note = repeat('x', 1000)")
        assert cursor.fetchone()[0] >= written
    tier.restore()


def test_two_runs_at_the_same_moment_promote_exactly_once(tier):
    old = tier.primary()
    timeline_before = tier.timeline(old)
    lablib.kill_postmaster(old.data_dir)
    results = []
    threads = [
        threading.Thread(
            target=lambda number=number: results.append(
                tier.run(incident_id="RACE-%d" % number, failover_lock_wait_s=900)
            )
        )
        for number in (1, 2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [run.rc for run in results] == [0, 0], [run.stdout[-2000:] for run in results]
    decisions = sorted(decision_of(run) for run in results)
    assert decisions == ["failover", "healthy"]
    new = tier.primary()
    assert tier.timeline(new) == timeline_before + 1
    tier.restore()


def test_partitioned_primary_is_refused_unless_fence_skipped(tier, tmp_path):
    """The controller cannot reach the primary (SQL nor host) while it keeps taking writes from clients that
    still reach it, and its standbys keep streaming from it."""
    old = tier.primary()
    inventory = partitioned_inventory(tier, tmp_path, old.name)
    refused = tier.run(inventory=inventory)
    assert refused.rc != 0
    assert "may still be serving writes behind a partition" in refused.stdout
    assert "%s is down" % old.name in refused.stdout
    assert sorted(tier.roles().values()) == ["primary", "standby", "standby"]
    assert tier.primary().name == old.name

    # With the fence skipped the candidate is promoted while the old primary goes on: the other standby
    # replays the old primary's commits past the point where the new timeline forks and cannot follow.
    with OldPrimaryClients(tier, old):
        skipped = tier.run(inventory=inventory, failover_fence="skip")
    assert skipped.rc != 0, skipped.stdout[-4000:]
    new = next(server for server in tier.servers if server is not old and tier.lab.role(server) == "primary")
    (diverged,) = [server for server in tier.servers if server not in (old, new)]
    assert "%s does not stream from" % diverged.name in skipped.stdout, skipped.stdout[-4000:]
    assert "rejoin_old_primary.yml" in skipped.stdout
    report = latest_report(tier)
    assert "risk accepted" in report
    assert "commits on %s stop waiting for %s" % (new.name, diverged.name) in report
    # Commits on the new primary no longer wait for a standby that will never acknowledge them.
    with tier.lab.connect(new) as conn, conn.cursor() as cursor:
        cursor.execute("SHOW synchronous_standby_names")
        assert cursor.fetchone()[0] == ""
    through_pgbouncer = tier.lab.connect_pgbouncer("penguinmails_oltp", connect_timeout=2)
    try:
        with through_pgbouncer.cursor() as cursor:
            cursor.execute("SET statement_timeout = '5s'")
            cursor.execute("INSERT INTO lab_writes (note) VALUES ('after the partition') RETURNING id")
            assert cursor.fetchone()[0]
    finally:
        through_pgbouncer.close()
    assert sorted(tier.roles().values()) == ["primary", "primary", "standby"], "the unfenced old primary kept running"
    fence(tier, old)
    # The old primary ran on after the promotion: pg_rewind may find its WAL back to the fork recycled.
    tier.restore(allow_reclone=True)


class OldPrimaryClients(threading.Thread):
    """Clients the partition left with the old primary: a commit straight to it every 10 ms."""

    def __init__(self, tier: Tier, server) -> None:
        super().__init__(daemon=True)
        self.tier, self.server = tier, server
        self.commits = 0
        self.stopping = threading.Event()

    def __enter__(self) -> OldPrimaryClients:
        self.start()
        assert lablib.wait_until(lambda: self.commits >= 5, timeout=30), "no commit on %s" % self.server.name
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.join(10)

    def run(self) -> None:
        conn = self.tier.lab.connect(self.server, dbname="penguinmails_oltp", connect_timeout=2)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET statement_timeout = '2s'")
                while not self.stopping.is_set():
                    try:
                        cursor.execute("INSERT INTO lab_writes (note) VALUES ('behind the partition')")
                        self.commits += 1
                    except psycopg2.Error:  # the old primary may stop answering: keep trying
                        pass
                    time.sleep(0.01)
        finally:
            conn.close()


def latest_report(tier: Tier) -> str:
    reports = sorted(tier.incident_dir.glob("*/report.md"), key=lambda path: path.stat().st_mtime)
    return reports[-1].read_text()


def latest_summary(tier: Tier) -> dict:
    summaries = sorted(tier.incident_dir.glob("*/summary.json"), key=lambda path: path.stat().st_mtime)
    return json.loads(summaries[-1].read_text())


def partitioned_inventory(tier: Tier, directory: Path, host: str) -> Path:
    """The lab inventory as a controller cut off from `host` sees it.

    Its SQL address becomes 127.0.0.2, where nothing listens (the standbys keep streaming
    from it on 127.0.0.1), and Ansible reaches its host over SSH on a closed port.
    """
    inventory = json.loads(tier.lab.inventory.read_text().split("\n", 1)[1])
    hosts = inventory["all"]["children"]["postgres"]["children"]["oltp"]["hosts"]
    hosts[host].update(ansible_host="127.0.0.2", ansible_connection="ssh", ansible_port=1, ansible_timeout=2)
    (directory / "hosts.yml").write_text(json.dumps(inventory))
    return directory / "hosts.yml"
