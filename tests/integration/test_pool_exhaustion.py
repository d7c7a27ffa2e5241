"""incident_pool_exhaustion.yml: bad input is one clear line and nothing changed.

Inputs a spec can check stop the run before anything exists (the bad-input inventory, no
server). What only the servers can tell - a ceiling above the server's capacity, PgBouncer's
console not answering with restarts not allowed - is found by the first look at the session
lab: the incident closes refused or escalated with the reason, and PgBouncer's ini is untouched.
The restart rung against a really hung PgBouncer (the session lab's, frozen with SIGSTOP): left
alone and escalated without pool_restart_allowed; restarted as the lab's process with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal

import lablib
import pytest
import test_bad_input
from test_bad_input import assert_refused

# The bad-input inventory (no server) and its runner, shared with test_bad_input.py.
inventory = test_bad_input.inventory
run = test_bad_input.run

PLAYBOOK = lablib.REPO_ROOT / "playbooks" / "incident_pool_exhaustion.yml"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "missing required arguments: incident_tier"),
        ({"incident_tier": "nope"}, "incident_tier must name an inventory group with hosts"),
        ({"incident_tier": "oltp", "pool_idle_tx_max_s": -1}, "pool_idle_tx_max_s must be at least 0"),
        ({"incident_tier": "oltp", "pool_verify_window_s": 0}, "pool_verify_window_s must be at least 1"),
        ({"incident_tier": "oltp", "pool_query_max_s": "long"}, "pool_query_max_s"),
    ],
)
def test_pool_exhaustion_refuses_bad_input_before_opening_anything(run, extra, message):
    done, left = run("incident_pool_exhaustion.yml", **extra)
    assert_refused(done, left, message)


def run_on_lab(lab, tmp_path, **extra):
    incidents = tmp_path / "incidents"
    extra = dict(
        {"incident_tier": "oltp", "dbops_incident_dir": str(incidents), "dbops_lock_dir": str(tmp_path / "locks")},
        **extra,
    )
    done = lablib.run_playbook(lab.inventory, PLAYBOOK, extra, timeout=300)
    summaries = list(incidents.glob("*/summary.json"))
    return done, (json.loads(summaries[0].read_text()) if summaries else {})


@pytest.mark.lab
def test_a_ceiling_above_the_servers_capacity_is_refused_with_both_numbers(lab, tmp_path):
    ini_before = lab.pgbouncer_ini.read_text()
    done, summary = run_on_lab(lab, tmp_path, pool_tier_ceilings={"oltp": 5000})
    assert done.rc != 0
    line = next(line for line in done.stdout.splitlines() if "refused: the pool ceiling of tier oltp" in line)
    assert "(5000) is above what its server can take" in line and "max_connections" in line
    assert summary["outcome"] == "refused"
    assert lab.pgbouncer_ini.read_text() == ini_before


@pytest.mark.lab
def test_an_unreachable_console_without_restarts_escalates(lab, tmp_path):
    ini_before = lab.pgbouncer_ini.read_text()
    done, summary = run_on_lab(lab, tmp_path, pgbouncer_port=1)
    assert done.rc != 0
    assert "escalated: PgBouncer's console does not answer and pool_restart_allowed is false" in done.stdout
    assert summary["outcome"] == "escalated"
    assert lab.pgbouncer_ini.read_text() == ini_before
    assert lab.credentials["pgbouncer_admin_password"] not in done.stdout


@pytest.mark.lab
def test_a_pool_with_nobody_waiting_is_left_alone(lab, tmp_path):
    done, summary = run_on_lab(lab, tmp_path)
    assert done.rc == 0, done.stdout[-3000:]
    assert done.recap["localhost"]["changed"] == 0
    assert summary["outcome"] == "no_action"


def console_answers(lab) -> bool:
    try:
        lab.pgbouncer_show("VERSION")
    except Exception:  # any failure to reach the console is what this asks
        return False
    return True


@contextlib.contextmanager
def hung_pgbouncer(lab):
    """The lab's PgBouncer, started by this session, frozen with SIGSTOP (its PID from the pid file):
    it still accepts TCP connections but never answers. Thawed afterwards if it is still that process."""
    pid = lablib.read_pid(lab.pgbouncer_pid_file)
    assert pid and lablib.process_alive(pid)
    os.kill(pid, signal.SIGSTOP)
    try:
        assert lablib.wait_until(lambda: lablib.process_state(pid) == "T", 10)
        yield pid
    finally:
        if lablib.process_state(pid) == "T":
            os.kill(pid, signal.SIGCONT)


@pytest.mark.lab
def test_a_hung_pgbouncer_is_not_restarted_without_permission(lab, tmp_path):
    ini_before = lab.pgbouncer_ini.read_text()
    with hung_pgbouncer(lab) as pid:
        assert not console_answers(lab)
        done, summary = run_on_lab(lab, tmp_path, pool_verify_window_s=2)
        assert lablib.process_state(pid) == "T", "the frozen PgBouncer was touched"
    assert done.rc != 0
    assert "escalated: PgBouncer's console does not answer and pool_restart_allowed is false" in done.stdout
    assert summary["outcome"] == "escalated"
    assert lab.pgbouncer_ini.read_text() == ini_before
    assert lablib.wait_until(lambda: console_answers(lab), 15)


@pytest.mark.lab
def test_a_hung_pgbouncer_is_restarted_as_the_labs_process_when_allowed(lab, tmp_path):
    with hung_pgbouncer(lab) as pid:
        assert not console_answers(lab)
        done, summary = run_on_lab(lab, tmp_path, pool_restart_allowed=True, pool_verify_window_s=2)
    assert done.rc == 0, done.stdout[-3000:]
    assert "RESTART: PgBouncer's console does not answer; restarts are allowed" in done.stdout
    assert not lablib.process_alive(pid), "the hung PgBouncer is still there"
    new_pid = lablib.read_pid(lab.pgbouncer_pid_file)
    assert new_pid != pid and lablib.process_alive(new_pid)
    assert summary["outcome"] == "resolved"
    conn = lab.connect_pgbouncer("penguinmails_oltp")  # clients are served again
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone()[0] == 1
    finally:
        conn.close()
