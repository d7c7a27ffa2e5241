"""The pure parts of running a module in the worker process (plugins/plugin_utils/controller_module.py)."""

from __future__ import annotations

import json
import socket

from ansible.module_utils.common import warnings as module_warnings
from ansible_collections.penguinmails.dbops.plugins.action import pg_node_info as pg_node_info_action
from ansible_collections.penguinmails.dbops.plugins.modules import pg_node_info
from ansible_collections.penguinmails.dbops.plugins.plugin_utils import controller_module


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_action_plugin_runs_its_own_module():
    assert pg_node_info_action.ActionModule.module_main is pg_node_info.main


def test_a_module_runs_and_its_printed_result_is_returned():
    args = {"login_host": "127.0.0.1", "login_port": closed_port(), "connect_timeout": 1, "_ansible_check_mode": False}
    printed = controller_module.run_module_main(pg_node_info.main, "pg_node_info", args)
    result = json.loads(printed)
    assert result["role"] == "down"
    assert result["conn_err_kind"] == "refused"


def test_an_exception_in_a_module_is_a_failed_result():
    def broken_main():
        raise ValueError("boom")

    result = json.loads(controller_module.run_module_main(broken_main, "broken", {}))
    assert result["failed"] is True
    assert result["msg"].startswith("broken: ValueError: boom")


def test_a_module_that_returns_without_reporting_fails():
    result = json.loads(controller_module.run_module_main(lambda: None, "silent", {}))
    assert result["failed"] is True
    assert "without reporting" in result["msg"]


def test_warnings_of_an_earlier_loop_item_are_forgotten():
    module_warnings.warn("left over from the previous item")
    controller_module.forget_earlier_warnings()
    assert module_warnings.get_warning_messages() == ()
