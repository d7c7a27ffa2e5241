"""pg_indexes and pg_query_check against a real PostgreSQL: an index invalid for real, an approved index,
stale statistics, a session blocking others, heavy sequential scans."""

from __future__ import annotations

import psycopg2
import pytest
from diag_support import backend_pids, hold_sessions, run_module, throwaway_servers, wait_until

pytestmark = pytest.mark.lab

ROWS = 50000


@pytest.fixture(scope="module")
def servers():
    with throwaway_servers() as started:
        conn = started.admin_connect()
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE perf_orders (id bigint PRIMARY KEY, ref text, customer_email text);"
                "INSERT INTO perf_orders SELECT g, 'r' || g, 'c' || (g %% 5000) || '@example.test'"
                " FROM generate_series(1, %s) g;"
                "INSERT INTO perf_orders VALUES (%s, 'r1', 'dup@example.test')",
                [ROWS, ROWS + 1],
            )
            cur.execute("GRANT ALL ON perf_orders TO %s" % started.app_user)
            with pytest.raises(psycopg2.errors.UniqueViolation):
                cur.execute("CREATE UNIQUE INDEX CONCURRENTLY perf_orders_ref_key ON perf_orders (ref)")
        conn.close()
        yield started


def index_state(servers):
    conn = servers.admin_connect()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname, i.indisvalid, pg_get_indexdef(c.oid) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'perf_orders'::regclass ORDER BY 1"
        )
        rows = {name: (valid, definition) for name, valid, definition in cur.fetchall()}
    conn.close()
    return rows


def admin_sql(servers, statement):
    conn = servers.admin_connect()
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.close()


APPROVED = [{"table": "perf_orders", "columns": ["customer_email"]}]


def test_bad_entries_fail_naming_them_and_change_nothing(servers):
    before = index_state(servers)
    cases = {
        "leaves a parenthesis open": {"table": "perf_orders", "expression": "lower(customer_email"},
        "the server refuses it": {"table": "perf_orders", "expression": "lower(customer_email) AND AND"},
        "unknown table public.no_such_table": {"table": "no_such_table", "columns": ["x"]},
        "exactly one of columns": {"table": "perf_orders"},
        "without ';'": {"table": "perf_orders", "expression": "lower(ref)); DROP TABLE perf_orders; --"},
    }
    for expected, entry in cases.items():
        result = run_module("pg_indexes", servers.pg_args(approved=[entry]))
        assert result.get("failed"), entry
        assert expected in result["msg"] and "approved index 0" in result["msg"]
        assert servers.admin_password not in result["_stdout"]
    assert index_state(servers) == before


def test_check_mode_plans_and_changes_nothing(servers):
    before = index_state(servers)
    result = run_module("pg_indexes", servers.pg_args(approved=APPROVED), check_mode=True)
    assert not result.get("failed"), result.get("msg")
    assert result["invalid"] == ["public.perf_orders_ref_key"]
    assert [a["action"] for a in result["actions"]][:2] == ["reindex", "create"]
    assert any(
        q.startswith('REINDEX INDEX CONCURRENTLY "public"."perf_orders_ref_key"') for q in result["executed_queries"]
    )
    assert any('CREATE INDEX CONCURRENTLY "perf_orders_customer_email_idx"' in q for q in result["executed_queries"])
    assert index_state(servers) == before


def test_a_reindex_that_fails_again_is_reported_and_leaves_no_ccnew(servers):
    result = run_module("pg_indexes", servers.pg_args(approved=APPROVED, analyze_stale=False))
    assert not result.get("failed"), result.get("msg")
    assert any(f.startswith("reindex public.perf_orders_ref_key: ") for f in result["failures"])
    assert "dup@example.test" not in result["_stdout"]
    state = index_state(servers)
    assert not any(name.endswith("_ccnew") for name in state)
    assert state["perf_orders_ref_key"][0] is False
    assert state["perf_orders_customer_email_idx"][0] is True


