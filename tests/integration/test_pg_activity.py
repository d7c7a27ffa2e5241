"""pg_activity against a real PostgreSQL: every filter and signal produced with real sessions."""

from __future__ import annotations

import pytest
from diag_support import (
    backend_pids,
    hold_sessions,
    run_module,
    session_state,
    throwaway_servers,
    wait_until,
)

pytestmark = pytest.mark.lab

LONG_COMMENT = "x" * 150


@pytest.fixture(scope="module")
def servers():
    with throwaway_servers() as started:
        yield started


def sleeping(holder, servers, application_name, seconds=60, admin=False, comment=""):
    conn = (
        servers.admin_connect(application_name=application_name)
        if admin
        else servers.app_connect(application_name=application_name)
    )
    holder.run_in_background(conn, "SELECT pg_sleep(%d) /* %s */" % (seconds, comment))
    assert wait_until(lambda: any(s["state"] == "active" for s in session_state(servers, application_name)))
    return backend_pids(servers, application_name)


def assert_no_secret(result, servers):
    for secret in (servers.admin_password, servers.app_password):
        assert secret not in result["_stdout"]
        assert secret not in result["_stderr"]


def test_lists_active_queries_like_the_runbook(servers):
    with hold_sessions() as holder:
        pids = sleeping(holder, servers, "diag-list", comment=LONG_COMMENT)
        result = run_module("pg_activity", servers.pg_args(application_names=["diag-list"]))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    [session] = result["sessions"]
    assert session["pid"] == pids[0]
    assert session["usename"] == servers.app_user
    assert session["client_addr"] == "127.0.0.1"
    assert session["state"] == "active"
    assert session["duration_seconds"] >= 0
    assert len(session["query_preview"]) == 100
    assert session["query_preview"].startswith("SELECT pg_sleep(60)")
    assert session["wait_event"] == "PgSleep"
    assert result["acted_on"] == [] and result["executed_queries"] == []
    assert_no_secret(result, servers)


def test_query_previews_never_show_a_password_another_session_sent(servers):
    with hold_sessions() as holder:
        sleeping(holder, servers, "diag-secret", comment="ALTER ROLE x PASSWORD 'pw-Secret-7'")
        result = run_module("pg_activity", servers.pg_args(application_names=["diag-secret"]))
    [session] = result["sessions"]
    assert "PASSWORD '********'" in session["query_preview"]
    assert "pw-Secret-7" not in result["_stdout"]


def test_filters_by_user_database_address_and_duration(servers):
    with hold_sessions() as holder:
        sleeping(holder, servers, "diag-filters")
        base = {"application_names": ["diag-filters"]}
        assert run_module("pg_activity", servers.pg_args(users=[servers.app_user], **base))["sessions"]
        assert not run_module("pg_activity", servers.pg_args(users=["nobody"], **base))["sessions"]
        assert run_module("pg_activity", servers.pg_args(databases=[servers.database], **base))["sessions"]
        assert not run_module("pg_activity", servers.pg_args(databases=["postgres"], **base))["sessions"]
        assert run_module("pg_activity", servers.pg_args(client_addresses=["127.0.0.0/8"], **base))["sessions"]
        assert not run_module("pg_activity", servers.pg_args(client_addresses=["10.0.0.0/8"], **base))["sessions"]
        assert run_module("pg_activity", servers.pg_args(wait_events=["PgSleep"], **base))["sessions"]
        assert not run_module("pg_activity", servers.pg_args(wait_event_types=["Lock"], **base))["sessions"]
        assert not run_module("pg_activity", servers.pg_args(min_duration=3600, **base))["sessions"]
        assert not run_module("pg_activity", servers.pg_args(states=["idle"], **base))["sessions"]


def test_never_lists_its_own_backend_nor_background_workers(servers):
    result = run_module("pg_activity", servers.pg_args(states=[], application_names=["penguinmails.dbops"]))
    assert result["sessions"] == []
    everything = run_module("pg_activity", servers.pg_args(states=[]))
    assert all(session["application_name"] != "penguinmails.dbops" for session in everything["sessions"])
    # The checkpointer, walwriter, autovacuum launcher ... are there but never listed.
    assert all(session["usename"] for session in everything["sessions"])


