"""pgbouncer_admin against the session lab's PgBouncer (1.18): SHOW first, only the difference changed.

Each test leaves PgBouncer and its ini file as it found them.
"""

from __future__ import annotations

import psycopg2
import pytest
from diag_support import run_module

pytestmark = pytest.mark.lab

DATABASE = "penguinmails_oltp"


def console_args(lab, **extra):
    return dict(
        pgbouncer_host="127.0.0.1",
        pgbouncer_port=lab.pgbouncer_port,
        pgbouncer_user=lab.credentials["pgbouncer_admin_user"],
        pgbouncer_password=lab.credentials["pgbouncer_admin_password"],
        connect_timeout=3,
        **extra,
    )


def live_pool_size(lab):
    return int(next(row for row in lab.pgbouncer_show("DATABASES") if row["name"] == DATABASE)["pool_size"])


def live_setting(lab, key):
    return next(row["value"] for row in lab.pgbouncer_show("CONFIG") if row["key"] == key)


@pytest.fixture
def ini_kept(lab):
    """The ini file's text, put back (with a RELOAD) after the test."""
    before = lab.pgbouncer_ini.read_text()
    yield before
    lab.pgbouncer_ini.write_text(before)
    assert not run_module("pgbouncer_admin", console_args(lab, command="RELOAD")).get("failed")


def test_pool_raise_plans_in_check_mode_then_applies_once(lab, ini_kept):
    before = live_pool_size(lab)
    wanted = before + 7
    args = console_args(
        lab,
        database=DATABASE,
        pool_settings={"pool_size": wanted},
        settings={"reserve_pool_size": 2},
        ini_path=str(lab.pgbouncer_ini),
    )
    planned = run_module("pgbouncer_admin", args, check_mode=True)
    assert planned["changed"] is True and not planned.get("failed"), planned
    assert planned["actions"] == ["rewrote %s" % lab.pgbouncer_ini, "RELOAD"]
    assert planned["msg"].startswith("would run:")
    assert "pool_size=%d" % wanted in planned["diff"]["after"]
    assert lab.pgbouncer_ini.read_text() == ini_kept and live_pool_size(lab) == before

    applied = run_module("pgbouncer_admin", args)
    assert applied["changed"] is True and not applied.get("failed"), applied
    assert applied["pool_before"] == {"pool_size": str(before)} and applied["pool_after"] == {"pool_size": str(wanted)}
    assert live_pool_size(lab) == wanted
    assert live_setting(lab, "reserve_pool_size") == "2"
    assert "pool_size=%d" % wanted in lab.pgbouncer_ini.read_text()
    assert "reserve_pool_size = 2" in lab.pgbouncer_ini.read_text()

    again = run_module("pgbouncer_admin", args)
    assert again["changed"] is False and again["actions"] == [], again
    password = lab.credentials["pgbouncer_admin_password"]
    for result in (planned, applied, again):
        assert password not in result["_stdout"]


def test_set_online_is_idempotent_and_refuses_what_needs_a_restart(lab):
    original = live_setting(lab, "max_client_conn")
    args = console_args(lab, settings={"max_client_conn": int(original) + 1})
    try:
        changed = run_module("pgbouncer_admin", args)
        assert changed["actions"] == ["SET max_client_conn = '%d'" % (int(original) + 1)], changed
        assert live_setting(lab, "max_client_conn") == str(int(original) + 1)
        assert run_module("pgbouncer_admin", args)["changed"] is False
    finally:
        run_module("pgbouncer_admin", console_args(lab, settings={"max_client_conn": original}))
    refused = run_module("pgbouncer_admin", console_args(lab, settings={"listen_port": 1}))
    assert refused["failed"] and "cannot change listen_port online" in refused["msg"]
    odd = run_module("pgbouncer_admin", console_args(lab, settings={"admin_users": "x'; SHUTDOWN; --"}))
    assert odd["failed"] and odd["actions"] == [] and "refusing the value" in odd["msg"]
    assert lab.pgbouncer_show("VERSION")


@pytest.mark.after_pause_tests
def test_pause_resume_reconnect_look_first(lab):
    pause = console_args(lab, command="PAUSE", database=DATABASE)
    try:
        assert run_module("pgbouncer_admin", pause)["actions"] == ['PAUSE "%s"' % DATABASE]
        assert run_module("pgbouncer_admin", pause)["changed"] is False
    finally:
        resumed = run_module("pgbouncer_admin", console_args(lab, command="RESUME", database=DATABASE))
    assert resumed["actions"] == ['RESUME "%s"' % DATABASE]
    with lab.connect_pgbouncer(DATABASE) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1")  # leaves a server connection in the pool
    servers_before = server_pids(lab)
    assert servers_before
    reconnect = console_args(lab, command="RECONNECT", database=DATABASE)
    assert run_module("pgbouncer_admin", reconnect)["actions"] == ['RECONNECT "%s"' % DATABASE]
    waited = run_module("pgbouncer_admin", console_args(lab, command="WAIT_CLOSE", database=DATABASE))
    assert waited["changed"] is False and not waited.get("failed"), waited
    assert waited["actions"] == ['WAIT_CLOSE "%s"' % DATABASE]
    assert not servers_before & server_pids(lab), "RECONNECT and WAIT_CLOSE left old server connections"


def server_pids(lab):
    return {row["remote_pid"] for row in lab.pgbouncer_show("SERVERS") if row["database"] == DATABASE}


def test_kill_client_names_the_version_and_changes_nothing(lab):
    conn = lab.connect_pgbouncer(DATABASE)
    try:
        client = next(row["ptr"] for row in lab.pgbouncer_show("CLIENTS") if row["database"] == DATABASE)
        refused = run_module("pgbouncer_admin", console_args(lab, command="KILL_CLIENT", client=client))
        assert refused["failed"] and refused["changed"] is False
        assert "KILL_CLIENT needs PgBouncer 1.24 or later; this PgBouncer is 1.18" in refused["msg"]
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        conn.close()


def test_unreachable_console_fails_without_the_password(lab):
    result = run_module("pgbouncer_admin", dict(console_args(lab, command="RELOAD"), pgbouncer_port=1))
    assert result["failed"] and "PgBouncer" in result["msg"]
    assert lab.credentials["pgbouncer_admin_password"] not in result["_stdout"]
    with pytest.raises(psycopg2.Error):
        psycopg2.connect(host="127.0.0.1", port=1, dbname="pgbouncer", connect_timeout=1)
