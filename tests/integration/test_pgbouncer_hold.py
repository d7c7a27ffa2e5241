"""pgbouncer_database state=held against the session lab's PgBouncer.

PAUSE first (it returns at once when the database has no busy server connection, as
after a fence); KILL only when a server connection stays busy past pause_timeout.
state=present then RESUMEs, and clients get through again.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing

import psycopg2
import pytest
from diag_support import run_module
from lablib import wait_until

pytestmark = pytest.mark.lab

DATABASE = "penguinmails_oltp"


def console_args(lab, **extra):
    return dict(
        name=DATABASE,
        pgbouncer_host="127.0.0.1",
        pgbouncer_port=lab.pgbouncer_port,
        pgbouncer_user=lab.credentials["pgbouncer_admin_user"],
        pgbouncer_password=lab.credentials["pgbouncer_admin_password"],
        connect_timeout=3,
        **extra,
    )


def resume(lab):
    primary = lab.primary("oltp")
    result = run_module(
        "pgbouncer_database",
        console_args(lab, ini_path=str(lab.pgbouncer_ini), host=primary.host, port=primary.port),
    )
    assert not result.get("failed"), result
    return result


def paused(lab):
    row = next(row for row in lab.pgbouncer_show("DATABASES") if row["name"] == DATABASE)
    return str(row["paused"]) not in ("0", "")


def sleep_running(lab):
    with closing(lab.connect(lab.primary("oltp"))) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(20)'")
        return cursor.fetchone()[0] > 0


def test_hold_pauses_an_idle_database_and_present_resumes_it(lab):
    held = run_module("pgbouncer_database", console_args(lab, state="held"))
    try:
        assert held["changed"] is True
        assert held["actions"] == ['PAUSE "%s"' % DATABASE]
        assert paused(lab)
        again = run_module("pgbouncer_database", console_args(lab, state="held"))
        assert again["changed"] is False and again["actions"] == []
    finally:
        resumed = resume(lab)
    assert resumed["actions"] == ['RESUME "%s"' % DATABASE]
    assert not paused(lab)
    with lab.connect_pgbouncer(DATABASE) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_hold_kills_when_a_server_connection_stays_busy(lab):
    outcome = {}

    def sleeper():
        conn = lab.connect_pgbouncer(DATABASE)
        started = time.monotonic()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(20)")
            outcome["error"] = None
        except psycopg2.Error as error:
            outcome["error"] = str(error)
        finally:
            outcome["seconds"] = time.monotonic() - started
            conn.close()

    thread = threading.Thread(target=sleeper)
    thread.start()
    assert wait_until(lambda: sleep_running(lab), timeout=30), "the sleep never reached the server"
    try:
        held = run_module("pgbouncer_database", console_args(lab, state="held", pause_timeout=1))
        assert held["changed"] is True
        assert held["actions"][0].startswith('PAUSE "%s" (server connections still open' % DATABASE)
        assert held["actions"][1] == 'KILL "%s"' % DATABASE
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert outcome["error"], "the busy client was not disconnected"
        assert outcome["seconds"] < 10
    finally:
        resume(lab)
        thread.join(timeout=20)
    with lab.connect_pgbouncer(DATABASE) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
