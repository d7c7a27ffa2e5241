"""triage.yml (role diagnose, module dbops_triage) against real servers broken for real.

One lab for the module on its own ports (DBOPS_TRIAGE_TEST_PORT_BASE, default 5900:
oltp 5901-5902, content 5911, PgBouncer 6900) and lab_root: oltp is a primary with one
synchronous standby, content a lone primary whose PgBouncer pool holds 3 server connections
(small enough to saturate with a handful of real clients).

Each test breaks the lab, runs the playbook as an operator would, and checks the
classification (set_stats as AWX receives it, the summary printed), the incident records
written, and that no server was changed: every run's recap says changed=0 and a
fingerprint of every server and of PgBouncer (roles, settings, slots, pool entries) is the
same before and after.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import lablib
import psycopg2
import pytest
from diag_support import SessionHolder, hold_sessions
from fake_posthog import FakePostHog, alert

PORT_BASE = int(os.environ.get("DBOPS_TRIAGE_TEST_PORT_BASE", "5900"))
LAB_ROOT = os.environ.get("DBOPS_TRIAGE_TEST_ROOT", "/var/tmp/penguinmails-dbops-triage-pytest")
TRIAGE = lablib.REPO_ROOT / "playbooks" / "triage.yml"
CONTENT_POOL_SIZE = 3
POSTHOG_PROJECT, POSTHOG_KEY = "4242", "phx_triage_test_key_9317"
INTRUDER, INTRUDER_PASSWORD = "triage_intruder", "triage-intruder-secret-4471"


# --------------------------------------------------------------------------- the lab


def shrink_pool(lab: lablib.Lab, tier: str, pool_size: int) -> None:
    """Give the tier a small PgBouncer pool in the inventory, before the lab is built."""
    text = lab.inventory.read_text()
    header, _newline, body = text.partition("\n")
    inventory = json.loads(body)
    tier_vars = inventory["all"]["children"]["postgres"]["children"][tier]["vars"]
    tier_vars.update(tier_pool_size=pool_size, tier_pool_min=1)
    lab.inventory.write_text(header + "\n" + json.dumps(inventory, indent=2) + "\n")


@pytest.fixture(scope="module")
def triage_lab(tmp_path_factory):
    lablib.require_binaries()
    lab = lablib.write_inventory(
        tmp_path_factory.mktemp("triage-lab"), tiers={"oltp": 1, "content": 0}, port_base=PORT_BASE, lab_root=LAB_ROOT
    )
    shrink_pool(lab, "content", CONTENT_POOL_SIZE)
    with lablib.running(lab, LAB_ROOT + ".lock"):
        yield Triage(lab, tmp_path_factory.mktemp("triage-incidents"))


class TriageRun:
    def __init__(self, run: lablib.PlaybookRun) -> None:
        self.run = run
        self.output = run.stdout + run.stderr
        self.stats = custom_stats(run.stdout)

    @property
    def triage(self) -> Dict[str, Any]:
        return self.stats["dbops_triage"]

    def types(self, tier: str) -> List[str]:
        return self.triage["tiers"][tier]["types"]


def custom_stats(stdout: str) -> Dict[str, Any]:
    """The set_stats data, from the default callback's CUSTOM STATS section (ANSIBLE_SHOW_CUSTOM_STATS)."""
    section = stdout[stdout.rfind("CUSTOM STATS") :]
    match = re.search(r"^\s*RUN: (.*)$", section, re.MULTILINE)
    assert match, "no custom stats in the output:\n%s" % stdout[-3000:]
    return json.loads(match.group(1))


