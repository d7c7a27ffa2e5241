"""Support for the diagnosis modules' integration tests (pg_activity, pgbouncer_pools, posthog_alerts).

* `run_module` runs a module of the checkout the way Ansible does (its own process,
  arguments as JSON) and returns the parsed result and the raw output, so tests can
  grep the output for secrets.
* `DiagServers` is one PostgreSQL and one PgBouncer for these tests: the session lab
  (tests/integration/conftest.py) when it provides them, otherwise a small throwaway
  pair started here (ports DBOPS_TEST_PORT_BASE + 90/91, or the next free pair 200 further: they
  are in the ephemeral range; data under DBOPS_TEST_LAB_ROOT,
  both stopped by PID at the end).
* `hold_sessions` opens real client connections that hold server connections or sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import psycopg2

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".build" / "collections"
MODULES = REPO / "plugins" / "modules"
PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def run_module(name: str, args: Dict[str, Any], check_mode: bool = False, timeout: float = 60) -> Dict[str, Any]:
    """Run plugins/modules/<name>.py with `args`; return its JSON result plus `_stdout`/`_stderr`."""
    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
        args_file = handle.name
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    try:
        completed = subprocess.run(
            [sys.executable, str(MODULES / ("%s.py" % name)), args_file],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    finally:
        os.unlink(args_file)
    try:
        result = json.loads(completed.stdout)
    except ValueError as error:
        raise AssertionError("module %s printed no JSON: %s %s" % (name, completed.stdout, completed.stderr)) from error
    result["_stdout"] = completed.stdout
    result["_stderr"] = completed.stderr
    return result


@dataclass
class DiagServers:
    """Where the tests' PostgreSQL and PgBouncer listen, and who may log in."""

    host: str
    pg_port: int
    admin_user: str
    admin_password: str
    database: str
    app_user: str
    app_password: str
    pgbouncer_port: int
    pgbouncer_admin_user: str
    pgbouncer_admin_password: str
    pool_size: int
    reserve_pool: int
    _stop: List[Any] = field(default_factory=list, repr=False)

    def pg_args(self, **extra: Any) -> Dict[str, Any]:
        args = {
            "login_host": self.host,
            "login_port": self.pg_port,
            "login_user": self.admin_user,
            "login_password": self.admin_password,
            "login_db": self.database,
            "connect_timeout": 3,
        }
        args.update(extra)
        return args

    def pgbouncer_args(self, **extra: Any) -> Dict[str, Any]:
        args = {
            "pgbouncer_host": self.host,
            "pgbouncer_port": self.pgbouncer_port,
            "pgbouncer_user": self.pgbouncer_admin_user,
            "pgbouncer_password": self.pgbouncer_admin_password,
            "connect_timeout": 3,
        }
        args.update(extra)
        return args

    def admin_connect(self, dbname: Optional[str] = None, application_name: str = "dbops-tests") -> Any:
        conn = psycopg2.connect(
            host=self.host,
            port=self.pg_port,
            user=self.admin_user,
            password=self.admin_password,
            dbname=dbname or self.database,
            application_name=application_name,
            connect_timeout=5,
        )
        conn.autocommit = True
        return conn

    def app_connect(self, via_pgbouncer: bool = False, application_name: str = "dbops-tests-app") -> Any:
        conn = psycopg2.connect(
            host=self.host,
            port=self.pgbouncer_port if via_pgbouncer else self.pg_port,
            user=self.app_user,
            password=self.app_password,
            dbname=self.database,
            application_name=application_name,
            connect_timeout=5,
        )
        conn.autocommit = True
        return conn


# --- a throwaway PostgreSQL + PgBouncer ---------------------------------------------------


