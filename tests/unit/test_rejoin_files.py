"""pg_rejoin's files and commands: quoting into postgresql.auto.conf and libpq, no link followed, the flow."""

from __future__ import annotations

import os

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import acting, rejoin
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams
from ansible_collections.penguinmails.dbops.plugins.module_utils.safe_files import LinkRefused
from psycopg2.extensions import parse_dsn


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("host=a port=1", "'host=a port=1'"),
        ("it's", "'it''s'"),
        ("back\\slash", "'back\\\\slash'"),
        ("", "''"),
    ],
)
def test_quote_setting(value, quoted):
    assert rejoin.quote_setting(value) == quoted


@pytest.mark.parametrize("value", ["a\nrestore_command = 'rm -rf /'", "a\rb", "a\0b", "\n"])
def test_quote_setting_refuses_line_breaks_and_nul(value):
    with pytest.raises(ValueError, match="line break or NUL"):
        rejoin.quote_setting(value)


def test_set_auto_conf_replaces_only_the_managed_settings():
    text = "# Do not edit\nwork_mem = '4MB'\nprimary_conninfo = 'host=old'\nprimary_slot_name = 'x'\n"
    wanted = rejoin.set_auto_conf(text, {"primary_conninfo": "host=new port=5", "primary_slot_name": "db_1"})
    assert wanted == (
        "# Do not edit\nwork_mem = '4MB'\nprimary_conninfo = 'host=new port=5'\nprimary_slot_name = 'db_1'\n"
    )


@pytest.fixture
def data_dir(tmp_path):
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "PG_VERSION").write_text("15\n")
    (directory / "postgresql.auto.conf").write_text("work_mem = '4MB'\n")
    if os.geteuid() == 0:
        os.chown(directory, 4321, 4321)
    return directory


@pytest.fixture
def precious(tmp_path):
    target = tmp_path / "precious"
    target.write_text("precious\n")
    os.chmod(target, 0o644)
    return target


def assert_untouched(target):
    assert target.read_text() == "precious\n"
    assert target.stat().st_mode & 0o777 == 0o644 and target.stat().st_uid == os.geteuid()


def test_configure_standby_writes_owned_files(data_dir):
    rejoin.configure_standby(str(data_dir), "host=a port=1", "db_1")
    assert "primary_conninfo = 'host=a port=1'" in (data_dir / "postgresql.auto.conf").read_text()
    assert "work_mem = '4MB'" in (data_dir / "postgresql.auto.conf").read_text()
    for name in ("postgresql.auto.conf", "standby.signal"):
        info = (data_dir / name).stat()
        assert (info.st_uid, info.st_mode & 0o777) == (data_dir.stat().st_uid, 0o600)


@pytest.mark.parametrize("planted", ["postgresql.auto.conf", "standby.signal"])
def test_configure_standby_refuses_a_planted_link(data_dir, precious, planted):
    (data_dir / planted).unlink(missing_ok=True)
    (data_dir / planted).symlink_to(precious)
    with pytest.raises(LinkRefused, match="symbolic link"):
        rejoin.configure_standby(str(data_dir), "host=a port=1", "db_1")
    assert_untouched(precious)


@pytest.mark.parametrize("planted", ["postgresql.conf", "pg_hba.conf"])
def test_save_config_refuses_to_read_through_a_link(data_dir, precious, planted):
    (data_dir / planted).symlink_to(precious)
    with pytest.raises(LinkRefused):
        rejoin.save_config(str(data_dir))


def test_restore_config_replaces_a_link_planted_after_the_rewind_refusing_it(data_dir, precious):
    saved = rejoin.save_config(str(data_dir))
    (data_dir / "postgresql.auto.conf").unlink()
    (data_dir / "postgresql.auto.conf").symlink_to(precious)
    with pytest.raises(LinkRefused):
        rejoin.restore_config(str(data_dir), saved)
    assert_untouched(precious)


def test_signal_files_that_are_links_are_removed_not_followed(data_dir, precious):
    (data_dir / "standby.signal").symlink_to(precious)
    assert rejoin.remove_signal_files(str(data_dir)) == ["standby.signal"]
    assert_untouched(precious)


class FakeCursor:
    def __init__(self, row):
        self.row = row

    def fetchone(self):
        return self.row


class FakeConnection:
    """Answers the few statements Rejoin sends to the primary."""

    def __init__(self, streaming_after_start=True):
        self.statements = []
        self.started = False
        self.streaming_after_start = streaming_after_start

    def cursor(self):
        connection = self

        class Cursor:
            def execute(self, statement, args=None):
                connection.statements.append((statement, args))
                self.row = connection.answer(statement)

            def fetchone(self):
                return self.row

            def mogrify(self, statement, args):
                return (statement % tuple("'%s'" % arg for arg in args)).encode()

        return Cursor()

    def answer(self, statement):
        if statement == "SELECT pg_is_in_recovery()":
            return (False,)
        if statement == rejoin.STREAMING:
            return ("streaming",) if self.started and self.streaming_after_start else None
        return None

    def close(self):
        pass