class Triage:
    """The lab under test, the playbook, and what to compare before and after."""

    def __init__(self, lab: lablib.Lab, incident_dir: Path) -> None:
        self.lab = lab
        self.incident_dir = incident_dir
        self.runs = 0

    def run(self, args=(), **extra: Any) -> TriageRun:
        self.runs += 1
        extra.setdefault("dbops_incident_dir", str(self.incident_dir))
        extra.setdefault("diagnose_incident_id_base", "T%d" % self.runs)
        env = dict(lablib.playbook_env(), ANSIBLE_SHOW_CUSTOM_STATS="1", DBOPS_INCIDENT_DIR=str(self.incident_dir))
        argv = [lablib.ansible_playbook(), "-i", str(self.lab.inventory), str(TRIAGE), *args, "-e", json.dumps(extra)]
        done = subprocess.run(
            argv,
            cwd=lablib.REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        run = lablib.PlaybookRun(argv[1:], done.returncode, done.stdout, done.stderr, lablib.parse_recap(done.stdout))
        run.check()
        assert run.changed == 0, "triage reported a change:\n%s" % run.stdout[-3000:]
        return TriageRun(run)

    def records(self, base: str) -> Dict[str, Dict[str, Any]]:
        """summary.json of every incident whose id starts with base-, keyed by id."""
        return {
            path.parent.name: json.loads(path.read_text())
            for path in sorted(self.incident_dir.glob("%s-*/summary.json" % base))
        }

    def record(self, incident_id: str) -> Dict[str, Any]:
        return json.loads((self.incident_dir / incident_id / "record.json").read_text())

    def primary(self, tier: str) -> lablib.Server:
        return self.lab.primary(tier)

    def fingerprint(self) -> Dict[str, Any]:
        """What triage must never change: each server's role, settings, roles, slots; PgBouncer's entries."""
        state: Dict[str, Any] = {}
        for name, server in sorted(self.lab.servers.items()):
            try:
                conn = self.lab.connect(server, connect_timeout=3, application_name="triage-fingerprint")
            except psycopg2.Error:
                state[name] = "down"
                continue
            try:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT pg_is_in_recovery()")
                    recovery = cursor.fetchone()[0]
                    cursor.execute("SELECT md5(string_agg(name || '=' || setting, ',' ORDER BY name)) FROM pg_settings")
                    settings = cursor.fetchone()[0]
                    cursor.execute("SELECT rolname, rolsuper, rolcanlogin FROM pg_roles ORDER BY 1")
                    roles = cursor.fetchall()
                    cursor.execute("SELECT slot_name, slot_type FROM pg_replication_slots ORDER BY 1")
                    slots = cursor.fetchall()
                    cursor.execute("SELECT datname FROM pg_database ORDER BY 1")
                    databases = cursor.fetchall()
            finally:
                conn.close()
            state[name] = {
                "in_recovery": recovery,
                "settings": settings,
                "roles": roles,
                "slots": slots,
                "databases": databases,
            }
        state["pgbouncer-1"] = self.pgbouncer_entries()
        return state

    def pgbouncer_entries(self) -> List[tuple]:
        rows = self.lab.pgbouncer_show("DATABASES")
        keys = ("name", "host", "port", "database", "pool_size", "paused", "disabled")
        return [tuple(row.get(key) for key in keys) for row in rows]


# --------------------------------------------------------------------------- breaking things for real


class Sessions(SessionHolder):
    """Real client sessions held open by the tests, closed at the end; also clients that keep queueing."""

    join_timeout = 40.0

    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()

    def keep_waiting(self, connect, statement: str) -> None:
        """A client that queues for a server connection, and queues again whenever PgBouncer gives up on it."""

        def target() -> None:
            while not self.stop.is_set():
                try:
                    conn = connect()
                except psycopg2.Error:
                    time.sleep(0.2)
                    continue
                try:
                    with conn.cursor() as cursor:
                        cursor.execute(statement)
                except psycopg2.Error:
                    pass
                finally:
                    conn.close()

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        super().close()


def admin_sql(lab: lablib.Lab, server: lablib.Server, statements: List[str], dbname: str = "postgres") -> None:
    conn = lab.connect(server, dbname=dbname)
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


def app_connect(lab: lablib.Lab, server: lablib.Server, dbname: str):
    return lab.connect(server, dbname=dbname, user=lab.credentials["lab_app_user"], application_name="triage-app")


def count(lab: lablib.Lab, server: lablib.Server, where: str) -> int:
    conn = lab.connect(server, application_name="triage-observer")
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE " + where)
            return cursor.fetchone()[0]
    finally:
        conn.close()


def waiting_clients(lab: lablib.Lab, database: str) -> int:
    return sum(row["cl_waiting"] for row in lab.pgbouncer_show("POOLS") if row["database"] == database)


@contextlib.contextmanager
def http_status(code: int) -> Iterator[str]:
    """A local stand-in for the admin panel: answers every GET with `code`; yields its status URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok\n" if code < 400 else b"down\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d/status" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


PANEL_TOKEN = "panel-query-token-4c1d"

# --------------------------------------------------------------------------- tests


def test_a_healthy_lab_opens_nothing_and_unreachable_extras_are_only_notes(triage_lab):
    before = triage_lab.fingerprint()
    with http_status(503) as panel:
        result = triage_lab.run(
            admin_panel_status_url=panel,
            posthog_host="http://127.0.0.1:%d" % closed_port(),
            posthog_project_id=POSTHOG_PROJECT,
            posthog_api_key=POSTHOG_KEY,
        )
    assert result.triage["types_found"] == []
    assert result.triage["tiers"]["oltp"] == {
        "status": "ok",
        "primary": "oltp-1",
        "types": [],
        "incident_ids": [],
    }
    assert result.triage["tiers"]["content"]["primary"] == "content-1"
    assert "incident_id" not in result.stats
    assert "oltp: OK (primary oltp-1, 1 standby(s) answering); no incident." in result.output
    assert "triage: no incident." in result.output
    assert re.search(r"admin panel http://127\.0\.0\.1:\d+/status is down \(HTTP 503\)", result.output)
    assert "PostHog could not be read" in result.output
    assert "look at the application side" in result.output
    assert POSTHOG_KEY not in result.output
    assert triage_lab.records("T%d" % triage_lab.runs) == {}
    assert triage_lab.fingerprint() == before


def test_four_kinds_of_trouble_one_incident_per_tier_and_type(triage_lab):
    """oltp: a long query and a lock wait, an invalid index, an unexpected superuser; content: a saturated pool."""
    lab = triage_lab.lab
    oltp = triage_lab.primary("oltp")
    admin_sql(
        lab,
        oltp,
        [
            "DROP ROLE IF EXISTS %s" % INTRUDER,
            "CREATE ROLE %s SUPERUSER LOGIN PASSWORD '%s'" % (INTRUDER, INTRUDER_PASSWORD),
        ],
    )
    admin_sql(
        lab,
        oltp,
        [
            "DROP TABLE IF EXISTS triage_dupes",
            "CREATE TABLE triage_dupes (v int)",
            "INSERT INTO triage_dupes VALUES (1), (1)",
        ],
        dbname="penguinmails_oltp",
    )
    with pytest.raises(psycopg2.errors.UniqueViolation):  # leaves an INVALID index behind, as in production
        admin_sql(
            lab, oltp, ["CREATE UNIQUE INDEX CONCURRENTLY triage_dupes_v ON triage_dupes (v)"], "penguinmails_oltp"
        )
    posthog_alerts = [alert("a1", "OLTP query_time p95", state="Firing", upper=5, value=7.2)]
    try:
        with (
            hold_sessions(Sessions()) as held,
            FakePostHog(POSTHOG_PROJECT, POSTHOG_KEY, posthog_alerts) as posthog,
            http_status(200) as panel,
        ):
            held.run_in_background(app_connect(lab, oltp, "penguinmails_oltp"), "SELECT pg_sleep(300)")
            blocker = held.keep(app_connect(lab, oltp, "penguinmails_oltp"))
            with blocker.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(4242)")
            held.run_in_background(app_connect(lab, oltp, "penguinmails_oltp"), "SELECT pg_advisory_lock(4242)")
            held.keep(lablib.connect(oltp.port, INTRUDER, INTRUDER_PASSWORD, dbname="penguinmails_oltp"))
            for _holder in range(CONTENT_POOL_SIZE):  # each holds a server connection in an open transaction
                holder = held.keep(lab.connect_pgbouncer("penguinmails_content", autocommit=False))
                with holder.cursor() as cursor:
                    cursor.execute("SELECT 1")
            for _waiter in range(2):
                held.keep_waiting(lambda: lab.connect_pgbouncer("penguinmails_content"), "SELECT 1")
            assert lablib.wait_until(lambda: count(lab, oltp, "wait_event_type = 'Lock'") == 1, timeout=20)
            assert lablib.wait_until(lambda: waiting_clients(lab, "penguinmails_content") >= 1, timeout=20)
            time.sleep(2.5)  # past the 2 s thresholds below, and PgBouncer's 1 s maxwait warning
            before = triage_lab.fingerprint()
            result = triage_lab.run(
                diagnose_health_thresholds={"query_time": {"warning": 2}, "lockwait": {"warning": 2}},
                posthog_host=posthog.url,
                posthog_project_id=POSTHOG_PROJECT,
                posthog_api_key=POSTHOG_KEY,
                admin_panel_status_url=panel,
            )
            after = triage_lab.fingerprint()
    finally:
        admin_sql(lab, oltp, ["DROP TABLE IF EXISTS triage_dupes"], dbname="penguinmails_oltp")
        admin_sql(lab, oltp, ["DROP ROLE IF EXISTS %s" % INTRUDER])
    assert after == before

    base = "T%d" % triage_lab.runs
    assert result.types("oltp") == ["security_breach", "data_integrity", "performance"]
    assert result.types("content") == ["pool_exhaustion"]
    order = [(incident["tier"], incident["type"], incident["severity"]) for incident in result.triage["incidents"]]
    assert order == [
        ("oltp", "security_breach", "critical"),
        ("content", "pool_exhaustion", "high"),
        ("oltp", "data_integrity", "high"),
        ("oltp", "performance", "low"),
    ]
    assert (result.stats["incident_tier"], result.stats["incident_type"], result.stats["incident_id"]) == (
        "oltp",
        "security_breach",
        "%s-oltp-security_breach" % base,
    )
    assert result.triage["by_type"]["pool_exhaustion"]["incident_id"] == "%s-content-pool_exhaustion" % base

    # one readable summary per tier: what, severity, response target, the playbook to run (or, while its
    # runbook is planned, the steps by hand: never a playbook that does not exist); the security breach
    # playbook is fed the role its evidence names
    assert "oltp: 3 incident(s) (primary oltp-1, 1 standby(s) answering)." in result.output
    assert (
        "SECURITY_BREACH - severity critical, respond within 5 min: oltp-1: 1 superuser session(s) of %s" % INTRUDER
        in (result.output)
    )
    assert (
        "run playbooks/incident_security_breach.yml -e incident_tier=oltp -e incident_id=%s-oltp-security_breach" % base
        in result.output
    )
    assert result.triage["by_type"]["security_breach"]["security_suspect_roles"] == [INTRUDER]
    assert "DATA_INTEGRITY - severity high, respond within 15 min: oltp-1: database penguinmails_oltp: 1 invalid" in (
        result.output
    )
    assert "public.triage_dupes_v on triage_dupes (unique" in result.output
    assert "PERFORMANCE - severity low, respond within 30 min" in result.output
    assert "POOL_EXHAUSTION - severity high, respond within 10 min: pgbouncer-1: " in result.output
    assert re.search(r"admin panel http://127\.0\.0\.1:\d+/status is up \(HTTP 200\)", result.output)

    # one incident record per tier and type, with the policy's severity and response target
    records = triage_lab.records(base)
    assert {
        incident_id: (summary["type"], summary["tier"], summary["severity"], summary["response_target_minutes"])
        for incident_id, summary in records.items()
    } == {
        "%s-oltp-security_breach" % base: ("security_breach", "oltp", "critical", 5),
        "%s-oltp-data_integrity" % base: ("data_integrity", "oltp", "high", 15),
        "%s-oltp-performance" % base: ("performance", "oltp", "low", 30),
        "%s-content-pool_exhaustion" % base: ("pool_exhaustion", "content", "high", 10),
    }
    assert all(summary["status"] == "open" for summary in records.values())
    assert all(summary["changed_steps"] == 0 for summary in records.values())
    performance = triage_lab.record("%s-oltp-performance" % base)
    [triage_step] = [entry for entry in performance["timeline"] if entry.get("kind") == "finding"]
    checks = {(item["source"], item["check"]) for item in triage_step["details"]["evidence"]}
    assert {("postgres", "query_time"), ("postgres", "lockwait"), ("posthog", "posthog_query_time")} <= checks
    assert POSTHOG_KEY not in result.output
    assert INTRUDER_PASSWORD not in result.output
    assert lab.credentials["dbops_login_password"] not in result.output


def test_check_mode_classifies_the_same_and_records_nothing(triage_lab):
    before = triage_lab.fingerprint()
    result = triage_lab.run(args=["--check"], dbops_allowed_client_cidrs=["10.0.0.0/8"])
    assert triage_lab.fingerprint() == before
    # every session comes from 127.0.0.1: the application's, PgBouncer's and the standby's replication
    assert result.types("oltp") == ["security_breach"]
    assert result.types("content") == ["security_breach"]
    assert result.triage["check_mode"] is True
    assert "127.0.0.1 is outside the allowed client networks" in result.output
    assert triage_lab.records("T%d" % triage_lab.runs) == {}
    assert not list(triage_lab.incident_dir.glob("T%d-*" % triage_lab.runs))


def test_a_dead_primary_is_an_outage_and_triage_promotes_nothing(triage_lab):
    lab = triage_lab.lab
    primary = triage_lab.primary("oltp")
    [standby] = [server for server in lab.tier("oltp") if server is not primary]
    lablib.kill_postmaster(primary.data_dir)
    try:
        assert lablib.wait_until(lambda: not lablib.port_open(primary.port, timeout=0.5), timeout=30)
        before = triage_lab.fingerprint()
        with http_status(200) as panel:
            result = triage_lab.run(admin_panel_status_url=panel + "?token=" + PANEL_TOKEN)
        assert triage_lab.fingerprint() == before
        assert lab.role(standby) == "standby"  # looked at, never promoted
    finally:
        restart(primary)
    base = "T%d" % triage_lab.runs
    assert result.types("oltp") == ["db_outage"]
    assert result.types("content") == []
    assert result.triage["tiers"]["oltp"]["primary"] is None
    assert (result.stats["incident_tier"], result.stats["incident_type"], result.stats["incident_severity"]) == (
        "oltp",
        "db_outage",
        "critical",
    )
    assert result.stats["incident_id"] == "%s-oltp-db_outage" % base
    assert "oltp: 1 incident(s) (no reachable primary)." in result.output
    assert (
        "DB_OUTAGE - severity critical, respond within 5 min: no reachable primary: %s does not answer" % primary.name
        in (result.output)
    )
    assert "run playbooks/incident_db_outage.yml -e incident_tier=oltp -e incident_id=%s-oltp-db_outage" % base in (
        result.output
    )
    records = triage_lab.records(base)
    assert list(records) == ["%s-oltp-db_outage" % base]
    assert PANEL_TOKEN not in result.output
    for path in triage_lab.incident_dir.glob("%s-*/*" % base):
        assert PANEL_TOKEN not in path.read_text(), path.name
    summary = records["%s-oltp-db_outage" % base]
    assert (summary["type"], summary["severity"], summary["response_target_minutes"]) == ("db_outage", "critical", 5)
    assert summary["targets"] == ["oltp-1", "oltp-2"]
    outage = triage_lab.record("%s-oltp-db_outage" % base)
    [triage_step] = [entry for entry in outage["timeline"] if entry.get("kind") == "finding"]
    assert triage_step["details"]["roles"] == {primary.name: "down", standby.name: "standby"}


def restart(server: lablib.Server) -> None:
    """Start a server that was killed: a zombie postmaster's pid file would block the start."""
    pid = server.postmaster_pid()
    if pid is not None and not lablib.process_alive(pid):
        (Path(server.data_dir) / "postmaster.pid").unlink()
    lablib.start_server(server)
