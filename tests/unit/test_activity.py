"""pg_activity's filters and statements, without a server."""

import datetime

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.activity import (
    QUERY_PREVIEW_CHARS,
    SessionFilter,
    filter_conditions,
    list_statement,
    preview,
    signal_statement,
    split_targets,
)


def test_defaults_follow_the_runbook():
    session_filter = SessionFilter.from_module_params({})
    assert session_filter.states == ["active"]
    text, params = list_statement(session_filter)
    assert "left(s.query, 100) AS query_preview" in text
    assert "ORDER BY s.query_start" in text
    assert params == {"states": ["active"]}


def test_only_client_backends_and_never_our_own():
    text, _params = list_statement(SessionFilter(states=[]))
    assert "e.backend_type = 'client backend'" in text
    assert "e.pid <> pg_backend_pid()" in text


def test_empty_states_match_any_state():
    conditions, params = filter_conditions(SessionFilter(states=[]))
    assert conditions == [] and params == {}


def test_every_filter_is_a_parameter_never_interpolated():
    session_filter = SessionFilter(
        states=["active"],
        min_duration=5,
        users=["app'; DROP TABLE x; --"],
        databases=["db"],
        application_names=["web"],
        client_addresses=["10.0.0.0/8"],
        wait_event_types=["Lock"],
        wait_events=["transactionid"],
        blocked=True,
        blocking=False,
        pids=[1, 2],
    )
    conditions, params = filter_conditions(session_filter)
    text = " ".join(conditions)
    assert "DROP TABLE" not in text
    assert params["users"] == ["app'; DROP TABLE x; --"]
    assert "s.client_addr <<= ANY(%(client_addresses)s::inet[])" in conditions
    assert "s.age_seconds >= %(min_duration)s" in conditions
    assert "cardinality(s.blocked_by) > 0" in conditions
    assert "NOT cardinality(s.blocking) > 0" in conditions
    assert params["pids"] == [1, 2]


@pytest.mark.parametrize(
    ("basis", "column"),
    [("query_start", "e.query_start"), ("xact_start", "e.xact_start"), ("state_change", "e.state_change")],
)
def test_duration_basis_picks_a_known_column(basis, column):
    text, _params = list_statement(SessionFilter(duration_basis=basis, min_duration=1))
    assert "EXTRACT(EPOCH FROM (now() - %s))::float8 AS age_seconds" % column in text


def test_validation_rejects_unknown_states_and_bases():
    with pytest.raises(ValueError, match="unknown session state"):
        SessionFilter(states=["busy"]).validate()
    with pytest.raises(ValueError, match="duration_basis"):
        SessionFilter(duration_basis="now()").validate()
    with pytest.raises(ValueError, match="negative"):
        SessionFilter(min_duration=-1).validate()


def test_signalling_needs_a_narrowing_filter():
    assert not SessionFilter().narrows()
    assert not SessionFilter(states=["idle in transaction"]).narrows()
    assert SessionFilter(min_duration=60).narrows()
    assert SessionFilter(blocking=False).narrows()
    assert SessionFilter(pids=[42]).narrows()


def test_signal_statement_rechecks_filters_for_the_listed_sessions_only():
    started = datetime.datetime(2026, 11, 26, 18, 0, tzinfo=datetime.timezone.utc)
    targets = [{"pid": 11, "backend_start": started}, {"pid": 12, "backend_start": started}]
    text, params = signal_statement(SessionFilter(min_duration=30), "terminate", targets, allow_superuser=False)
    assert "pg_terminate_backend(s.pid)" in text
    assert "s.age_seconds >= %(min_duration)s" in text
    assert "(s.pid, s.backend_start) IN" in text
    assert "NOT s.superuser" in text
    assert params["target_pids"] == [11, 12]
    assert params["target_starts"] == [started, started]
    allowed, _params = signal_statement(SessionFilter(min_duration=30), "cancel", targets, allow_superuser=True)
    assert "pg_cancel_backend(s.pid)" in allowed
    assert "NOT s.superuser" not in allowed


def test_superuser_sessions_are_skipped_with_a_reason():
    sessions = [
        {"pid": 1, "usename": "app", "superuser": False, "query_preview": "SELECT 1"},
        {"pid": 2, "usename": "postgres", "superuser": True, "query_preview": "SELECT 2"},
    ]
    targets, skipped = split_targets(sessions, allow_superuser=False)
    assert [session["pid"] for session in targets] == [1]
    assert skipped[0]["pid"] == 2 and "allow_superuser" in skipped[0]["reason"]
    targets, skipped = split_targets(sessions, allow_superuser=True)
    assert len(targets) == 2 and skipped == []


def test_preview_reports_who_what_and_how_long():
    entry = preview({"pid": 7, "usename": "app", "duration_seconds": 12.34567, "query_preview": "x" * 300})
    assert entry["user"] == "app"
    assert entry["duration_seconds"] == 12.346
    assert len(entry["query_preview"]) == QUERY_PREVIEW_CHARS
