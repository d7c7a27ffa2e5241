"""Fencing finds a server's processes by working directory and judges liveness from /proc."""

import os
import signal
import subprocess
import sys
import time

from ansible_collections.penguinmails.dbops.plugins.module_utils import fence


def spawn_in(directory):
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=directory)


def test_processes_are_found_by_cwd_and_stopped_ones_mean_hung(tmp_path):
    (tmp_path / "PG_VERSION").write_text("15\n")
    worker = spawn_in(tmp_path)
    try:
        time.sleep(0.2)
        assert worker.pid in fence.processes_in(str(tmp_path))
        os.kill(worker.pid, signal.SIGSTOP)
        time.sleep(0.1)
        plan = fence.plan_fence(str(tmp_path))
        assert plan.hung
        assert plan.method == "kill"
        assert any("SIGKILL" in action for action in fence.describe_plan(plan))
        fence.stop_processes(plan, stop_timeout=1)
        worker.wait(timeout=5)
        assert fence.processes_in(str(tmp_path)) == {}
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
