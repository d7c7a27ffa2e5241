# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Process lifecycle of one server of the penguinmails.dbops rehearsal lab.

Run by the lab role on the controller (the lab is local), one call per step:

    lab_server.py postgres started --data-dir D --bin-dir B --socket-dir S --port P --log-file L --run-as U
    lab_server.py pgbouncer stopped --config-file C --pid-file F --run-as U

Prints one JSON object (changed, status, pid, pids, actions, and for PostgreSQL
initialized and standby_signal) and exits 0, or prints the reason on stderr and
exits 1. States: info (report only), started, stopped, reloaded, restarted; only
the converging states report changed, and only when they acted.

Judges "is it running" the way these machines need: a postmaster killed with
SIGKILL can linger as a zombie (PID 1 does not reap), so a PID file plus
kill -0 proves nothing. A server is running when its PID file names a live
(non-zombie) process that really is this server (PostgreSQL: its working
directory is the data directory; PgBouncer: its command line names the ini
file) and the server answers (pg_isready / a TCP connect).

Processes are only ever signalled by PID, never looked up by name.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

PROBE_TIMEOUT = 3
SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
ORPHAN_GRACE_SECONDS = 5


def read_pid(path):
    """First line of a PID file as an int, or None."""
    try:
        with open(path) as handle:
            return int(handle.readline().strip())
    except (OSError, ValueError):
        return None


def process_state(pid):
    """One-letter state from /proc/<pid>/stat (R, S, D, T, Z, ...) or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: the state follows the last ')'.
    return stat[stat.rfind(")") + 2 :].split()[0]


def parent_pid(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def is_alive(pid):
    """Exists and is not a zombie (a zombie has exited; it only waits to be reaped)."""
    return process_state(pid) not in (None, "Z", "X")


def process_cwd(pid):
    try:
        return os.readlink("/proc/%d/cwd" % pid)
    except OSError:
        return None


def process_argv(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


def all_pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root_pid):
    """Every live descendant of root_pid, found through the parent links in /proc."""
    children_of = {}
    for pid in all_pids():
        ppid = parent_pid(pid)
        if ppid is not None:
            children_of.setdefault(ppid, []).append(pid)
    found, queue = [], [root_pid]
    while queue:
        for child in children_of.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return [pid for pid in found if is_alive(pid)]


def processes_in_dir(directory, uid):
    """Live processes of uid whose working directory is `directory` (every PostgreSQL
    process chdirs to its data directory, so this finds backends orphaned by a killed postmaster)."""
    real = os.path.realpath(directory)
    matches = []
    for pid in all_pids():
        try:
            if os.stat("/proc/%d" % pid).st_uid != uid:
                continue
        except OSError:
            continue
        if process_cwd(pid) == real and is_alive(pid):
            matches.append(pid)
    return matches


def wait_until(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def send(pid, signum):
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


def log_tail(path, lines=8):
    """The last lines of a log file, for error messages."""
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).rstrip()
    except OSError as error:
        return "(cannot read: %s)" % error


def tcp_accepts(port, timeout=PROBE_TIMEOUT):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class Failure(Exception):
    """A step failed; the message says which server, what failed and what to check."""


def run_command(argv, cwd):
    """Run argv to completion without a shell; (rc, stdout, stderr). A missing program is rc 127."""
    try:
        done = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    except OSError as error:
        return 127, "", str(error)
    return done.returncode, done.stdout, done.stderr


class Server:
    """Common behaviour; subclasses say how to find, probe, start and stop one kind of server."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.actions = []
        run_as = params["run_as"]
        current = pwd.getpwuid(os.getuid()).pw_name
        self.prefix = ["runuser", "-u", run_as, "--"] if run_as and run_as != current else []
        self.user = run_as or current
        self.uid = pwd.getpwnam(self.user).pw_uid

    def run(self, argv, check=True):
        rc, out, err = run_command(self.prefix + argv, self.work_dir())
        if check and rc != 0:
            self.fail("%s failed (rc=%d): %s" % (" ".join(argv[:2]), rc, (err or out).strip()[-2000:]))
        return rc, out, err

    def fail(self, msg):
        raise Failure(msg)

    def live_pid(self):
        """PID of this server's main process when it is alive and really ours, else None."""
        pid = read_pid(self.pid_path())
        if pid is None or not is_alive(pid) or not self.owns(pid):
            return None
        return pid

    def status(self):
        pid = self.live_pid()
        if pid is None:
            return "stopped"
        if process_state(pid) == "T":
            return "frozen"
        return "running" if self.answers() else "unresponsive"

    def report(self):
        pid = self.live_pid()
        return {
            "status": self.status(),
            "pid": pid,
            "process_state": process_state(pid) if pid else None,
            "pids": ([pid, *descendants(pid)]) if pid else [],
        }

    def ensure_started(self):
        status = self.status()
        if status == "running":
            return False
        if status == "frozen":
            self.fail(
                "%s: PID %s is stopped (SIGSTOP). Resume it with SIGCONT or remove the lab"
                % (self.name(), self.live_pid())
            )
        if status == "unresponsive":
            # Alive but not answering yet, e.g. still in crash recovery: give it time.
            if wait_until(self.answers, self.params["timeout"], 0.5):
                return False
            self.fail("%s: PID %s is alive but does not answer" % (self.name(), self.live_pid()))
        if self.check_mode:
            self.actions.append("would start %s" % self.name())
            return True
        self.clear_leftovers()
        self.start()
        if not wait_until(lambda: self.status() == "running", self.params["timeout"], 0.2):
            self.fail("%s did not come up within %ss; see its log" % (self.name(), self.params["timeout"]))
        self.actions.append("started %s (PID %s)" % (self.name(), self.live_pid()))
        return True

    def ensure_stopped(self):
        pid = self.live_pid()
        targets = set(self.leftover_pids())
        if pid:
            targets.update([pid, *descendants(pid)])
        if not targets:
            return False
        if self.check_mode:
            self.actions.append("would stop %s (PIDs %s)" % (self.name(), sorted(targets)))
            return True
        if pid and process_state(pid) != "T":
            self.stop(pid)
            targets.update(descendants(pid))
        # What is left (or a frozen server, which cannot act on a shutdown request) gets SIGKILL.
        remaining = [p for p in targets if is_alive(p)]
        if remaining:
            for p in remaining:
                send(p, signal.SIGKILL)
            self.actions.append("SIGKILL %s" % sorted(remaining))
            if not wait_until(lambda: not any(is_alive(p) for p in remaining), 10):
                self.fail("%s: PIDs %s survived SIGKILL" % (self.name(), [p for p in remaining if is_alive(p)]))
        self.actions.append("stopped %s (PIDs %s)" % (self.name(), sorted(targets)))
        return True

    def clear_leftovers(self):
        """Before a start: a stale PID file and processes orphaned by a dead main process block it."""
        orphans = self.leftover_pids()
        if orphans and not wait_until(lambda: not any(is_alive(p) for p in orphans), ORPHAN_GRACE_SECONDS):
            survivors = [p for p in orphans if is_alive(p)]
            for p in survivors:
                send(p, signal.SIGKILL)
            wait_until(lambda: not any(is_alive(p) for p in survivors), 10)
            self.actions.append("SIGKILL orphaned PIDs %s of %s" % (survivors, self.name()))
        if os.path.exists(self.pid_path()):
            os.unlink(self.pid_path())
            self.actions.append("removed stale %s" % self.pid_path())


