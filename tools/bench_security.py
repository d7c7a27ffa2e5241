"""Benchmark: the security breach playbook, from its start to the suspect contained everywhere.

Prints figures, asserts nothing. Run by `make bench` (tools/bench.py) or alone:

    .venv/bin/python tools/bench_security.py [--runs 3]

On its own queue lab behind PgBouncer (ports DBOPS_BENCH_PORT_BASE + 170, default 5970: a primary
on 5991, a standby on 5992, PgBouncer on 6970; stopped at the end), per run:

* a suspect role holds a session on each server and a silent one through PgBouncer; an application client
  sends SELECT 1 through PgBouncer every 50 ms (its errors are counted);
* incident_security_breach.yml starts; a watcher polls every 0.1 s, as the lab's superuser, the
  suspect's sessions on both servers and its PgBouncer clients, and tries a suspect login on each
  server and through PgBouncer;
* measured: seconds from the playbook's start to contained (no session anywhere, every login
  refused), the playbook's wall time, and the lift's wall time (which resets the lab for the next run).

Medians over --runs. The machine's other load shows in the figures; quote medians and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import lablib  # noqa: E402

PLAYBOOK = REPO / "playbooks" / "incident_security_breach.yml"
DATABASE = "penguinmails_queue"
SUSPECT, SUSPECT_PASSWORD = "bench_suspect", "bench-suspect-password"


def admin(lab, port):
    return lablib.connect(port, lab.credentials["dbops_login_user"], lab.credentials["dbops_login_password"])


def prepare(lab) -> None:
    """The suspect role, allowed in by PgBouncer's auth_file."""
    conn = admin(lab, lab.primary("queue").port)
    with conn.cursor() as cursor:
        cursor.execute("CREATE ROLE %s LOGIN PASSWORD %%s" % SUSPECT, (SUSPECT_PASSWORD,))
        cursor.execute("GRANT CONNECT ON DATABASE %s TO %s" % (DATABASE, SUSPECT))
    conn.close()
    userlist = lab.lab_root / "pgbouncer-1" / "userlist.txt"
    with open(userlist, "a") as handle:
        handle.write('"%s" "%s"\n' % (SUSPECT, SUSPECT_PASSWORD))
    bouncer_command(lab, "RELOAD")


def bouncer_command(lab, text: str):
    user = lab.credentials["pgbouncer_admin_user"]
    conn = lablib.connect(lab.pgbouncer_port, user, lab.password_of(user), dbname="pgbouncer")
    with conn.cursor() as cursor:
        cursor.execute(text)
        rows = cursor.fetchall() if cursor.description else []
        names = [column[0] for column in cursor.description or []]
    conn.close()
    return [dict(zip(names, row)) for row in rows]


def suspect_login(port: int) -> bool:
    try:
        lablib.connect(port, SUSPECT, SUSPECT_PASSWORD, dbname=DATABASE, connect_timeout=3).close()
        return True
    except Exception:  # refused is what is being waited for
        return False


class Holder(threading.Thread):
    """A suspect session: SELECT 1 every 0.2 s until its connection is ended; or, with quiet, silent
    (through PgBouncer: a client with no server connection, which only the runbook's drop ends)."""

    def __init__(self, port: int, quiet: bool = False) -> None:
        super().__init__(daemon=True)
        # A standby replays the role (or the lift's LOGIN) a moment after the primary.
        deadline = time.monotonic() + 15
        while True:
            try:
                self.conn = lablib.connect(port, SUSPECT, SUSPECT_PASSWORD, dbname=DATABASE)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.quiet = quiet

    def run(self) -> None:
        try:
            while not self.quiet:
                with self.conn.cursor() as cursor:
                    cursor.execute("SELECT 1")
                time.sleep(0.2)
        except Exception:  # the lockdown ended it
            pass


