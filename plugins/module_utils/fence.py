# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing a PostgreSQL server on its own host: stop it for good, make a restart read-only.

A server's processes are found by their working directory: the postmaster and every
child it forks chdir into the data directory, and they keep it after the postmaster
dies and they are re-parented. That finds orphaned backends a parent-PID walk would
miss, and never matches another cluster's processes. "Alive" is judged from
/proc/<pid>/stat, because a killed postmaster can linger as a zombie where PID 1 does
not reap, and a zombie still answers kill(pid, 0).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

DEAD_STATES = ("Z", "X", "x")
STOPPED_STATES = ("T", "t")
STANDBY_SIGNAL = "standby.signal"


@dataclass
class FencePlan:
    """What fencing this data directory takes, decided before anything is signalled."""

    data_dir: str
    postmaster_pid: Optional[int]
    processes: Dict[int, str] = field(default_factory=dict)
    method: str = "none"
    write_standby_signal: bool = False

    @property
    def running(self) -> bool:
        return bool(self.processes)

    @property
    def hung(self) -> bool:
        return any(state in STOPPED_STATES for state in self.processes.values())

    @property
    def changes_anything(self) -> bool:
        return self.running or self.write_standby_signal


def process_state(pid: int, proc: str = "/proc") -> Optional[str]:
    """The one-letter state of a process, or None when it does not exist."""
    try:
        with open(os.path.join(proc, str(pid), "stat")) as stat_file:
            stat = stat_file.read()
    except OSError:
        return None
    # The command name in parentheses may itself contain spaces or parentheses.
    return stat[stat.rindex(")") + 2 :].split()[0]


def is_alive(pid: int, proc: str = "/proc") -> bool:
    state = process_state(pid, proc)
    return state is not None and state not in DEAD_STATES


def read_postmaster_pid(data_dir: str) -> Optional[int]:
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as pid_file:
            first_line = pid_file.readline().strip()
    except OSError:
        return None
    return int(first_line) if first_line.isdigit() else None


def processes_in(data_dir: str, proc: str = "/proc") -> Dict[int, str]:
    """Live processes whose working directory is data_dir, with their states."""
    target = os.path.realpath(data_dir)
    found: Dict[int, str] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(os.path.join(proc, entry, "cwd"))
        except OSError:
            continue
        if cwd != target:
            continue
        state = process_state(int(entry), proc)
        if state is not None and state not in DEAD_STATES:
            found[int(entry)] = state
    return found


def plan_fence(data_dir: str, method: str = "auto", standby_signal: bool = True) -> FencePlan:
    """Look, decide, change nothing."""
    plan = FencePlan(data_dir=data_dir, postmaster_pid=read_postmaster_pid(data_dir), processes=processes_in(data_dir))
    if plan.running:
        plan.method = "kill" if (method == "kill" or plan.hung) else method
        if plan.method == "auto":
            plan.method = "fast"
    plan.write_standby_signal = standby_signal and not os.path.exists(os.path.join(data_dir, STANDBY_SIGNAL))
    return plan


def describe_plan(plan: FencePlan) -> List[str]:
    """The actions a plan takes, in words an operator can check."""
    actions: List[str] = []
    if plan.running:
        pids = ", ".join(str(pid) for pid in sorted(plan.processes))
        if plan.method == "kill":
            why = "server is hung (stopped processes)" if plan.hung else "hard fence requested"
            actions.append("SIGKILL every process of the server (%s): %s" % (why, pids))
        else:
            signame = "SIGINT (fast shutdown)" if plan.method == "fast" else "SIGQUIT (immediate shutdown)"
            actions.append(
                "%s to postmaster %s, then SIGKILL whatever remains after the timeout" % (signame, plan.postmaster_pid)
            )
    if plan.write_standby_signal:
        actions.append("write %s so a restart comes back read-only" % os.path.join(plan.data_dir, STANDBY_SIGNAL))
    return actions


def _signal_all(pids: List[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def wait_until_gone(data_dir: str, timeout: float, interval: float = 0.05) -> Dict[int, str]:
    """Poll until no process of the server is alive or timeout; return what is left."""
    deadline = time.monotonic() + timeout
    remaining = processes_in(data_dir)
    while remaining and time.monotonic() < deadline:
        time.sleep(interval)
        remaining = processes_in(data_dir)
    return remaining


def stop_processes(plan: FencePlan, stop_timeout: float) -> List[str]:
    """Carry out the stop part of a plan; return what was done."""
    done: List[str] = []
    if not plan.running:
        return done
    if plan.method in ("fast", "immediate") and plan.postmaster_pid in plan.processes:
        signum = signal.SIGINT if plan.method == "fast" else signal.SIGQUIT
        _signal_all([plan.postmaster_pid], signum)
        done.append("sent %s to postmaster %d" % (signal.Signals(signum).name, plan.postmaster_pid))
        leftover = wait_until_gone(plan.data_dir, stop_timeout)
    else:
        leftover = processes_in(plan.data_dir)
    if leftover:
        _signal_all(sorted(leftover), signal.SIGKILL)
        done.append("sent SIGKILL to %s" % ", ".join(str(pid) for pid in sorted(leftover)))
        leftover = wait_until_gone(plan.data_dir, 5.0)
    if leftover:
        raise RuntimeError("processes of %s still alive after SIGKILL: %s" % (plan.data_dir, sorted(leftover)))
    return done


def write_standby_signal(data_dir: str) -> str:
    """Create standby.signal owned like the data directory, so PostgreSQL can read it."""
    path = os.path.join(data_dir, STANDBY_SIGNAL)
    with open(path, "w"):
        pass
    owner = os.stat(data_dir)
    os.chown(path, owner.st_uid, owner.st_gid)
    os.chmod(path, 0o600)
    return "wrote %s" % path