class PostgresServer(Server):
    def name(self):
        return "PostgreSQL %s" % self.params["data_dir"]

    def work_dir(self):
        return os.path.dirname(self.params["data_dir"].rstrip("/")) or "/"

    def pid_path(self):
        return os.path.join(self.params["data_dir"], "postmaster.pid")

    def owns(self, pid):
        return process_cwd(pid) == os.path.realpath(self.params["data_dir"])

    def initialized(self):
        return os.path.exists(os.path.join(self.params["data_dir"], "PG_VERSION"))

    def answers(self):
        # As the server's OS user over the socket (peer authentication), so probes leave no
        # authentication failures in the server log.
        argv = [os.path.join(self.params["bin_dir"], "pg_isready"), "-q", "-h", self.params["socket_dir"]]
        argv += ["-p", str(self.params["port"]), "-U", self.user, "-d", "postgres", "-t", str(PROBE_TIMEOUT)]
        rc, _out, _err = run_command(self.prefix + argv, self.work_dir())
        return rc == 0

    def leftover_pids(self):
        """Processes still working in the data directory while the postmaster is dead."""
        if self.live_pid() or not os.path.isdir(self.params["data_dir"]):
            return []
        return processes_in_dir(self.params["data_dir"], self.uid)

    def pg_ctl(self, *args):
        return [os.path.join(self.params["bin_dir"] or "", "pg_ctl"), "-D", self.params["data_dir"], *list(args)]

    def start(self):
        if not self.initialized():
            self.fail("%s: no cluster there (PG_VERSION missing)" % self.name())
        timeout = str(self.params["timeout"])
        rc, out, err = self.run(self.pg_ctl("-l", self.params["log_file"], "-w", "-t", timeout, "start"), check=False)
        if rc != 0:
            self.fail(
                "pg_ctl start of %s failed (rc=%d): %s\nend of %s:\n%s"
                % (self.name(), rc, (err or out).strip(), self.params["log_file"], log_tail(self.params["log_file"]))
            )

    def stop(self, pid):
        mode = self.params["stop_mode"]
        if not self.params["bin_dir"] or not os.access(self.pg_ctl()[0], os.X_OK):
            # No pg_ctl at hand: the postmaster's own signal for the same shutdown mode.
            send(pid, SHUTDOWN_SIGNALS[mode])
            if wait_until(lambda: not is_alive(pid), 10):
                self.actions.append("signalled PID %d for a %s shutdown" % (pid, mode))
            return
        rc, _out, _err = self.run(self.pg_ctl("-m", mode, "-w", "-t", "10", "stop"), check=False)
        if rc == 0 and wait_until(lambda: not is_alive(pid), 5):
            self.actions.append("pg_ctl stop -m %s" % mode)
        else:
            self.actions.append("pg_ctl stop -m %s did not finish (rc=%d)" % (mode, rc))

    def reload(self):
        self.run(self.pg_ctl("reload"))
        self.actions.append("reloaded %s" % self.name())


