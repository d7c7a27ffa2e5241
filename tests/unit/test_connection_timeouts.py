"""connect_timeout and query_timeout: one range check, one clear message, no traceback (issue 10 item 7)."""

import math

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.fleet import fleet_targets, server_params
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import admin_params
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_QUERY_TIMEOUT,
    ConnectionParams,
    InvalidOption,
    checked_timeout,
)
from module_run import closed_port, run_module

OUT_OF_RANGE = [0, 0.0, -1, -0.5, 0.05, float("inf"), float("-inf"), float("nan"), 1e300, 3601, "inf", "nan", "soon"]
IN_RANGE = [(0.1, 0.1), (0.4, 0.4), (1, 1.0), ("2.5", 2.5), (3600, 3600.0)]


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("option", ["connect_timeout", "query_timeout"])
def test_out_of_range_timeouts_are_refused_naming_option_and_range(option, value):
    with pytest.raises(InvalidOption) as caught:
        checked_timeout(option, value)
    message = str(caught.value)
    assert message.startswith("%s must be a number of seconds from 0.1 to 3600, got " % option)
    assert "\n" not in message


@pytest.mark.parametrize(("value", "seconds"), IN_RANGE)
def test_in_range_timeouts_are_kept(value, seconds):
    assert checked_timeout("connect_timeout", value) == seconds


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("option", ["connect_timeout", "query_timeout"])
def test_every_way_to_build_params_checks_the_range(option, value):
    """Module params, the PgBouncer console's params and a fleet entry all go through the one check."""
    with pytest.raises(InvalidOption, match="^%s must be" % option):
        ConnectionParams.from_module_params({option: value})
    with pytest.raises(InvalidOption, match="^%s must be" % option):
        admin_params({option: value})
    with pytest.raises(InvalidOption, match=r"^servers\[db-1\]\.%s must be" % option):
        server_params(ConnectionParams(), {"name": "db-1", option: value})
    with pytest.raises(ValueError, match=r"servers\[db-1\]"):
        fleet_targets(ConnectionParams(), [{"name": "db-1", option: value}])


def test_unset_timeouts_take_the_defaults_and_zero_no_longer_does():
    params = ConnectionParams.from_module_params({"connect_timeout": None})
    assert (params.connect_timeout, params.query_timeout) == (DEFAULT_CONNECT_TIMEOUT, DEFAULT_QUERY_TIMEOUT)
    with pytest.raises(InvalidOption):
        ConnectionParams.from_module_params({"connect_timeout": 0})


def test_a_valid_timeout_gives_a_finite_libpq_backstop():
    params = ConnectionParams.from_module_params({"connect_timeout": 3600, "query_timeout": 0.1})
    assert params.libpq_kwargs()["connect_timeout"] == 3600
    assert math.isfinite(params.query_timeout)


# --------------------------------------------------------------------------- the modules, run as Ansible runs them

MODULE_CASES = [
    ("pg_node_info", {}, "connect_timeout", 0),
    ("pg_node_info", {}, "query_timeout", -1),
    ("pg_node_info", {}, "connect_timeout", "inf"),
    ("pg_node_info", {}, "query_timeout", "nan"),
    ("pg_node_info", {}, "connect_timeout", "1e300"),
    ("pg_health", {}, "query_timeout", 0),
    ("pg_activity", {}, "connect_timeout", "nan"),
    ("pg_write_probe", {}, "query_timeout", "inf"),
    ("pgbouncer_pools", {}, "connect_timeout", -3),
    ("pg_promote", {}, "query_timeout", "nan"),
    (
        "pg_failover_plan",
        {"members": [{"name": "a", "login_host": "127.0.0.1", "login_port": 1}]},
        "connect_timeout",
        "inf",
    ),
    (
        "pg_rejoin",
        {
            "data_dir": "/nonexistent",
            "bin_dir": "/nonexistent",
            "member_name": "m",
            "replication_conninfo": "user=replicator",
        },
        "connect_timeout",
        0,
    ),
    ("pg_standby_follow", {"primary_host": "127.0.0.1", "primary_port": 1, "standbys": []}, "query_timeout", "inf"),
    ("pgbouncer_database", {"name": "db", "state": "held"}, "connect_timeout", "1e300"),
    ("pgbouncer_database", {"name": "db", "state": "held"}, "pause_timeout", -1),
    ("pgbouncer_admin", {"command": "RELOAD"}, "query_timeout", "nan"),
    # the modules' own waits: the same range, the same message
    ("pg_activity", {}, "wait_timeout", "nan"),
    ("pg_write_probe", {}, "visibility_timeout", "inf"),
    ("posthog_alerts", {"project_id": "1", "api_key": "phx-Secret"}, "timeout", 0),
]


@pytest.mark.parametrize(("module", "extra", "option", "value"), MODULE_CASES)
def test_modules_fail_with_one_line_naming_the_option(module, extra, option, value, tmp_path):
    prefix = "pgbouncer" if module.startswith("pgbouncer") else "login"
    args = dict(extra, **{option: value})
    if not module.startswith("posthog"):
        args.update({prefix + "_host": "127.0.0.1", prefix + "_port": closed_port()})
    output, result = run_module(module, args, tmp_path)
    assert result["failed"] is True
    assert result["msg"].startswith("%s must be a number of seconds from 0.1 to 3600, got " % option)
    assert "Traceback" not in output
    assert "exception" not in result


def test_fleet_entry_with_a_bad_timeout_fails_naming_the_entry(tmp_path):
    servers = [{"name": "db-a", "login_host": "127.0.0.1", "login_port": closed_port(), "connect_timeout": -2}]
    output, result = run_module("pg_node_info", {"servers": servers}, tmp_path)
    assert result["failed"] is True
    assert "servers[db-a].connect_timeout must be a number of seconds from 0.1 to 3600, got -2" in result["msg"]
    assert "Traceback" not in output
