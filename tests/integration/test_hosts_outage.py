"""The outage runbook on the `hosts` lab topology (tests/labhosts.py, inventories/lab-hosts).

Every server on its own 198.18.0.x address in its own network namespace, every PostgreSQL on
5432, reached over SSH as an unprivileged user with sudo: what a loopback lab cannot show (host
identity by address, fencing and rejoining over SSH, real network partitions). One lab for the
module, shared by the tests in order; built and removed by the module fixture, also when a test
fails. The outage playbook's answers to a partition and to an isolated primary (refusal; promotion,
split brain refused after healing, fence and pg_rewind) are rehearsed by the Molecule scenario
`partition` (extensions/molecule/partition), not here. It uses no loopback port; it needs root
(network namespaces) and takes an exclusive lock (/var/tmp/penguinmails-dbops-lab-hosts.lock), so
a `make lab-up LAB=hosts` lab is replaced.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import labhosts
import lablib
import pytest
from appwriter import AppWriter

OUTAGE = lablib.REPO_ROOT / "playbooks" / "incident_db_outage.yml"
REJOIN = lablib.REPO_ROOT / "playbooks" / "rejoin_old_primary.yml"
NETWORK = ipaddress.ip_network(labhosts.NETWORK)


@pytest.fixture(scope="module")
def hosts_lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the hosts lab creates network namespaces: root only (CI runs as root)")
    lablib.require_binaries()
    incident_dir = tmp_path_factory.mktemp("hosts-incidents")
    with labhosts.running():
        yield HostsRun(incident_dir)
    left = labhosts.leftovers()
    assert not left, "lab-down left %s" % left


class HostsRun:
    def __init__(self, incident_dir: Path) -> None:
        self.incident_dir = incident_dir

    def run(self, playbook=OUTAGE, inventory=labhosts.INVENTORY, **extra):
        extra.setdefault("incident_tier", "oltp")
        extra.setdefault("dbops_incident_dir", str(self.incident_dir))
        return lablib.run_playbook(inventory, playbook, extra, timeout=600)


def decision_of(run) -> str:
    for action in ("HEALTHY", "FAILOVER", "SPLIT_BRAIN", "REFUSED"):
        if '"%s: ' % action in run.stdout:
            return action.lower()
    return "unknown"


def roles() -> dict:
    return {host.name: labhosts.role(host, connect_timeout=2) for host in labhosts.POSTGRES_HOSTS}


def in_namespace(host, *argv) -> str:
    return labhosts.run(labhosts.in_namespace(host, list(argv))).stdout


def test_every_server_on_its_own_address_behind_the_blackhole(hosts_lab):
    # The blackhole for the whole prefix outlives the lab's own (lower-metric) route.
    routes = labhosts.lab_routes()
    assert any(line.startswith("blackhole %s" % labhosts.NETWORK) and "metric 4242" in line for line in routes), routes
    assert any(line.startswith("%s dev %s" % (labhosts.NETWORK, labhosts.BRIDGE)) for line in routes), routes
    for host in labhosts.HOSTS:
        # No default route and no address outside the lab prefix (loopback aside), no IPv6.
        assert in_namespace(host, "ip", "route", "show", "default").strip() == ""
        addresses = [line.split()[3] for line in in_namespace(host, "ip", "-o", "addr", "show").splitlines()]
        assert [a for a in addresses if not a.startswith("127.")] == ["%s/24" % host.address], addresses
        assert ipaddress.ip_address(host.address) in NETWORK
        assert lablib.port_open(host.port, host.address), host
    assert labhosts.primary().name == "oltp-1"
    for standby in labhosts.POSTGRES_HOSTS[1:]:
        assert labhosts.upstream(standby) == "198.18.0.11:5432"
    assert "host=198.18.0.11 port=5432" in labhosts.pgbouncer_entry()
    # The controller reaches each host over SSH as the unprivileged ops user, root only through sudo.
    done = subprocess.run(
        labhosts.ssh_argv(labhosts.host("oltp-2"), ["id -un; sudo -n id -un"]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.split() == [labhosts.OPS_USER, "root"], done.stderr


def test_a_hung_host_answers_no_ssh_and_a_cut_standby_stops_streaming(hosts_lab):
    standby = labhosts.host("oltp-3")
    primary = labhosts.host("oltp-1")
    stopped = labhosts.hang_host(standby)
    try:
        ssh = subprocess.run(
            labhosts.ssh_argv(standby, ["true"], connect_timeout=3),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ssh.returncode == 255, ssh.stderr
    finally:
        labhosts.thaw(standby)
    assert not [pid for pid in stopped if lablib.process_state(pid) == "T"]
    labhosts.cut(standby)
    try:
        assert labhosts.connect_outcome(standby.address, 5432, timeout=3) != "connected"
        assert lablib.wait_until(lambda: labhosts.streaming_standbys(primary) == ["oltp_2"], 30)
    finally:
        labhosts.heal()
    assert lablib.wait_until(lambda: labhosts.streaming_standbys(primary) == ["oltp_2", "oltp_3"], 60)


def test_a_primary_cut_from_the_controller_never_connects_while_its_standbys_reach_it(hosts_lab):
    """The partition fault itself (the outage playbook's answer to it, a refusal, is rehearsed by
    the Molecule scenario `partition`): the SYN arrives, the answer is dropped on the primary's side,
    so a connection times out and never connects; the standbys keep streaming from it."""
    primary = labhosts.host("oltp-1")
    labhosts.partition_from_controller(primary)
    try:
        assert labhosts.connect_outcome(primary.address, 5432, timeout=3) == "timeout"
        assert labhosts.connect_outcome(primary.address, 22, timeout=3) == "timeout"
        for standby in labhosts.POSTGRES_HOSTS[1:]:
            assert labhosts.upstream(standby) == "198.18.0.11:5432"
    finally:
        labhosts.heal()
    assert roles() == {"oltp-1": "primary", "oltp-2": "standby", "oltp-3": "standby"}


def test_hung_primary_is_fenced_over_ssh_once_by_two_controllers_and_no_acknowledged_write_is_lost(hosts_lab, tmp_path):
    """Two controllers at once (their own inventory copy, incident records and SSH connections, as
    two AWX jobs in two containers) meet at the run lock on pgbouncer-1 over SSH: one promotes."""
    old = labhosts.host("oltp-1")
    timeline_before = timeline(old)
    second = tmp_path / "second-controller"
    # Short: ssh adds 17 characters to a ControlPath while it sets a master up (socket paths <= 107).
    control_dir = Path(tempfile.mkdtemp(prefix="dbops-cp-"))
    shutil.copytree(labhosts.INVENTORY, second / "inventory")
    writer = AppWriter(labhosts.LabView())
    writer.start()
    time.sleep(1.0)
    frozen = labhosts.hang_postgres(old)
    writer.fault_injected(time.monotonic())
    runs = []
    controllers = [
        threading.Thread(target=lambda: runs.append(hosts_lab.run(failover_lock_wait_s=600))),
        threading.Thread(
            target=lambda: runs.append(
                hosts_lab.run(
                    inventory=second / "inventory",
                    dbops_incident_dir=str(second / "incidents"),
                    ansible_control_path_dir=str(control_dir),
                    failover_lock_wait_s=600,
                )
            )
        ),
    ]
    try:
        for controller in controllers:
            controller.start()
        for controller in controllers:
            controller.join()
        writer.stop_after_recovery(timeout=30)
    finally:
        close_masters(control_dir)
        shutil.rmtree(control_dir, ignore_errors=True)
    assert [run.rc for run in runs] == [0, 0], [run.stdout[-3000:] for run in runs]
    assert sorted(decision_of(run) for run in runs) == ["failover", "healthy"]
    run = next(run for run in runs if decision_of(run) == "failover")
    assert "oltp-1 is down (timeout)" in run.stdout
    # pg_fence ran on oltp-1's host over SSH, with sudo: every stopped process is gone.
    assert "-> oltp-1(198.18.0.11)" in run.stdout
    assert not [pid for pid in frozen if lablib.process_alive(pid)], "a process of the hung server survived"
    assert (old.data_dir / "standby.signal").exists()
    new = labhosts.primary()
    assert new.name != old.name
    assert timeline(new) == timeline_before + 1, "promoted more than once"
    other = next(host for host in labhosts.POSTGRES_HOSTS if host not in (old, new))
    # Host identity: the remaining standby streams from the new primary's address, PgBouncer points there.
    assert labhosts.upstream(other) == "%s:5432" % new.address
    assert "host=%s port=5432" % new.address in labhosts.pgbouncer_entry()
    with labhosts.connect(new, dbname=labhosts.DATABASE) as conn:
        lost = writer.missing_on(conn)
    assert writer.acknowledged, "the writer never got a commit acknowledged"
    assert lost == [], "acknowledged writes lost: %s" % lost
    assert writer.first_success_after is not None


def timeline(host) -> int:
    with labhosts.connect(host) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
        return cursor.fetchone()[0]


def close_masters(control_dir: Path) -> None:
    """The second controller's persistent SSH connections end with its run."""
    for control in control_dir.iterdir() if control_dir.is_dir() else ():
        subprocess.run(["ssh", "-o", "ControlPath=%s" % control, "-O", "exit", "lab"], capture_output=True, check=False)


