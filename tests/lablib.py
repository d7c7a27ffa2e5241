"""Shared helpers for suites that need the rehearsal lab (pytest, Molecule, benchmarks).

* `write_inventory` writes an inventory for a chosen topology (tiers, standbys per
  tier, port base, lab_root) with the variable names of inventories/lab, and
  returns a `Lab` that knows its servers;
* `Lab.up()` / `Lab.down()` run playbooks/lab.yml with the venv's
  ansible-playbook and parse the play recap;
* process helpers read a server's postmaster PID and all of its children from
  /proc and break servers for real: SIGKILL the postmaster, SIGSTOP / SIGCONT a
  postmaster with all its children, stop cleanly with pg_ctl;
* `connect` opens a psycopg2 connection that cannot hang (connect_timeout).

Processes are only ever signalled by PID (read from postmaster.pid or
PgBouncer's pidfile), never looked up by name. A killed postmaster can linger as
a zombie on these machines (PID 1 does not reap), so "alive" means "exists and
is not a zombie".

Also a small command line for shell-driven suites:

    python tests/lablib.py write-inventory DIR --tiers oltp=2,content=1 --port-base 5700
    python tests/lablib.py up DIR          # DIR holds hosts.yml
    python tests/lablib.py down DIR
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_DIR = REPO_ROOT / ".build" / "collections"
LAB_PLAYBOOK = REPO_ROOT / "playbooks" / "lab.yml"
STATUS_PLAYBOOK = REPO_ROOT / "playbooks" / "lab_status.yml"

# Tier order fixes the port layout: port_base + 10 * tier index + member number.
TIER_ORDER = ("oltp", "content", "queue", "olap")


@dataclass(frozen=True)
class TierSpec:
    database: str
    pool_min: int
    pool_size: int
    sync_quorum: int = 0


# The seed's tiers, as in inventories/lab/group_vars.
TIERS: Dict[str, TierSpec] = {
    "oltp": TierSpec("penguinmails_oltp", 5, 50, sync_quorum=1),
    "content": TierSpec("penguinmails_content", 3, 25),
    "queue": TierSpec("penguinmails_queue", 5, 40),
    "olap": TierSpec("penguinmails_olap", 3, 15),
}

# The lab's logins (same names and values as inventories/lab/group_vars/all.yml).
CREDENTIALS: Dict[str, str] = {
    "dbops_login_user": "dbops_admin",
    "dbops_login_password": "lab-dbops-admin-password",
    "lab_app_user": "lab_app_user",
    "lab_app_password": "lab_app_password",
    "lab_replication_user": "replicator",
    "lab_replication_password": "lab-replicator-password",
    "pgbouncer_admin_user": "pgbouncer_admin",
    "pgbouncer_admin_password": "lab-pgbouncer-admin-password",
    "pgbouncer_stats_user": "pgbouncer_stats",
    "pgbouncer_stats_password": "lab-pgbouncer-stats-password",
}

RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)


# --------------------------------------------------------------------------- binaries


def find_pg_bin_dir() -> Optional[str]:
    """Newest /usr/lib/postgresql/<major>/bin with initdb, else `pg_config --bindir`; None if neither."""
    candidates = [path for path in glob.glob("/usr/lib/postgresql/*/bin") if os.path.basename(path[:-4]).isdigit()]
    candidates.sort(key=lambda path: int(os.path.basename(path[:-4])), reverse=True)
    for candidate in candidates:
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return candidate
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return bindir if os.access(os.path.join(bindir, "initdb"), os.X_OK) else None


def find_pgbouncer() -> Optional[str]:
    for candidate in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def missing_binaries() -> List[str]:
    """What the lab needs from the system and is not installed (empty when all is there)."""
    missing = []
    if not find_pg_bin_dir():
        missing.append("PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup)")
    if not find_pgbouncer():
        missing.append("PgBouncer")
    return missing


def require_binaries(*also_missing: str, needs: str = "the lab") -> None:
    """Skip the calling test when the lab's system packages (or also_missing) are not installed."""
    skip_unless_installed(missing_binaries() + list(also_missing), needs)


def skip_unless_installed(missing: List[str], needs: str) -> None:
    """Skip the calling test when something it needs from the system is missing.

    Under CI (CI set, as .ci/run does) that fails instead: CI installs everything, so a skip there
    would hide a missing install step behind a green run.
    """
    import pytest  # only the tests call this; lablib is also a command-line tool

    if not missing:
        return
    message = "%s needs %s; run tools/install-system-packages.sh" % (needs, ", ".join(missing))
    if os.environ.get("CI"):
        pytest.fail(message + " (CI installs them: a skip would hide it)", pytrace=False)
    pytest.skip(message)