def test_check_mode_lists_what_it_would_terminate_and_signals_nothing(servers):
    with hold_sessions() as holder:
        pids = sleeping(holder, servers, "diag-check")
        result = run_module(
            "pg_activity",
            servers.pg_args(action="terminate", application_names=["diag-check"]),
            check_mode=True,
        )
        assert result["changed"] is True
        assert [entry["pid"] for entry in result["acted_on"]] == pids
        assert result["executed_queries"] == []
        assert "pg_terminate_backend" in result["planned_queries"][0]
        # The session survived and still runs its query.
        assert backend_pids(servers, "diag-check") == pids
        assert session_state(servers, "diag-check")[0]["state"] == "active"


def test_cancel_stops_the_query_and_a_rerun_changes_nothing(servers):
    with hold_sessions() as holder:
        pids = sleeping(holder, servers, "diag-cancel")
        args = servers.pg_args(action="cancel", application_names=["diag-cancel"], min_duration=0.1)
        result = run_module("pg_activity", args)
        assert not result.get("failed"), result.get("msg")
        assert result["changed"] is True
        assert [entry["pid"] for entry in result["acted_on"]] == pids
        assert "pg_cancel_backend" in result["executed_queries"][0]
        assert str(pids[0]) in result["executed_queries"][0]
        # Cancelled, not terminated: the connection stays, the query is gone.
        assert wait_until(lambda: session_state(servers, "diag-cancel")[0]["state"] != "active")
        assert backend_pids(servers, "diag-cancel") == pids
        again = run_module("pg_activity", args)
        assert again["changed"] is False and again["acted_on"] == []


def test_terminate_waits_until_gone_and_a_rerun_finds_nothing(servers):
    with hold_sessions() as holder:
        pids = sleeping(holder, servers, "diag-terminate", comment=LONG_COMMENT)
        args = servers.pg_args(action="terminate", users=[servers.app_user], application_names=["diag-terminate"])
        result = run_module("pg_activity", args)
        assert not result.get("failed"), result.get("msg")
        assert result["changed"] is True
        [acted] = result["acted_on"]
        assert acted["pid"] == pids[0]
        assert acted["user"] == servers.app_user
        assert acted["duration_seconds"] >= 0
        assert len(acted["query_preview"]) == 100
        assert result["still_present"] == []
        assert "pg_terminate_backend" in result["executed_queries"][0]
        assert backend_pids(servers, "diag-terminate") == []
        again = run_module("pg_activity", args)
        assert again["changed"] is False
        assert again["sessions"] == [] and again["acted_on"] == []
        assert_no_secret(result, servers)


def test_superuser_sessions_are_left_alone_unless_allowed(servers):
    with hold_sessions() as holder:
        pids = sleeping(holder, servers, "diag-superuser", admin=True)
        args = servers.pg_args(action="terminate", application_names=["diag-superuser"])
        result = run_module("pg_activity", args)
        assert result["changed"] is False
        assert result["acted_on"] == []
        assert [entry["pid"] for entry in result["skipped"]] == pids
        assert "superuser" in result["skipped"][0]["reason"]
        assert backend_pids(servers, "diag-superuser") == pids

        allowed = run_module("pg_activity", dict(args, allow_superuser=True))
        assert allowed["changed"] is True
        assert [entry["pid"] for entry in allowed["acted_on"]] == pids
        assert backend_pids(servers, "diag-superuser") == []


def test_blocked_and_blocking_sessions(servers):
    admin = servers.admin_connect()
    with admin.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS diag_locks (id int PRIMARY KEY, value int)")
        cursor.execute("INSERT INTO diag_locks VALUES (1, 0) ON CONFLICT DO NOTHING")
        cursor.execute("GRANT ALL ON diag_locks TO %s" % servers.app_user)
    admin.close()
    with hold_sessions() as holder:
        blocker = holder.keep(servers.app_connect(application_name="diag-blocker"))
        blocker.autocommit = False
        with blocker.cursor() as cursor:
            cursor.execute("UPDATE diag_locks SET value = value + 1 WHERE id = 1")
        waiter = servers.app_connect(application_name="diag-waiter")
        holder.run_in_background(waiter, "UPDATE diag_locks SET value = value + 10 WHERE id = 1")
        assert wait_until(lambda: session_state(servers, "diag-waiter")[0]["blocked"])
        blocker_pid = backend_pids(servers, "diag-blocker")[0]
        waiter_pid = backend_pids(servers, "diag-waiter")[0]
        names = ["diag-blocker", "diag-waiter"]

        blocked = run_module("pg_activity", servers.pg_args(states=[], application_names=names, blocked=True))
        assert [session["pid"] for session in blocked["sessions"]] == [waiter_pid]
        assert blocked["sessions"][0]["blocked_by"] == [blocker_pid]
        assert blocked["sessions"][0]["wait_event_type"] == "Lock"

        blocking = run_module("pg_activity", servers.pg_args(states=[], application_names=names, blocking=True))
        assert [session["pid"] for session in blocking["sessions"]] == [blocker_pid]
        assert blocking["sessions"][0]["state"] == "idle in transaction"
        assert blocking["sessions"][0]["blocking"] == [waiter_pid]

        ended = run_module(
            "pg_activity",
            servers.pg_args(action="terminate", states=["idle in transaction"], blocking=True, application_names=names),
        )
        assert [entry["pid"] for entry in ended["acted_on"]] == [blocker_pid]
        # The waiter got its lock and finished; it is no longer blocked by anyone.
        assert wait_until(lambda: session_state(servers, "diag-waiter")[0]["state"] == "idle")
        assert backend_pids(servers, "diag-blocker") == []