def test_rejoin_over_ssh_rewinds_the_old_primary(hosts_lab):
    old = labhosts.host("oltp-1")
    new = labhosts.primary()
    run = hosts_lab.run(REJOIN, rejoin_host=old.name)
    assert run.rc == 0, run.stdout[-4000:]
    assert "-> oltp-1(198.18.0.11)" in run.stdout
    assert "oltp-1: rewind, now streaming from %s" % new.name in run.stdout
    assert labhosts.role(old) == "standby"
    assert lablib.wait_until(lambda: labhosts.upstream(old) == "%s:5432" % new.address, 30), labhosts.upstream(old)
    healthy = hosts_lab.run()
    assert healthy.rc == 0 and decision_of(healthy) == "healthy", healthy.stdout[-3000:]
    assert healthy.changed == 0


def test_lab_down_leaves_nothing_even_after_a_failed_up(hosts_lab, monkeypatch):
    """Runs last: a lab-up that fails part-way is torn down to nothing, and so is the lab."""

    def broken(*_args, **_kwargs):
        raise RuntimeError("standby clone failed (injected)")

    monkeypatch.setattr(labhosts, "standby_up", broken)
    with pytest.raises(RuntimeError, match="injected"):
        labhosts.up()
    left = labhosts.leftovers()
    assert not left, json.dumps(left)
