"""pgbouncer_pools' parsing and grading, on SHOW rows shaped like PgBouncer 1.18 and 1.25."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.findings import overall_status, should_fail
from ansible_collections.penguinmails.dbops.plugins.module_utils.pools import (
    Thresholds,
    all_findings,
    client_connections,
    database_limits,
    number,
    sample_rows,
    summarise_pool,
    summarise_pools,
)

CONFIG_ROWS = [
    {"key": "max_client_conn", "value": "100", "default": "100", "changeable": "yes"},
    {"key": "default_pool_size", "value": "20", "default": "20", "changeable": "yes"},
    {"key": "reserve_pool_size", "value": "2", "default": "0", "changeable": "yes"},
    {"key": "pool_mode", "value": "transaction", "default": "session", "changeable": "yes"},
]

# PgBouncer 1.18: reserve_pool, no load_balance_hosts.
DATABASES_118 = [
    {
        "name": "penguinmails_oltp",
        "host": "127.0.0.1",
        "port": 5432,
        "database": "penguinmails_oltp",
        "force_user": None,
        "pool_size": 50,
        "min_pool_size": 5,
        "reserve_pool": 0,
        "pool_mode": None,
        "max_connections": 0,
        "current_connections": 50,
        "paused": 0,
        "disabled": 0,
    },
    {
        "name": "pgbouncer",
        "host": None,
        "port": 6432,
        "database": "pgbouncer",
        "force_user": "pgbouncer",
        "pool_size": 2,
        "min_pool_size": 0,
        "reserve_pool": 0,
        "pool_mode": "statement",
        "max_connections": 0,
        "current_connections": 0,
        "paused": 0,
        "disabled": 0,
    },
]
POOLS_118 = [
    {
        "database": "penguinmails_oltp",
        "user": "app",
        "cl_active": 50,
        "cl_waiting": 12,
        "cl_active_cancel_req": 0,
        "cl_waiting_cancel_req": 0,
        "sv_active": 50,
        "sv_active_cancel": 0,
        "sv_being_canceled": 0,
        "sv_idle": 0,
        "sv_used": 0,
        "sv_tested": 0,
        "sv_login": 0,
        "maxwait": 6,
        "maxwait_us": 250000,
        "pool_mode": "transaction",
    },
    {
        "database": "pgbouncer",
        "user": "pgbouncer",
        "cl_active": 1,
        "cl_waiting": 0,
        "sv_active": 0,
        "sv_idle": 0,
        "sv_used": 0,
        "sv_tested": 0,
        "sv_login": 0,
        "maxwait": 0,
        "maxwait_us": 0,
        "pool_mode": "statement",
    },
]
# PgBouncer 1.25: reserve_pool_size, load_balance_hosts, client limits per database.
DATABASES_125 = [
    {
        "name": "penguinmails_olap",
        "host": "127.0.0.1",
        "port": 5439,
        "database": "penguinmails_olap",
        "force_user": None,
        "pool_size": 15,
        "min_pool_size": 3,
        "reserve_pool_size": 3,
        "server_lifetime": 3600,
        "pool_mode": None,
        "load_balance_hosts": None,
        "max_connections": 0,
        "current_connections": 4,
        "max_client_connections": 0,
        "current_client_connections": 4,
        "paused": 1,
        "disabled": 0,
    },
]
POOLS_125 = [
    {
        "database": "penguinmails_olap",
        "user": "analyst",
        "cl_active": 4,
        "cl_waiting": 0,
        "cl_active_cancel_req": 0,
        "cl_waiting_cancel_req": 0,
        "sv_active": 4,
        "sv_active_cancel": 0,
        "sv_being_canceled": 0,
        "sv_idle": 0,
        "sv_used": 0,
        "sv_tested": 0,
        "sv_login": 0,
        "maxwait": 0,
        "maxwait_us": 0,
        "pool_mode": "transaction",
        "load_balance_hosts": None,
    },
]


def snapshot(databases, pools, used_clients=None, config=None):
    lists = [] if used_clients is None else [{"list": "used_clients", "items": used_clients}]
    return {"config": config or CONFIG_ROWS, "databases": databases, "pools": pools, "lists": lists, "stats": []}


def test_number_reads_the_first_present_column_and_text():
    assert number({"a": "12"}, "a") == 12
    assert number({"b": 1.5}, "a", "b") == 1.5
    assert number({}, "a") == 0
    assert number({"a": ""}, "a", default=None) is None


def test_limits_understand_both_reserve_column_names_and_fall_back_to_defaults():
    config = {"default_pool_size": "20", "reserve_pool_size": "2"}
    old = database_limits(DATABASES_118, config)
    assert old["penguinmails_oltp"]["pool_size"] == 50
    assert old["penguinmails_oltp"]["reserve_pool"] == 2  # 0 in the row: the global reserve applies
    new = database_limits(DATABASES_125, config)
    assert new["penguinmails_olap"]["reserve_pool"] == 3
    assert new["penguinmails_olap"]["paused"] is True
    unsized = database_limits([{"name": "x", "pool_size": 0}], config)
    assert unsized["x"]["pool_size"] == 20


def test_pool_summary_of_an_exhausted_118_pool():
    limits = database_limits(DATABASES_118, {"default_pool_size": "20", "reserve_pool_size": "2"})
    pool = summarise_pool(POOLS_118[0], limits)
    assert pool["server_connections"] == 50
    assert pool["capacity"] == 52
    assert pool["utilization_pct"] == 100.0
    assert pool["maxwait_seconds"] == 6.25


def test_columns_missing_in_older_versions_count_as_zero():
    row = {
        "database": "d",
        "user": "u",
        "cl_active": 1,
        "cl_waiting": 0,
        "cl_cancel_req": 2,
        "sv_active": 1,
        "sv_idle": 1,
        "sv_used": 0,
        "sv_tested": 0,
        "sv_login": 0,
        "maxwait": 3,
    }
    pool = summarise_pool(row, {"d": {"pool_size": 4, "reserve_pool": 0}})
    assert pool["sv_being_canceled"] == 0
    assert pool["cl_cancel_req"] == 2
    assert pool["maxwait_seconds"] == 3.0
    assert pool["utilization_pct"] == 25.0


def test_findings_grade_exhaustion_and_skip_the_admin_console():
    data = snapshot(DATABASES_118, POOLS_118, used_clients=63)
    pools, limits = summarise_pools(data)
    findings = all_findings(data, pools, limits, Thresholds())
    by_check = {item["check"]: item for item in findings if item["database"] == "penguinmails_oltp"}
    assert by_check["utilization"]["status"] == "CRITICAL"
    assert by_check["utilization"]["threshold"] == 90.0
    assert by_check["waiting_clients"]["status"] == "CRITICAL"
    assert by_check["maxwait"]["status"] == "CRITICAL"
    assert all(item["database"] != "pgbouncer" for item in findings)
    [clients] = [item for item in findings if item["check"] == "client_connections"]
    assert clients["status"] == "OK" and clients["value"] == 63.0
    for item in findings:
        assert set(item) >= {"check", "status", "value", "threshold", "unit", "subject", "message"}
    assert overall_status(findings) == "CRITICAL"


def test_paused_database_and_client_connection_pressure_on_125():
    data = snapshot(DATABASES_125, POOLS_125, used_clients=96)
    pools, limits = summarise_pools(data)
    findings = all_findings(data, pools, limits, Thresholds())
    [state] = [item for item in findings if item["check"] == "database_state"]
    assert state["status"] == "WARNING" and state["value"] == "paused"
    [clients] = [item for item in findings if item["check"] == "client_connections"]
    assert clients["status"] == "CRITICAL"
    [utilization] = [item for item in findings if item["check"] == "utilization"]
    assert utilization["value"] == pytest.approx(26.7)
    assert utilization["status"] == "OK" and utilization["threshold"] == 80.0


def test_client_connections_fall_back_to_the_pools_without_show_lists():
    data = snapshot(DATABASES_118, POOLS_118)
    pools, _limits = summarise_pools(data)
    assert client_connections(data, pools) == 63


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="utilization_warning"):
        Thresholds(utilization_warning=95, utilization_critical=90).validate()
    assert Thresholds.from_module_params({"waiting_critical": 3, "other": 1}).waiting_critical == 3


@pytest.mark.parametrize(
    ("status", "fail_on", "fails"),
    [
        ("CRITICAL", "critical", True),
        ("WARNING", "critical", False),
        ("WARNING", "warning", True),
        ("CRITICAL", "never", False),
        ("OK", "warning", False),
    ],
)
def test_fail_on(status, fail_on, fails):
    assert should_fail(status, fail_on) is fails


def test_sample_rows_add_up_pools_per_database_and_keep_the_busiest_usage():
    pools = [
        {
            "database": "db",
            "user": "a",
            "sv_active": 3,
            "sv_idle": 1,
            "sv_used": 1,
            "sv_tested": 0,
            "cl_waiting": 2,
            "utilization_pct": 100.0,
            "maxwait_seconds": 1.5,
        },
        {
            "database": "db",
            "user": "b",
            "sv_active": 1,
            "sv_idle": 0,
            "sv_used": 0,
            "sv_tested": 0,
            "cl_waiting": 0,
            "utilization_pct": 33.3,
            "maxwait_seconds": 0.0,
        },
    ]
    limits = {
        "db": {"pool_size": 3, "reserve_pool": 1, "min_pool_size": 1},
        "quiet": {"pool_size": 5, "reserve_pool": 0, "min_pool_size": 0},
        "pgbouncer": {"pool_size": 2, "reserve_pool": 0, "min_pool_size": 0},
    }
    rows = sample_rows(pools, limits, {"db": "oltp"})
    assert [row["pool_name"] for row in rows] == ["db", "quiet"]
    busy, quiet = rows
    assert busy["tier"] == "oltp" and quiet["tier"] is None
    assert busy["active_connections"] == 4 and busy["idle_connections"] == 2
    assert busy["pending_acquires"] == 2 and busy["connection_usage_rate"] == 100.0
    assert busy["max_connections"] == 3 and busy["reserve_connections"] == 1
    assert quiet["active_connections"] == 0 and quiet["connection_usage_rate"] == 0.0


class _Module:
    """Just what metrics_params reads of an AnsibleModule."""

    def __init__(self, params):
        self.params = params

    def fail_json(self, **result):
        raise AssertionError(result["msg"])


def test_metrics_db_takes_every_shared_connection_option():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import connection_entry_spec
    from ansible_collections.penguinmails.dbops.plugins.modules.pgbouncer_pools import argument_spec

    assert argument_spec()["metrics_db"]["options"] == connection_entry_spec()
    assert {"ca_cert", "target_session_attrs", "connect_timeout", "query_timeout"} <= set(connection_entry_spec())


def test_metrics_db_connection_keeps_its_options_and_inherits_the_module_timeouts():
    from ansible_collections.penguinmails.dbops.plugins.modules.pgbouncer_pools import metrics_params

    metrics_db = dict.fromkeys(("login_port", "connect_timeout"))
    metrics_db.update(login_host="db", ca_cert="/etc/ca.pem", target_session_attrs="read-write", query_timeout=7)
    params = metrics_params(_Module({"metrics_db": metrics_db, "connect_timeout": 1.5, "query_timeout": 3}))
    assert (params.host, params.port, params.ca_cert, params.target_session_attrs) == (
        "db",
        5432,
        "/etc/ca.pem",
        "read-write",
    )
    assert (params.connect_timeout, params.query_timeout) == (1.5, 7.0)


# --------------------------------------------------------------------------- observing and recording


def test_unreachable_pgbouncer_is_a_critical_result_not_an_exception():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.pools import observe_pools
    from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams
    from module_run import closed_port

    params = ConnectionParams(host="127.0.0.1", port=closed_port(), dbname="pgbouncer", connect_timeout=1)
    observed = observe_pools(params, Thresholds())
    assert (observed["reachable"], observed["conn_err_kind"]) == (False, "refused")
    [found] = observed["findings"]
    assert (found["check"], found["status"], found["subject"]) == ("connection", "CRITICAL", params.endpoint)
    assert overall_status(observed["findings"]) == "CRITICAL"


class _Transaction:
    """A connection that records statements, commits and rollbacks; fails on the statement `fail_at`."""

    def __init__(self, fail_at=None):
        self.sent, self.events, self.fail_at, self.autocommit = [], [], fail_at, True

    def cursor(self):
        conn = self

        class Cursor:
            def mogrify(self, text, args):
                return ("%s -- %r" % (text, sorted(args.items()))).encode()

            def execute(self, statement, args=None):
                if len(conn.sent) == conn.fail_at:
                    raise RuntimeError("write failed")
                conn.sent.append(statement)

        return Cursor()

    def commit(self):
        self.events.append(("commit", self.autocommit))

    def rollback(self):
        self.events.append(("rollback", self.autocommit))


def sample_row():
    return {"pool_name": "oltp", "tier": "oltp", "pool_size": 50, "reserve_pool": 5, "active": 3, "waiting": 0}


@pytest.fixture
def plain_sample_statements(monkeypatch):
    """Plain-text statements: psycopg2.sql composition needs a real connection to render."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils import pools

    def statements(schema, rows):
        return [
            ("UPSERT %s.connection_pool_config" % schema, rows[0]),
            ("INSERT %s.connection_pool_metrics" % schema, rows[0]),
        ]

    monkeypatch.setattr(pools, "sample_statements", statements)


def test_a_sample_is_one_transaction_and_check_mode_plans_the_same_statements(plain_sample_statements):
    from ansible_collections.penguinmails.dbops.plugins.module_utils.pools import write_sample
    from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams

    params = ConnectionParams(host="db1")
    planning, writing = _Transaction(), _Transaction()
    planned = write_sample(planning, params, "public", [sample_row()], check_mode=True)
    written = write_sample(writing, params, "public", [sample_row()], check_mode=False)
    assert planning.sent == [] and planning.events == [] and planned["recorded"] is False
    assert planned["executed_queries"] == [] and written["planned_queries"] == []
    assert planned["planned_queries"] == written["executed_queries"] and len(written["executed_queries"]) == 2
    assert writing.events == [("commit", False)] and writing.autocommit is True
    assert written["recorded"] is True


def test_a_failed_sample_write_is_rolled_back_and_raised(plain_sample_statements):
    from ansible_collections.penguinmails.dbops.plugins.module_utils.pools import write_sample
    from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams

    failing = _Transaction(fail_at=1)
    with pytest.raises(Exception, match="write failed"):
        write_sample(failing, ConnectionParams(host="db1"), "public", [sample_row()], check_mode=False)
    assert failing.events == [("rollback", False)]
