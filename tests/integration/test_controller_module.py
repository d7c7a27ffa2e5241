"""Modules run in the worker process when their target is the controller, and give the same results.

plugins/plugin_utils/controller_module.py runs a module's code inside Ansible's
worker when the task's connection is local (no become, no async, no task
environment, the controller's own interpreter). These tests run the same tasks
both ways against the session lab's primary and compare the results; `-vvv`
output shows which tasks shipped an AnsiballZ payload ("Using module file").
"""

from __future__ import annotations

import json

import lablib
import pytest
import yaml

pytestmark = pytest.mark.lab

STABLE_KEYS = (
    "changed",
    "failed",
    "endpoint",
    "reachable",
    "role",
    "in_recovery",
    "timeline_id",
    "server_version_num",
    "synchronous_standby_names",
    "conn_err_kind",
)
WRONG_PASSWORD = "not-the-password-7f3a"


def write_play(tmp_path, primary, credentials):
    login = {
        "login_host": primary.host,
        "login_port": primary.port,
        "login_user": credentials["dbops_login_user"],
        "login_password": credentials["dbops_login_password"],
        "connect_timeout": 3,
    }
    wrong_login = dict(login, login_password=WRONG_PASSWORD)
    tasks = [
        {"name": "info in the worker", "penguinmails.dbops.pg_node_info": login, "register": "in_worker"},
        {
            "name": "info shipped",
            "penguinmails.dbops.pg_node_info": login,
            "vars": {"dbops_in_process": False},
            "register": "shipped",
        },
        {
            "name": "info with a task environment",
            "penguinmails.dbops.pg_node_info": login,
            "environment": {"PGAPPNAME": "dbops-env-test"},
            "register": "with_environment",
        },
        {
            "name": "promote a primary in the worker, check mode",
            "penguinmails.dbops.pg_promote": login,
            "check_mode": True,
            "register": "promote_check",
        },
        {
            "name": "failure in the worker",
            "penguinmails.dbops.pg_promote": wrong_login,
            "register": "failed_in_worker",
            "ignore_errors": True,
        },
        {
            "name": "failure shipped",
            "penguinmails.dbops.pg_promote": wrong_login,
            "vars": {"dbops_in_process": False},
            "register": "failed_shipped",
            "ignore_errors": True,
        },
        {
            "name": "save the results",
            "ansible.builtin.copy": {
                "content": "{{ {'in_worker': in_worker, 'shipped': shipped, 'with_environment': with_environment,"
                " 'promote_check': promote_check, 'failed_in_worker': failed_in_worker,"
                " 'failed_shipped': failed_shipped} | to_json }}",
                "dest": str(tmp_path / "results.json"),
                "mode": "0600",
            },
        },
    ]
    play = [
        {
            "name": "controller modules",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "tasks": tasks,
        }
    ]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def outcome(lab, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("controller-module")
    playbook = write_play(tmp_path, lab.primary("oltp"), lab.credentials)
    run = lablib.run_playbook(lab.inventory, playbook, args=["-vvv"])
    assert run.rc == 0, run.stdout[-3000:]
    return run, json.loads((tmp_path / "results.json").read_text())


def stable_part(result):
    """What must not depend on how the module ran (LSNs, lags and timings move between two tasks)."""
    return {
        "keys": sorted(result),
        "figures": {key: result.get(key) for key in STABLE_KEYS},
        "replicas": sorted((replica["application_name"], replica["state"]) for replica in result["replicas"]),
    }


def test_only_the_forced_and_environment_tasks_ship_a_payload(outcome):
    run = outcome[0]
    shipped = [line for line in run.stdout.splitlines() if "Using module file" in line and "penguinmails" in line]
    assert len(shipped) == 3, shipped  # dbops_in_process=false twice, environment once; four ran in the worker


def test_worker_and_shipped_results_are_the_same(outcome):
    results = outcome[1]
    assert results["in_worker"]["role"] == "primary"
    assert len(results["in_worker"]["replicas"]) == 2
    assert stable_part(results["in_worker"]) == stable_part(results["shipped"])
    assert stable_part(results["in_worker"]) == stable_part(results["with_environment"])


def test_check_mode_reaches_the_module_in_the_worker(outcome):
    results = outcome[1]
    promote = results["promote_check"]
    assert promote["state"] == "already_primary"
    assert promote["changed"] is False
    assert promote["executed_queries"] == []


def test_failures_are_the_same_and_keep_the_password_out(outcome):
    run, results = outcome
    in_worker, shipped = results["failed_in_worker"], results["failed_shipped"]
    assert in_worker["failed"] is True and shipped["failed"] is True
    assert "auth" in in_worker["msg"]
    assert in_worker["msg"] == shipped["msg"]
    assert WRONG_PASSWORD not in json.dumps(in_worker)
    assert WRONG_PASSWORD not in run.stdout.split("TASK [save the results]")[0]
