"""Servers for the pg_health and fleet-mode integration tests (and tools/bench_health.py).

`HealthLab` is one primary with its streaming standbys (physical slots); the
tests use one with two standbys, the smallest topology on which every finding
of pg_health can be produced for real (a paused standby, replica lag seen from
the primary, a SIGSTOPped member). `throwaway_tiers` starts several such tiers
(the benchmark's 9-server lab).

Throwaway servers: ports DBOPS_TEST_PORT_BASE (default 57000) + an offset, data
under DBOPS_TEST_LAB_ROOT (default /var/tmp), run as the `postgres` OS user when
run as root, every process stopped by its PID at the end. Tests only use the
interface below, so it can be pointed at the session lab
(tests/integration/conftest.py) without touching them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import lablib
import psycopg2
from diag_support import PG_BIN_CANDIDATES, as_postgres, process_alive, stop_pid, wait_until

ADMIN_USER = "dbops_admin"
ADMIN_PASSWORD = "health-admin-secret-6617"
APPLICATION = "dbops-health-tests"


@dataclass
class Member:
    name: str
    port: int
    data_dir: Path
    host: str = "127.0.0.1"
    replication_name: str = ""  # application_name and slot name of a standby on its primary

    def __post_init__(self) -> None:
        self.replication_name = self.replication_name or self.name

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def process_tree(self) -> List[int]:
        """The postmaster and every process it forked (a hung server is all of them)."""
        root = self.postmaster_pid()
        pids = [root]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[1]) == root:
                        pids.append(int(entry.name))
        return pids


@dataclass
class HealthLab:
    primary: Member
    standbys: List[Member]
    admin_user: str = ADMIN_USER
    admin_password: str = ADMIN_PASSWORD
    root: Optional[Path] = None
    _stop: List[Any] = field(default_factory=list, repr=False)

    @property
    def members(self) -> List[Member]:
        return [self.primary, *self.standbys]

    @classmethod
    def from_session_lab(cls, lab: Any, tier: str = "oltp") -> HealthLab:
        """The session lab's tier (tests/integration/conftest.py): its live primary and its standbys."""
        primary = lab.primary(tier)
        members = [
            Member(server.name, server.port, server.data_dir, server.host, server.member_name)
            for server in sorted(lab.tier(tier), key=lambda server: server.name)
        ]
        user = lab.credentials["dbops_login_user"]
        healthy = cls(
            primary=next(member for member in members if member.name == primary.name),
            standbys=[member for member in members if member.name != primary.name],
            admin_user=user,
            admin_password=lab.password_of(user),
        )
        healthy.wait_streaming()
        return healthy

    def args(self, member: Member, **extra: Any) -> Dict[str, Any]:
        args = {
            "login_host": member.host,
            "login_port": member.port,
            "login_user": self.admin_user,
            "login_password": self.admin_password,
            "connect_timeout": 3,
            "query_timeout": 5,
        }
        args.update(extra)
        return args

    def connect(self, member: Member, dbname: str = "postgres", application_name: str = APPLICATION) -> Any:
        conn = psycopg2.connect(
            host=member.host,
            port=member.port,
            user=self.admin_user,
            password=self.admin_password,
            dbname=dbname,
            application_name=application_name,
            connect_timeout=5,
        )
        conn.autocommit = True
        return conn

    def query(self, member: Member, statement: str, args: Any = None, dbname: str = "postgres") -> List[tuple]:
        conn = self.connect(member, dbname, application_name="dbops-health-observer")
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, args)
                return cursor.fetchall() if cursor.description else []
        finally:
            conn.close()

    @contextlib.contextmanager
    def stopped(self, member: Member) -> Iterator[List[int]]:
        """SIGSTOP the member's postmaster and all its children; SIGCONT them afterwards, always."""
        pids = []
        for pid in member.process_tree():  # the postmaster first: it forks nothing new once stopped
            with contextlib.suppress(ProcessLookupError):  # a backend that just exited
                os.kill(pid, signal.SIGSTOP)
                pids.append(pid)
        try:
            yield pids
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def restart(self, member: Member, between: Any = None) -> None:
        """Fast shutdown by PID, run `between()` while it is down, start it again."""
        stop_pid(member.data_dir / "postmaster.pid")
        if between is not None:
            between()
        _start(PG_BIN_CANDIDATES[0], member)

    def wait_streaming(self, timeout: float = 30) -> None:
        expected = len(self.standbys)
        ok = wait_until(
            lambda: (
                self.query(self.primary, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")[0][0]
                == expected
            ),
            timeout=timeout,
        )
        assert ok, "standbys are not streaming from the primary"


def _run(argv: List[str], log: Optional[Path] = None) -> None:
    completed = subprocess.run(as_postgres(argv), capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = ""
        if log is not None and log.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise AssertionError("%s failed: %s %s\n%s" % (argv[0], completed.stdout, completed.stderr, tail))


def _start(pg_bin: Path, member: Member, attempts: int = 5) -> None:
    """pg_ctl start; retried while the port is briefly held by some client's outgoing connection
    (ports 32768-60999 are also the kernel's ephemeral range)."""
    for attempt in range(attempts):
        try:
            _run(
                [str(pg_bin / "pg_ctl"), "-D", str(member.data_dir), "-l", str(_log(member)), "-w", "start"],
                _log(member),
            )
            return
        except AssertionError as error:
            if "Address already in use" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)


def _configure(data: Path, port: int, socket_dir: Path) -> None:
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# dbops health tests\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
            "max_connections = 40\nshared_buffers = 16MB\nwal_level = replica\nmax_wal_senders = 6\n"
            "max_replication_slots = 6\nhot_standby = on\nwal_keep_size = 0\nmax_wal_size = 64MB\n"
            "hot_standby_feedback = off\nmax_standby_streaming_delay = 30s\nlog_min_messages = warning\n"
            % (port, socket_dir)
        )