def ansible_playbook() -> str:
    """The ansible-playbook next to the running interpreter (the venv), else the checkout's .venv."""
    for candidate in (
        Path(sys.executable).parent / "ansible-playbook",
        REPO_ROOT / ".venv" / "bin" / "ansible-playbook",
    ):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError("ansible-playbook not found next to %s nor in .venv; run `make venv`" % sys.executable)


def ensure_collection_link() -> None:
    """Expose the checkout as penguinmails.dbops under .build/collections (what `make link` does)."""
    link = COLLECTIONS_DIR / "ansible_collections" / "penguinmails" / "dbops"
    if link.exists():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(REPO_ROOT)


# --------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class Server:
    """One PostgreSQL server of a lab inventory."""

    name: str
    tier: str
    port: int
    data_dir: Path
    bin_dir: str
    host: str = "127.0.0.1"

    @property
    def member_name(self) -> str:
        """Replication slot and application_name of this server ('oltp-2' -> 'oltp_2')."""
        return re.sub(r"[^a-z0-9_]", "_", self.name.lower())

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "postgresql.log"

    def postmaster_pid(self) -> Optional[int]:
        return read_pid(self.data_dir / "postmaster.pid")

    def pids(self) -> List[int]:
        """The live postmaster and every live process under it."""
        return server_pids(self.data_dir)


@dataclass(frozen=True)
class PlaybookRun:
    """Outcome of one ansible-playbook run."""

    args: Sequence[str]
    rc: int
    stdout: str
    stderr: str
    recap: Dict[str, Dict[str, int]]

    @property
    def changed(self) -> int:
        return sum(host["changed"] for host in self.recap.values())

    @property
    def failed(self) -> int:
        return sum(host["failed"] + host["unreachable"] for host in self.recap.values())

    def check(self) -> PlaybookRun:
        """Raise with the end of the output when the run failed."""
        if self.rc != 0 or self.failed:
            tail = "\n".join((self.stdout + "\n" + self.stderr).strip().splitlines()[-60:])
            raise RuntimeError("ansible-playbook %s failed (rc=%d):\n%s" % (" ".join(self.args), self.rc, tail))
        return self