def test_rebuilds_once_the_data_allows_it_cleaning_leftovers_then_nothing_to_do(servers):
    admin_sql(servers, "DELETE FROM perf_orders WHERE id = %d" % (ROWS + 1))
    # A leftover of an earlier failed REINDEX CONCURRENTLY, as the server leaves it.
    admin_sql(
        servers,
        "CREATE INDEX perf_orders_ref_key_ccnew ON perf_orders (ref);"
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'perf_orders_ref_key_ccnew'::regclass",
    )
    result = run_module("pg_indexes", servers.pg_args(approved=APPROVED))
    assert not result.get("failed"), result.get("msg")
    assert result["failures"] == []
    kinds = [(a["action"], a["name"]) for a in result["actions"]]
    assert kinds[:2] == [("drop_leftover", "perf_orders_ref_key_ccnew"), ("reindex", "perf_orders_ref_key")]
    assert ("analyze", None) in kinds
    state = index_state(servers)
    assert state["perf_orders_ref_key"][0] is True and "perf_orders_ref_key_ccnew" not in state
    assert result["approved"] == [{"action": "present", "name": "perf_orders_customer_email_idx"}]

    again = run_module("pg_indexes", servers.pg_args(approved=APPROVED))
    assert again["changed"] is False and again["actions"] == [] and again["executed_queries"] == []


def test_same_definition_under_another_name_is_present(servers):
    renamed = [{"table": "public.perf_orders", "columns": ["customer_email"], "name": "another_name"}]
    result = run_module("pg_indexes", servers.pg_args(approved=renamed))
    assert result["changed"] is False
    assert result["approved"] == [{"action": "present", "name": "perf_orders_customer_email_idx"}]
    assert "another_name" not in index_state(servers)


def test_duplicates_and_unused_are_reported_never_dropped(servers):
    admin_sql(servers, "CREATE INDEX perf_orders_email_copy ON perf_orders (customer_email)")
    result = run_module("pg_indexes", servers.pg_args(approved=APPROVED))
    [group] = result["duplicates"]
    assert group["indexes"] == ["perf_orders_customer_email_idx", "perf_orders_email_copy"]
    assert "perf_orders_email_copy" in {entry["name"] for entry in result["unused"]}
    assert "perf_orders_pkey" not in {entry["name"] for entry in result["unused"]}
    assert "perf_orders_email_copy" in index_state(servers)
    assert result["changed"] is False


def test_query_check_finds_the_blocking_chain_and_plans_the_root(servers):
    with hold_sessions() as holder:
        blocker = holder.keep(servers.app_connect(application_name="perf-blocker"))
        blocker.autocommit = False
        with blocker.cursor() as cur:
            cur.execute("UPDATE perf_orders SET ref = ref WHERE id = 1")
        for number in (1, 2):
            waiter = servers.app_connect(application_name="perf-waiter-%d" % number)
            holder.run_in_background(waiter, "UPDATE perf_orders SET ref = ref WHERE id = 1")
        assert wait_until(lambda: len(run_module("pg_query_check", servers.pg_args())["blocking_chains"]) == 1)
        result = run_module("pg_query_check", servers.pg_args(block_max_s=0, query_max_s=3600))
        [root] = backend_pids(servers, "perf-blocker")
    assert not result.get("failed"), result.get("msg")
    [chain] = result["blocking_chains"]
    assert chain["root_pid"] == root and chain["state"] == "idle in transaction"
    assert chain["depth"] >= 1 and len(chain["waiters"]) == 2
    assert result["waits_by_type"].get("Lock", 0) >= 1
    assert result["plan"] == {"blockers": [root], "long_queries": []}
    assert result["changed"] is False


def test_query_check_says_when_pg_stat_statements_is_missing_and_goes_on(servers):
    result = run_module("pg_query_check", servers.pg_args(watch="perf_orders"))
    assert not result.get("failed"), result.get("msg")
    assert result["statements_available"] is False
    assert result["top_by_total"] == [] and result["watched"] is None
    assert "pg_stat_statements is not loaded" in result["_stdout"], result["_stdout"][-600:]