def _start_tier(pg_bin: Path, root: Path, tier: str, port: int, standbys: int, stops: List[Any]) -> HealthLab:
    """initdb a primary, pg_basebackup its standbys over physical slots, start them all."""
    primary = Member("%s-primary" % tier, port, root / tier / "primary")
    members = [
        Member(
            "%s-standby-%d" % (tier, number),
            port + number,
            root / tier / ("standby%d" % number),
            replication_name="%s_standby_%d" % (tier, number),
        )
        for number in range(1, standbys + 1)
    ]
    lab = HealthLab(primary=primary, standbys=members, root=root)
    password_file = root / "pw"
    _run(
        [
            str(pg_bin / "initdb"),
            "-D",
            str(primary.data_dir),
            "-U",
            ADMIN_USER,
            "--pwfile",
            str(password_file),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--data-checksums",
            "--no-instructions",
        ]
    )
    _configure(primary.data_dir, primary.port, root)
    _start(pg_bin, primary)
    stops.append(lambda: stop_pid(primary.data_dir / "postmaster.pid"))
    for standby in members:
        _run(
            [
                str(pg_bin / "pg_basebackup"),
                "-h",
                str(root),
                "-p",
                str(primary.port),
                "-U",
                ADMIN_USER,
                "-D",
                str(standby.data_dir),
                "-R",
                "-C",
                "-S",
                standby.replication_name,
                "-X",
                "stream",
            ]
        )
        with open(standby.data_dir / "postgresql.auto.conf", "a") as auto:
            auto.write("port = %d\ncluster_name = '%s'\n" % (standby.port, standby.replication_name))
        _start(pg_bin, standby)
        stops.append(lambda data=standby.data_dir: stop_pid(data / "postmaster.pid"))
    lab.wait_streaming()
    return lab


def _log(member: Member) -> Path:
    return member.data_dir.parent / ("%s.log" % member.data_dir.name)


@contextlib.contextmanager
def throwaway_tiers(
    layout: Dict[str, int], port_offset: int = 70, prefix: str = "dbops-health-"
) -> Iterator[Dict[str, HealthLab]]:
    """One primary with `layout[tier]` standbys per tier; ports DBOPS_TEST_PORT_BASE + port_offset + 10 * i
    (moved up by 200 while any of them is taken)."""
    if not PG_BIN_CANDIDATES:
        lablib.skip_unless_installed(["PostgreSQL server binaries (initdb, pg_ctl)"], "the health lab")
    pg_bin = PG_BIN_CANDIDATES[0]
    base = lablib.free_port_block(int(os.environ.get("DBOPS_TEST_PORT_BASE", "57000")) + port_offset, 10 * len(layout))
    root_parent = Path(os.environ.get("DBOPS_TEST_LAB_ROOT", "/var/tmp"))
    root_parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=str(root_parent)))
    os.chmod(root, 0o755)
    stops: List[Any] = []
    tiers: Dict[str, HealthLab] = {}
    try:
        password_file = root / "pw"
        password_file.write_text(ADMIN_PASSWORD + "\n")
        for path in (root, password_file):
            if os.geteuid() == 0:
                shutil.chown(path, "postgres")
        for index, (tier, standbys) in enumerate(layout.items()):
            tiers[tier] = _start_tier(pg_bin, root, tier, base + 10 * index, standbys, stops)
        yield tiers
    finally:
        members = [member for lab in tiers.values() for member in lab.members]
        for member in members:  # a test that failed inside `stopped` must not leave a frozen server
            with contextlib.suppress(Exception):
                for pid in member.process_tree():
                    os.kill(pid, signal.SIGCONT)
        for stop in reversed(stops):
            stop()
        deadline = time.monotonic() + 10
        while any(_alive(member) for member in members) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_health_lab() -> Iterator[HealthLab]:
    """The tests' lab: pg-primary with pg-standby-1 and pg-standby-2 (ports base + 70..72)."""
    with throwaway_tiers({"pg": 2}) as tiers:
        yield tiers["pg"]


def _alive(member: Member) -> bool:
    try:
        return process_alive(member.postmaster_pid())
    except (OSError, ValueError):
        return False
