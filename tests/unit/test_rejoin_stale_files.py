"""remove_stale_pid_file: a dead (or zombie) postmaster's pid file and socket lock file go, a live one's stay."""

from __future__ import annotations

import os

from ansible_collections.penguinmails.dbops.plugins.module_utils.rejoin import remove_stale_pid_file


def dead_pid() -> int:
    pid = 4_000_000
    while os.path.exists("/proc/%d" % pid):
        pid += 1
    return pid


def lay_out(tmp_path, pid: int, lock_pid: int):
    data_dir = tmp_path / "data"
    socket_dir = tmp_path / "run"
    data_dir.mkdir()
    socket_dir.mkdir()
    (data_dir / "postmaster.pid").write_text(
        "%d\n%s\n1764190000\n5701\n%s\n127.0.0.1\n  5701001     32769\nready   \n" % (pid, data_dir, socket_dir)
    )
    lock = socket_dir / ".s.PGSQL.5701.lock"
    lock.write_text("%d\n%s\n1764190000\n5701\n%s\n" % (lock_pid, data_dir, socket_dir))
    return data_dir, lock


def test_a_dead_postmasters_pid_and_socket_lock_files_are_removed(tmp_path):
    pid = dead_pid()
    data_dir, lock = lay_out(tmp_path, pid, pid)
    stale, removed = remove_stale_pid_file(str(data_dir))
    assert stale == pid
    assert removed == [str(data_dir / "postmaster.pid"), str(lock)]
    assert not lock.exists() and not (data_dir / "postmaster.pid").exists()


def test_a_lock_file_of_another_process_is_kept(tmp_path):
    pid = dead_pid()
    data_dir, lock = lay_out(tmp_path, pid, os.getpid())
    stale, removed = remove_stale_pid_file(str(data_dir))
    assert stale == pid
    assert removed == [str(data_dir / "postmaster.pid")]
    assert lock.exists()


def test_a_live_postmasters_files_are_kept(tmp_path):
    data_dir, lock = lay_out(tmp_path, os.getpid(), os.getpid())
    assert remove_stale_pid_file(str(data_dir)) == (None, [])
    assert lock.exists() and (data_dir / "postmaster.pid").exists()