def test_query_check_reports_heavy_seq_scans_and_times_the_probe(servers):
    probe = "SELECT count(*) FROM perf_orders WHERE ref = 'r77'"
    result = run_module(
        "pg_query_check", servers.pg_args(probe=probe, probe_runs=3, seq_scan_min_rows=1, seq_scan_ratio=0)
    )
    assert result["probe"]["runs"] == 3 and len(result["probe"]["durations_ms"]) == 3
    assert result["probe"]["median_ms"] > 0
    assert "perf_orders" in {table["table"] for table in result["heavy_seq_scans"]}


def test_the_probe_cannot_write(servers):
    result = run_module("pg_query_check", servers.pg_args(probe="DELETE FROM perf_orders"))
    assert result.get("failed") and "read-only transaction" in result["msg"]
    assert index_state(servers)


ALLOWED = ["work_mem", "statement_timeout", "shared_buffers", "maintenance_work_mem"]


def show(servers, statement):
    conn = servers.admin_connect()
    with conn.cursor() as cur:
        cur.execute(statement)
        value = cur.fetchone()
    conn.close()
    return value[0] if value else None


def role_settings(servers):
    return show(
        servers,
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
        " WHERE s.setdatabase = 0 AND r.rolname = '%s'" % servers.app_user,
    )


def test_tune_refuses_bad_settings_before_changing_anything(servers):
    before = (show(servers, "SHOW work_mem"), role_settings(servers))
    cases = {
        "is not on the allow list": [{"name": "work_mem", "value": "8MB"}, {"name": "fsync", "value": "off"}],
        "work_mem = 5TB: ": [{"name": "maintenance_work_mem", "value": "128MB"}, {"name": "work_mem", "value": "5TB"}],
        "role no_such_role does not exist": [{"name": "work_mem", "value": "8MB", "role": "no_such_role"}],
    }
    for expected, settings in cases.items():
        result = run_module("pg_tune", servers.pg_args(settings=settings, allowed=ALLOWED))
        assert result.get("failed") and expected in result["msg"], result
    assert (show(servers, "SHOW work_mem"), role_settings(servers)) == before


def test_tune_changes_reports_restart_settings_and_reverts(servers):
    settings = [
        {"name": "work_mem", "value": "48MB"},
        {"name": "statement_timeout", "value": "45s", "role": servers.app_user},
        {"name": "shared_buffers", "value": "256MB"},
    ]
    planned = run_module("pg_tune", servers.pg_args(settings=settings, allowed=ALLOWED), check_mode=True)
    assert planned["changed"] and "ALTER SYSTEM SET work_mem = '48MB'" in planned["executed_queries"]
    assert show(servers, "SHOW work_mem") != "48MB"

    result = run_module("pg_tune", servers.pg_args(settings=settings, allowed=ALLOWED))
    assert not result.get("failed"), result.get("msg")
    assert [(e["scope"], e["name"], e["previous"], e["value"]) for e in result["replaced"]] == [
        ("system", "work_mem", None, "48MB"),
        ("role", "statement_timeout", None, "45s"),
    ]
    assert [entry["name"] for entry in result["not_applied"]] == ["shared_buffers"]
    assert "restart" in result["not_applied"][0]["reason"]
    assert show(servers, "SHOW work_mem") == "48MB"
    assert role_settings(servers) == ["statement_timeout=45s"]
    assert show(servers, "SHOW shared_buffers") != "256MB"

    again = run_module("pg_tune", servers.pg_args(settings=settings, allowed=ALLOWED))
    assert again["changed"] is False and again["unchanged"] == ["work_mem", "statement_timeout"]

    back = [{"name": e["name"], "role": e["role"], "value": e["previous"]} for e in result["replaced"]]
    reverted = run_module("pg_tune", servers.pg_args(settings=back, allowed=ALLOWED))
    assert reverted["changed"] and "ALTER SYSTEM RESET work_mem" in reverted["executed_queries"]
    assert show(servers, "SHOW work_mem") == "4MB"
    assert role_settings(servers) is None


