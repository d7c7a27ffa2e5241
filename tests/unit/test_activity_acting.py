"""pg_activity's acting logic (act_on_sessions) against a fake server: limit, plan vs act, vanished, skipped."""

import datetime

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.activity import (
    SessionFilter,
    SignalRequest,
    act_on_sessions,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams

STARTED = datetime.datetime(2026, 11, 26, 18, 0, tzinfo=datetime.timezone.utc)
PARAMS = ConnectionParams(host="db1", port=5432)
APP_FILTER = SessionFilter(users=["app"])


def session(pid, superuser=False):
    return {"pid": pid, "usename": "app", "backend_start": STARTED, "superuser": superuser, "query_preview": "q"}


class FakeCursor:
    def __init__(self, server):
        self.server = server
        self.description = None
        self.rows = []

    def mogrify(self, text, args):
        return ("%s -- %r" % (text, sorted(args.items()))).encode()

    def execute(self, statement, args=None):
        self.server.sent.append((statement, args))
        if "AS signalled" in statement:
            accepted = [pid for pid in args["target_pids"] if pid not in self.server.gone]
            self.description, self.rows = (("pid",), ("signalled",)), [(pid, True) for pid in accepted]
        elif "FROM pg_stat_activity WHERE (pid, backend_start)" in statement:
            self.description, self.rows = (("pid",),), [(pid,) for pid in self.server.lingering]
        else:
            names = ("pid", "usename", "backend_start", "superuser", "query_preview")
            self.description = tuple((name,) for name in names)
            self.rows = [tuple(row[name] for name in names) for row in self.server.sessions]

    def fetchall(self):
        return self.rows


class FakeServer:
    """Lists `sessions`; accepts signals except for pids in `gone`; `lingering` pids never leave."""

    def __init__(self, sessions, gone=(), lingering=()):
        self.sessions, self.gone, self.lingering = list(sessions), set(gone), list(lingering)
        self.sent = []

    def cursor(self):
        return FakeCursor(self)

    def signals(self):
        return [args for statement, args in self.sent if "AS signalled" in statement]


def act(server, request, check_mode=False, session_filter=APP_FILTER):
    warnings = []
    result = act_on_sessions(server, PARAMS, session_filter, request, check_mode, warnings.append)
    return result, warnings


def test_list_never_sends_a_signal():
    server = FakeServer([session(1), session(2)])
    result, _warnings = act(server, SignalRequest(action="list"))
    assert [row["pid"] for row in result["sessions"]] == [1, 2]
    assert server.signals() == [] and result["changed"] is False


@pytest.mark.parametrize(("count", "limit"), [(25, 20), (3, 1), (2, 2)])
def test_at_most_max_sessions_are_signalled_the_rest_reported(count, limit):
    server = FakeServer([session(pid) for pid in range(1, count + 1)])
    result, warnings = act(server, SignalRequest(action="terminate", max_sessions=limit, wait=False))
    [signal] = server.signals()
    assert signal["target_pids"] == list(range(1, min(count, limit) + 1))
    assert [entry["pid"] for entry in result["acted_on"]] == signal["target_pids"]
    assert [entry["pid"] for entry in result["over_limit"]] == list(range(limit + 1, count + 1))
    assert result["limit_reached"] is (count > limit)
    assert bool(warnings) is (count > limit)


def test_check_mode_plans_the_statement_a_real_run_sends_and_signals_nothing():
    request = SignalRequest(action="cancel")
    planning = FakeServer([session(1), session(2)])
    planned, _warnings = act(planning, request, check_mode=True)
    acting = FakeServer([session(1), session(2)])
    acted, _warnings = act(acting, request)
    assert planning.signals() == []
    assert planned["executed_queries"] == [] and planned["changed"] is True
    assert planned["planned_queries"] == acted["executed_queries"] and len(acted["executed_queries"]) == 1
    assert [entry["pid"] for entry in planned["acted_on"]] == [entry["pid"] for entry in acted["acted_on"]] == [1, 2]


def test_a_session_gone_before_the_signal_is_reported_vanished_not_acted_on():
    server = FakeServer([session(1), session(2)], gone=[2])
    result, _warnings = act(server, SignalRequest(action="terminate", wait=False))
    assert [entry["pid"] for entry in result["acted_on"]] == [1]
    assert result["vanished"] == [2]


def test_superusers_are_skipped_and_alone_signal_nothing():
    server = FakeServer([session(1, superuser=True)])
    result, _warnings = act(server, SignalRequest(action="terminate"))
    assert server.signals() == []
    assert [entry["pid"] for entry in result["skipped"]] == [1]
    assert result["changed"] is False


def test_terminated_sessions_that_linger_are_reported_with_a_warning():
    server = FakeServer([session(1)], lingering=[1])
    result, warnings = act(server, SignalRequest(action="terminate", wait=True, wait_timeout=0.1))
    assert result["still_present"] == [1]
    assert "still present after 0.1 s" in warnings[0]


def test_signal_request_reads_its_module_options():
    options = {"action": "cancel", "allow_superuser": True, "max_sessions": 3, "wait": False, "wait_timeout": 2.5}
    assert SignalRequest.from_module_params(dict(options, users=["app"])) == SignalRequest(**options)


def test_query_previews_of_other_sessions_are_redacted():
    leaking = dict(session(1), query_preview="ALTER ROLE app PASSWORD 'pw-Secret-7'; -- password=pw-Secret-8")
    result, _warnings = act(FakeServer([leaking]), SignalRequest(action="cancel"), check_mode=True)
    assert "Secret" not in str(result)
    assert result["sessions"][0]["query_preview"].startswith("ALTER ROLE app PASSWORD '********'")
