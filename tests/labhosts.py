"""The `hosts` lab topology: every server on its own address in its own network namespace.

    python tests/labhosts.py up | down | status [--json]      (make lab-up LAB=hosts, as root)
    python tests/labhosts.py partition HOST | isolate HOST | heal   (the faults, for Molecule)

One oltp tier (oltp-1 primary, oltp-2 and oltp-3 standbys in synchronous quorum ANY 1) and one
PgBouncer, each in a network namespace `dbops-<host>` with its own address from 198.18.0.0/24:
every PostgreSQL on 5432, PgBouncer on 6432, an sshd on 22 per host, all reached by the
controller over SSH as the unprivileged `dbops-lab-ops` user (lab-generated keys, sudo for what
needs root) exactly as inventories/lab-hosts says. Standbys stream from the primary's address.

Network safety, in this order: a `blackhole` route for 198.18.0.0/24 (metric 4242) goes into
the root namespace before any address is assigned and leaves last; the controller's side is one
bridge `dbops-br0` holding 198.18.0.1/24 (its connected route, metric 0, wins while the bridge is
up); the namespaces have no default route and IPv6 off. A lab address whose link is down is dropped
on this machine and never leaves through the default route.

Faults (tests and Molecule): `partition_from_controller(host)` (the host drops what it sends to
the controller: the standbys still reach it), `isolate(host)` (its link down: nobody reaches it),
`heal()`, `hang_postgres(host)` (SIGSTOP of the postmaster and its children, SSH still answers),
`hang_host(host)` (PostgreSQL and sshd stopped). Nothing is ever signalled by process name:
processes are found by PID file, by data directory or with `ip netns pids`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lablib

REPO_ROOT = lablib.REPO_ROOT
INVENTORY = REPO_ROOT / "inventories" / "lab-hosts"
# Not under /var/tmp: sshd (StrictModes) refuses keys below a world-writable directory.
LAB_ROOT = Path("/var/lib/penguinmails-dbops-lab-hosts")
LOCK_PATH = "/var/tmp/penguinmails-dbops-lab-hosts.lock"

NETWORK = "198.18.0.0/24"
PREFIX_LEN = 24
CONTROLLER_ADDRESS = "198.18.0.1"
BLACKHOLE_METRIC = 4242
BRIDGE = "dbops-br0"
NAMESPACE_PREFIX = "dbops-"
OPS_USER = "dbops-lab-ops"
SUDOERS_FILE = Path("/etc/sudoers.d/dbops-lab-ops")
SERVER_OS_USER = "postgres"
PG_PORT = 5432
PGBOUNCER_PORT = 6432
SSH_PORT = 22
DATABASE = "penguinmails_oltp"

ADMIN_USER, ADMIN_PASSWORD = "dbops_admin", "lab-dbops-admin-password"
REPLICATION_USER, REPLICATION_PASSWORD = "replicator", "lab-replicator-password"
APP_USER, APP_PASSWORD = "lab_app_user", "lab_app_password"
PGBOUNCER_ADMIN_USER, PGBOUNCER_ADMIN_PASSWORD = "pgbouncer_admin", "lab-pgbouncer-admin-password"
PASSWORDS = {ADMIN_USER: ADMIN_PASSWORD, APP_USER: APP_PASSWORD, PGBOUNCER_ADMIN_USER: PGBOUNCER_ADMIN_PASSWORD}


@dataclass(frozen=True)
class Host:
    """One lab host: a network namespace with one address, an sshd and one server."""

    name: str
    address: str
    kind: str  # "postgres" or "pgbouncer"

    @property
    def namespace(self) -> str:
        return NAMESPACE_PREFIX + self.name

    @property
    def veth(self) -> str:
        """Root-namespace end of the host's link (interface names are at most 15 characters)."""
        return "dbops-v%s" % self.address.rsplit(".", 1)[1]

    @property
    def directory(self) -> Path:
        return LAB_ROOT / self.name

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "run"

    @property
    def log_file(self) -> Path:
        return self.directory / "postgresql.log"

    @property
    def member_name(self) -> str:
        return self.name.replace("-", "_")

    @property
    def port(self) -> int:
        return PG_PORT if self.kind == "postgres" else PGBOUNCER_PORT


