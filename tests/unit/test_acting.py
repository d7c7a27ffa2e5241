"""The acting logic of pg_promote, pg_standby_follow and pgbouncer_database, against fake servers."""

from __future__ import annotations

from typing import ClassVar

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import acting, promote, repoint
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionFailure, ConnectionParams


class FakeConnection:
    """Answers statements from a table {statement: row or callable}; records (statement, args, deadline)."""

    def __init__(self, answers, query_timeout=1.0):
        self.answers = answers
        self.operation_timeout = query_timeout
        self.sent = []

    def cursor(self):
        connection = self

        class Cursor:
            row = None

            def execute(self, statement, args=None):
                connection.sent.append((statement, args, connection.operation_timeout))
                answer = connection.answers.get(statement)
                self.row = answer() if callable(answer) else answer

            def fetchone(self):
                return self.row

            def mogrify(self, statement, args):
                return (statement % tuple(repr(arg) if isinstance(arg, str) else arg for arg in args)).encode()

        return Cursor()

    def close(self):
        pass


PARAMS = ConnectionParams(host="10.0.0.2", port=5433, query_timeout=1.0, connect_timeout=1.0)


def promotion(monkeypatch, answers, check_mode=False, sync_names=None, wait_seconds=30):
    connection = FakeConnection(answers)
    monkeypatch.setattr(acting, "connect", lambda params: connection)
    ticks = iter(range(1000))
    flow = promote.Promotion(
        PARAMS, wait_seconds, 2.0, sync_names, check_mode, clock=lambda: next(ticks) * 0.5, sleep=lambda s: None
    )
    return flow, connection


def test_only_the_promote_call_gets_the_promote_wait(monkeypatch):
    state = {"recovery": True}

    def promoted():
        state["recovery"] = False
        return (True,)

    flow, connection = promotion(
        monkeypatch,
        {
            promote.IN_RECOVERY: lambda: (state["recovery"],),
            promote.PROMOTE: promoted,
            promote.SHOW_SYNC_NAMES: ("ANY 1 (db_1, db_3)",),
            promote.TIMELINE: (2,),
        },
        sync_names="ANY 1 (db_3)",
    )
    result = flow.run()
    deadlines = {statement: deadline for statement, _args, deadline in connection.sent}
    assert deadlines.pop(promote.PROMOTE) == 35.0
    assert set(deadlines.values()) == {1.0}
    assert result["executed_queries"] == [
        "SELECT pg_promote(true, 30)",
        "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (db_3)'",
        "SELECT pg_reload_conf()",
    ]
    assert result["state"] == "promoted" and result["timeline_id"] == 2


def test_promote_deadline_is_never_below_query_timeout():
    assert promote.promote_deadline(60.0, 30) == 60.0
    assert promote.promote_deadline(1.0, 30) == 35.0


def test_a_promotion_that_does_not_finish_is_reported_unknown(monkeypatch):
    flow, _connection = promotion(monkeypatch, {promote.IN_RECOVERY: (True,), promote.PROMOTE: (False,)})
    with pytest.raises(ActionFailed, match="state unknown") as failed:
        flow.run()
    assert failed.value.result["changed"] is True and failed.value.result["promoted"] is False


def test_check_mode_executes_nothing_but_plans_the_same_text(monkeypatch):
    flow, connection = promotion(
        monkeypatch,
        {promote.IN_RECOVERY: (True,), promote.SHOW_SYNC_NAMES: ("ANY 1 (db_1)",)},
        check_mode=True,
        sync_names="ANY 1 (db_3)",
    )
    result = flow.run()
    assert result["state"] == "would_promote" and result["changed"] is True
    assert result["executed_queries"][0] == "SELECT pg_promote(true, 30)"
    assert [statement for statement, _args, _deadline in connection.sent] == [
        promote.IN_RECOVERY,
        promote.SHOW_SYNC_NAMES,
    ]


