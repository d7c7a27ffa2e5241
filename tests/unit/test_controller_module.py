"""The pure parts of running a module in the worker process (plugins/plugin_utils/controller_module.py)."""

from __future__ import annotations

import json
import socket
import sys
import types

from ansible.module_utils.common import warnings as module_warnings
from ansible_collections.penguinmails.dbops.plugins.plugin_utils import controller_module


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_module_name_maps_to_the_collection_python_module():
    assert (
        controller_module.python_module_name("penguinmails.dbops.pg_promote")
        == "ansible_collections.penguinmails.dbops.plugins.modules.pg_promote"
    )


def test_a_module_runs_and_its_printed_result_is_returned():
    args = {"login_host": "127.0.0.1", "login_port": closed_port(), "connect_timeout": 1, "_ansible_check_mode": False}
    printed = controller_module.run_module_main(
        controller_module.python_module_name("penguinmails.dbops.pg_node_info"), args
    )
    result = json.loads(printed)
    assert result["role"] == "down"
    assert result["conn_err_kind"] == "refused"


def test_an_exception_in_a_module_is_a_failed_result(monkeypatch):
    broken = types.ModuleType("dbops_broken_module")

    def main():
        raise ValueError("boom")

    broken.main = main
    monkeypatch.setitem(sys.modules, "dbops_broken_module", broken)
    result = json.loads(controller_module.run_module_main("dbops_broken_module", {}))
    assert result["failed"] is True
    assert "ValueError: boom" in result["msg"]


def test_a_module_that_returns_without_reporting_fails(monkeypatch):
    silent = types.ModuleType("dbops_silent_module")
    silent.main = lambda: None
    monkeypatch.setitem(sys.modules, "dbops_silent_module", silent)
    result = json.loads(controller_module.run_module_main("dbops_silent_module", {}))
    assert result["failed"] is True
    assert "without reporting" in result["msg"]


def test_warnings_of_an_earlier_loop_item_are_forgotten():
    module_warnings.warn("left over from the previous item")
    controller_module.forget_earlier_warnings()
    assert module_warnings.get_warning_messages() == ()