@dataclass
class Lab:
    """A lab inventory written by `write_inventory`, and what is known about its servers."""

    inventory_dir: Path
    lab_root: Path
    servers: Dict[str, Server]
    pgbouncer_port: Optional[int]
    credentials: Dict[str, str] = field(default_factory=lambda: dict(CREDENTIALS))
    first_run: Optional[PlaybookRun] = None  # the run that built it, when a fixture records it

    @property
    def inventory(self) -> Path:
        return self.inventory_dir / "hosts.yml"

    @property
    def pgbouncer_ini(self) -> Path:
        return self.lab_root / "pgbouncer-1" / "pgbouncer.ini"

    @property
    def pgbouncer_pid_file(self) -> Path:
        return self.lab_root / "pgbouncer-1" / "pgbouncer.pid"

    def tiers(self) -> List[str]:
        return [tier for tier in TIER_ORDER if any(server.tier == tier for server in self.servers.values())]

    def tier(self, tier: str) -> List[Server]:
        return [server for server in self.servers.values() if server.tier == tier]

    def up(self, check: bool = True, **extra_vars: object) -> PlaybookRun:
        run = run_playbook(self.inventory, LAB_PLAYBOOK, dict(extra_vars, lab_state="present"))
        return run.check() if check else run

    def down(self, check: bool = True) -> PlaybookRun:
        run = run_playbook(self.inventory, LAB_PLAYBOOK, {"lab_state": "absent"})
        return run.check() if check else run

    def status(self, check: bool = True) -> PlaybookRun:
        run = run_playbook(self.inventory, STATUS_PLAYBOOK)
        return run.check() if check else run

    def connect(self, server: Server, dbname: str = "postgres", user: Optional[str] = None, **kwargs):
        """psycopg2 connection to `server` as the administrative login (or `user`, with its password)."""
        user = user or self.credentials["dbops_login_user"]
        return connect(server.port, user, self.password_of(user), dbname=dbname, host=server.host, **kwargs)

    def connect_pgbouncer(self, dbname: str, user: Optional[str] = None, **kwargs):
        """psycopg2 connection through PgBouncer, as the application role by default."""
        if self.pgbouncer_port is None:
            raise ValueError("this lab has no PgBouncer")
        user = user or self.credentials["lab_app_user"]
        return connect(self.pgbouncer_port, user, self.password_of(user), dbname=dbname, **kwargs)

    def pgbouncer_show(self, subject: str, user: Optional[str] = None) -> List[Dict[str, object]]:
        """SHOW <subject> on PgBouncer's admin console, rows keyed by column name (admin login by default)."""
        user = user or self.credentials["pgbouncer_admin_user"]
        conn = connect(self.pgbouncer_port, user, self.password_of(user), dbname="pgbouncer")
        try:
            with conn.cursor() as cursor:
                cursor.execute("SHOW %s" % subject)
                names = [column[0] for column in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
        finally:
            conn.close()

    def password_of(self, user: str) -> str:
        for key, value in self.credentials.items():
            if key.endswith("_user") and value == user:
                return self.credentials[key[: -len("_user")] + "_password"]
        raise KeyError("no password for %s in the lab's credentials" % user)

    def role(self, server: Server, connect_timeout: float = 3) -> str:
        """'primary', 'standby' or 'down', as the server says (asked over a new connection)."""
        try:
            conn = self.connect(server, connect_timeout=connect_timeout)
        except Exception:  # any failure to connect means the server is down for the caller
            return "down"
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_is_in_recovery()")
                return "standby" if cursor.fetchone()[0] else "primary"
        finally:
            conn.close()

    def primary(self, tier: str) -> Server:
        """The one server of `tier` that says it is primary."""
        primaries = [server for server in self.tier(tier) if self.role(server) == "primary"]
        if len(primaries) != 1:
            raise AssertionError("tier %s has %d primaries: %s" % (tier, len(primaries), primaries))
        return primaries[0]

    def all_pids(self) -> Dict[str, List[int]]:
        """Every live lab process by server name (PgBouncer as 'pgbouncer-1')."""
        found = {name: server.pids() for name, server in self.servers.items()}
        bouncer = read_pid(self.pgbouncer_pid_file)
        found["pgbouncer-1"] = [bouncer] if bouncer and process_alive(bouncer) else []
        return found

    def memory_kb(self) -> Dict[str, int]:
        """RSS and PSS of every lab process, summed (see `memory_kb`)."""
        return memory_kb([pid for pids in self.all_pids().values() for pid in pids])

    def is_gone(self) -> bool:
        """No lab_root, no live lab process and no lab port accepting: nothing for `down()` to do."""
        if self.lab_root.exists() or any(self.all_pids().values()):
            return False
        return not any(port_open(port, timeout=0.5) for port in self.ports())

    def ports(self) -> List[int]:
        ports = [server.port for server in self.servers.values()]
        return [*ports, self.pgbouncer_port] if self.pgbouncer_port else ports


def write_inventory(
    directory: os.PathLike,
    tiers: Optional[Mapping[str, int]] = None,
    port_base: int = 5600,
    pgbouncer_port: Optional[int] = None,
    lab_root: os.PathLike = "/var/tmp/penguinmails-dbops-lab-test",
    with_pgbouncer: bool = True,
    bin_dir: Optional[str] = None,
    credentials: Optional[Mapping[str, str]] = None,
    backups: Sequence[str] = (),
) -> Lab:
    """Write DIRECTORY/hosts.yml for a topology and return the Lab it describes.

    `tiers` maps tier group to number of standbys (default {"oltp": 2}); server
    N of a tier listens on port_base + 10 * tier index + N (oltp 0, content 1,
    queue 2, olap 3); PgBouncer on `pgbouncer_port` (default port_base + 1000).
    Tiers in `backups` opt in to pgBackRest (pgbackrest_stanza = the tier's name): WAL archived to a
    repository under lab_root and a full backup taken when the lab comes up.
    """
    tiers = dict(tiers if tiers is not None else {"oltp": 2})
    unknown = sorted(set(tiers) - set(TIERS))
    if unknown:
        raise ValueError("unknown tiers %s; known: %s" % (unknown, ", ".join(TIER_ORDER)))
    bin_dir = bin_dir or find_pg_bin_dir()
    if not bin_dir:
        raise FileNotFoundError("no PostgreSQL server binaries found; install them (tools/install-system-packages.sh)")
    lab_root = Path(lab_root)
    credentials = dict(credentials or CREDENTIALS)
    pgbouncer_port = (pgbouncer_port or port_base + 1000) if with_pgbouncer else None

    servers: Dict[str, Server] = {}
    tier_groups = {}
    for index, tier in enumerate(TIER_ORDER):
        if tier not in tiers:
            continue
        spec = TIERS[tier]
        hosts = {}
        for number in range(1, tiers[tier] + 2):
            name = "%s-%d" % (tier, number)
            server = Server(name, tier, port_base + 10 * index + number, lab_root / name / "data", bin_dir)
            servers[name] = server
            hosts[name] = {
                "ansible_host": server.host,
                "pg_port": server.port,
                "pg_data_dir": str(server.data_dir),
                "pg_bin_dir": bin_dir,
                "pgbackrest_config": str(lab_root / name / "pgbackrest.conf"),
            }
        tier_groups[tier] = {
            "hosts": hosts,
            "vars": {
                "tier_database": spec.database,
                "tier_pool_min": spec.pool_min,
                "tier_pool_size": spec.pool_size,
                "tier_sync_quorum": spec.sync_quorum,
                **({"pgbackrest_stanza": tier} if tier in backups else {}),
            },
        }

    children: Dict[str, object] = {"postgres": {"children": tier_groups}}
    if pgbouncer_port:
        bouncer = {
            "ansible_host": "127.0.0.1",
            "pgbouncer_port": pgbouncer_port,
            "pgbouncer_ini_path": str(lab_root / "pgbouncer-1" / "pgbouncer.ini"),
        }
        children["pgbouncer"] = {"hosts": {"pgbouncer-1": bouncer}}
    inventory = {
        "all": {
            "vars": dict(
                {
                    "ansible_connection": "local",
                    "ansible_pipelining": True,
                    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                    "lab_root": str(lab_root),
                    "pg_replication_conninfo": "user=%s passfile=%s"
                    % (credentials["lab_replication_user"], lab_root / "pgpass"),
                },
                **credentials,
            ),
            "children": children,
        }
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # JSON is YAML: no dependency on a YAML library, and the file stays readable.
    (directory / "hosts.yml").write_text(
        "# Written by tests/lablib.py: a rehearsal lab inventory, variables as in inventories/lab.\n"
        + json.dumps(inventory, indent=2)
        + "\n"
    )
    return Lab(directory, lab_root, servers, pgbouncer_port, credentials)


# --------------------------------------------------------------------------- playbooks


def parse_recap(output: str) -> Dict[str, Dict[str, int]]:
    """PLAY RECAP lines as {host: {ok, changed, unreachable, failed, skipped, rescued, ignored}}."""
    recap_start = output.rfind("PLAY RECAP")
    recap = {}
    for match in RECAP_LINE.finditer(output[recap_start:] if recap_start >= 0 else ""):
        values = match.groupdict()
        host = values.pop("host")
        recap[host] = {key: int(value) for key, value in values.items()}
    return recap


def playbook_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_DIR),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_playbook(
    inventory: os.PathLike,
    playbook: os.PathLike,
    extra_vars: Optional[Mapping[str, object]] = None,
    args: Sequence[str] = (),
    timeout: float = 900,
) -> PlaybookRun:
    """Run ansible-playbook from the venv against `inventory`; never raises on a failed play."""
    ensure_collection_link()
    argv = [ansible_playbook(), "-i", str(inventory), str(playbook), *args]
    if extra_vars:
        argv += ["-e", json.dumps(dict(extra_vars))]
    done = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        env=playbook_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlaybookRun(argv[1:], done.returncode, done.stdout, done.stderr, parse_recap(done.stdout))


def lab_up(inventory: os.PathLike, **extra_vars: object) -> PlaybookRun:
    return run_playbook(inventory, LAB_PLAYBOOK, dict(extra_vars, lab_state="present")).check()


def lab_down(inventory: os.PathLike) -> PlaybookRun:
    return run_playbook(inventory, LAB_PLAYBOOK, {"lab_state": "absent"}).check()


# --------------------------------------------------------------------------- processes


def read_pid(path: os.PathLike) -> Optional[int]:
    """First line of a PID file (postmaster.pid, PgBouncer's pidfile) as an int, or None."""
    try:
        with open(path) as handle:
            return int(handle.readline().strip())
    except (OSError, ValueError):
        return None


def _stat_fields(pid: int) -> Optional[List[str]]:
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: fields resume after the last ')'.
    return stat[stat.rfind(")") + 2 :].split()


def process_state(pid: int) -> Optional[str]:
    """State letter from /proc/<pid>/stat (R, S, D, T, Z, ...) or None when the process is gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def process_alive(pid: int) -> bool:
    """Exists and is not a zombie (a zombie has exited; it only waits to be reaped)."""
    return process_state(pid) not in (None, "Z", "X")


def children(pid: int) -> List[int]:
    """Every live descendant of `pid`, found through the parent links in /proc."""
    children_of: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children_of.setdefault(int(fields[1]), []).append(int(entry))
    found: List[int] = []
    queue = [pid]
    while queue:
        for child in children_of.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return [child for child in found if process_alive(child)]


def server_pids(data_dir: os.PathLike) -> List[int]:
    """The live postmaster of `data_dir` and all of its live children; [] when it is not running."""
    pid = read_pid(Path(data_dir) / "postmaster.pid")
    if pid is None or not process_alive(pid):
        return []
    return [pid, *children(pid)]


def memory_kb(pids: Sequence[int]) -> Dict[str, int]:
    """Summed RSS and PSS (kB, from /proc/<pid>/smaps_rollup) of live `pids`.

    RSS counts shared memory (shared_buffers) once per process that touched it;
    PSS splits it between them, so the PSS sum is the honest total.
    """
    totals = {"rss_kb": 0, "pss_kb": 0, "processes": 0}
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as handle:
                rollup = handle.read()
        except OSError:
            continue
        fields = dict(re.findall(r"^(Rss|Pss):\s+(\d+) kB", rollup, re.MULTILINE))
        totals["rss_kb"] += int(fields.get("Rss", 0))
        totals["pss_kb"] += int(fields.get("Pss", 0))
        totals["processes"] += 1
    return totals


def signal_pids(pids: Sequence[int], signum: int) -> List[int]:
    """Send `signum` to each PID; the PIDs that received it."""
    sent = []
    for pid in pids:
        try:
            os.kill(pid, signum)
            sent.append(pid)
        except ProcessLookupError:
            pass
    return sent


def kill_postmaster(data_dir: os.PathLike) -> int:
    """SIGKILL the postmaster of `data_dir` (its children notice and exit on their own); its PID."""
    pid = read_pid(Path(data_dir) / "postmaster.pid")
    if pid is None or not process_alive(pid):
        raise RuntimeError("no running postmaster for %s" % data_dir)
    os.kill(pid, signal.SIGKILL)
    return pid


def freeze_server(data_dir: os.PathLike) -> List[int]:
    """SIGSTOP the postmaster and all of its children (a hung server); the PIDs stopped."""
    pids = server_pids(data_dir)
    if not pids:
        raise RuntimeError("no running postmaster for %s" % data_dir)
    return signal_pids(pids, signal.SIGSTOP)


def thaw_server(data_dir: os.PathLike, pids: Optional[Sequence[int]] = None) -> List[int]:
    """SIGCONT what `freeze_server` stopped (or the postmaster and its children now); the PIDs resumed."""
    return signal_pids(list(pids) if pids is not None else server_pids(data_dir), signal.SIGCONT)


def run_as_server_user(argv: Sequence[str], data_dir: os.PathLike) -> List[str]:
    """Prefix argv with runuser when we are root and the data directory belongs to another user."""
    owner = os.stat(data_dir).st_uid
    if os.getuid() == 0 and owner != 0:
        import pwd

        return ["runuser", "-u", pwd.getpwuid(owner).pw_name, "--", *argv]
    return list(argv)


def stop_server(server: Server, mode: str = "fast", timeout: int = 30) -> None:
    """Stop a server cleanly with pg_ctl (as the OS user that owns its data directory)."""
    argv = [os.path.join(server.bin_dir, "pg_ctl"), "-D", str(server.data_dir), "-m", mode, "-w"]
    argv += ["-t", str(timeout), "stop"]
    subprocess.run(run_as_server_user(argv, server.data_dir), cwd="/", capture_output=True, text=True, check=True)


def start_server(server: Server, timeout: int = 60) -> None:
    """Start a stopped server with pg_ctl, logging where the lab logs it; a failure shows the log's tail."""
    argv = [os.path.join(server.bin_dir, "pg_ctl"), "-D", str(server.data_dir), "-l", str(server.log_file), "-w"]
    argv += ["-t", str(timeout), "start"]
    done = subprocess.run(
        run_as_server_user(argv, server.data_dir), cwd="/", capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        log_file = Path(server.log_file)
        log_tail = log_file.read_text(errors="replace").splitlines()[-15:] if log_file.exists() else []
        raise RuntimeError(
            "pg_ctl start of %s failed (exit %d): %s\nlog:\n%s"
            % (server.name, done.returncode, (done.stdout + done.stderr).strip(), "\n".join(log_tail))
        )


# --------------------------------------------------------------------------- connections


def connect(
    port: int,
    user: str,
    password: str,
    dbname: str = "postgres",
    host: str = "127.0.0.1",
    connect_timeout: float = 5,
    autocommit: bool = True,
    **kwargs: object,
):
    """psycopg2 connection with a connect timeout (libpq counts whole seconds, at least 2)."""
    import psycopg2

    conn = psycopg2.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        dbname=dbname,
        connect_timeout=max(2, math.ceil(connect_timeout)),
        application_name=kwargs.pop("application_name", "penguinmails-dbops-tests"),
        **kwargs,
    )
    conn.autocommit = autocommit
    return conn


def port_bindable(port: int) -> bool:
    """Nothing holds 127.0.0.1:port right now (no server, no client's outgoing connection)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(base: int, size: int, step: int = 200, tries: int = 20) -> int:
    """The first of base, base+step, ... whose `size` ports are all free right now.

    Ports 32768-60999 are also the kernel's ephemeral range: a client's outgoing connection
    (a PgBouncer server connection, a WAL receiver of another lab) can hold one of them for
    minutes. Once a server listens on a port, the kernel hands it out no more, so only the
    moment of starting is at risk.
    """
    for attempt in range(tries):
        start = base + attempt * step
        if all(port_bindable(port) for port in range(start, start + size)):
            return start
    raise AssertionError("no free block of %d ports from %d" % (size, base))


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def running(lab: Lab, lock_path: Optional[str] = None) -> Iterator[Lab]:
    """`lab` up from nothing for a test session, down afterwards, also when tests fail.

    Leftovers of an interrupted earlier session go first; frozen servers are thawed before the
    teardown. With `lock_path`, sessions of other checkouts on the same ports and lab_root wait.
    The first `up` run is kept as `lab.first_run`.
    """
    with exclusive_lock(lock_path) if lock_path else contextlib.nullcontext():
        if not lab.is_gone():
            lab.down()
        try:
            lab.first_run = lab.up()
            yield lab
        finally:
            for server in lab.servers.values():
                thaw_server(server.data_dir)
            if not lab.is_gone():
                lab.down()


@contextlib.contextmanager
def exclusive_lock(path: os.PathLike, timeout: float = 1800, interval: float = 1.0) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed) for the block.

    Suites that share a lab_root and ports (two checkouts running `make test` on one
    machine) take turns instead of tearing down each other's servers.
    """
    import fcntl

    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError("%s is still locked after %ss by another lab user" % (path, timeout)) from None
                time.sleep(interval)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.2) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------- command line


