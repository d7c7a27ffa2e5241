"""pgbouncer_pools against a real PgBouncer: a pool saturated by real clients, and the metrics tables."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from diag_support import hold_sessions, run_module, throwaway_servers, wait_until

pytestmark = pytest.mark.lab

POOL_METRICS_SQL = Path(__file__).resolve().parents[2] / "roles" / "lab" / "files" / "pool_metrics.sql"


@pytest.fixture(scope="module")
def servers():
    with throwaway_servers() as started:
        yield started


@pytest.fixture(scope="module")
def metrics_tables(servers):
    conn = servers.admin_connect()
    with conn.cursor() as cursor:
        cursor.execute(POOL_METRICS_SQL.read_text())
    conn.close()
    return servers


def metrics_db(servers):
    return {
        "login_host": servers.host,
        "login_port": servers.pg_port,
        "login_user": servers.admin_user,
        "login_password": servers.admin_password,
        "login_db": servers.database,
    }


def oltp_pool(result):
    [pool] = [pool for pool in result["pools"] if pool["database"] == "penguinmails_oltp"]
    return pool


def findings_of(result, check, database="penguinmails_oltp"):
    return [item for item in result["findings"] if item["check"] == check and item.get("database") == database]


def assert_no_secret(result, servers):
    for secret in (servers.admin_password, servers.pgbouncer_admin_password, servers.app_password):
        assert secret not in result["_stdout"]
        assert secret not in result["_stderr"]


def count_metric_rows(servers):
    conn = servers.admin_connect()
    with conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM connection_pool_metrics")
        count = cursor.fetchone()[0]
    conn.close()
    return count


def test_quiet_pools_are_ok(servers):
    with hold_sessions() as holder:
        conn = holder.keep(servers.app_connect(via_pgbouncer=True))
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        result = run_module("pgbouncer_pools", servers.pgbouncer_args())
    assert not result.get("failed"), result.get("msg")
    assert result["reachable"] is True
    assert result["version"].startswith("PgBouncer")
    assert result["status"] == "OK"
    pool = oltp_pool(result)
    assert pool["pool_size"] == servers.pool_size
    assert pool["reserve_pool"] == servers.reserve_pool
    assert pool["cl_waiting"] == 0
    assert {item["check"] for item in findings_of(result, "utilization")} == {"utilization"}
    assert result["config"]["max_client_conn"] == "40"
    assert result["lists"]["used_clients"] >= 1
    assert result["metrics"] == {
        "queried": False,
        "tables_present": False,
        "rows": [],
        "error": None,
        "window_seconds": 300.0,
    }
    assert result["changed"] is False
    assert_no_secret(result, servers)


def test_saturated_pool_is_critical(servers):
    """pool_size 3 + reserve 1, held by 3 open transactions; 4 more clients must wait."""
    with hold_sessions() as holder:
        for _index in range(servers.pool_size):
            conn = holder.keep(servers.app_connect(via_pgbouncer=True))
            conn.autocommit = False
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")  # transaction open: the server connection stays linked
        for _index in range(4):
            holder.run_in_background(servers.app_connect(via_pgbouncer=True), "SELECT pg_sleep(20)")
        time.sleep(1.5)  # past reserve_pool_timeout (1 s) and the 1 s maxwait warning

        def saturated():
            return oltp_pool(run_module("pgbouncer_pools", servers.pgbouncer_args()))["cl_waiting"] >= 3

        assert wait_until(saturated, timeout=10)
        result = run_module("pgbouncer_pools", servers.pgbouncer_args(waiting_critical=3))
        failing = run_module("pgbouncer_pools", servers.pgbouncer_args(fail_on="critical"))

    assert not result.get("failed"), result.get("msg")
    pool = oltp_pool(result)
    assert pool["cl_waiting"] == 3
    assert pool["sv_active"] == servers.pool_size + servers.reserve_pool
    assert pool["utilization_pct"] == pytest.approx(100.0 * 4 / 3, abs=0.1)
    assert pool["maxwait_seconds"] >= 1.0
    assert result["status"] == "CRITICAL"
    [utilization] = findings_of(result, "utilization")
    assert utilization["status"] == "CRITICAL" and utilization["threshold"] == 90.0
    assert utilization["subject"] == "penguinmails_oltp/%s" % servers.app_user
    [waiting] = findings_of(result, "waiting_clients")
    assert waiting["status"] == "CRITICAL" and waiting["value"] == 3
    [maxwait] = findings_of(result, "maxwait")
    assert maxwait["status"] in ("WARNING", "CRITICAL")
    assert failing["failed"] is True
    assert "CRITICAL" in failing["msg"] and "penguinmails_oltp" in failing["msg"]
    assert_no_secret(failing, servers)


def test_client_connections_near_max_client_conn(servers):
    with hold_sessions() as holder:
        for _index in range(34):  # + the module's own console connection = 35 of 40
            holder.keep(servers.app_connect(via_pgbouncer=True))
        result = run_module("pgbouncer_pools", servers.pgbouncer_args())
    [clients] = [item for item in result["findings"] if item["check"] == "client_connections"]
    assert clients["status"] == "WARNING"
    assert clients["clients"] >= 35 and clients["max_client_conn"] == 40


def test_metrics_tables_absent_is_reported_not_fatal(servers):
    conn = servers.admin_connect()
    with conn.cursor() as cursor:
        cursor.execute("CREATE DATABASE diag_no_metrics")
    conn.close()
    args = servers.pgbouncer_args(metrics_db=dict(metrics_db(servers), login_db="diag_no_metrics"))
    result = run_module("pgbouncer_pools", args)
    assert not result.get("failed"), result.get("msg")
    assert result["metrics"]["queried"] is True
    assert result["metrics"]["tables_present"] is False
    recording = run_module("pgbouncer_pools", dict(args, record_sample=True))
    assert recording["failed"] is True
    assert "pool_metrics.sql" in recording["msg"]
    assert recording["pools"], "the live figures are still reported"


def test_record_sample_check_mode_then_for_real(metrics_tables):
    servers = metrics_tables
    args = servers.pgbouncer_args(
        metrics_db=metrics_db(servers), record_sample=True, pool_tiers={"penguinmails_oltp": "oltp"}
    )
    before = count_metric_rows(servers)
    with hold_sessions() as holder:
        for _index in range(servers.pool_size):
            conn = holder.keep(servers.app_connect(via_pgbouncer=True))
            conn.autocommit = False
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
        for _index in range(2):
            holder.run_in_background(servers.app_connect(via_pgbouncer=True), "SELECT pg_sleep(20)")
        assert wait_until(lambda: oltp_pool(run_module("pgbouncer_pools", servers.pgbouncer_args()))["cl_waiting"])

        planned = run_module("pgbouncer_pools", args, check_mode=True)
        assert not planned.get("failed"), planned.get("msg")
        assert planned["changed"] is True
        assert planned["executed_queries"] == []
        assert any("INSERT INTO" in text and "connection_pool_metrics" in text for text in planned["planned_queries"])
        assert planned["sample"]["recorded"] is False
        assert count_metric_rows(servers) == before

        recorded = run_module("pgbouncer_pools", args)
    assert not recorded.get("failed"), recorded.get("msg")
    assert recorded["changed"] is True
    assert recorded["sample"]["recorded"] is True
    assert len(recorded["executed_queries"]) == 2
    assert count_metric_rows(servers) == before + 1
    [row] = recorded["sample"]["rows"]
    assert row["pool_name"] == "penguinmails_oltp" and row["tier"] == "oltp"
    assert row["active_connections"] >= servers.pool_size
    assert row["pending_acquires"] >= 1
    assert row["connection_usage_rate"] >= 100.0
    # The runbook's query shows the sample side by side with the live pools.
    stored = recorded["metrics"]
    assert stored["tables_present"] is True
    newest = stored["rows"][0]
    assert newest["tier"] == "oltp" and newest["pool_name"] == "penguinmails_oltp"
    assert newest["pending_acquires"] == row["pending_acquires"]
    assert set(newest) >= {
        "tier",
        "pool_name",
        "active_connections",
        "idle_connections",
        "connection_usage_rate",
        "pending_acquires",
    }
    assert_no_secret(recorded, servers)

    # Reading only (no record_sample) changes nothing.
    read = run_module("pgbouncer_pools", servers.pgbouncer_args(metrics_db=metrics_db(servers)))
    assert read["changed"] is False
    assert read["metrics"]["rows"]
    assert count_metric_rows(servers) == before + 1


def test_unreachable_pgbouncer_is_a_result_unless_fail_on(servers):
    args = servers.pgbouncer_args(pgbouncer_port=servers.pgbouncer_port + 5, connect_timeout=1)
    result = run_module("pgbouncer_pools", args)
    assert not result.get("failed")
    assert result["reachable"] is False
    assert result["status"] == "CRITICAL"
    assert "127.0.0.1:%d" % (servers.pgbouncer_port + 5) in result["conn_err_msg"]
    assert "PgBouncer" in result["conn_err_msg"]
    failed = run_module("pgbouncer_pools", dict(args, fail_on="critical"))
    assert failed["failed"] is True
    assert "127.0.0.1:%d" % (servers.pgbouncer_port + 5) in failed["msg"]
    assert_no_secret(failed, servers)


def test_wrong_console_password_names_the_endpoint(servers):
    result = run_module("pgbouncer_pools", servers.pgbouncer_args(pgbouncer_password="wrong-password-1234"))
    assert result["reachable"] is False
    assert result["conn_err_kind"] == "auth"
    assert "wrong-password-1234" not in result["_stdout"]
