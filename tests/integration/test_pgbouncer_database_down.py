"""pgbouncer_database when PgBouncer does not answer (stopped, or crashed right after KILL).

PgBouncer has crashed on KILL in the field (pgbouncer/pgbouncer#1401). The re-point
must still leave the ini file pointing at the new primary, so PgBouncer serves the
right server once it is started, and say so; a hold has nothing to write and fails.
"""

from __future__ import annotations

import socket

import pytest
from diag_support import run_module

INI = """[databases]
penguinmails_oltp = host=127.0.0.1 port=5401 dbname=penguinmails_oltp pool_size=20

[pgbouncer]
listen_port = 6401
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def args(tmp_path, **extra):
    ini = tmp_path / "pgbouncer.ini"
    if not ini.exists():
        ini.write_text(INI)
    return dict(
        name="penguinmails_oltp",
        pgbouncer_host="127.0.0.1",
        pgbouncer_port=closed_port(),
        pgbouncer_password="admin-secret-1d9",
        connect_timeout=1,
        ini_path=str(ini),
        host="127.0.0.1",
        port=5402,
        **extra,
    )


def test_repoint_rewrites_the_ini_and_fails_saying_so(tmp_path):
    result = run_module("pgbouncer_database", args(tmp_path))
    assert result["failed"] is True
    assert "refused" in result["msg"] and "now points penguinmails_oltp at 127.0.0.1:5402" in result["msg"]
    assert result["changed"] is True
    assert result["actions"] == ["rewrote %s" % (tmp_path / "pgbouncer.ini")]
    assert "host=127.0.0.1 port=5402 dbname=penguinmails_oltp pool_size=20" in (tmp_path / "pgbouncer.ini").read_text()
    assert "admin-secret-1d9" not in result["_stdout"]


def test_repoint_in_check_mode_writes_nothing(tmp_path):
    result = run_module("pgbouncer_database", args(tmp_path), check_mode=True)
    assert result["failed"] is True
    assert result["actions"] == ["rewrote %s" % (tmp_path / "pgbouncer.ini")]
    assert (tmp_path / "pgbouncer.ini").read_text() == INI


def test_an_already_pointed_entry_is_left_alone(tmp_path):
    (tmp_path / "pgbouncer.ini").write_text(INI.replace("port=5401", "port=5402"))
    result = run_module("pgbouncer_database", args(tmp_path))
    assert result["failed"] is True
    assert result["changed"] is False
    assert result["actions"] == []


def test_hold_fails_with_the_connection_error(tmp_path):
    result = run_module(
        "pgbouncer_database",
        {key: value for key, value in args(tmp_path).items() if key not in ("ini_path", "host", "port")}
        | {"state": "held"},
    )
    assert result["failed"] is True
    assert "refused" in result["msg"] and "now points" not in result["msg"]
    assert (tmp_path / "pgbouncer.ini").read_text() == INI


def test_repoint_in_check_mode_says_it_would(tmp_path):
    result = run_module("pgbouncer_database", args(tmp_path), check_mode=True)
    assert "would point penguinmails_oltp at 127.0.0.1:5402" in result["msg"]
    assert "now points" not in result["msg"]


@pytest.mark.parametrize(
    "change",
    [
        {"host": "127.0.0.1\n[pgbouncer]\nauth_type = trust"},
        {"host": "127.0.0.1\rauth_type = trust"},
        {"name": "penguinmails_oltp\nauth_type = trust"},
        {"settings": {"pool_size": "5\n[pgbouncer]\nauth_type = trust"}},
        {"settings": {"auth_type = trust\npool_size": "5"}},
    ],
)
def test_an_injected_line_is_refused_while_pgbouncer_is_down(tmp_path, change):
    result = run_module("pgbouncer_database", args(tmp_path) | change)
    assert result["failed"] is True
    assert "refusing" in result["msg"]
    assert result["changed"] is False and result["actions"] == []
    assert (tmp_path / "pgbouncer.ini").read_text() == INI


def test_a_value_with_separators_is_quoted_not_spliced(tmp_path):
    result = run_module(
        "pgbouncer_database", args(tmp_path, settings={"connect_query": "SELECT 1; SET x = 'y'", "pool_size": 7})
    )
    assert "now points" in result["msg"]
    text = (tmp_path / "pgbouncer.ini").read_text()
    assert "pool_size=7 connect_query='SELECT 1; SET x = ''y'''\n" in text
    assert len(text.splitlines()) == len(INI.splitlines())


def test_entry_passwords_are_masked(tmp_path):
    (tmp_path / "pgbouncer.ini").write_text(INI.replace("pool_size=20", "pool_size=20 password=ini-secret-8812"))
    result = run_module("pgbouncer_database", args(tmp_path))
    assert "ini-secret-8812" not in result["_stdout"]
    assert "password=" in result["entry_before"] and "port=5402" in result["entry_after"]
    assert "password=ini-secret-8812" in (tmp_path / "pgbouncer.ini").read_text()
