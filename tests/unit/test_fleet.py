"""Fleet mode: the concurrent runner, per-server overrides, the inventory filter, no_log."""

import threading
import time

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.penguinmails.dbops.plugins.filter.fleet_servers import fleet_servers
from ansible_collections.penguinmails.dbops.plugins.module_utils.fleet import (
    fleet_targets,
    run_fleet,
    server_params,
    servers_argument_spec,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams
from module_run import closed_port, run_module

BASE = ConnectionParams(host="db.example", port=5432, user="ops", password="top-secret", connect_timeout=5.0)


def test_entry_overrides_and_falls_back_to_top_level_options():
    params = server_params(BASE, {"name": "a", "login_host": "10.0.0.7", "login_port": "6543", "connect_timeout": 1})
    assert (params.host, params.port, params.connect_timeout) == ("10.0.0.7", 6543, 1.0)
    assert (params.user, params.password, params.query_timeout) == ("ops", "top-secret", BASE.query_timeout)
    assert server_params(BASE, {"name": "b", "login_password": None}).password == "top-secret"


def test_fleet_targets_keep_order_and_refuse_duplicate_names():
    targets = fleet_targets(BASE, [{"name": "b"}, {"name": "a"}])
    assert [name for name, _params in targets] == ["b", "a"]
    with pytest.raises(ValueError, match="repeated: a"):
        fleet_targets(BASE, [{"name": "a"}, {"name": "b"}, {"name": "a"}])


def test_servers_spec_has_no_defaults_and_keeps_passwords_secret():
    entry = servers_argument_spec()["servers"]["options"]
    assert entry["name"]["required"] is True
    assert entry["login_password"]["no_log"] is True
    for option, spec in entry.items():
        assert "default" not in spec, option
        assert "fallback" not in spec, option


def test_run_fleet_is_concurrent_and_keyed_in_input_order():
    targets = [("host%02d" % i, BASE) for i in range(40)]
    active, peak = [0], [0]
    lock = threading.Lock()

    def check(params):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return {"reachable": True}

    started = time.monotonic()
    sweep = run_fleet(targets, check, concurrency=64)
    elapsed = time.monotonic() - started
    assert list(sweep["servers"]) == [name for name, _params in targets]
    assert sweep["workers"] == 40
    assert peak[0] == 40  # every server in flight at once, none queued behind another
    assert elapsed < 40 * 0.3 / 4  # far from sequential (12 s); generous for a loaded machine


def test_run_fleet_one_slow_server_does_not_delay_the_others():
    finished = {}

    def check(params):
        time.sleep(1.0 if params.port == 1 else 0.05)
        finished[params.port] = time.monotonic()
        return {"port": params.port}

    started = time.monotonic()
    targets = [("slow", ConnectionParams(port=1))] + [("fast%d" % i, ConnectionParams(port=100 + i)) for i in range(9)]
    run_fleet(targets, check, concurrency=10)
    fast_done = max(at for port, at in finished.items() if port != 1) - started
    assert fast_done < 0.8  # the fast ones did not wait for the slow one
    assert finished[1] - started >= 1.0


def test_run_fleet_with_fewer_workers_queues():
    sweep = run_fleet([("a", BASE), ("b", BASE), ("c", BASE)], lambda params: {}, concurrency=2)
    assert sweep["workers"] == 2
    assert run_fleet([], lambda params: {})["servers"] == {}


def test_run_fleet_turns_a_bug_into_that_servers_result_without_the_password():
    def check(params):
        if params.port == 2:
            raise RuntimeError("boom with top-secret inside")
        return {"reachable": True}

    sweep = run_fleet(
        [
            ("ok", ConnectionParams(port=1, password="top-secret")),
            ("bug", ConnectionParams(port=2, password="top-secret")),
        ],
        check,
    )
    assert sweep["servers"]["ok"] == {"reachable": True}
    bug = sweep["servers"]["bug"]
    assert bug["reachable"] is False
    assert bug["conn_err_kind"] == "internal"
    assert "RuntimeError" in bug["conn_err_msg"]
    assert "top-secret" not in bug["conn_err_msg"]


# --------------------------------------------------------------------------- the inventory filter


def test_fleet_servers_from_hostvars_keyed_by_inventory_hostname():
    hostvars = {
        "oltp_1": {
            "ansible_host": "127.0.0.1",
            "pg_port": 57001,
            "dbops_login_user": "dbops",
            "dbops_login_password": "pw",
        },
        "oltp_2": {"ansible_host": "127.0.0.1", "pg_port": 57002, "pg_login_db": "penguinmails_oltp"},
        "db3.example.com": {},
    }
    servers = fleet_servers(["oltp_1", "oltp_2", "db3.example.com"], hostvars)
    assert servers == [
        {
            "name": "oltp_1",
            "login_host": "127.0.0.1",
            "login_port": 57001,
            "login_user": "dbops",
            "login_password": "pw",
        },
        {"name": "oltp_2", "login_host": "127.0.0.1", "login_port": 57002},
        {"name": "db3.example.com", "login_host": "db3.example.com"},
    ]
    with_db = fleet_servers(["oltp_2"], hostvars, option_vars={"login_db": "pg_login_db", "login_port": ""})
    assert with_db == [{"name": "oltp_2", "login_host": "127.0.0.1", "login_db": "penguinmails_oltp"}]


def test_fleet_servers_rejects_unknown_hosts_and_bad_mappings():
    with pytest.raises(AnsibleFilterError, match="nope is not an inventory host"):
        fleet_servers(["nope"], {})
    with pytest.raises(AnsibleFilterError, match="mapping"):
        fleet_servers(["a"], {"a": {}}, option_vars=["login_db"])


# --------------------------------------------------------------------------- the modules, run as Ansible runs them


@pytest.mark.parametrize("module", ["pg_health", "pg_node_info"])
def test_fleet_passwords_never_leave_the_module(module, tmp_path):
    port = closed_port()
    args = {
        "login_password": "top-level-Secret-1",
        "connect_timeout": 1,
        "servers": [
            {"name": "a", "login_host": "127.0.0.1", "login_port": port, "login_password": "per-server-Secret-2"},
            {"name": "b", "login_host": "127.0.0.1", "login_port": port},
        ],
    }
    output, result = run_module(module, args, tmp_path)
    assert "per-server-Secret-2" not in output
    assert "top-level-Secret-1" not in output
    assert list(result["servers"]) == ["a", "b"]
    assert result["unreachable_servers"] == ["a", "b"]
    assert "unreachable" not in result  # Ansible would mark the controller host unreachable
    invocation = result["invocation"]["module_args"]
    assert invocation["servers"][0]["login_password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert result["changed"] is False


def test_pg_node_info_single_server_result_is_unchanged_by_fleet_mode(tmp_path):
    port = closed_port()
    _output, result = run_module("pg_node_info", {"login_host": "127.0.0.1", "login_port": port}, tmp_path)
    assert result["reachable"] is False
    assert result["role"] == "down"
    assert result["conn_err_kind"] == "refused"
    assert "127.0.0.1:%d" % port in result["conn_err_msg"]
    assert "servers" not in result


def test_pg_health_fail_on_critical_names_the_server(tmp_path):
    port = closed_port()
    args = {"login_host": "127.0.0.1", "login_port": port, "fail_on": "critical"}
    _output, result = run_module("pg_health", args, tmp_path)
    assert result["failed"] is True
    assert result["status"] == "CRITICAL"
    assert result["msg"].startswith("health of 127.0.0.1:%d is CRITICAL: CRITICAL connection:" % port)


def test_pg_health_fleet_refuses_duplicate_names(tmp_path):
    args = {"servers": [{"name": "x"}, {"name": "x"}]}
    _output, result = run_module("pg_health", args, tmp_path)
    assert result["failed"] is True
    assert "repeated: x" in result["msg"]


def test_pg_node_info_fleet_fail_on_unreachable_lists_every_down_server(tmp_path):
    port = closed_port()
    servers = [{"name": name, "login_host": "127.0.0.1", "login_port": port} for name in ("db-a", "db-b")]
    _output, result = run_module("pg_node_info", {"servers": servers, "fail_on_unreachable": True}, tmp_path)
    assert result["failed"] is True
    assert result["msg"].startswith("2 of 2 servers unreachable: db-a: connect to PostgreSQL at 127.0.0.1:%d" % port)
    assert "db-b: " in result["msg"]
    assert list(result["servers"]) == ["db-a", "db-b"]
