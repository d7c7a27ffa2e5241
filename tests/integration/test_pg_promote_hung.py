"""pg_promote against a hung server: statements are bounded by query_timeout, not by the promote wait.

The server is reached through PgBouncer, which answers the login itself (from the
pool it already holds) while every process of the PostgreSQL server behind it is
SIGSTOPped: the connection opens, the first statement never gets an answer. Before
the fix every statement had the promote wait (wait_seconds + 5 = 35 s) as its deadline.
"""

from __future__ import annotations

import time

import lablib
from diag_support import run_module, throwaway_servers


def data_directory(servers) -> str:
    conn = servers.admin_connect(dbname="postgres")
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW data_directory")
            return cursor.fetchone()[0]
    finally:
        conn.close()


def test_a_hung_server_costs_query_timeout_not_the_promote_wait():
    with throwaway_servers() as servers:
        warm = servers.app_connect(via_pgbouncer=True)
        with warm.cursor() as cursor:
            cursor.execute("SELECT 1")
        warm.close()
        data_dir = data_directory(servers)
        # A backend that exits meanwhile (reaped once its postmaster runs again) is skipped, not an error.
        pids = lablib.freeze_server(data_dir)
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
            lablib.thaw_server(data_dir, pids)
    assert result["failed"] is True
    assert "(timeout)" in result["msg"] and "no answer within 1.0 s" in result["msg"], result["msg"]
    assert result["changed"] is False and result["executed_queries"] == []
    assert elapsed < 10, "a hung server took %.1f s" % elapsed
    assert servers.app_password not in result["_stdout"]
