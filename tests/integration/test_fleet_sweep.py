"""Fleet mode against real servers: one task on the controller sweeps many inventory hosts.

Inventories repeat the three servers of the session lab's oltp tier
(tests/integration/conftest.py) under many host names, the way a large fleet
looks to Ansible; results must come back keyed by inventory hostname. A
SIGSTOPped member must cost one connect timeout, not one per host.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from diag_support import COLLECTIONS, REPO, run_module, wait_until
from health_lab import HealthLab

pytestmark = pytest.mark.lab

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def hlab(lab):
    return HealthLab.from_session_lab(lab)


def host_names(hlab, copies):
    """{inventory hostname: member}; copy 0 keeps the member's own name."""
    names = {}
    for copy in range(copies):
        for member in hlab.members:
            names[member.name if copy == 0 else "%s-copy%02d" % (member.name, copy)] = member
    return names


def servers_list(hlab, copies):
    return [
        {"name": name, "login_host": member.host, "login_port": member.port, "login_password": hlab.admin_password}
        for name, member in host_names(hlab, copies).items()
    ]


def run_playbook(hlab, tmp_path, copies, module):
    """An inventory of `copies` x 3 hosts and one run_once fleet task; returns (result, output)."""
    hosts = {
        name: {"ansible_host": member.host, "pg_port": member.port} for name, member in host_names(hlab, copies).items()
    }
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "dbops_login_user": hlab.admin_user,
                "dbops_login_password": hlab.admin_password,
            },
            "children": {"postgres": {"hosts": hosts}},
        }
    }
    out = tmp_path / "fleet.json"
    playbook = f"""
- name: Fleet sweep
  hosts: postgres
  gather_facts: false
  tasks:
    - name: Sweep every server from one task
      penguinmails.dbops.{module}:
        servers: "{{{{ groups['postgres'] | penguinmails.dbops.fleet_servers(hostvars) }}}}"
        connect_timeout: {TIMEOUT}
      run_once: true
      delegate_to: localhost
      register: fleet
    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{{{ fleet | to_json }}}}"
        dest: "{out}"
        mode: "0600"
      run_once: true
      delegate_to: localhost
"""
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(playbook)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_NOCOLOR="1",
    )
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-vvv",
            "-i",
            str(tmp_path / "inventory.json"),
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=300,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    return json.loads(out.read_text()), output


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- through ansible-playbook


def test_pg_health_fleet_playbook_keyed_by_inventory_hostname(hlab, tmp_path):
    result, output = run_playbook(hlab, tmp_path, copies=3, module="pg_health")
    names = host_names(hlab, 3)
    assert list(result["servers"]) == list(names)
    for name, member in names.items():
        server = result["servers"][name]
        assert server["endpoint"] == "127.0.0.1:%d" % member.port
        assert server["role"] == ("primary" if member is hlab.primary else "standby"), name
        assert server["status"] == "OK", server["problems"]
    assert result["statuses"] == dict.fromkeys(names, "OK")
    assert result["status"] == "OK"
    assert result["unreachable_servers"] == []
    assert hlab.admin_password not in output  # -vvv shows module arguments: the inventory password is masked
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output
    assert "unreachable=0" in output


def test_pg_node_info_fleet_playbook(hlab, tmp_path):
    result, output = run_playbook(hlab, tmp_path, copies=2, module="pg_node_info")
    names = host_names(hlab, 2)
    assert list(result["servers"]) == list(names)
    roles = {name: info["role"] for name, info in result["servers"].items()}
    assert roles == {name: "primary" if member is hlab.primary else "standby" for name, member in names.items()}
    primary = result["servers"][hlab.primary.name]
    standbys = sorted(standby.replication_name for standby in hlab.standbys)
    assert sorted(replica["application_name"] for replica in primary["replicas"]) == standbys
    assert result["unreachable_servers"] == []
    assert hlab.admin_password not in output


