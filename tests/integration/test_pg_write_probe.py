"""pg_write_probe against a real PostgreSQL: check mode plans the very statements a normal run sends."""

from __future__ import annotations

import pytest
from diag_support import run_module, throwaway_servers

pytestmark = pytest.mark.lab

TABLE = "diag_write_probe"


@pytest.fixture(scope="module")
def servers():
    with throwaway_servers() as started:
        yield started


def table_exists(servers) -> bool:
    conn = servers.admin_connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", ("public.%s" % TABLE,))
            return cursor.fetchone()[0]
    finally:
        conn.close()


def test_check_mode_writes_nothing_and_returns_the_same_executed_queries(servers):
    args = servers.pg_args(table=TABLE, probe_id="diag-probe")
    planned = run_module("pg_write_probe", args, check_mode=True)
    assert not planned.get("failed"), planned.get("msg")
    assert planned["written"] is False and planned["changed"] is False
    assert not table_exists(servers)

    written = run_module("pg_write_probe", args)
    assert not written.get("failed"), written.get("msg")
    assert written["written"] is True
    assert table_exists(servers)
    assert planned["executed_queries"] == written["executed_queries"]
    assert [text.split(" ", 2)[:2] for text in written["executed_queries"]] == [["CREATE", "TABLE"], ["INSERT", "INTO"]]
    assert "'diag-probe'" in written["executed_queries"][1]
