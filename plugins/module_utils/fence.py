# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing a PostgreSQL server on its own host: stop it for good, make a restart read-only.

Only the server's own processes are signalled, never a process that merely sits in
the data directory (an operator's shell): the postmaster named by postmaster.pid,
checked in /proc to be a postgres process of the data directory's owner working in
that directory, and its children (PPid). When that postmaster is already dead, its
orphaned backends are the postgres processes of the owner still working in the data
directory. With no postmaster.pid nothing is signalled. "Alive" is judged from
/proc/<pid>/stat, because a killed postmaster can linger as a zombie where PID 1 does
not reap, and a zombie still answers kill(pid, 0). standby.signal is created without
following links (the data directory's owner could plant one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed
from ansible_collections.penguinmails.dbops.plugins.module_utils.safe_files import Directory

DEAD_STATES = ("Z", "X", "x")
STOPPED_STATES = ("T", "t")
STANDBY_SIGNAL = "standby.signal"
PID_FILE = "postmaster.pid"
SERVER_COMMANDS = ("postgres", "postmaster")


@dataclass
class FencePlan:
    """What fencing this data directory takes, decided before anything is signalled."""

    data_dir: str
    postmaster_pid: Optional[int]
    processes: Dict[int, str] = field(default_factory=dict)
    method: str = "none"
    write_standby_signal: bool = False
    postmaster_running: bool = False

    @property
    def running(self) -> bool:
        return bool(self.processes)

    @property
    def hung(self) -> bool:
        return any(state in STOPPED_STATES for state in self.processes.values())

    @property
    def changes_anything(self) -> bool:
        return self.running or self.write_standby_signal


def _stat_fields(pid: int, proc: str) -> Optional[List[str]]:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        with open(os.path.join(proc, str(pid), "stat")) as stat_file:
            stat = stat_file.read()
    except OSError:
        return None
    # The command name in parentheses may itself contain spaces or parentheses.
    return stat[stat.rindex(")") + 2 :].split()


def process_state(pid: int, proc: str = "/proc") -> Optional[str]:
    """The one-letter state of a process, or None when it does not exist."""
    fields = _stat_fields(pid, proc)
    return fields[0] if fields else None


def parent_pid(pid: int, proc: str = "/proc") -> Optional[int]:
    fields = _stat_fields(pid, proc)
    return int(fields[1]) if fields else None


def is_alive(pid: int, proc: str = "/proc") -> bool:
    state = process_state(pid, proc)
    return state is not None and state not in DEAD_STATES


def read_pid_file(data_dir: str) -> List[str]:
    """postmaster.pid's lines (pid, data dir, start time, port, socket dir, ...), [] when absent."""
    with Directory(data_dir) as directory:
        text = directory.read_text(PID_FILE)
    return text.splitlines() if text else []


def read_postmaster_pid(data_dir: str) -> Optional[int]:
    lines = read_pid_file(data_dir)
    first_line = lines[0].strip() if lines else ""
    return int(first_line) if first_line.isdigit() else None


def _process_facts(pid: int, proc: str) -> Optional[tuple]:
    """(command name, working directory, owner uid) of a process, or None when unreadable."""
    base = os.path.join(proc, str(pid))
    try:
        with open(os.path.join(base, "comm")) as comm_file:
            command = comm_file.read().strip()
        return command, os.readlink(os.path.join(base, "cwd")), os.stat(base).st_uid
    except OSError:
        return None


def is_server_process(pid: int, data_dir: str, owner_uid: int, proc: str = "/proc") -> bool:
    """A live postgres process of the data directory's owner, working in the data directory."""
    facts = _process_facts(pid, proc)
    if facts is None or not is_alive(pid, proc):
        return False
    command, cwd, uid = facts
    return command in SERVER_COMMANDS and cwd == os.path.realpath(data_dir) and uid == owner_uid


def _pids(proc: str) -> List[int]:
    return [int(entry) for entry in os.listdir(proc) if entry.isdigit()]


def server_processes(data_dir: str, proc: str = "/proc") -> Dict[int, str]:
    """Live processes of the server whose postmaster.pid is in data_dir, with their states.

    The postmaster when postmaster.pid names a server process, and its children; when
    the named postmaster is gone, the orphaned server processes left in the directory.
    """
    postmaster = read_postmaster_pid(data_dir)
    if postmaster is None:
        return {}
    owner_uid = os.stat(data_dir).st_uid
    if is_server_process(postmaster, data_dir, owner_uid, proc):
        members = [postmaster] + [
            pid for pid in _pids(proc) if pid != postmaster and parent_pid(pid, proc) == postmaster
        ]
        return {pid: state for pid in members if (state := process_state(pid, proc)) not in (None, *DEAD_STATES)}
    if is_alive(postmaster, proc):
        return {}  # the pid was reused by another process: not ours to signal
    return {pid: process_state(pid, proc) for pid in _pids(proc) if is_server_process(pid, data_dir, owner_uid, proc)}


def standby_signal_present(data_dir: str) -> bool:
    """Whether standby.signal is there; a link in its place is refused (LinkRefused)."""
    with Directory(data_dir) as directory:
        return directory.exists(STANDBY_SIGNAL)


def plan_fence(data_dir: str, method: str = "auto", standby_signal: bool = True, proc: str = "/proc") -> FencePlan:
    """Look, decide, change nothing. Raises LinkRefused when standby.signal is a link."""
    postmaster = read_postmaster_pid(data_dir)
    plan = FencePlan(data_dir=data_dir, postmaster_pid=postmaster, processes=server_processes(data_dir, proc))
    plan.postmaster_running = postmaster in plan.processes
    if plan.running:
        plan.method = "kill" if (method == "kill" or plan.hung or not plan.postmaster_running) else method
        if plan.method == "auto":
            plan.method = "fast"
    plan.write_standby_signal = standby_signal and not standby_signal_present(data_dir)
    return plan


def describe_plan(plan: FencePlan) -> List[str]:
    """The actions a plan takes, in words an operator can check."""
    actions: List[str] = []
    if not plan.running:
        if plan.write_standby_signal:
            actions.append(nothing_to_signal(plan))
    elif plan.method == "kill":
        pids = ", ".join(str(pid) for pid in sorted(plan.processes))
        if plan.hung:
            why = "server is hung (stopped processes)"
        elif not plan.postmaster_running:
            why = "orphans of dead postmaster %s" % plan.postmaster_pid
        else:
            why = "hard fence requested"
        actions.append("SIGKILL every process of the server (%s): %s" % (why, pids))
    else:
        signame = "SIGINT (fast shutdown)" if plan.method == "fast" else "SIGQUIT (immediate shutdown)"
        actions.append(
            "%s to postmaster %s, then SIGKILL whatever remains after the timeout" % (signame, plan.postmaster_pid)
        )
    if plan.write_standby_signal:
        actions.append("write %s so a restart comes back read-only" % os.path.join(plan.data_dir, STANDBY_SIGNAL))
    return actions


def nothing_to_signal(plan: FencePlan) -> str:
    if plan.postmaster_pid is None:
        return "no postmaster.pid in %s and no server process: nothing to signal" % plan.data_dir
    return "postmaster %d of postmaster.pid is not running and left no server process: nothing to signal" % (
        plan.postmaster_pid
    )


def _signal_all(pids: List[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def wait_until_gone(data_dir: str, timeout: float, interval: float = 0.05) -> Dict[int, str]:
    """Poll until no process of the server is alive or timeout; return what is left."""
    deadline = time.monotonic() + timeout
    remaining = server_processes(data_dir)
    while remaining and time.monotonic() < deadline:
        time.sleep(interval)
        remaining = server_processes(data_dir)
    return remaining


def stop_processes(plan: FencePlan, stop_timeout: float) -> List[str]:
    """Carry out the stop part of a plan; return what was done."""
    done: List[str] = []
    if not plan.running:
        return done
    if plan.method in ("fast", "immediate") and plan.postmaster_running:
        signum = signal.SIGINT if plan.method == "fast" else signal.SIGQUIT
        _signal_all([plan.postmaster_pid], signum)
        done.append("sent %s to postmaster %d" % (signal.Signals(signum).name, plan.postmaster_pid))
        leftover = wait_until_gone(plan.data_dir, stop_timeout)
    else:
        leftover = server_processes(plan.data_dir)
    if leftover:
        _signal_all(sorted(leftover), signal.SIGKILL)
        done.append("sent SIGKILL to %s" % ", ".join(str(pid) for pid in sorted(leftover)))
        leftover = wait_until_gone(plan.data_dir, 5.0)
    if leftover:
        raise RuntimeError("processes of %s still alive after SIGKILL: %s" % (plan.data_dir, sorted(leftover)))
    return done


def write_standby_signal(data_dir: str) -> str:
    """Create standby.signal (O_EXCL, no link followed) owned like the data directory, so PostgreSQL can read it."""
    with Directory(data_dir) as directory:
        directory.create_empty(STANDBY_SIGNAL)
    return "wrote %s" % os.path.join(data_dir, STANDBY_SIGNAL)


def state_for_diff(data_dir: str, running: bool) -> str:
    signal_present = standby_signal_present(data_dir)
    return "running: %s\nstandby.signal: %s\n" % ("yes" if running else "no", "present" if signal_present else "absent")


def plan_result(plan: FencePlan) -> Dict[str, Any]:
    result: Dict[str, Any] = {
        "changed": plan.changes_anything,
        "was_running": plan.running,
        "hung": plan.hung,
        "method": plan.method,
        "postmaster_pid": plan.postmaster_pid,
        "processes": sorted(plan.processes),
        "actions": describe_plan(plan),
        "fenced": not plan.changes_anything,
    }
    if not plan.running:
        result["msg"] = nothing_to_signal(plan)
    return result


def fence(
    data_dir: str, method: str, standby_signal: bool, stop_timeout: float, check_mode: bool = False
) -> Dict[str, Any]:
    """Plan, then (unless check mode) stop the server and write standby.signal; pg_fence's result.

    Raises ActionFailed when the fence is refused (a link in the data directory) or fails.
    """
    try:
        plan = plan_fence(data_dir, method, standby_signal)
    except OSError as error:
        raise ActionFailed("fencing %s refused: %s" % (data_dir, error), {"fenced": False, "actions": []}) from None
    result = plan_result(plan)
    before = state_for_diff(data_dir, plan.running)
    if check_mode or not plan.changes_anything:
        if plan.changes_anything:
            result["diff"] = {"before": before, "after": "running: no\nstandby.signal: present\n"}
        return result
    try:
        actions = stop_processes(plan, stop_timeout)
        if plan.write_standby_signal:
            actions.append(write_standby_signal(data_dir))
    except (OSError, RuntimeError) as error:
        raise ActionFailed("fencing %s failed: %s" % (data_dir, error), result) from None
    result["actions"] = actions
    result["fenced"] = not server_processes(data_dir)
    result["diff"] = {"before": before, "after": state_for_diff(data_dir, not result["fenced"])}
    if not result["fenced"]:
        raise ActionFailed("processes of %s are still alive after fencing" % data_dir, result)
    return result