HOSTS = (
    Host("oltp-1", "198.18.0.11", "postgres"),
    Host("oltp-2", "198.18.0.12", "postgres"),
    Host("oltp-3", "198.18.0.13", "postgres"),
    Host("pgbouncer-1", "198.18.0.20", "pgbouncer"),
)
POSTGRES_HOSTS = tuple(host for host in HOSTS if host.kind == "postgres")
PGBOUNCER = next(host for host in HOSTS if host.kind == "pgbouncer")
SSH_DIR = LAB_ROOT / "ssh"
CLIENT_KEY = SSH_DIR / "id_ed25519"
KNOWN_HOSTS = SSH_DIR / "known_hosts"
CONTROL_DIR = LAB_ROOT / "cp"
PASSFILE = LAB_ROOT / "pgpass"
LOCK_DIR = LAB_ROOT / "locks"  # the outage run lock, on pgbouncer-1 (failover_lock_host)
PGBOUNCER_INI = PGBOUNCER.directory / "pgbouncer.ini"
PGBOUNCER_PID_FILE = PGBOUNCER.directory / "pgbouncer.pid"


def host(name: str) -> Host:
    return next(candidate for candidate in HOSTS if candidate.name == name)


# --------------------------------------------------------------------------- commands


def run(argv: Sequence[str], check: bool = True, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and done.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(argv), done.returncode, done.stderr.strip()))
    return done


def in_namespace(target: Host, argv: Sequence[str]) -> List[str]:
    return ["ip", "netns", "exec", target.namespace, *argv]


def as_user(user: str, argv: Sequence[str]) -> List[str]:
    return ["runuser", "-u", user, "--", *argv]


def pg_bin(name: str) -> str:
    return str(Path(lablib.find_pg_bin_dir() or "/usr/lib/postgresql/15/bin") / name)


def namespaces() -> List[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def blackhole_present() -> bool:
    out = run(["ip", "route", "show", "type", "blackhole", NETWORK], check=False).stdout
    return ("metric %d" % BLACKHOLE_METRIC) in out


def lab_routes() -> List[str]:
    """Root-namespace routes for the lab prefix (the blackhole and the bridge's connected route)."""
    return [line for line in run(["ip", "route", "show", "table", "all"]).stdout.splitlines() if "198.18." in line]


def ipv6_off(device: str, namespace: Optional[Host] = None) -> None:
    argv = ["sysctl", "-q", "-w", "net.ipv6.conf.%s.disable_ipv6=1" % device]
    if Path("/proc/sys/net/ipv6").exists():
        run(in_namespace(namespace, argv) if namespace else argv, check=False)


# --------------------------------------------------------------------------- network


def network_up() -> None:
    # The blackhole first: from here on no lab address can leave this machine.
    if not blackhole_present():
        run(["ip", "route", "add", "blackhole", NETWORK, "metric", str(BLACKHOLE_METRIC)])
    if not link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    ipv6_off(BRIDGE)
    for target in HOSTS:
        if target.namespace not in namespaces():
            run(["ip", "netns", "add", target.namespace])
        ipv6_off("all", target)
        ipv6_off("default", target)
        run(in_namespace(target, ["ip", "link", "set", "lo", "up"]))
        if not link_exists(target.veth):
            run(["ip", "link", "add", target.veth, "type", "veth", "peer", "name", "eth0", "netns", target.namespace])
        ipv6_off(target.veth)
        ipv6_off("eth0", target)
        run(["ip", "link", "set", target.veth, "master", BRIDGE, "up"])
        addresses = run(in_namespace(target, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])).stdout
        if target.address + "/" not in addresses:
            run(in_namespace(target, ["ip", "addr", "add", "%s/%d" % (target.address, PREFIX_LEN), "dev", "eth0"]))
        run(in_namespace(target, ["ip", "link", "set", "eth0", "up"]))
    addresses = run(["ip", "-4", "-o", "addr", "show", "dev", BRIDGE]).stdout
    if CONTROLLER_ADDRESS + "/" not in addresses:
        run(["ip", "addr", "add", "%s/%d" % (CONTROLLER_ADDRESS, PREFIX_LEN), "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def network_down() -> None:
    for target in HOSTS:
        if target.namespace in namespaces():
            run(["ip", "netns", "del", target.namespace], check=False)
        if link_exists(target.veth):
            run(["ip", "link", "del", target.veth], check=False)
    if link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE], check=False)
    # The blackhole last: until now a lab address could not leave this machine.
    while blackhole_present():
        run(["ip", "route", "del", "blackhole", NETWORK, "metric", str(BLACKHOLE_METRIC)])


