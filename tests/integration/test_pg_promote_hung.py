"""pg_promote against a hung server: statements are bounded by query_timeout, not by the promote wait.

The server is reached through PgBouncer, which answers the login itself (from the
pool it already holds) while every process of the PostgreSQL server behind it is
SIGSTOPped: the connection opens, the first statement never gets an answer. Before
the fix every statement had the promote wait (wait_seconds + 5 = 35 s) as its deadline.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from diag_support import run_module, throwaway_servers


def postmaster_pid(servers) -> int:
    conn = servers.admin_connect(dbname="postgres")
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW data_directory")
            data_directory = cursor.fetchone()[0]
    finally:
        conn.close()
    return int((Path(data_directory) / "postmaster.pid").read_text().split()[0])


def server_pids(postmaster: int) -> list:
    children = [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and Path("/proc/%s/stat" % entry).exists() and parent_of(int(entry)) == postmaster
    ]
    return [postmaster, *children]


def parent_of(pid: int) -> int:
    try:
        return int(Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError):
        return 0


def test_a_hung_server_costs_query_timeout_not_the_promote_wait():
    with throwaway_servers() as servers:
        warm = servers.app_connect(via_pgbouncer=True)
        with warm.cursor() as cursor:
            cursor.execute("SELECT 1")
        warm.close()
        pids = server_pids(postmaster_pid(servers))
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            result = run_module(
                "pg_promote",
                {
                    "login_host": servers.host,
                    "login_port": servers.pgbouncer_port,
                    "login_user": servers.app_user,
                    "login_password": servers.app_password,
                    "login_db": servers.database,
                    "connect_timeout": 3,
                    "query_timeout": 1,
                    "wait_seconds": 30,
                },
            )
            elapsed = time.monotonic() - started
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
    assert result["failed"] is True
    assert "(timeout)" in result["msg"] and "no answer within 1.0 s" in result["msg"], result["msg"]
    assert result["changed"] is False and result["executed_queries"] == []
    assert elapsed < 10, "a hung server took %.1f s" % elapsed
    assert servers.app_password not in result["_stdout"]