def make_rejoin(monkeypatch, data_dir, rewind_rc=0, check_mode=False, **options):
    connection = FakeConnection()
    commands = []

    def run_command(argv, environ_update=None, cwd=None):
        commands.append(argv)
        if any(word.endswith("pg_ctl") for word in argv):
            connection.started = True
            return 0, "", ""
        if any(word.endswith("pg_rewind") for word in argv):
            return rewind_rc, "pg_rewind: Done!\n", ""
        return 0, "", ""

    monkeypatch.setattr(acting, "connect", lambda params: connection)
    params = ConnectionParams(host="10.0.0.2", port=5433, user="admin user", password="s3cret")
    defaults = {
        "data_dir": str(data_dir),
        "bin_dir": "/usr/lib/postgresql/15/bin",
        "member_name": "oltp-1",
        "replication_conninfo": "user=replicator passfile='/var/lib/postgresql/.pgpass'",
        "allow_reclone": False,
        "log_file": None,
        "run_as": "postgres",
        "start_timeout": 1,
    }
    defaults.update(options)
    return rejoin.Rejoin(params, defaults, run_command, check_mode), connection, commands


def test_a_failed_rewind_without_reclone_leaves_standby_signal_and_fails(monkeypatch, data_dir):
    flow, _connection, _commands = make_rejoin(monkeypatch, data_dir, rewind_rc=1)
    with pytest.raises(ActionFailed, match=r"pg_rewind of .* failed") as failed:
        flow.run()
    assert (data_dir / "standby.signal").exists()
    assert failed.value.result["tool_output"]


def test_rejoin_rewinds_configures_and_starts(monkeypatch, data_dir):
    flow, _connection, commands = make_rejoin(monkeypatch, data_dir)
    result = flow.run()
    assert result["method"] == "rewind" and result["streaming"] is True and result["changed"] is True
    assert result["executed_queries"] == ["CHECKPOINT", "SELECT pg_create_physical_replication_slot('oltp_1', true)"]
    rewind = next(argv for argv in commands if argv[-5].endswith("pg_rewind"))
    # the source connection string quotes the user name that holds a space: it cannot add settings
    assert parse_dsn(rewind[-1]) == {"host": "10.0.0.2", "port": "5433", "user": "admin user", "dbname": "postgres"}
    assert "s3cret" not in " ".join(" ".join(argv) for argv in commands)
    auto_conf = (data_dir / "postgresql.auto.conf").read_text()
    assert "primary_slot_name = 'oltp_1'" in auto_conf
    assert (data_dir / "standby.signal").exists()


def test_rejoin_refuses_a_planted_auto_conf_link_and_says_so(monkeypatch, data_dir, precious):
    flow, _connection, _commands = make_rejoin(monkeypatch, data_dir)
    (data_dir / "postgresql.auto.conf").unlink()
    (data_dir / "postgresql.auto.conf").symlink_to(precious)
    with pytest.raises(ActionFailed, match=r"postgresql\.auto\.conf: it is a symbolic link") as failed:
        flow.run()
    assert failed.value.result["changed"] is True
    assert_untouched(precious)


def test_rejoin_refuses_a_data_directory_that_is_a_link(monkeypatch, data_dir, tmp_path):
    (tmp_path / "linked").symlink_to(data_dir)
    with pytest.raises(LinkRefused):
        make_rejoin(monkeypatch, tmp_path / "linked")


def test_a_user_value_cannot_add_a_setting_to_primary_conninfo(monkeypatch, data_dir):
    flow, _connection, _commands = make_rejoin(
        monkeypatch, data_dir, replication_conninfo="user='rep sslmode=disable' passfile=/p"
    )
    settings = parse_dsn(flow.primary_conninfo())
    assert settings["user"] == "rep sslmode=disable"
    assert "sslmode" not in settings


def test_a_newline_in_the_replication_conninfo_is_refused(monkeypatch, data_dir):
    flow, _connection, _commands = make_rejoin(monkeypatch, data_dir, replication_conninfo="user='rep\nx' passfile=/p")
    with pytest.raises(ActionFailed, match="line break or NUL"):
        flow.run()
    assert "\nx" not in (data_dir / "postgresql.auto.conf").read_text()


def test_check_mode_plans_and_touches_nothing(monkeypatch, data_dir):
    flow, _connection, commands = make_rejoin(monkeypatch, data_dir, check_mode=True)
    before = sorted(os.listdir(data_dir))
    result = flow.run()
    assert result["changed"] is True and commands == []
    assert sorted(os.listdir(data_dir)) == before
    assert any(action.startswith("pg_rewind") for action in result["actions"])


def test_a_refused_value_is_not_repeated_in_the_message(monkeypatch, data_dir):
    flow, _connection, _commands = make_rejoin(
        monkeypatch, data_dir, replication_conninfo="user=rep password='pw-8812\nx'"
    )
    with pytest.raises(ActionFailed) as failed:
        flow.run()
    assert "pw-8812" not in str(failed.value) + str(failed.value.result)


@pytest.mark.parametrize(
    ("output", "words"),
    [
        (
            'pg_rewind: error: could not open file "/srv/pg/data/pg_wal/000000010000000000000003": '
            "No such file or directory",
            "no longer holds the WAL",
        ),
        ("pg_rewind: error: could not find previous WAL record at 0/3000060", "cannot find where they diverged"),
        (
            'pg_rewind: error: target server needs to use either data checksums or "wal_log_hints = on"',
            "wal_log_hints=on",
        ),
        (
            'pg_rewind: error: could not connect to server: connection to server at "198.18.0.12", port 5432 '
            "failed: Connection timed out",
            "cannot connect to the new primary",
        ),
        ("pg_rewind: fatal: target server must be shut down cleanly", "not shut down cleanly"),
        ("pg_rewind: error: something new", None),
        ("", None),
    ],
)
def test_rewind_failure_reason(output, words):
    reason = rejoin.rewind_failure_reason(output)
    if words is None:
        assert reason is None
    else:
        assert words in reason