# --------------------------------------------------------------------------- accounts and SSH


def ops_user_up() -> None:
    if run(["id", "-u", OPS_USER], check=False).returncode != 0:
        run(["useradd", "--system", "--no-create-home", "--home-dir", str(LAB_ROOT / "ops-home"), OPS_USER])
        run(["usermod", "--shell", "/bin/bash", "--password", "*", OPS_USER])
    for directory in (LAB_ROOT / "ops-home", LOCK_DIR):
        directory.mkdir(mode=0o700, exist_ok=True)
        shutil.chown(directory, OPS_USER, OPS_USER)
    SUDOERS_FILE.write_text(
        "# penguinmails.dbops hosts lab (tests/labhosts.py); removed by lab-down\n%s ALL=(ALL) NOPASSWD: ALL\n"
        % OPS_USER
    )
    SUDOERS_FILE.chmod(0o440)


def ops_user_down() -> None:
    SUDOERS_FILE.unlink(missing_ok=True)
    if run(["id", "-u", OPS_USER], check=False).returncode == 0:
        run(["userdel", OPS_USER], check=False)


def keys_up() -> None:
    SSH_DIR.mkdir(mode=0o755, exist_ok=True)
    CONTROL_DIR.mkdir(mode=0o700, exist_ok=True)
    if not CLIENT_KEY.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dbops-lab-controller", "-f", str(CLIENT_KEY)])
    authorized = SSH_DIR / "authorized_keys"
    authorized.write_text(Path(str(CLIENT_KEY) + ".pub").read_text())
    authorized.chmod(0o644)
    known = []
    for target in HOSTS:
        key = SSH_DIR / ("host-%s" % target.name)
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", target.name, "-f", str(key)])
        key_type, key_text = Path(str(key) + ".pub").read_text().split()[:2]
        known.append("%s %s %s" % (target.address, key_type, key_text))
    KNOWN_HOSTS.write_text("\n".join(known) + "\n")


def sshd_config(target: Host) -> Path:
    config = target.directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "# penguinmails.dbops hosts lab: sshd of %s (tests/labhosts.py)" % target.name,
                "ListenAddress %s:%d" % (target.address, SSH_PORT),
                "HostKey %s" % (SSH_DIR / ("host-%s" % target.name)),
                "PidFile %s" % (target.directory / "sshd.pid"),
                "AuthorizedKeysFile %s" % (SSH_DIR / "authorized_keys"),
                "AllowUsers %s" % OPS_USER,
                "PermitRootLogin no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "UsePAM no",
                "StrictModes yes",
                "MaxStartups 50",
                "MaxSessions 50",
                "LoginGraceTime 30",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    return config


def sshd_up(target: Host) -> None:
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    if lablib.process_alive(lablib.read_pid(target.directory / "sshd.pid") or 0):
        return
    run(in_namespace(target, ["/usr/sbin/sshd", "-f", str(sshd_config(target))]))
    if not lablib.wait_until(lambda: lablib.port_open(SSH_PORT, target.address), 30):
        raise RuntimeError("sshd of %s does not answer on %s:%d" % (target.name, target.address, SSH_PORT))


def ssh_argv(target: Host, command: Sequence[str], connect_timeout: int = 5) -> List[str]:
    return [
        "ssh",
        *ssh_options(connect_timeout),
        "%s@%s" % (OPS_USER, target.address),
        *command,
    ]


def ssh_options(connect_timeout: int = 5) -> List[str]:
    return [
        "-i",
        str(CLIENT_KEY),
        "-o",
        "UserKnownHostsFile=%s" % KNOWN_HOSTS,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=%d" % connect_timeout,
        "-o",
        "ControlMaster=no",
    ]


# --------------------------------------------------------------------------- PostgreSQL