REF = {"table": "perf_orders", "columns": ["ref"]}


def test_validate_only_refuses_bad_entries_read_only(servers):
    before = index_state(servers)
    cases = {
        "syntax error": {"table": "perf_orders", "expression": "lower(customer_email) AND AND"},
        "function no_such_function": {"table": "perf_orders", "expression": "no_such_function(ref)"},
        'column "no_such_column" does not exist': dict(REF, predicate="no_such_column > 1"),
        "unknown table public.no_such_table": {"table": "no_such_table", "columns": ["x"]},
        "unknown column nope of public.perf_orders": {"table": "perf_orders", "columns": ["ref", "nope"]},
        "is a list, not one expression": {"table": "perf_orders", "expression": "lower(ref), ref"},
        "closes a parenthesis it did not open": {"table": "perf_orders", "expression": "ref) IS NOT NULL OR (true"},
        "may not contain a subquery": dict(REF, predicate="id IN (SELECT id FROM perf_orders)"),
        "may not contain a subquery (SELECT)": {"table": "perf_orders", "expression": "(SELECT 1)"},
    }
    for expected, entry in cases.items():
        result = run_module("pg_indexes", servers.pg_args(approved=[APPROVED[0], entry], validate_only=True))
        assert result.get("failed"), entry
        assert expected in result["msg"] and result["msg"].startswith("approved index 1"), result["msg"]
        assert "\n" not in result["msg"]
    assert index_state(servers) == before


def test_validate_only_passes_good_entries_and_runs_nothing(servers):
    before = index_state(servers)
    approved = [*APPROVED, {"table": "perf_orders", "expression": "lower(customer_email)", "predicate": "id > 10"}]
    result = run_module("pg_indexes", servers.pg_args(approved=approved, validate_only=True))
    assert not result.get("failed"), result.get("msg")
    assert [entry["action"] for entry in result["approved"]] == ["valid", "valid"]
    assert result["changed"] is False and result["executed_queries"] == []
    assert index_state(servers) == before


@pytest.mark.parametrize("check_mode", [True, False])
def test_reload_only_values_are_checked_the_same_in_check_mode_and_in_a_run(servers, check_mode):
    allowed = ["checkpoint_timeout", "log_checkpoints", "checkpoint_completion_target"]
    before = show(servers, "SHOW checkpoint_timeout")
    cases = {
        "outside the valid range for parameter checkpoint_timeout (30 .. 86400 s)": "10",
        "valid units: us, ms, s, min, h, d": "5MB",
    }
    for expected, value in cases.items():
        settings = [{"name": "checkpoint_timeout", "value": value}]
        result = run_module("pg_tune", servers.pg_args(settings=settings, allowed=allowed), check_mode=check_mode)
        assert result.get("failed") and expected in result["msg"], result
    bad_bool = [{"name": "log_checkpoints", "value": "maybe"}]
    result = run_module("pg_tune", servers.pg_args(settings=bad_bool, allowed=allowed), check_mode=check_mode)
    assert result.get("failed") and "requires a Boolean value" in result["msg"], result
    bad_real = [{"name": "checkpoint_completion_target", "value": "1.5"}]
    result = run_module("pg_tune", servers.pg_args(settings=bad_real, allowed=allowed), check_mode=check_mode)
    assert result.get("failed") and "outside the valid range" in result["msg"], result
    assert show(servers, "SHOW checkpoint_timeout") == before
    good = [{"name": "checkpoint_timeout", "value": "6min"}]
    planned = run_module("pg_tune", servers.pg_args(settings=good, allowed=allowed), check_mode=True)
    assert not planned.get("failed") and "ALTER SYSTEM SET checkpoint_timeout = '6min'" in planned["executed_queries"]
