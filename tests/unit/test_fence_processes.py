"""Fencing signals only the server's processes (postmaster.pid, its children) and judges liveness from /proc."""

import os
import shutil
import signal
import subprocess
import time

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import fence
from ansible_collections.penguinmails.dbops.plugins.module_utils.safe_files import LinkRefused


def spawn_in(directory, program_dir):
    """A process named postgres (a copy of sleep) working in directory, named by its postmaster.pid."""
    program = program_dir / "postgres"
    shutil.copy(shutil.which("sleep"), program)
    worker = subprocess.Popen([str(program), "60"], cwd=directory)
    (directory / "postmaster.pid").write_text("%d\n%s\n" % (worker.pid, directory))
    return worker


def test_processes_are_found_by_cwd_and_stopped_ones_mean_hung(tmp_path):
    data_dir, program_dir = tmp_path / "data", tmp_path / "bin"
    data_dir.mkdir()
    program_dir.mkdir()
    (data_dir / "PG_VERSION").write_text("15\n")
    worker = spawn_in(data_dir, program_dir)
    tmp_path = data_dir
    try:
        time.sleep(0.2)
        assert worker.pid in fence.server_processes(str(tmp_path))
        os.kill(worker.pid, signal.SIGSTOP)
        time.sleep(0.1)
        plan = fence.plan_fence(str(tmp_path))
        assert plan.hung
        assert plan.method == "kill"
        assert any("SIGKILL" in action for action in fence.describe_plan(plan))
        fence.stop_processes(plan, stop_timeout=1)
        worker.wait(timeout=5)
        assert fence.server_processes(str(tmp_path)) == {}
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_zombie_is_not_alive(tmp_path):
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while fence.process_state(child.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert fence.process_state(child.pid) == "Z"
        assert not fence.is_alive(child.pid)
    finally:
        child.wait()
    assert fence.process_state(child.pid) is None


def test_nothing_running_plans_only_the_signal_file(tmp_path):
    plan = fence.plan_fence(str(tmp_path))
    assert not plan.running
    assert plan.write_standby_signal
    fence.write_standby_signal(str(tmp_path))
    assert not fence.plan_fence(str(tmp_path)).changes_anything


def fake_process(proc, pid, command, cwd, ppid=1, state="S"):
    """One /proc/<pid> entry: stat (state, parent), comm and the cwd link."""
    entry = proc / str(pid)
    entry.mkdir()
    (entry / "stat").write_text(
        "%d (%s) %s %d 0 0 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100\n" % (pid, command, state, ppid)
    )
    (entry / "comm").write_text(command + "\n")
    os.symlink(str(cwd), str(entry / "cwd"))


@pytest.fixture
def tree(tmp_path):
    """A data directory, a fake /proc and another directory."""
    data_dir, proc, elsewhere = tmp_path / "data", tmp_path / "proc", tmp_path / "elsewhere"
    for directory in (data_dir, proc, elsewhere):
        directory.mkdir()
    (data_dir / "PG_VERSION").write_text("15\n")
    return data_dir, proc, elsewhere


def server_pids(data_dir, proc):
    return sorted(fence.server_processes(str(data_dir), str(proc)))


@pytest.mark.parametrize(
    ("pid_file", "processes", "expected"),
    [
        # the postmaster, two children, an operator's shell and a psql sitting in the data directory
        (
            "100",
            [
                (100, "postgres", "data", 1),
                (101, "postgres", "data", 100),
                (102, "postgres", "data", 100),
                (200, "bash", "data", 1),
                (201, "psql", "data", 200),
            ],
            [100, 101, 102],
        ),
        # a child of the postmaster that changed its directory is still its child
        ("100", [(100, "postgres", "data", 1), (101, "postgres", "elsewhere", 100)], [100, 101]),
        # no postmaster.pid: nothing, whatever sits in the directory
        (None, [(100, "postgres", "data", 1), (200, "bash", "data", 1)], []),
        # postmaster.pid names a process that is not a server (pid reused by a shell): nothing
        ("200", [(200, "bash", "data", 1), (101, "postgres", "data", 1)], []),
        # postmaster.pid names a postgres of another data directory: nothing
        ("300", [(300, "postgres", "elsewhere", 1)], []),
        # the postmaster is dead: its orphaned backends (postgres, in the directory), not the shell
        ("100", [(101, "postgres", "data", 1), (200, "bash", "data", 1), (301, "postgres", "elsewhere", 1)], [101]),
        # a garbage pid file: nothing
        ("not a pid", [(100, "postgres", "data", 1)], []),
    ],
)
def test_only_the_servers_processes_are_found(tree, pid_file, processes, expected):
    data_dir, proc, elsewhere = tree
    if pid_file is not None:
        (data_dir / "postmaster.pid").write_text("%s\n%s\n" % (pid_file, data_dir))
    for pid, command, where, ppid in processes:
        fake_process(proc, pid, command, data_dir if where == "data" else elsewhere, ppid)
    assert server_pids(data_dir, proc) == expected


def test_a_zombie_postmaster_leaves_its_orphans_to_be_found(tree):
    data_dir, proc, _elsewhere = tree
    (data_dir / "postmaster.pid").write_text("100\n%s\n" % data_dir)
    fake_process(proc, 100, "postgres", data_dir, state="Z")
    fake_process(proc, 101, "postgres", data_dir, ppid=1)
    fake_process(proc, 200, "bash", data_dir)
    assert server_pids(data_dir, proc) == [101]
    plan = fence.plan_fence(str(data_dir), proc=str(proc))
    assert plan.method == "kill"
    assert "orphans of dead postmaster 100" in fence.describe_plan(plan)[0]


def test_no_pid_file_plans_nothing_and_says_so(tree):
    data_dir, proc, _elsewhere = tree
    fake_process(proc, 200, "bash", data_dir)
    plan = fence.plan_fence(str(data_dir), proc=str(proc))
    assert not plan.running and plan.method == "none"
    words = " ".join(fence.describe_plan(plan))
    assert "no postmaster.pid" in words and "nothing to signal" in words
    assert "None" not in words


def test_a_fast_shutdown_names_the_postmaster(tree):
    data_dir, proc, _elsewhere = tree
    (data_dir / "postmaster.pid").write_text("100\n%s\n" % data_dir)
    fake_process(proc, 100, "postgres", data_dir)
    fake_process(proc, 101, "postgres", data_dir, ppid=100)
    plan = fence.plan_fence(str(data_dir), proc=str(proc))
    assert plan.method == "fast"
    assert fence.describe_plan(plan)[0].startswith("SIGINT (fast shutdown) to postmaster 100")


def test_an_operator_shell_in_the_data_directory_survives_a_fence(tmp_path):
    (tmp_path / "PG_VERSION").write_text("15\n")
    shell = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    try:
        time.sleep(0.1)
        plan = fence.plan_fence(str(tmp_path))
        assert not plan.running
        fence.stop_processes(plan, stop_timeout=1)
        fence.write_standby_signal(str(tmp_path))
        assert shell.poll() is None
    finally:
        shell.kill()
        shell.wait()


def test_a_planted_standby_signal_link_is_refused_and_its_target_untouched(tmp_path):
    data_dir, target = tmp_path / "data", tmp_path / "target"
    data_dir.mkdir()
    target.write_text("precious\n")
    os.chmod(target, 0o644)
    (data_dir / "standby.signal").symlink_to(target)
    with pytest.raises(LinkRefused, match="symbolic link"):
        fence.plan_fence(str(data_dir))
    with pytest.raises(LinkRefused, match="symbolic link"):
        fence.write_standby_signal(str(data_dir))
    assert target.read_text() == "precious\n"
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_a_dangling_standby_signal_link_creates_nothing(tmp_path):
    data_dir, target = tmp_path / "data", tmp_path / "created-by-root"
    data_dir.mkdir()
    (data_dir / "standby.signal").symlink_to(target)
    with pytest.raises(LinkRefused):
        fence.write_standby_signal(str(data_dir))
    assert not target.exists()


def test_a_data_directory_that_is_a_link_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "data").symlink_to(real)
    with pytest.raises(LinkRefused, match="is a symbolic link"):
        fence.write_standby_signal(str(tmp_path / "data"))
    assert not (real / "standby.signal").exists()


def test_standby_signal_is_owned_like_the_data_directory(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if os.geteuid() == 0:
        os.chown(data_dir, 4321, 4321)
    fence.write_standby_signal(str(data_dir))
    signal_file = (data_dir / "standby.signal").stat()
    assert (signal_file.st_uid, signal_file.st_gid) == (data_dir.stat().st_uid, data_dir.stat().st_gid)
    assert oct(signal_file.st_mode & 0o777) == "0o600"
