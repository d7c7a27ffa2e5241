"""Pure logic of the connection layer: failure classification, parameters, deadlines."""

import socket
import time

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import postgres
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    classify_failure,
    describe_failure,
    rows_as_dicts,
)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('connection to server at "127.0.0.1", port 5999 failed: Connection refused', "refused"),
        ('FATAL:  password authentication failed for user "app"', "auth"),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "app", database "x"', "auth"),
        ('FATAL:  database "nope" does not exist', "missing_database"),
        ('FATAL:  role "ghost" does not exist', "missing_role"),
        ("FATAL:  the database system is starting up", "starting_up"),
        ("FATAL:  the database system is shutting down", "shutting_down"),
        ("FATAL:  sorry, too many clients already", "too_many_connections"),
        ('could not translate host name "db-x" to address: Name or service not known', "dns"),
        ("timeout expired", "timeout"),
        ("server closed the connection unexpectedly", "network"),
        ("something nobody has seen", "error"),
    ],
)
def test_classify_failure_names_the_kind(message, kind):
    assert classify_failure(message)[0] == kind


def test_failure_message_names_endpoint_and_never_the_password():
    params = ConnectionParams(host="db1", port=6543, user="ops", password="hunter2-secret")
    error = Exception('FATAL:  password authentication failed for user "ops" (tried hunter2-secret)\nDETAIL: x')
    failure = describe_failure(params, "connect", error)
    assert failure.kind == "auth"
    assert "db1:6543" in str(failure)
    assert "hunter2-secret" not in str(failure)
    assert "\n" not in str(failure)


@pytest.mark.parametrize(
    "libpq_message",
    [
        'invalid connection option "x" in "host=db1 password=other-Secret-9 dbname=x"',
        "could not connect: postgresql://ops:other-Secret-9@db1:5432/x?sslpassword=other-Secret-9",
    ],
)
def test_failure_messages_go_through_the_shared_redaction(libpq_message):
    params = ConnectionParams(host="db1", port=5432, user="ops", password="hunter2-secret")
    failure = describe_failure(params, "connect", Exception(libpq_message))
    assert "other-Secret-9" not in str(failure)
    assert "db1:5432" in str(failure)


def test_libpq_kwargs_keep_a_libpq_backstop_and_hide_password_from_repr():
    params = ConnectionParams(
        host="h", port=1, password="pw-xyz", connect_timeout=0.5, target_session_attrs="read-write"
    )
    kwargs = params.libpq_kwargs()
    assert kwargs["connect_timeout"] == postgres.LIBPQ_MIN_CONNECT_TIMEOUT
    assert kwargs["target_session_attrs"] == "read-write"
    assert "pw-xyz" not in repr(params)


def test_unix_socket_overrides_host():
    params = ConnectionParams(host="h", unix_socket="/run/pg", port=5433)
    assert params.libpq_kwargs()["host"] == "/run/pg"
    assert "socket" in params.endpoint


def test_module_params_map_onto_connection_params():
    params = ConnectionParams.from_module_params(
        {
            "login_host": "db",
            "login_port": 5433,
            "login_user": "u",
            "login_password": "p",
            "login_db": "d",
            "connect_timeout": 1.5,
        }
    )
    assert (params.host, params.port, params.user, params.dbname, params.connect_timeout) == ("db", 5433, "u", "d", 1.5)


def test_argument_spec_marks_password_no_log():
    spec = postgres.connection_argument_spec()
    assert spec["login_password"]["no_log"] is True
    assert spec["connect_timeout"]["default"] == 5.0


def test_rows_as_dicts_uses_column_names():
    class FakeCursor:
        description = (("database",), ("cl_active",), ("maxwait",))

        def fetchall(self):
            return [("oltp", 3, 0), ("olap", 1, 7)]

    assert rows_as_dicts(FakeCursor()) == [
        {"database": "oltp", "cl_active": 3, "maxwait": 0},
        {"database": "olap", "cl_active": 1, "maxwait": 7},
    ]


def test_connect_to_silent_listener_returns_within_the_deadline():
    """A socket that accepts and never answers behaves like a SIGSTOPped postmaster."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        params = ConnectionParams(host="127.0.0.1", port=listener.getsockname()[1], connect_timeout=0.4)
        started = time.monotonic()
        with pytest.raises(ConnectionFailure) as caught:
            postgres.connect(params)
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert caught.value.kind == "timeout"
    assert elapsed < 1.5


def test_connect_to_closed_port_is_refused():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectionFailure) as caught:
        postgres.connect(ConnectionParams(host="127.0.0.1", port=port, connect_timeout=1))
    assert caught.value.kind == "refused"
    assert "127.0.0.1:%d" % port in str(caught.value)


class _RecordingCursor:
    def __init__(self, log):
        self.log = log

    def execute(self, statement, args=None):
        self.log.append((statement, args))

    def mogrify(self, text, args):
        return (text % tuple("'%s'" % arg for arg in args)).encode()


class _RecordingConnection:
    def __init__(self):
        self.sent = []

    def cursor(self):
        return _RecordingCursor(self.sent)


@pytest.mark.parametrize(("check_mode", "sent"), [(False, 1), (True, 0)])
def test_statement_runner_plans_in_check_mode_and_records_the_same_text(check_mode, sent):
    conn = _RecordingConnection()
    params = ConnectionParams(host="db1", port=5432)
    runner = postgres.StatementRunner(check_mode)
    runner.run(conn, params, "ALTER SYSTEM SET x = %s", ("secret",), shown_args=("********",), label=True)
    assert runner.executed == ["db1:5432: ALTER SYSTEM SET x = '********'"]
    assert len([entry for entry in conn.sent if entry[0].startswith("ALTER")]) == sent