class PgBouncerServer(Server):
    def name(self):
        return "PgBouncer %s" % self.params["config_file"]

    def work_dir(self):
        return os.path.dirname(self.params["config_file"]) or "/"

    def pid_path(self):
        return self.params["pid_file"]

    def owns(self, pid):
        return self.params["config_file"] in process_argv(pid)

    def answers(self):
        return tcp_accepts(self.params["port"])

    def leftover_pids(self):
        return []

    def start(self):
        self.run([self.params["pgbouncer_bin"], "-d", "-q", self.params["config_file"]])

    def stop(self, pid):
        send(pid, signal.SIGTERM)  # PgBouncer: SIGTERM is an immediate shutdown
        if wait_until(lambda: not is_alive(pid), self.params["timeout"]):
            self.actions.append("SIGTERM PID %d" % pid)

    def reload(self):
        send(self.live_pid(), signal.SIGHUP)
        self.actions.append("SIGHUP PID %d (reload)" % self.live_pid())


# Stopping only needs to find the process; everything else also needs to reach the server.
REQUIRED = {
    ("postgres", "stopped"): ["data_dir"],
    ("postgres", None): ["data_dir", "bin_dir", "socket_dir", "port"],
    ("pgbouncer", "stopped"): ["config_file", "pid_file"],
    ("pgbouncer", None): ["config_file", "pid_file", "port"],
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Start, stop, reload or inspect one lab server.")
    parser.add_argument("kind", choices=["postgres", "pgbouncer"])
    parser.add_argument("state", choices=["info", "started", "stopped", "reloaded", "restarted"])
    parser.add_argument("--data-dir", help="PostgreSQL data directory")
    parser.add_argument("--bin-dir", help="directory with pg_ctl and pg_isready")
    parser.add_argument("--log-file", help="PostgreSQL server log (pg_ctl -l)")
    parser.add_argument("--socket-dir", help="the server's Unix socket directory")
    parser.add_argument("--port", type=int, help="port the server listens on")
    parser.add_argument("--config-file", help="PgBouncer ini file")
    parser.add_argument("--pid-file", help="PgBouncer pidfile")
    parser.add_argument("--pgbouncer-bin", default="/usr/sbin/pgbouncer")
    parser.add_argument("--run-as", help="OS user of the server (runuser when not the current user)")
    parser.add_argument("--stop-mode", default="fast", choices=["smart", "fast", "immediate"])
    parser.add_argument("--timeout", type=int, default=60, help="seconds to wait for a start or stop")
    parser.add_argument("--check", action="store_true", help="report what would be done, do nothing")
    params = vars(parser.parse_args(argv))
    for name in ("data_dir", "bin_dir", "log_file", "socket_dir", "config_file", "pid_file"):
        if params[name]:
            params[name] = os.path.abspath(params[name])
    kind, state = params["kind"], params["state"]
    required = REQUIRED.get((kind, state)) or REQUIRED[(kind, None)]
    missing = ["--" + name.replace("_", "-") for name in required if params[name] is None]
    if kind == "postgres" and state in ("started", "restarted") and not params["log_file"]:
        missing.append("--log-file")
    if missing:
        parser.error("%s %s needs %s" % (kind, state, ", ".join(missing)))
    return params


def converge(server, state):
    """Bring the server to `state`; True when something was (or, in check mode, would be) done."""
    if state == "started":
        return server.ensure_started()
    if state == "stopped":
        return server.ensure_stopped()
    if state == "restarted":
        if not server.check_mode:
            server.ensure_stopped()
            server.ensure_started()
        return True
    if state == "reloaded":
        if server.status() != "running":
            server.fail("%s is not running; cannot reload" % server.name())
        if not server.check_mode:
            server.reload()
        return True
    return False


def main(argv=None):
    params = parse_args(sys.argv[1:] if argv is None else argv)
    server_class = PostgresServer if params["kind"] == "postgres" else PgBouncerServer
    server = server_class(params, check_mode=params["check"])
    try:
        changed = converge(server, params["state"])
        result = dict(server.report(), changed=changed, actions=server.actions)
    except Failure as failure:
        sys.stderr.write("%s\n" % failure)
        if server.actions:
            sys.stderr.write("done before the failure: %s\n" % "; ".join(server.actions))
        return 1
    if params["kind"] == "postgres":
        result["initialized"] = server.initialized()
        result["standby_signal"] = os.path.exists(os.path.join(params["data_dir"], "standby.signal"))
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