class Application(threading.Thread):
    """The innocent application: SELECT 1 through PgBouncer every 50 ms, errors counted."""

    def __init__(self, lab) -> None:
        super().__init__(daemon=True)
        self.conn = lab.connect_pgbouncer(DATABASE)
        self.queries = self.errors = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.conn.cursor() as cursor:
                    cursor.execute("SELECT 1")
                self.queries += 1
            except Exception:  # an error is a figure here
                self.errors += 1
            time.sleep(0.05)


def contained_now(lab, servers) -> bool:
    for server in servers:
        conn = admin(lab, server.port)
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (SUSPECT,))
            left = cursor.fetchone()[0]
        conn.close()
        if left:
            return False
    if any(row.get("user") == SUSPECT for row in bouncer_command(lab, "SHOW CLIENTS")):
        return False
    return not any(suspect_login(port) for port in [server.port for server in servers] + [lab.pgbouncer_port])


def run_playbook(lab, incident_dir: Path, incident_id: str, **extra):
    extra = dict(
        {
            "incident_tier": "queue",
            "incident_id": incident_id,
            "security_suspect_roles": [SUSPECT],
            "dbops_incident_dir": str(incident_dir),
            "dbops_lock_dir": str(incident_dir / "locks"),
            "dbops_security_state_dir": str(incident_dir / "security"),
        },
        **extra,
    )
    return lablib.run_playbook(lab.inventory, PLAYBOOK, extra, timeout=300)


def one_run(lab, incident_dir: Path, number: int) -> dict:
    servers = lab.tier("queue")
    holders = [Holder(server.port) for server in servers] + [Holder(lab.pgbouncer_port, quiet=True)]
    for holder in holders:
        holder.start()
    application = Application(lab)
    application.start()
    time.sleep(1)
    outcome: dict = {}
    started = time.monotonic()
    playbook = threading.Thread(
        target=lambda: outcome.update(done=run_playbook(lab, incident_dir, "BENCH-SECURITY-%d" % number))
    )
    playbook.start()
    contained_at = None
    while playbook.is_alive() or contained_at is None:
        if contained_now(lab, servers):
            contained_at = time.monotonic() - started
            break
        if not playbook.is_alive() and time.monotonic() - started > 120:
            break
        time.sleep(0.1)
    playbook.join()
    playbook_s = time.monotonic() - started
    application.stopping.set()
    application.join()
    lift_started = time.monotonic()
    lift = run_playbook(lab, incident_dir, "BENCH-SECURITY-LIFT-%d" % number, security_lift=True)
    return {
        "rc": outcome["done"].rc,
        "contained_s": round(contained_at, 2) if contained_at is not None else None,
        "playbook_s": round(playbook_s, 2),
        "lift_s": round(time.monotonic() - lift_started, 2),
        "lift_rc": lift.rc,
        "application_queries": application.queries,
        "application_errors": application.errors,
    }


def median(results: list, key: str):
    values = [result[key] for result in results if isinstance(result.get(key), (int, float))]
    return round(statistics.median(values), 3) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if lablib.missing_binaries():
        print("skipped: the lab needs %s" % ", ".join(lablib.missing_binaries()))
        return 0
    port_base = int(os.environ.get("DBOPS_BENCH_PORT_BASE", "5800")) + 170
    with tempfile.TemporaryDirectory() as directory:
        lab = lablib.write_inventory(
            Path(directory) / "inventory",
            tiers={"queue": 1},
            port_base=port_base,
            lab_root="/var/tmp/penguinmails-dbops-bench-security",
        )
        with lablib.running(lab):
            prepare(lab)
            results = [one_run(lab, Path(directory) / "incidents", number) for number in range(1, args.runs + 1)]
    for number, result in enumerate(results, 1):
        print("run %d: %s" % (number, json.dumps(result, sort_keys=True)))
    print("median of %d runs (load average %s):" % (len(results), " ".join("%.2f" % v for v in os.getloadavg())))
    for key in sorted({key for result in results for key in result}):
        print("  %-22s %s" % (key, median(results, key)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