def postgresql_conf(target: Host) -> str:
    others = ", ".join(other.member_name for other in POSTGRES_HOSTS if other != target)
    return "\n".join(
        [
            "# penguinmails.dbops hosts lab: %s (tests/labhosts.py)" % target.name,
            "listen_addresses = '%s'" % target.address,
            "port = %d" % PG_PORT,
            "unix_socket_directories = '%s'" % target.socket_dir,
            "max_connections = 100",
            "password_encryption = 'scram-sha-256'",
            "cluster_name = '%s'" % target.member_name,
            "shared_buffers = 16MB",
            "work_mem = 2MB",
            "maintenance_work_mem = 16MB",
            "max_worker_processes = 4",
            "max_parallel_workers_per_gather = 0",
            "wal_level = replica",
            "wal_log_hints = on",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            "max_slot_wal_keep_size = 512MB",
            "min_wal_size = 32MB",
            "max_wal_size = 128MB",
            "hot_standby = on",
            "hot_standby_feedback = on",
            "synchronous_standby_names = 'ANY 1 (%s)'" % others,
            "wal_sender_timeout = 5s",
            "wal_receiver_timeout = 5s",
            "wal_receiver_status_interval = 1s",
            "wal_retrieve_retry_interval = 1s",
            "shared_preload_libraries = 'pg_stat_statements'",
            "log_line_prefix = '%m [%p] %q%u@%d '",
            "log_checkpoints = on",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
            "lc_messages = 'C'",
            "",
        ]
    )


PG_HBA = """# penguinmails.dbops hosts lab (tests/labhosts.py)
local   all          postgres                 peer
host    all          all          %s   scram-sha-256
host    replication  all          %s   scram-sha-256
""" % (NETWORK, NETWORK)


def configure(target: Host) -> None:
    (target.data_dir / "postgresql.conf").write_text(postgresql_conf(target))
    (target.data_dir / "pg_hba.conf").write_text(PG_HBA)
    for name in ("postgresql.conf", "pg_hba.conf"):
        shutil.chown(target.data_dir / name, SERVER_OS_USER, SERVER_OS_USER)


def pg_start(target: Host) -> None:
    run(
        in_namespace(
            target,
            as_user(
                SERVER_OS_USER,
                [pg_bin("pg_ctl"), "-D", str(target.data_dir), "-l", str(target.log_file), "-w", "-t", "90", "start"],
            ),
        ),
        timeout=120,
    )


def server_dirs(target: Host) -> None:
    target.directory.mkdir(mode=0o755, exist_ok=True)
    for directory, mode in ((target.socket_dir, 0o755), (target.data_dir, 0o700)):
        directory.mkdir(mode=mode, exist_ok=True)
        shutil.chown(directory, SERVER_OS_USER, SERVER_OS_USER)
    target.log_file.touch()
    shutil.chown(target.log_file, SERVER_OS_USER, SERVER_OS_USER)


def primary_up(target: Host) -> None:
    server_dirs(target)
    run(
        as_user(
            SERVER_OS_USER,
            [
                pg_bin("initdb"),
                "-D",
                str(target.data_dir),
                "--data-checksums",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--locale=C.UTF-8",
                "-U",
                SERVER_OS_USER,
                "--no-sync",
            ],
        )
    )
    configure(target)
    pg_start(target)
    setup = (REPO_ROOT / "roles" / "lab" / "files" / "setup.sql").read_text()
    psql = [pg_bin("psql"), "-X", "-w", "-h", str(target.socket_dir), "-p", str(PG_PORT), "-d", "postgres"]
    variables = {
        "admin_user": ADMIN_USER,
        "replication_user": REPLICATION_USER,
        "app_user": APP_USER,
        "tier_db": DATABASE,
    }
    for name, value in variables.items():
        psql += ["-v", "%s=%s" % (name, value)]
    env = dict(
        os.environ,
        LAB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        LAB_REPLICATION_PASSWORD=REPLICATION_PASSWORD,
        LAB_APP_PASSWORD=APP_PASSWORD,
    )
    # runuser keeps the environment: the passwords never appear on a command line.
    run(as_user(SERVER_OS_USER, [*psql, "-f", "-"]), input=setup, env=env)


def standby_up(target: Host, primary: Host) -> None:
    server_dirs(target)
    conninfo = "host=%s port=%d user=%s passfile=%s application_name=%s" % (
        primary.address,
        PG_PORT,
        REPLICATION_USER,
        PASSFILE,
        target.member_name,
    )
    run(
        in_namespace(
            target,
            as_user(
                SERVER_OS_USER,
                [
                    pg_bin("pg_basebackup"),
                    "-d",
                    conninfo,
                    "-D",
                    str(target.data_dir),
                    "-X",
                    "stream",
                    "-R",
                    "-C",
                    "-S",
                    target.member_name,
                    "--checkpoint=fast",
                    "--no-sync",
                ],
            ),
        ),
        timeout=300,
    )
    configure(target)
    pg_start(target)


