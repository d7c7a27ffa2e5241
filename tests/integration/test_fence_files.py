"""pg_fence and pg_rejoin, run as modules, against a real server in a throwaway data directory.

Root fences what is the server's and nothing else (an operator's shell sitting in the
data directory survives), and refuses a link the data directory's owner planted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import lablib
import pytest
from diag_support import PG_BIN_CANDIDATES, as_postgres, process_alive, run_module, stop_pid


@pytest.fixture
def server():
    """initdb + a running PostgreSQL owned by postgres; yields (data_dir, postmaster pid)."""
    if not PG_BIN_CANDIDATES:
        lablib.skip_unless_installed(["PostgreSQL server binaries (initdb, pg_ctl)"], "the fenced server")
    pg_bin = PG_BIN_CANDIDATES[0]
    port = lablib.free_port_block(int(os.environ.get("DBOPS_TEST_PORT_BASE", "58000")) + 95, 1)
    root_parent = Path(os.environ.get("DBOPS_TEST_LAB_ROOT", "/var/tmp"))
    root_parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="dbops-fence-", dir=str(root_parent)))
    os.chmod(root, 0o755)
    data = root / "pg"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    try:
        subprocess.run(
            as_postgres([str(pg_bin / "initdb"), "-D", str(data), "--auth=trust", "--no-instructions"]),
            check=True,
            capture_output=True,
        )
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                "listen_addresses = ''\nport = %d\nunix_socket_directories = '%s'\nshared_buffers = 16MB\n"
                % (port, root)
            )
        subprocess.run(
            as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-w", "start"]),
            check=True,
            capture_output=True,
        )
        yield data, int((data / "postmaster.pid").read_text().split()[0])
    finally:
        stop_pid(data / "postmaster.pid")
        shutil.rmtree(root, ignore_errors=True)


def test_fence_stops_the_server_and_spares_a_shell_in_its_data_directory(server):
    data, postmaster = server
    shell = subprocess.Popen(["sleep", "120"], cwd=data)
    try:
        result = run_module("pg_fence", {"data_dir": str(data), "method": "kill"})
        assert result.get("failed") is not True, result
        assert result["fenced"] is True and result["was_running"] is True
        assert result["postmaster_pid"] == postmaster and postmaster in result["processes"]
        assert shell.pid not in result["processes"]
        assert not process_alive(postmaster)
        time.sleep(0.2)
        assert shell.poll() is None, "the operator's shell in the data directory was killed"
        signal_file = (data / "standby.signal").stat()
        assert (signal_file.st_uid, signal_file.st_gid) == (data.stat().st_uid, data.stat().st_gid)
        again = run_module("pg_fence", {"data_dir": str(data)})
        assert again["changed"] is False and again["processes"] == []
        assert "nothing to signal" in again["msg"] and "None" not in again["msg"]
        assert shell.poll() is None
    finally:
        shell.kill()
        shell.wait()


def test_fence_refuses_a_planted_standby_signal_link(server, tmp_path):
    data, postmaster = server
    target = tmp_path / "root-owned"
    target.write_text("precious\n")
    os.chmod(target, 0o644)
    (data / "standby.signal").symlink_to(target)
    if os.geteuid() == 0:
        os.chown(data / "standby.signal", data.stat().st_uid, data.stat().st_gid, follow_symlinks=False)
    result = run_module("pg_fence", {"data_dir": str(data)})
    assert result["failed"] is True and result["fenced"] is False
    assert "standby.signal" in result["msg"] and "symbolic link" in result["msg"]
    assert target.read_text() == "precious\n"
    assert (target.stat().st_uid, target.stat().st_mode & 0o777) == (os.geteuid(), 0o644)
    assert process_alive(postmaster), "nothing is signalled when the fence is refused"


def test_fence_and_rejoin_refuse_a_data_directory_that_is_a_link(server, tmp_path):
    data, postmaster = server
    linked = tmp_path / "linked"
    linked.symlink_to(data)
    fenced = run_module("pg_fence", {"data_dir": str(linked)})
    assert fenced["failed"] is True and "symbolic link" in fenced["msg"]
    assert process_alive(postmaster)
    rejoined = run_module(
        "pg_rejoin",
        {
            "data_dir": str(linked),
            "bin_dir": str(PG_BIN_CANDIDATES[0]),
            "member_name": "oltp-1",
            "replication_conninfo": "user=replicator",
            "login_host": "127.0.0.1",
            "login_port": 1,
            "connect_timeout": 1,
        },
    )
    assert rejoined["failed"] is True and "symbolic link" in rejoined["msg"]
