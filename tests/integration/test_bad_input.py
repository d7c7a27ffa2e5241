"""Bad input stops every playbook with one clear line before anything exists.

No lab is started: input is checked before any server is contacted, so the inventory's
servers need not run. Each case asserts the run failed, said what is wrong in one line
naming the variable, and left no incident directory, lock file or audit trail behind.
"""

from __future__ import annotations

import os

import lablib
import pytest

PORT_BASE = int(os.environ.get("DBOPS_TEST_PORT_BASE", "5600")) + 400
PLAYBOOKS = lablib.REPO_ROOT / "playbooks"


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    lablib.require_binaries(needs="the inventory")
    directory = tmp_path_factory.mktemp("bad-input")
    return lablib.write_inventory(
        directory, tiers={"oltp": 2}, port_base=PORT_BASE, lab_root=directory / "lab"
    ).inventory


@pytest.fixture
def run(inventory, tmp_path, monkeypatch):
    incidents = tmp_path / "incidents"
    locks = tmp_path / "locks"
    monkeypatch.setenv("DBOPS_INCIDENT_DIR", str(incidents))

    def run_playbook(playbook, **extra):
        extra.setdefault("dbops_incident_dir", str(incidents))
        extra.setdefault("failover_lock_dir", str(locks))
        done = lablib.run_playbook(inventory, PLAYBOOKS / playbook, extra, timeout=120)
        left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))
        return done, left

    return run_playbook


def assert_refused(done, left, message):
    assert done.rc != 0, done.stdout[-2000:]
    errors = [line for line in done.stdout.splitlines() + done.stderr.splitlines() if message in line]
    assert errors, (message, done.stdout[-3000:], done.stderr[-2000:])
    output = done.stdout + done.stderr
    assert "is undefined" not in output
    assert "Traceback" not in output
    assert left == [], "bad input left files behind: %s" % left
    assert done.recap["localhost"]["changed"] == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "missing required arguments: incident_tier"),
        ({"incident_tier": "nope"}, "incident_tier must name an inventory group with hosts"),
        ({"incident_tier": ""}, "incident_tier must name an inventory group with hosts"),
        ({"incident_tier": "oltp", "failover_max_lag_bytes": -1}, "failover_max_lag_bytes must be at least 0"),
        ({"incident_tier": "oltp", "failover_lock_wait_s": -5}, "failover_lock_wait_s must be at least 0"),
        ({"incident_tier": "oltp", "failover_connect_timeout": 0}, "failover_connect_timeout must be at least 0.1"),
        ({"incident_tier": "oltp", "failover_fence": "maybe"}, "failover_fence must be one of: auto, skip"),
        ({"incident_tier": "oltp", "failover_max_lag_bytes": "lots"}, "failover_max_lag_bytes"),
    ],
)
def test_outage_refuses_bad_input_before_opening_anything(run, extra, message):
    done, left = run("incident_db_outage.yml", **extra)
    assert_refused(done, left, message)


def test_outage_with_an_incident_id_and_bad_input_leaves_no_audit_file(run):
    done, left = run("incident_db_outage.yml", incident_tier="oltp", incident_id="BAD-INPUT-1", failover_grace_s=-1)
    assert_refused(done, left, "failover_grace_s must be at least 0")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"incident_tier": "nope"}, "incident_tier must name inventory groups of PostgreSQL servers"),
        ({"diagnose_connect_timeout": -1}, "diagnose_connect_timeout must be at least 0.1"),
        ({"diagnose_query_timeout": 0}, "diagnose_query_timeout must be at least 0.1"),
    ],
)
def test_triage_refuses_bad_input_before_opening_anything(run, extra, message):
    done, left = run("triage.yml", **extra)
    assert_refused(done, left, message)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "rejoin_host must name an inventory host"),
        ({"rejoin_host": "nope"}, "rejoin_host must name an inventory host"),
        ({"rejoin_host": "oltp-1", "rejoin_start_timeout": -1}, "rejoin_start_timeout must be at least 1"),
    ],
)
def test_rejoin_refuses_bad_input_before_touching_anything(run, extra, message):
    done, left = run("rejoin_old_primary.yml", **extra)
    assert_refused(done, left, message)


def test_bad_input_names_the_variable_in_one_line(run):
    done, left = run("incident_db_outage.yml", incident_tier="oltp", failover_max_lag_bytes=-1)
    assert left == []
    line = next(line for line in done.stdout.splitlines() if "failover_max_lag_bytes must be at least 0" in line)
    assert "(got -1)" in line