def passfile_up() -> None:
    PASSFILE.write_text("*:*:*:%s:%s\n" % (REPLICATION_USER, REPLICATION_PASSWORD))
    PASSFILE.chmod(0o600)
    shutil.chown(PASSFILE, SERVER_OS_USER, SERVER_OS_USER)


def connect(target: Host, dbname: str = "postgres", user: str = ADMIN_USER, **kwargs):
    return lablib.connect(target.port, user, PASSWORDS[user], dbname=dbname, host=target.address, **kwargs)


def streaming_standbys(primary: Host) -> List[str]:
    with connect(primary, connect_timeout=3) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")
        return sorted(row[0] for row in cursor.fetchall())


# --------------------------------------------------------------------------- PgBouncer


def pgbouncer_up(primary: Host) -> None:
    directory = PGBOUNCER.directory
    directory.mkdir(mode=0o755, exist_ok=True)
    shutil.chown(directory, OPS_USER, OPS_USER)
    users = [(APP_USER, APP_PASSWORD), (ADMIN_USER, ADMIN_PASSWORD), (PGBOUNCER_ADMIN_USER, PGBOUNCER_ADMIN_PASSWORD)]
    userlist = directory / "userlist.txt"
    userlist.write_text("".join('"%s" "%s"\n' % pair for pair in users))
    userlist.chmod(0o600)
    PGBOUNCER_INI.write_text(
        "\n".join(
            [
                "; penguinmails.dbops hosts lab (tests/labhosts.py); the outage playbook re-points the entry",
                "[databases]",
                "%s = host=%s port=%d dbname=%s pool_size=50 min_pool_size=5"
                % (DATABASE, primary.address, PG_PORT, DATABASE),
                "",
                "[pgbouncer]",
                "listen_addr = %s" % PGBOUNCER.address,
                "listen_port = %d" % PGBOUNCER_PORT,
                "unix_socket_dir = %s" % directory,
                "pidfile = %s" % PGBOUNCER_PID_FILE,
                "logfile = %s" % (directory / "pgbouncer.log"),
                "auth_type = scram-sha-256",
                "auth_file = %s" % userlist,
                "admin_users = %s, %s" % (PGBOUNCER_ADMIN_USER, ADMIN_USER),
                "pool_mode = transaction",
                "max_client_conn = 400",
                "default_pool_size = 20",
                "server_connect_timeout = 5",
                "server_login_retry = 1",
                "query_wait_timeout = 30",
                "ignore_startup_parameters = extra_float_digits",
                "",
            ]
        )
    )
    for path in (userlist, PGBOUNCER_INI):
        shutil.chown(path, OPS_USER, OPS_USER)
    bouncer = lablib.find_pgbouncer() or "/usr/sbin/pgbouncer"
    run(in_namespace(PGBOUNCER, as_user(OPS_USER, [bouncer, "-d", str(PGBOUNCER_INI)])))
    if not lablib.wait_until(lambda: lablib.port_open(PGBOUNCER_PORT, PGBOUNCER.address), 30):
        raise RuntimeError("PgBouncer does not answer on %s:%d" % (PGBOUNCER.address, PGBOUNCER_PORT))


def pgbouncer_entry() -> str:
    return next(line for line in PGBOUNCER_INI.read_text().splitlines() if line.startswith(DATABASE))


# --------------------------------------------------------------------------- the lab


def up() -> float:
    """Build the lab from nothing (whatever an earlier run left goes first); seconds it took.

    A failure part-way tears down what was built and re-raises.
    """
    started = time.monotonic()
    down()
    try:
        network_up()
        LAB_ROOT.mkdir(mode=0o755, exist_ok=True)
        ops_user_up()
        keys_up()
        passfile_up()
        for target in HOSTS:
            target.directory.mkdir(mode=0o755, exist_ok=True)
            sshd_up(target)
        primary, *standbys = POSTGRES_HOSTS
        primary_up(primary)
        for standby in standbys:
            standby_up(standby, primary)
        expected = sorted(standby.member_name for standby in standbys)
        if not lablib.wait_until(lambda: streaming_standbys(primary) == expected, 60):
            raise RuntimeError("standbys not streaming from %s: %s" % (primary.address, streaming_standbys(primary)))
        pgbouncer_up(primary)
    except BaseException:
        down()
        raise
    return time.monotonic() - started