def as_postgres(argv: List[str]) -> List[str]:
    """PostgreSQL and PgBouncer refuse to run as root."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def process_alive(pid: int) -> bool:
    """Judge by /proc state: a killed child of a non-reaping init lingers as a zombie."""
    try:
        state = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def stop_pid(pid_file: Path, timeout: float = 10) -> None:
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT if pid_file.name == "postmaster.pid" else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def throwaway_servers() -> Iterator[DiagServers]:
    """initdb + PostgreSQL + PgBouncer on 127.0.0.1, everything removed afterwards."""
    import lablib

    if not PG_BIN_CANDIDATES or not Path(PGBOUNCER).exists():
        lablib.require_binaries(needs="the throwaway servers")
    pg_bin = PG_BIN_CANDIDATES[0]
    # Two ports free right now: these are in the kernel's ephemeral range (lablib.free_port_block).
    base = lablib.free_port_block(int(os.environ.get("DBOPS_TEST_PORT_BASE", "58000")) + 90, 2) - 90
    root_parent = Path(os.environ.get("DBOPS_TEST_LAB_ROOT", "/var/tmp"))
    root_parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="dbops-diag-", dir=str(root_parent)))
    os.chmod(root, 0o755)
    servers = DiagServers(
        host="127.0.0.1",
        pg_port=base + 90,
        admin_user="dbops_admin",
        admin_password="diag-admin-secret-5093",
        database="penguinmails_oltp",
        app_user="lab_app_user",
        app_password="diag-app-secret-7731",
        pgbouncer_port=base + 91,
        pgbouncer_admin_user="pgbouncer_admin",
        pgbouncer_admin_password="diag-bouncer-secret-2207",
        pool_size=3,
        reserve_pool=1,
    )
    data = root / "pg"
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        (root / "pw").write_text(servers.admin_password + "\n")
        if os.geteuid() == 0:
            shutil.chown(root / "pw", "postgres")
        subprocess.run(
            as_postgres(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    servers.admin_user,
                    "--pwfile",
                    str(root / "pw"),
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--no-instructions",
                ]
            ),
            check=True,
            capture_output=True,
        )
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                "listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                "max_connections = 60\nshared_buffers = 16MB\n" % (servers.pg_port, root)
            )
        started = subprocess.run(
            as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-w", "start"]),
            capture_output=True,
            text=True,
            check=False,
        )
        if started.returncode != 0:
            log = (root / "pg.log").read_text() if (root / "pg.log").exists() else ""
            failed = "pg_ctl start on port %d failed: %s" % (servers.pg_port, started.stdout)
            raise AssertionError(failed + log[-2000:])
        servers._stop.append(lambda: stop_pid(data / "postmaster.pid"))
        admin = servers.admin_connect(dbname="postgres")
        with admin.cursor() as cursor:
            cursor.execute("CREATE DATABASE penguinmails_oltp")
            cursor.execute("CREATE ROLE lab_app_user LOGIN PASSWORD %s", (servers.app_password,))
        admin.close()
        (root / "userlist.txt").write_text(
            '"%s" "%s"\n"%s" "%s"\n'
            % (servers.app_user, servers.app_password, servers.pgbouncer_admin_user, servers.pgbouncer_admin_password)
        )
        (root / "pgbouncer.ini").write_text(
            "[databases]\n"
            "penguinmails_oltp = host=127.0.0.1 port=%d dbname=penguinmails_oltp pool_size=%d reserve_pool=%d\n"
            "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n"
            "auth_type = scram-sha-256\nauth_file = %s\nadmin_users = %s\nstats_users = %s\n"
            "pool_mode = transaction\nmax_client_conn = 40\ndefault_pool_size = 5\nreserve_pool_timeout = 1\n"
            "logfile = %s\npidfile = %s\nignore_startup_parameters = extra_float_digits\n"
            % (
                servers.pg_port,
                servers.pool_size,
                servers.reserve_pool,
                servers.pgbouncer_port,
                root / "userlist.txt",
                servers.pgbouncer_admin_user,
                servers.pgbouncer_admin_user,
                root / "pgbouncer.log",
                root / "pgbouncer.pid",
            )
        )
        if os.geteuid() == 0:
            for name in ("userlist.txt", "pgbouncer.ini"):
                shutil.chown(root / name, "postgres")
        subprocess.run(as_postgres([PGBOUNCER, "-d", str(root / "pgbouncer.ini")]), check=True, capture_output=True)
        servers._stop.append(lambda: stop_pid(root / "pgbouncer.pid"))
        wait_for_port(servers.host, servers.pgbouncer_port)
        yield servers
    finally:
        for stop in reversed(servers._stop):
            stop()
        shutil.rmtree(root, ignore_errors=True)


def wait_for_port(host: str, port: int, timeout: float = 10) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise AssertionError("nothing listens on %s:%s" % (host, port))


# --- real client sessions ------------------------------------------------------------------


class SessionHolder:
    """Connections opened for a test, each running one statement in a thread; closed at the end."""

    join_timeout = 5.0  # seconds each background thread gets to finish after its connection is cancelled

    def __init__(self) -> None:
        self.connections: List[Any] = []
        self.threads: List[threading.Thread] = []
        self.errors: List[BaseException] = []

    def run_in_background(self, conn: Any, statement: str) -> None:
        self.connections.append(conn)

        def target() -> None:
            try:
                with conn.cursor() as cursor:
                    cursor.execute(statement)
            except psycopg2.Error as error:  # cancelled or terminated by the test: expected
                self.errors.append(error)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.threads.append(thread)

    def keep(self, conn: Any) -> Any:
        self.connections.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.connections:
            with contextlib.suppress(Exception):
                conn.cancel()
            with contextlib.suppress(Exception):
                conn.close()
        for thread in self.threads:
            thread.join(timeout=self.join_timeout)


@contextlib.contextmanager
def hold_sessions(holder: Optional[SessionHolder] = None) -> Iterator[SessionHolder]:
    holder = holder if holder is not None else SessionHolder()
    try:
        yield holder
    finally:
        holder.close()


def wait_until(predicate, timeout: float = 10, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def backend_pids(servers: DiagServers, application_name: str) -> List[int]:
    conn = servers.admin_connect(dbname="postgres", application_name="dbops-tests-observer")
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY pid", (application_name,)
            )
            return [row[0] for row in cursor.fetchall()]
    finally:
        conn.close()


def session_state(servers: DiagServers, application_name: str) -> List[Dict[str, Any]]:
    conn = servers.admin_connect(dbname="postgres", application_name="dbops-tests-observer")
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT pid, state, wait_event_type, cardinality(pg_blocking_pids(pid)) > 0 AS blocked "
                "FROM pg_stat_activity WHERE application_name = %s ORDER BY pid",
                (application_name,),
            )
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        conn.close()