def test_already_primary_in_check_mode_changes_no_setting(monkeypatch):
    flow, connection = promotion(
        monkeypatch,
        {promote.IN_RECOVERY: (False,), promote.SHOW_SYNC_NAMES: ("",), promote.TIMELINE: (3,)},
        check_mode=True,
        sync_names="ANY 1 (db_3)",
    )
    result = flow.run()
    assert result["changed"] is True and result["state"] == "already_primary"
    assert promote.SET_SYNC_NAMES not in [statement for statement, _args, _deadline in connection.sent]


class FakeConsole:
    """PgBouncer's admin console: one database, PAUSE that may time out, a command log."""

    log: ClassVar[list] = []
    paused = False
    pause_times_out = False
    reachable = True

    def __init__(self, params):
        self.params = params

    def __enter__(self):
        if not FakeConsole.reachable:
            raise ConnectionFailure("refused", "connect to PgBouncer at 127.0.0.1:6432 failed (refused)")
        return self

    def __exit__(self, *exc_info):
        pass

    def show(self, subject):
        return [{"name": "penguinmails_oltp", "paused": 1 if FakeConsole.paused else 0}]

    def command(self, verb, database=None):
        if verb == "PAUSE" and FakeConsole.pause_times_out:
            raise ConnectionFailure("timeout", "query to PgBouncer failed (timeout)")
        FakeConsole.log.append((verb, database))
        FakeConsole.paused = verb == "PAUSE" or (FakeConsole.paused and verb != "RESUME")


@pytest.fixture
def console(monkeypatch):
    monkeypatch.setattr(repoint, "AdminConsole", FakeConsole)
    FakeConsole.log, FakeConsole.paused, FakeConsole.pause_times_out, FakeConsole.reachable = [], False, False, True
    return FakeConsole


INI = "[databases]\npenguinmails_oltp = host=127.0.0.1 port=5401 password=s3cret\n\n[pgbouncer]\nlisten_port = 6401\n"


def entry(tmp_path, check_mode=False, **options):
    ini = tmp_path / "pgbouncer.ini"
    if not ini.exists():
        ini.write_text(INI)
    defaults = {
        "name": "penguinmails_oltp",
        "ini_path": str(ini),
        "host": "127.0.0.1",
        "port": 5402,
        "settings": {},
        "pause_timeout": 0.5,
    }
    defaults.update(options)
    return repoint.PgBouncerEntry(defaults, check_mode)


def test_hold_pauses_once(console, tmp_path):
    assert entry(tmp_path).run(PARAMS, "held")["actions"] == ['PAUSE "penguinmails_oltp"']
    again = entry(tmp_path).run(PARAMS, "held")
    assert again["changed"] is False and again["actions"] == []


def test_hold_falls_back_to_kill_when_pause_times_out(console, tmp_path):
    console.pause_times_out = True
    result = entry(tmp_path).run(PARAMS, "held")
    assert result["actions"][0].startswith('PAUSE "penguinmails_oltp" (server connections still open after 0.5 s')
    assert result["actions"][1] == 'KILL "penguinmails_oltp"'


def test_point_rewrites_reloads_resumes_and_masks(console, tmp_path):
    console.paused = True
    result = entry(tmp_path).run(PARAMS, "present")
    assert result["actions"] == ["rewrote %s" % (tmp_path / "pgbouncer.ini"), "RELOAD", 'RESUME "penguinmails_oltp"']
    assert console.log == [("RELOAD", None), ("RESUME", "penguinmails_oltp")]
    assert "port=5402" in (tmp_path / "pgbouncer.ini").read_text()
    shown = str({key: result[key] for key in ("entry_before", "entry_after", "diff")})
    assert "s3cret" not in shown and "port=5402" in result["entry_after"]


def test_point_in_check_mode_writes_nothing(console, tmp_path):
    result = entry(tmp_path, check_mode=True).run(PARAMS, "present")
    assert result["changed"] is True and console.log == []
    assert (tmp_path / "pgbouncer.ini").read_text() == INI