def lab_pids() -> List[int]:
    """Every process in a lab namespace (servers, sshd and its sessions, PgBouncer)."""
    pids: List[int] = []
    present = namespaces()
    for target in HOSTS:
        if target.namespace in present:
            out = run(["ip", "netns", "pids", target.namespace], check=False).stdout
            pids += [int(pid) for pid in out.split() if pid.isdigit() and lablib.process_alive(int(pid))]
    return pids


def down() -> None:
    """Stop every lab process, remove namespaces, links, the account, files and, last, the blackhole."""
    for target in HOSTS:
        lablib.thaw_server(target.data_dir)
        sshd_pid = lablib.read_pid(target.directory / "sshd.pid")
        if sshd_pid:
            lablib.signal_pids([sshd_pid], signal.SIGCONT)
    for target in POSTGRES_HOSTS:
        if lablib.process_alive(lablib.read_pid(target.data_dir / "postmaster.pid") or 0):
            run(
                as_user(
                    SERVER_OS_USER,
                    [pg_bin("pg_ctl"), "-D", str(target.data_dir), "-m", "immediate", "-w", "-t", "20", "stop"],
                ),
                check=False,
            )
    for _attempt in range(50):
        pids = lab_pids() + [pid for target in POSTGRES_HOSTS for pid in lablib.server_pids(target.data_dir)]
        if not pids:
            break
        lablib.signal_pids(pids, signal.SIGKILL)
        time.sleep(0.1)
    close_ssh_masters()
    network_down()
    ops_user_down()
    if LAB_ROOT.exists():
        shutil.rmtree(LAB_ROOT)


def close_ssh_masters() -> None:
    """Ansible's persistent SSH connections (ControlPath in the lab root) end with the lab."""
    if CONTROL_DIR.is_dir():
        for control in CONTROL_DIR.iterdir():
            run(["ssh", "-o", "ControlPath=%s" % control, "-O", "exit", "lab"], check=False, timeout=10)


def leftovers() -> Dict[str, object]:
    """What lab-down must have removed: empty when nothing of the lab is left."""
    found = {
        "namespaces": [name for name in namespaces() if name in {target.namespace for target in HOSTS}],
        "links": [name for name in [BRIDGE, *(target.veth for target in HOSTS)] if link_exists(name)],
        "routes": lab_routes(),
        "processes": lab_pids(),
        "lab_root": LAB_ROOT.exists(),
        "ops_user": run(["id", "-u", OPS_USER], check=False).returncode == 0,
    }
    return {key: value for key, value in found.items() if value}


def role(target: Host, connect_timeout: float = 3) -> str:
    try:
        with (
            connect(target, connect_timeout=connect_timeout, options="-c statement_timeout=3000") as conn,
            conn.cursor() as cursor,
        ):
            cursor.execute("SELECT pg_is_in_recovery()")
            return "standby" if cursor.fetchone()[0] else "primary"
    except Exception:
        return "down"


def upstream(target: Host) -> Optional[str]:
    """The standby's WAL receiver's sender, as address:port, when it streams."""
    try:
        with connect(target, connect_timeout=3) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver")
            row = cursor.fetchone()
    except Exception:
        return None
    if not row or row[0] != "streaming":
        return None
    return "%s:%s" % (row[1], row[2])


def status() -> List[Dict[str, object]]:
    rows = []
    for target in HOSTS:
        row: Dict[str, object] = {
            "host": target.name,
            "namespace": target.namespace if target.namespace in namespaces() else "-",
            "address": "%s:%d" % (target.address, target.port),
            "ssh": lablib.port_open(SSH_PORT, target.address, timeout=2),
        }
        if target.kind == "postgres":
            row["role"] = role(target)
            row["upstream"] = upstream(target) or "-"
        else:
            row["role"] = "pgbouncer" if lablib.port_open(PGBOUNCER_PORT, target.address, timeout=2) else "down"
            row["upstream"] = pgbouncer_entry() if PGBOUNCER_INI.exists() else "-"
        rows.append(row)
    return rows


