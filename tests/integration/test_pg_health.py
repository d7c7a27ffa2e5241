"""pg_health against real servers: every finding produced for real, graded, with values checked.

The servers are the session lab's oltp tier (tests/integration/conftest.py): its
live primary and two streaming standbys. Each test breaks one thing (an idle
transaction, a lock chain, a paused standby, ...), checks that pg_health reports
exactly that with the right figures, and repairs it. The checksum test corrupts a
data page, which leaves a cluster-wide counter raised for good, so it runs on a
private single server instead (health_lab.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import psycopg2
import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.health import CHECKS
from diag_support import run_module, wait_until
from health_lab import HealthLab, throwaway_tiers

pytestmark = pytest.mark.lab

MB = 1024 * 1024


@pytest.fixture(scope="module")
def hlab(lab):
    return HealthLab.from_session_lab(lab)


@pytest.fixture
def private_server():
    """A single throwaway server for tests that leave marks a shared lab must not keep."""
    with throwaway_tiers({"private": 0}) as tiers:
        yield tiers["private"]


def health(hlab, member, check_mode=False, **options):
    result = run_module("pg_health", hlab.args(member, **options), check_mode=check_mode)
    assert hlab.admin_password not in result["_stdout"] + result["_stderr"]
    assert result["changed"] is False
    return result


def problems(result, check):
    return [found for found in result["problems"] if found["check"] == check]


@contextlib.contextmanager
def background(conn, statement):
    """Run `statement` on `conn` in a thread; cancel it and wait for the thread on the way out."""
    errors = []

    def target():
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement)
        except psycopg2.Error as error:
            errors.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        with contextlib.suppress(Exception):
            conn.cancel()
        thread.join(timeout=10)


def waiting_on_lock(hlab, pids):
    rows = hlab.query(
        hlab.primary, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND wait_event_type = 'Lock'", (pids,)
    )
    return rows[0][0] == len(pids)


# --------------------------------------------------------------------------- healthy lab, round trips


def test_healthy_primary_all_checks_ok_and_round_trips_counted(hlab):
    result = health(hlab, hlab.primary)
    assert result["status"] == "OK", result["problems"]
    assert result["reachable"] is True
    assert result["role"] == "primary"
    assert len(result["checks"]) == 13
    assert set(result["checks"].values()) == {"OK"}
    # everything, sequences of the login database included, in one statement on one connection;
    # each further database costs one connection and one statement for its sequences
    databases = [
        row[0]
        for row in hlab.query(
            hlab.primary, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1"
        )
    ]
    assert "postgres" in databases and len(databases) >= 2
    assert result["databases_checked"] == databases
    assert result["timing"]["connections"] == len(databases)
    assert result["timing"]["statements"] == len(databases)
    replicas = result["figures"]["hot_standby_delay"]["replicas"]
    names = sorted(standby.replication_name for standby in hlab.standbys)
    assert sorted(replica["application_name"] for replica in replicas) == names
    assert {replica["state"] for replica in replicas} == {"streaming"}
    slots = {slot["slot_name"]: slot["active"] for slot in result["figures"]["replication_slots"]}
    assert slots == dict.fromkeys(names, True)


def test_cluster_wide_checks_alone_are_one_connection_one_statement(hlab):
    cluster_wide = [check for check in CHECKS if check != "sequence"]
    result = health(hlab, hlab.primary, checks=cluster_wide)
    assert result["status"] == "OK", result["problems"]
    assert (result["timing"]["connections"], result["timing"]["statements"]) == (1, 1)
    assert result["databases_checked"] == []


def test_healthy_standby_reports_its_receiver_and_no_backlog(hlab):
    result = health(hlab, hlab.standbys[0])
    assert result["status"] == "OK", result["problems"]
    assert result["role"] == "standby"
    standby = result["figures"]["hot_standby_delay"]["standby"]
    assert standby["receiver_status"] == "streaming"
    assert standby["replay_paused"] is False
    assert standby["replay_delay_seconds"] == 0.0 or standby["replay_backlog_bytes"] > 0


def test_check_mode_reads_the_same(hlab):
    result = health(hlab, hlab.primary, check_mode=True, checks=["backends"])
    assert result["status"] == "OK"
    assert list(result["checks"]) == ["connection", "backends"]


def test_backends_counts_real_connections_against_usable_slots(hlab):
    [(max_connections, reserved)] = hlab.query(
        hlab.primary,
        "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int",
    )
    usable = max_connections - reserved
    checks = {"checks": ["backends"]}
    before = health(hlab, hlab.primary, **checks)["figures"]["backends"]["client_backends"]
    expected = round(100.0 * (before + 5) / usable, 1)
    extra = [hlab.connect(hlab.primary, application_name="health-backends") for _connection in range(5)]
    try:
        # the threshold is exactly the figure five more connections make: at the threshold reaches it
        result = health(hlab, hlab.primary, thresholds={"backends": {"warning": expected, "critical": 99}}, **checks)
    finally:
        for conn in extra:
            conn.close()
    backends = result["figures"]["backends"]
    assert backends["max_connections"] == max_connections
    assert backends["usable_connections"] == usable
    assert backends["client_backends"] == before + 5
    [found] = problems(result, "backends")
    assert (found["status"], found["value"], found["threshold"]) == ("WARNING", expected, expected)


# --------------------------------------------------------------------------- sessions


def test_session_idle_in_transaction(hlab):
    conn = hlab.connect(hlab.primary, application_name="health-idle")
    conn.autocommit = False
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT txid_current()")
        pid = conn.get_backend_pid()
        time.sleep(1.2)
        limits = {"warning": 1, "critical": 600}
        result = health(
            hlab, hlab.primary, checks=["txn_idle", "txn_time"], thresholds={"txn_idle": limits, "txn_time": limits}
        )
        [idle] = problems(result, "txn_idle")
        assert idle["status"] == "WARNING"
        assert idle["subject"] == "pid %d" % pid
        assert 1.0 <= idle["value"] < 60
        assert 'app "health-idle"' in idle["message"]
        [open_txn] = problems(result, "txn_time")
        assert open_txn["subject"] == "pid %d" % pid
        assert open_txn["value"] >= idle["value"]
        assert result["figures"]["txn_idle"]["top"][0]["pid"] == pid
        assert result["figures"]["txn_idle"]["count"] == 1
    finally:
        conn.rollback()
        conn.close()
    after = health(hlab, hlab.primary, checks=["txn_idle"], thresholds={"txn_idle": {"warning": 1}})
    assert after["checks"]["txn_idle"] == "OK"
    assert after["figures"]["txn_idle"]["count"] == 0


def test_long_query(hlab):
    conn = hlab.connect(hlab.primary, application_name="health-sleeper")
    pid = conn.get_backend_pid()
    with background(conn, "SELECT pg_sleep(60)"):
        assert wait_until(
            lambda: (
                hlab.query(hlab.primary, "SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)) == [("active",)]
            )
        )
        time.sleep(1.2)
        result = health(hlab, hlab.primary, checks=["query_time"], thresholds={"query_time": {"warning": 1}})
    conn.close()
    [found] = problems(result, "query_time")
    assert found["status"] == "WARNING"  # critical stays at its default, 60 s
    assert found["subject"] == "pid %d" % pid
    assert 1.0 <= found["value"] < 60
    assert "pg_sleep(60)" in found["message"]


def test_blocking_chain(hlab):
    hlab.query(
        hlab.primary, "CREATE TABLE health_locks (id int PRIMARY KEY, v int); INSERT INTO health_locks VALUES (1, 0)"
    )
    holder = hlab.connect(hlab.primary, application_name="health-holder")
    holder.autocommit = False
    holder_pid = holder.get_backend_pid()
    waiters = [hlab.connect(hlab.primary, application_name="health-waiter-%d" % n) for n in (1, 2, 3)]
    pids = [conn.get_backend_pid() for conn in waiters]
    try:
        with holder.cursor() as cursor:
            cursor.execute("UPDATE health_locks SET v = 1 WHERE id = 1")
        # waiter 1 wants the holder's row; waiter 2 the whole table (blocked by the holder and
        # waiter 1); waiter 3 only reads, but queues behind waiter 2's request
        with contextlib.ExitStack() as stack:
            stack.enter_context(background(waiters[0], "UPDATE health_locks SET v = 2 WHERE id = 1"))
            assert wait_until(lambda: waiting_on_lock(hlab, pids[:1]))
            stack.enter_context(
                background(waiters[1], "BEGIN; LOCK TABLE health_locks IN ACCESS EXCLUSIVE MODE; COMMIT")
            )
            assert wait_until(lambda: waiting_on_lock(hlab, pids[:2]))
            stack.enter_context(background(waiters[2], "SELECT count(*) FROM health_locks"))
            assert wait_until(lambda: waiting_on_lock(hlab, pids)), "the three sessions never queued"
            time.sleep(0.6)
            result = health(hlab, hlab.primary, checks=["lockwait"], thresholds={"lockwait": {"warning": 0.5}})
            holder.rollback()
    finally:
        holder.close()
        for conn in waiters:
            conn.close()
        hlab.query(hlab.primary, "DROP TABLE IF EXISTS health_locks")
    [found] = problems(result, "lockwait")
    assert found["status"] == "WARNING"
    assert found["subject"] == "pid %d" % holder_pid
    [chain] = result["figures"]["lockwait"]["chains"]
    assert chain["root"] == holder_pid
    assert chain["blocked"] == sorted(pids)
    assert chain["depth"] == 2  # waiter 3 is two steps from the holder (via waiter 2)
    waits = {wait["pid"]: sorted(wait["blocked_by"]) for wait in result["figures"]["lockwait"]["waits"]}
    assert waits == {pids[0]: [holder_pid], pids[1]: sorted([holder_pid, pids[0]]), pids[2]: [pids[1]]}
    assert 0.5 <= chain["longest_wait_seconds"] < 60
    assert found["value"] == chain["longest_wait_seconds"]
    assert "blocks 3 session(s)" in found["message"]
    assert 'app "health-holder"' in found["message"]
    assert "idle in transaction" in found["message"]
    assert result["figures"]["lockwait"]["blockers"][0]["application_name"] == "health-holder"


# --------------------------------------------------------------------------- replication


def test_inactive_replication_slot_retaining_wal(hlab):
    hlab.query(hlab.primary, "SELECT pg_create_physical_replication_slot('health_orphan', true)")
    try:
        hlab.query(
            hlab.primary, "CREATE TABLE health_wal AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 8000) g"
        )
        retained_sql = (
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_name = 'health_orphan'"
        )
        before = hlab.query(hlab.primary, retained_sql)[0][0]
        result = health(
            hlab, hlab.primary, checks=["replication_slots"], thresholds={"replication_slots": {"warning": "2MB"}}
        )
        after = hlab.query(hlab.primary, retained_sql)[0][0]
    finally:
        hlab.query(hlab.primary, "SELECT pg_drop_replication_slot('health_orphan')")
        hlab.query(hlab.primary, "DROP TABLE IF EXISTS health_wal")
    [found] = problems(result, "replication_slots")  # the streaming standbys' slots retain almost nothing
    assert found["subject"] == "slot health_orphan"
    assert found["status"] == "WARNING"
    assert before >= 2 * MB
    assert before <= found["value"] <= after
    assert found["message"].startswith("inactive physical slot health_orphan retains")


def test_standby_with_paused_replay(hlab):
    standby = hlab.standbys[0]
    hlab.query(standby, "SELECT pg_wal_replay_pause()")
    try:
        assert wait_until(lambda: hlab.query(standby, "SELECT pg_get_wal_replay_pause_state()") == [("paused",)])
        hlab.query(
            hlab.primary,
            "CREATE TABLE health_replay AS SELECT g, repeat('y', 500) AS pad FROM generate_series(1, 8000) g",
        )
        backlog_sql = "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint"
        assert wait_until(lambda: hlab.query(standby, backlog_sql)[0][0] >= 3 * MB)
        time.sleep(1.2)
        backlog = hlab.query(standby, backlog_sql)[0][0]
        limits = {"hot_standby_delay": {"warning": "1MB", "warning_seconds": 1}}
        on_standby = health(hlab, standby, checks=["hot_standby_delay"], thresholds=limits)
        on_primary = health(hlab, hlab.primary, checks=["hot_standby_delay"], thresholds=limits)
    finally:
        hlab.query(standby, "SELECT pg_wal_replay_resume()")
        hlab.query(hlab.primary, "DROP TABLE IF EXISTS health_replay")
    found = {item["subject"]: item for item in problems(on_standby, "hot_standby_delay")}
    assert set(found) == {"replay backlog", "replay delay"}
    assert found["replay backlog"]["status"] == "WARNING"
    assert found["replay backlog"]["value"] == backlog  # nothing is replayed while paused
    assert "(replay is paused)" in found["replay backlog"]["message"]
    assert found["replay delay"]["unit"] == "s"
    assert found["replay delay"]["value"] >= 1.0
    assert on_standby["figures"]["hot_standby_delay"]["standby"]["replay_paused"] is True
    # the primary sees the same standby behind, and only that one
    behind = problems(on_primary, "hot_standby_delay")
    assert {item["subject"] for item in behind} == {"replica %s" % standby.replication_name}
    lag = next(item for item in behind if item["unit"] == "bytes")
    assert lag["value"] >= backlog
    # resumed, it catches up and is OK again
    assert wait_until(lambda: hlab.query(standby, backlog_sql)[0][0] == 0)
    assert health(hlab, standby, checks=["hot_standby_delay"], thresholds=limits)["status"] == "OK"


@contextlib.contextmanager
def apply_delay(hlab, standby, delay):
    """The standby replays each commit `delay` after it arrives (recovery_min_apply_delay), then not."""
    hlab.query(standby, "ALTER SYSTEM SET recovery_min_apply_delay = %s", (delay,))
    hlab.query(standby, "SELECT pg_reload_conf()")
    assert wait_until(lambda: hlab.query(standby, "SHOW recovery_min_apply_delay") == [(delay,)])
    try:
        yield
    finally:
        hlab.query(standby, "ALTER SYSTEM RESET recovery_min_apply_delay")
        hlab.query(standby, "SELECT pg_reload_conf()")
        backlog_sql = "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint"
        assert wait_until(lambda: hlab.query(standby, backlog_sql)[0][0] == 0)


def health_right_after_a_commit_arrives(hlab, standby, tries=5):
    """pg_health's own function on `standby` as soon as it has received a new commit it has not replayed.

    A commit that has been idle for 2 s before: the last replayed transaction is older than the
    1 s threshold, so only the re-read can tell a commit in flight from one that waits. Tried
    again when the read came too late and the commit was replayed already (a busy machine).
    """
    from ansible_collections.penguinmails.dbops.plugins.module_utils.health import collect_health, summarize
    from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams

    params = ConnectionParams(host=standby.host, port=standby.port, user=hlab.admin_user, password=hlab.admin_password)
    limits = {"hot_standby_delay": {"warning_seconds": 1}}
    received = "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn"
    for _try in range(tries):
        time.sleep(2)
        commit = "INSERT INTO health_inflight VALUES (1); SELECT pg_current_wal_lsn()::text"
        lsn = hlab.query(hlab.primary, commit)[0][0]
        assert wait_until(lambda lsn=lsn: hlab.query(standby, received, (lsn,))[0][0], timeout=10, interval=0.01)
        result = collect_health(params, checks=["hot_standby_delay"], thresholds=limits)
        if "backlog_after_recheck" in result["figures"]["hot_standby_delay"]["standby"]:
            return dict(result, **summarize(result["findings"]))
    raise AssertionError("the standby replayed each commit before pg_health read it, %d times" % tries)


@pytest.mark.parametrize(("delay", "status"), [("700ms", "OK"), ("5s", "WARNING")])
def test_a_commit_in_flight_is_not_a_replay_delay_but_one_that_waits_is(hlab, delay, status):
    standby = hlab.standbys[-1]
    hlab.query(hlab.primary, "CREATE TABLE IF NOT EXISTS health_inflight (i int)")
    try:
        with apply_delay(hlab, standby, delay):
            result = health_right_after_a_commit_arrives(hlab, standby)
    finally:
        hlab.query(hlab.primary, "DROP TABLE IF EXISTS health_inflight")
    figures = result["figures"]["hot_standby_delay"]["standby"]
    assert figures["replay_backlog_bytes"] > 0 and figures["seconds_since_last_replay"] >= 1, figures
    assert result["timing"]["statements"] == 2  # the read, then the re-read
    assert result["status"] == status, result["findings"]
    if status == "OK":
        assert figures["backlog_after_recheck"] <= 0 and figures["replay_delay_seconds"] == 0.0
    else:
        assert figures["backlog_after_recheck"] > 0
        (found,) = result["problems"]
        assert found["subject"] == "replay delay" and "while WAL is waiting" in found["message"]


# --------------------------------------------------------------------------- per-database checks


def test_sequences_near_exhaustion_in_another_database(hlab):
    hlab.query(hlab.primary, "CREATE DATABASE health_seq")
    try:
        hlab.query(
            hlab.primary,
            "CREATE TABLE orders (id integer NOT NULL);"
            "CREATE SEQUENCE orders_id_seq AS bigint OWNED BY orders.id;"  # bigint sequence, integer column
            "SELECT setval('orders_id_seq', 2100000000);"
            "CREATE TABLE tags (id smallint GENERATED BY DEFAULT AS IDENTITY, name text);"
            "SELECT setval(pg_get_serial_sequence('tags', 'id'), 28000);"
            "CREATE SEQUENCE roomy_seq; SELECT nextval('roomy_seq');",
            dbname="health_seq",
        )
        result = health(hlab, hlab.primary, checks=["sequence"])
        listed = health(hlab, hlab.primary, checks=["sequence"], databases=["health_seq", "no_such_db"])
        databases = [
            row[0]
            for row in hlab.query(
                hlab.primary, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1"
            )
        ]
    finally:
        hlab.query(hlab.primary, "DROP DATABASE health_seq WITH (FORCE)")
    assert "health_seq" in databases
    assert result["databases_checked"] == databases
    # the login database's sequences come with the one statement; every other database costs one more
    assert (result["timing"]["connections"], result["timing"]["statements"]) == (len(databases), len(databases))
    found = {item["subject"]: item for item in problems(result, "sequence")}
    assert set(found) == {"sequence health_seq.public.orders_id_seq", "sequence health_seq.public.tags_id_seq"}
    orders = found["sequence health_seq.public.orders_id_seq"]
    assert orders["status"] == "CRITICAL"
    assert orders["value"] == round(100.0 * (2100000000 - 1) / (2147483647 - 1), 2)
    assert "47,483,647 values left" in orders["message"]
    assert "orders.id (integer)" in orders["message"]
    tags = found["sequence health_seq.public.tags_id_seq"]
    assert tags["status"] == "WARNING"
    assert tags["value"] == round(100.0 * (28000 - 1) / (32767 - 1), 2)
    # an explicit list: the login database is not read, a missing one is UNKNOWN
    assert listed["databases_checked"] == ["health_seq"]
    assert (listed["timing"]["connections"], listed["timing"]["statements"]) == (2, 2)
    unknown = [item for item in problems(listed, "sequence") if item["status"] == "UNKNOWN"]
    assert [item["message"] for item in unknown] == ["database no_such_db: no such database"]


def test_txn_wraparound_reports_real_ages(hlab):
    age_sql = "SELECT age(datfrozenxid) FROM pg_database WHERE datname = 'postgres'"
    before = hlab.query(hlab.primary, age_sql)[0][0]
    result = health(hlab, hlab.primary, checks=["txn_wraparound"], thresholds={"txn_wraparound": {"warning": 1}})
    after = hlab.query(hlab.primary, age_sql)[0][0]
    found = {
        item["subject"]: item for item in problems(result, "txn_wraparound") if "transaction ID" in item["message"]
    }
    every_database = {"database %s" % row[0] for row in hlab.query(hlab.primary, "SELECT datname FROM pg_database")}
    assert set(found) == every_database
    assert before <= found["database postgres"]["value"] <= after
    assert {item["status"] for item in found.values()} == {"WARNING"}


def test_deadlock_counted_from_pg_stat_database(hlab):
    count_sql = "SELECT deadlocks FROM pg_stat_database WHERE datname = 'postgres'"
    before = hlab.query(hlab.primary, count_sql)[0][0]
    hlab.query(hlab.primary, "CREATE TABLE health_dl (id int PRIMARY KEY); INSERT INTO health_dl VALUES (1), (2)")
    first, second = (hlab.connect(hlab.primary, application_name="health-deadlock") for _connection in range(2))
    first.autocommit = second.autocommit = False
    try:
        first.cursor().execute("UPDATE health_dl SET id = id WHERE id = 1")
        second.cursor().execute("UPDATE health_dl SET id = id WHERE id = 2")
        with background(first, "UPDATE health_dl SET id = id WHERE id = 2") as errors:
            assert wait_until(lambda: waiting_on_lock(hlab, [first.get_backend_pid()]))
            with contextlib.suppress(psycopg2.Error):
                second.cursor().execute("UPDATE health_dl SET id = id WHERE id = 1")
            second.rollback()
            time.sleep(0.2)
            first.rollback()
        del errors
    finally:
        first.close()
        second.close()
        hlab.query(hlab.primary, "DROP TABLE health_dl")
    assert wait_until(lambda: hlab.query(hlab.primary, count_sql)[0][0] == before + 1, timeout=15)
    result = health(hlab, hlab.primary, checks=["deadlocks"], thresholds={"deadlocks": {"warning": before + 1}})
    [found] = problems(result, "deadlocks")
    assert (found["subject"], found["value"], found["status"]) == ("database postgres", before + 1, "WARNING")


def test_recovery_conflict_counted_on_the_standby(hlab):
    standby = hlab.standbys[1]
    count_sql = "SELECT conflicts FROM pg_stat_database WHERE datname = 'postgres'"
    hlab.query(standby, "ALTER SYSTEM SET max_standby_streaming_delay = '200ms'")
    hlab.query(standby, "SELECT pg_reload_conf()")
    reader = None
    try:
        hlab.query(hlab.primary, "CREATE TABLE health_conflict (id int); INSERT INTO health_conflict VALUES (1)")
        assert wait_until(lambda: hlab.query(standby, "SELECT to_regclass('health_conflict') IS NOT NULL") == [(True,)])
        before = hlab.query(standby, count_sql)[0][0]
        reader = hlab.connect(standby, application_name="health-standby-reader")
        reader.autocommit = False
        reader.cursor().execute("SELECT count(*) FROM health_conflict")  # holds a lock replay must take
        hlab.query(hlab.primary, "DROP TABLE health_conflict")
        assert wait_until(lambda: hlab.query(standby, count_sql)[0][0] == before + 1, timeout=15)
        result = health(hlab, standby, checks=["conflicts"], thresholds={"conflicts": {"warning": before + 1}})
    finally:
        if reader is not None:
            with contextlib.suppress(Exception):
                reader.close()
        hlab.query(standby, "ALTER SYSTEM RESET max_standby_streaming_delay")
        hlab.query(standby, "SELECT pg_reload_conf()")
        hlab.query(hlab.primary, "DROP TABLE IF EXISTS health_conflict")
    [found] = problems(result, "conflicts")
    assert (found["subject"], found["value"], found["status"]) == ("database postgres", before + 1, "WARNING")


# --------------------------------------------------------------------------- unreachable and hung servers


def test_closed_port_is_critical_not_a_failure(hlab):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = health(hlab, hlab.primary, login_port=port)
    assert result["status"] == "CRITICAL"
    assert result["reachable"] is False
    assert result["conn_err_kind"] == "refused"
    assert result["problems"][0]["check"] == "connection"
    assert "127.0.0.1:%d" % port in result["conn_err_msg"]
    assert "failed" not in result or result["failed"] is False


def test_sigstopped_server_costs_its_connect_timeout(hlab):
    standby = hlab.standbys[1]
    with hlab.stopped(standby):
        started = time.monotonic()
        result = health(hlab, standby, connect_timeout=1.5)
        elapsed = time.monotonic() - started
    assert result["status"] == "CRITICAL"
    assert result["conn_err_kind"] == "timeout"
    assert 1.4 <= result["timing"]["elapsed_ms"] / 1000 < 2.5
    assert elapsed < 15  # one timeout plus starting the module's Python, however loaded the machine
    assert wait_until(lambda: health(hlab, standby, checks=["backends"])["reachable"])


def test_fail_on_warning_fails_with_one_message_naming_the_server(hlab):
    conn = hlab.connect(hlab.primary, application_name="health-fail-on")
    conn.autocommit = False
    try:
        conn.cursor().execute("SELECT 1")
        time.sleep(1.1)
        result = health(
            hlab, hlab.primary, checks=["txn_idle"], thresholds={"txn_idle": {"warning": 1}}, fail_on="warning"
        )
        passes = health(
            hlab, hlab.primary, checks=["txn_idle"], thresholds={"txn_idle": {"warning": 1}}, fail_on="critical"
        )
    finally:
        conn.rollback()
        conn.close()
    assert result["failed"] is True
    assert result["msg"].startswith("health of 127.0.0.1:%d is WARNING: WARNING txn_idle: pid " % hlab.primary.port)
    assert "Traceback" not in result["msg"]
    assert not passes.get("failed")


# --------------------------------------------------------------------------- on a private server


def test_checksum_failure_on_a_corrupted_page(private_server):
    """Flip bytes of a table page on disk, read it back, and see the counter pg_health grades."""
    hlab = private_server
    primary = hlab.primary
    hlab.query(primary, "CREATE TABLE health_cksum AS SELECT g FROM generate_series(1, 1000) g; CHECKPOINT")
    relation = hlab.query(primary, "SELECT pg_relation_filepath('health_cksum')")[0][0]

    def corrupt_first_page():
        with open(primary.data_dir / relation, "r+b") as handle:
            handle.seek(4096)
            handle.write(b"\xde\xad\xbe\xef" * 16)

    hlab.restart(primary, between=corrupt_first_page)
    try:
        with pytest.raises(psycopg2.Error, match="invalid page in block"):
            hlab.query(primary, "SELECT count(*) FROM health_cksum")
        count_sql = "SELECT checksum_failures FROM pg_stat_database WHERE datname = 'postgres'"
        assert wait_until(lambda: hlab.query(primary, count_sql)[0][0] >= 1, timeout=15)
        result = health(hlab, primary, checks=["checksum_failures"])
    finally:
        hlab.query(primary, "DROP TABLE health_cksum")
    [found] = problems(result, "checksum_failures")
    assert found["status"] == "CRITICAL"
    assert found["subject"] == "database postgres"
    assert found["value"] == hlab.query(primary, count_sql)[0][0]
    assert "last at" in found["message"]
