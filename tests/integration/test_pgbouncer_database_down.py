"""pgbouncer_database when PgBouncer does not answer (stopped, or crashed right after KILL).

PgBouncer has crashed on KILL in the field (pgbouncer/pgbouncer#1401). The re-point
must still leave the ini file pointing at the new primary, so PgBouncer serves the
right server once it is started, and say so; a hold has nothing to write and fails.
"""

from __future__ import annotations

import socket

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