@pytest.mark.parametrize("check_mode", [False, True])
def test_pgbouncer_down_still_points_the_file_or_says_it_would(console, tmp_path, check_mode):
    console.reachable = False
    with pytest.raises(ActionFailed) as failed:
        entry(tmp_path, check_mode=check_mode).run(PARAMS, "present")
    message = str(failed.value)
    assert ("would point" in message) == check_mode and ("now points" in message) != check_mode
    assert ("port=5402" in (tmp_path / "pgbouncer.ini").read_text()) != check_mode


@pytest.mark.parametrize("reachable", [True, False])
@pytest.mark.parametrize(
    "options",
    [
        {"host": "127.0.0.1\n[pgbouncer]\nauth_type = trust"},
        {"settings": {"pool_size": "5\nauth_type = trust"}},
        {"name": "penguinmails_oltp\nauth_type"},
    ],
)
def test_injection_is_refused_on_every_path(console, tmp_path, reachable, options):
    console.reachable = reachable
    with pytest.raises(ActionFailed, match="refusing"):
        entry(tmp_path, **options).run(PARAMS, "present")
    assert (tmp_path / "pgbouncer.ini").read_text() == INI


def test_a_linked_ini_file_is_refused(console, tmp_path):
    real = tmp_path / "elsewhere.ini"
    real.write_text(INI)
    (tmp_path / "pgbouncer.ini").symlink_to(real)
    with pytest.raises(ActionFailed, match="symbolic link"):
        entry(tmp_path).run(PARAMS, "present")
    assert real.read_text() == INI


class FakeServers:
    """connect(params) -> a fake connection per endpoint."""

    def __init__(self, answers_by_port):
        self.connections = {port: FakeConnection(answers) for port, answers in answers_by_port.items()}

    def connect(self, params):
        return self.connections[params.port]


def follower_servers(paused=False, conninfo="host=10.0.0.1 port=5432 user=rep password=pw application_name=db_3"):
    return FakeServers(
        {
            5433: {"SELECT pg_is_in_recovery()": (False,), repoint.SLOT_EXISTS: None},
            5434: {repoint.CURRENT: (conninfo, "", "latest", True, paused)},
        }
    )


def follow(monkeypatch, servers, check_mode=False):
    monkeypatch.setattr(acting, "connect", servers.connect)
    options = {"primary_host": "10.0.0.2", "primary_port": 5433, "resume_replay": True}
    return repoint.Follower(PARAMS, options, check_mode).run(
        [{"name": "db-3", "login_host": "10.0.0.3", "login_port": 5434}], create_slots=True
    )


def test_follower_creates_the_slot_and_points_the_standby(monkeypatch):
    servers = follower_servers(paused=True)
    result = follow(monkeypatch, servers)
    assert result["slots_created"] == ["db_3"]
    assert result["executed_queries"][0] == "10.0.0.2:5433: SELECT pg_create_physical_replication_slot('db_3', true)"
    assert any("ALTER SYSTEM SET primary_conninfo" in text for text in result["executed_queries"])
    assert result["executed_queries"][-1] == "10.0.0.3:5434: SELECT pg_wal_replay_resume()"
    assert "pw" not in str(result["executed_queries"]) + str(result["standbys"]) + str(result["diff"])
    sent = [statement for statement, _args, _deadline in servers.connections[5434].sent]
    assert repoint.SET_CONNINFO in sent and repoint.RELOAD in sent


def test_follower_in_check_mode_plans_the_same_and_changes_nothing(monkeypatch):
    planned = follow(monkeypatch, follower_servers(), check_mode=True)
    servers = follower_servers()
    done = follow(monkeypatch, servers)
    assert planned["executed_queries"] == done["executed_queries"]
    check_servers = follower_servers()
    follow(monkeypatch, check_servers, check_mode=True)
    sent = [statement for connection in check_servers.connections.values() for statement, _a, _d in connection.sent]
    assert repoint.SET_CONNINFO not in sent and repoint.CREATE_SLOT not in sent


def test_follower_refuses_a_primary(monkeypatch):
    servers = follower_servers()
    servers.connections[5434].answers[repoint.CURRENT] = ("", "", "latest", False, False)
    with pytest.raises(ActionFailed, match="not in recovery"):
        follow(monkeypatch, servers)