def primary() -> Host:
    found = [target for target in POSTGRES_HOSTS if role(target) == "primary"]
    if len(found) != 1:
        raise AssertionError("expected one primary, found %s" % [target.name for target in found])
    return found[0]


def memory_kb() -> Dict[str, int]:
    return lablib.memory_kb(lab_pids())


# --------------------------------------------------------------------------- faults


def partition_from_controller(target: Host) -> None:
    """The host drops everything it sends to the controller: the controller's connections to it
    time out (SSH included) while the other hosts still reach it."""
    run(in_namespace(target, ["ip", "route", "replace", "blackhole", "%s/32" % CONTROLLER_ADDRESS]))


def isolate(target: Host) -> None:
    """The host's link goes down on its side: nobody reaches it and it reaches nobody."""
    run(in_namespace(target, ["ip", "link", "set", "eth0", "down"]))


cut = isolate  # one standby cut off: the same fault on a standby's host


def heal(targets: Sequence[Host] = HOSTS) -> None:
    for target in targets:
        run(in_namespace(target, ["ip", "route", "del", "blackhole", "%s/32" % CONTROLLER_ADDRESS]), check=False)
        run(in_namespace(target, ["ip", "link", "set", "eth0", "up"]))


def hang_postgres(target: Host) -> List[int]:
    """SIGSTOP of the postmaster and all its children: TCP still connects, nothing answers."""
    return lablib.freeze_server(target.data_dir)


def hang_host(target: Host) -> List[int]:
    """PostgreSQL and the sshd listener stopped: the host answers neither SQL nor SSH."""
    stopped = hang_postgres(target)
    sshd_pid = lablib.read_pid(target.directory / "sshd.pid")
    if sshd_pid:
        stopped += lablib.signal_pids([sshd_pid], signal.SIGSTOP)
    return stopped


def thaw(target: Host) -> None:
    lablib.thaw_server(target.data_dir)
    sshd_pid = lablib.read_pid(target.directory / "sshd.pid")
    if sshd_pid:
        lablib.signal_pids([sshd_pid], signal.SIGCONT)


def connect_outcome(address: str, port: int, timeout: float = 3.0) -> str:
    """'connected', 'timeout' or the error (e.g. 'refused', 'unreachable') of one TCP connect."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except socket.timeout:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"
        except OSError as error:
            return "unreachable (%s)" % error.strerror
    return "connected"


@contextlib.contextmanager
def running(lock_path: str = LOCK_PATH) -> Iterator[None]:
    """The lab up for a test session (one at a time on this machine), down afterwards."""
    with lablib.exclusive_lock(lock_path):
        try:
            up()
            yield
        finally:
            down()


class LabView:
    """What tests/appwriter.py needs of a lab: connections through PgBouncer."""

    def connect_pgbouncer(self, dbname: str, user: Optional[str] = None, **kwargs):
        user = user or ADMIN_USER
        return lablib.connect(PGBOUNCER_PORT, user, PASSWORDS[user], dbname=dbname, host=PGBOUNCER.address, **kwargs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "partition", "isolate", "heal"])
    parser.add_argument("host", nargs="?", help="partition | isolate: the host (e.g. oltp-1)")
    parser.add_argument("--json", action="store_true", help="status: one JSON list (Molecule reads it)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("labhosts: the hosts lab creates network namespaces and accounts: run it as root", file=sys.stderr)
        return 1
    if args.action in ("partition", "isolate"):
        if args.host not in {target.name for target in HOSTS}:
            print("labhosts: %s needs one of %s" % (args.action, ", ".join(t.name for t in HOSTS)), file=sys.stderr)
            return 2
        (partition_from_controller if args.action == "partition" else isolate)(host(args.host))
        return 0
    if args.action == "heal":
        heal()
        return 0
    if args.action == "status" and args.json:
        print(json.dumps(status()))
        return 0
    if args.action == "up":
        seconds = up()
        print("hosts lab up in %.1f s; inventory %s" % (seconds, INVENTORY.relative_to(REPO_ROOT)))
        args.action = "status"
    if args.action == "down":
        down()
        left = leftovers()
        print("hosts lab down" + ("; LEFT BEHIND: %s" % json.dumps(left) if left else ", nothing left behind"))
        return 1 if left else 0
    for row in status():
        print("{host:12} {namespace:18} {address:18} ssh={ssh!s:5} {role:9} {upstream}".format(**row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