def test_sigstopped_member_in_a_playbook_sweep_costs_one_timeout(hlab, tmp_path):
    frozen = hlab.standbys[1]
    with hlab.stopped(frozen):
        result, output = run_playbook(hlab, tmp_path, copies=3, module="pg_health")
    frozen_names = [name for name, member in host_names(hlab, 3).items() if member is frozen]
    assert sorted(result["unreachable_servers"]) == sorted(frozen_names)
    assert TIMEOUT <= result["elapsed_ms"] / 1000 < TIMEOUT + 1.5
    assert "unreachable=0" in output  # the controller host is fine; the servers are data
    assert wait_until(lambda: run_module("pg_node_info", hlab.args(frozen))["reachable"])


# --------------------------------------------------------------------------- the module directly (faster)


@pytest.mark.parametrize("module", ["pg_health", "pg_node_info"])
def test_sigstopped_member_costs_one_timeout_not_one_per_host(hlab, module):
    frozen = hlab.standbys[1]
    args = {"login_user": hlab.admin_user, "connect_timeout": TIMEOUT, "servers": servers_list(hlab, copies=10)}
    with hlab.stopped(frozen):
        started = time.monotonic()
        result = run_module(module, args, timeout=60)
        wall = time.monotonic() - started
    names = host_names(hlab, 10)
    frozen_names = [name for name, member in names.items() if member is frozen]
    assert len(result["servers"]) == 30
    assert sorted(result["unreachable_servers"]) == sorted(frozen_names)
    for name, member in names.items():
        server = result["servers"][name]
        if member is frozen:
            assert server["conn_err_kind"] == "timeout", server["conn_err_msg"]
            assert "127.0.0.1:%d" % frozen.port in server["conn_err_msg"]
        else:
            assert server["reachable"] is True, server.get("conn_err_msg")
            # the healthy ones did not wait for the frozen one
            elapsed = server["timing"]["elapsed_ms"] if module == "pg_health" else server["elapsed_ms"]
            assert elapsed < TIMEOUT * 1000 / 2, (name, elapsed)
    # ten hosts on the frozen server, one timeout in all
    assert TIMEOUT <= result["elapsed_ms"] / 1000 < TIMEOUT + 1.5
    assert wall < TIMEOUT * 5  # one timeout plus the module's start-up, not one timeout per frozen host
    assert hlab.admin_password not in result["_stdout"] + result["_stderr"]
    assert wait_until(lambda: run_module("pg_node_info", hlab.args(frozen))["reachable"])
    after = run_module(module, args, timeout=60)
    assert after["unreachable_servers"] == []


def test_fleet_fail_on_critical_names_the_down_server_and_still_returns_all(hlab):
    servers = [*servers_list(hlab, copies=1), {"name": "ghost", "login_host": "127.0.0.1", "login_port": closed_port()}]
    args = {
        "login_user": hlab.admin_user,
        "login_password": hlab.admin_password,
        "servers": servers,
        "fail_on": "critical",
    }
    result = run_module("pg_health", args)
    assert result["failed"] is True
    assert result["msg"].startswith("1 of 4 servers fail the health check: health of ghost (127.0.0.1:")
    assert "(refused)" in result["msg"]
    assert result["statuses"]["ghost"] == "CRITICAL"
    assert [result["statuses"][member.name] for member in hlab.members] == ["OK", "OK", "OK"]
    assert [problem["server"] for problem in result["problems"]] == ["ghost"]


def test_fleet_per_server_login_overrides_the_top_level_one(hlab):
    wrong = [dict(entry, login_password="not-the-password") for entry in servers_list(hlab, copies=1)]
    wrong[0]["login_password"] = hlab.admin_password  # only the first entry gets it right
    args = {"login_user": hlab.admin_user, "login_password": "also-wrong", "servers": wrong, "checks": ["backends"]}
    result = run_module("pg_health", args)
    kinds = {name: server["conn_err_kind"] for name, server in result["servers"].items()}
    assert kinds == {hlab.primary.name: None, hlab.standbys[0].name: "auth", hlab.standbys[1].name: "auth"}
    for secret in (hlab.admin_password, "not-the-password", "also-wrong"):
        assert secret not in result["_stdout"] + result["_stderr"]