def test_refuses_to_signal_without_a_narrowing_filter(servers):
    result = run_module("pg_activity", servers.pg_args(action="terminate"))
    assert result["failed"] is True
    assert "refusing to terminate every session" in result["msg"]


@pytest.mark.parametrize(
    ("broad", "named"),
    [
        ({"client_addresses": ["0.0.0.0/0"]}, "client_addresses=0.0.0.0/0 (every address)"),
        ({"client_addresses": ["::/0", "0.0.0.0/0"]}, "(every address)"),
        ({"min_duration": 0.0001}, "min_duration=0.0001 (under 1.0 s)"),
        ({"blocked": False}, "blocked=false"),
        ({"users": [""]}, "users with only empty names"),
    ],
)
def test_refuses_filters_that_match_every_session_and_signals_nothing(servers, broad, named):
    with hold_sessions() as holder:
        pids = sleeping(holder, servers, "diag-broad")
        result = run_module("pg_activity", servers.pg_args(action="terminate", **broad))
        assert result["failed"] is True
        assert "refusing to terminate every session" in result["msg"]
        assert named in result["msg"]
        assert "Traceback" not in result["msg"]
        assert backend_pids(servers, "diag-broad") == pids


def test_max_sessions_ends_only_the_oldest_and_reports_the_rest(servers):
    with hold_sessions() as holder:
        pids = [sleeping(holder, servers, "diag-cap-%d" % index)[0] for index in range(3)]
        names = ["diag-cap-%d" % index for index in range(3)]
        args = servers.pg_args(action="terminate", application_names=names, max_sessions=2)
        result = run_module("pg_activity", args)
        assert not result.get("failed"), result.get("msg")
        assert result["limit_reached"] is True
        assert [entry["pid"] for entry in result["acted_on"]] == pids[:2]
        assert [entry["pid"] for entry in result["over_limit"]] == pids[2:]
        assert "3 sessions matched; max_sessions=2: the 1 beyond it were left alone" in result["_stdout"]  # a warning
        # the one beyond the limit still runs; a rerun takes it
        assert [pid for name in names for pid in backend_pids(servers, name)] == pids[2:]
        again = run_module("pg_activity", args)
        assert [entry["pid"] for entry in again["acted_on"]] == pids[2:]
        assert again["limit_reached"] is False and again["over_limit"] == []


def test_allow_all_lifts_the_filter_rule_but_not_the_limit(servers):
    with hold_sessions() as holder:
        pids = [sleeping(holder, servers, "diag-all-%d" % index)[0] for index in range(2)]
        args = servers.pg_args(action="terminate", allow_all=True, max_sessions=1)
        result = run_module("pg_activity", args, check_mode=True)
        assert not result.get("failed"), result.get("msg")
        assert result["changed"] is True
        assert len(result["acted_on"]) == 1 and result["limit_reached"] is True
        assert result["executed_queries"] == []
        # check mode signalled nothing
        assert [backend_pids(servers, "diag-all-%d" % index)[0] for index in range(2)] == pids


def test_unreachable_server_is_one_readable_error_without_the_password(servers):
    args = servers.pg_args(login_port=servers.pg_port + 7, connect_timeout=1)
    result = run_module("pg_activity", args)
    assert result["failed"] is True
    assert "127.0.0.1:%d" % (servers.pg_port + 7) in result["msg"]
    assert result["conn_err_kind"] == "refused"
    assert "Traceback" not in result["msg"]
    assert_no_secret(result, servers)