def _parse_tiers(text: str) -> Dict[str, int]:
    tiers = {}
    for item in filter(None, text.split(",")):
        name, separator, standbys = item.partition("=")
        tiers[name.strip()] = int(standbys) if separator else 1
    return tiers


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write-inventory", help="write DIR/hosts.yml for a topology")
    write.add_argument("directory")
    write.add_argument("--tiers", default="oltp=2", help="tier=standbys,... (default oltp=2)")
    write.add_argument("--port-base", type=int, default=5600)
    write.add_argument("--pgbouncer-port", type=int)
    write.add_argument("--no-pgbouncer", action="store_true")
    write.add_argument("--lab-root", default="/var/tmp/penguinmails-dbops-lab-test")
    write.add_argument("--backups", default="", help="tiers that take pgBackRest backups, comma-separated")
    for name in ("up", "down", "status"):
        command = commands.add_parser(name, help="%s the lab of DIR/hosts.yml" % name)
        command.add_argument("directory")
    options = parser.parse_args(argv)

    if options.command == "write-inventory":
        lab = write_inventory(
            options.directory,
            tiers=_parse_tiers(options.tiers),
            port_base=options.port_base,
            pgbouncer_port=options.pgbouncer_port,
            lab_root=options.lab_root,
            with_pgbouncer=not options.no_pgbouncer,
            backups=[tier for tier in options.backups.split(",") if tier],
        )
        print(lab.inventory)
        return 0
    inventory = Path(options.directory) / "hosts.yml"
    if options.command == "status":
        run = run_playbook(inventory, STATUS_PLAYBOOK)
    else:
        run = run_playbook(inventory, LAB_PLAYBOOK, {"lab_state": "present" if options.command == "up" else "absent"})
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    return run.rc


if __name__ == "__main__":
    sys.exit(main())
