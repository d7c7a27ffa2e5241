"""pg_activity's filters and statements, without a server."""

import datetime

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.activity import (
    QUERY_PREVIEW_CHARS,
    SessionFilter,
    covers_every_address,
    filter_conditions,
    list_statement,
    preview,
    signal_refusal,
    signal_statement,
    split_targets,
    within_limit,
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
    # blocking=false matches every session that blocks nobody, i.e. nearly all: not a filter
    assert not SessionFilter(blocking=False).narrows()
    assert SessionFilter(blocking=True).narrows()
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


# --------------------------------------------------------------------------- the guard against "every session"

NO_REAL_FILTER = [
    SessionFilter(),
    SessionFilter(states=[]),
    SessionFilter(min_duration=0),
    SessionFilter(min_duration=0.0001),
    SessionFilter(min_duration=0.999),
    SessionFilter(client_addresses=["0.0.0.0/0"]),
    SessionFilter(client_addresses=["::/0"]),
    SessionFilter(client_addresses=["0.0.0.0/1", "128.0.0.0/1"]),
    SessionFilter(client_addresses=["10.0.0.0/8", "0.0.0.0/0"]),
    SessionFilter(blocked=False),
    SessionFilter(blocking=False),
    SessionFilter(blocked=False, blocking=False, min_duration=0.5, client_addresses=["::/0"]),
    SessionFilter(users=[""]),
    SessionFilter(application_names=["  "], databases=[""]),
]


@pytest.mark.parametrize("session_filter", NO_REAL_FILTER)
@pytest.mark.parametrize("action", ["cancel", "terminate"])
def test_filters_that_match_every_session_do_not_allow_a_signal(session_filter, action):
    assert session_filter.narrowing_filters() == []
    refusal = signal_refusal(session_filter, action, allow_all=False)
    assert refusal.startswith("refusing to %s every session in states " % action)
    assert "allow_all=true" in refusal
    assert signal_refusal(session_filter, action, allow_all=True) is None
    assert signal_refusal(session_filter, "list", allow_all=False) is None


@pytest.mark.parametrize(
    ("session_filter", "named"),
    [
        (SessionFilter(min_duration=0.0001), "min_duration=0.0001 (under 1.0 s)"),
        (SessionFilter(client_addresses=["0.0.0.0/0"]), "client_addresses=0.0.0.0/0 (every address)"),
        (SessionFilter(blocked=False), "blocked=false"),
        (SessionFilter(users=[""]), "users with only empty names"),
    ],
)
def test_the_refusal_names_the_filters_that_do_not_count(session_filter, named):
    assert named in signal_refusal(session_filter, "terminate", allow_all=False)


@pytest.mark.parametrize(
    ("session_filter", "narrowing"),
    [
        (SessionFilter(min_duration=1), ["min_duration"]),
        (SessionFilter(min_duration=300, users=["app"]), ["users", "min_duration"]),
        (SessionFilter(client_addresses=["10.0.0.0/8"]), ["client_addresses"]),
        (SessionFilter(client_addresses=["0.0.0.0/1"]), ["client_addresses"]),
        (SessionFilter(client_addresses=["192.0.2.7"]), ["client_addresses"]),
        (SessionFilter(blocked=True, blocking=False), ["blocked"]),
        (SessionFilter(users=["", "app"]), ["users"]),
        (SessionFilter(wait_event_types=["Lock"]), ["wait_event_types"]),
        (SessionFilter(pids=[42]), ["pids"]),
    ],
)
def test_real_filters_allow_a_signal(session_filter, narrowing):
    assert session_filter.narrowing_filters() == narrowing
    assert signal_refusal(session_filter, "terminate", allow_all=False) is None


@pytest.mark.parametrize(
    ("addresses", "everything"),
    [
        (["0.0.0.0/0"], True),
        (["::/0"], True),
        (["0.0.0.0/1", "128.0.0.0/1"], True),
        (["0.0.0.0/1"], False),
        (["10.0.0.0/8", "fd00::/8"], False),
        (["127.0.0.1"], False),
    ],
)
def test_covers_every_address(addresses, everything):
    assert covers_every_address(addresses) is everything


def test_a_client_address_that_is_not_one_is_refused_before_any_connection():
    with pytest.raises(ValueError, match="client_addresses: 'db-1' is not an IP address or CIDR range"):
        SessionFilter(client_addresses=["db-1"]).validate()


@pytest.mark.parametrize(
    ("count", "limit", "acted", "left"), [(3, 20, 3, 0), (20, 20, 20, 0), (25, 20, 20, 5), (5, 1, 1, 4)]
)
def test_at_most_max_sessions_are_acted_on_oldest_first(count, limit, acted, left):
    targets = [{"pid": pid} for pid in range(count)]
    chosen, over = within_limit(targets, limit)
    assert [target["pid"] for target in chosen] == list(range(acted))
    assert [target["pid"] for target in over] == list(range(acted, acted + left))
