"""The rehearsal lab (role penguinmails.dbops.lab) against its real state.

Everything is asked from the servers and from /proc, never taken from the
playbook's own report: one primary per tier, standbys streaming over their
slots, quorum commit on oltp, the application writing through PgBouncer,
checksums and extensions, idempotence, recovery of a SIGKILLed server, and a
teardown that leaves no process and no port behind.
"""

from __future__ import annotations

import uuid

import lablib
import pytest

pytestmark = pytest.mark.lab


def fetch_one(conn, query, args=None):
    with conn.cursor() as cursor:
        cursor.execute(query, args)
        return cursor.fetchone()


def fetch_all(conn, query, args=None):
    with conn.cursor() as cursor:
        cursor.execute(query, args)
        return cursor.fetchall()


def test_first_run_built_the_lab(lab):
    assert lab.first_run is not None
    assert lab.first_run.changed > 0
    assert set(lab.first_run.recap) == {*lab.servers, "pgbouncer-1"}


def test_exactly_one_primary_per_tier_and_it_is_the_first_host(lab):
    for tier in lab.tiers():
        roles = {server.name: lab.role(server) for server in lab.tier(tier)}
        assert sorted(roles.values()) == ["primary"] + ["standby"] * (len(roles) - 1), roles
        assert roles["%s-1" % tier] == "primary", "a new tier bootstraps from the group's first host"


def test_every_standby_streams_over_its_own_slot(lab):
    for tier in lab.tiers():
        primary = lab.primary(tier)
        standbys = [server for server in lab.tier(tier) if server != primary]
        with lab.connect(primary) as conn:
            replication = dict(fetch_all(conn, "SELECT application_name, state FROM pg_stat_replication"))
            slots = dict(fetch_all(conn, "SELECT slot_name, active FROM pg_replication_slots"))
        for standby in standbys:
            assert replication.get(standby.member_name) == "streaming", replication
            assert slots.get(standby.member_name) is True, slots
            with lab.connect(standby) as conn:
                status, slot_name, conninfo = fetch_one(
                    conn, "SELECT status, slot_name, conninfo FROM pg_stat_wal_receiver"
                )
            assert (status, slot_name) == ("streaming", standby.member_name)
            assert "passfile=" in conninfo and "password=" not in conninfo


def test_oltp_commits_with_synchronous_quorum(lab):
    primary = lab.primary("oltp")
    others = sorted(server.member_name for server in lab.tier("oltp") if server != primary)
    with lab.connect(primary, dbname="penguinmails_oltp", options="-c statement_timeout=10000") as conn:
        (names,) = fetch_one(conn, "SHOW synchronous_standby_names")
        assert names == "ANY 1 (%s)" % ", ".join(others)
        sync_states = dict(fetch_all(conn, "SELECT application_name, sync_state FROM pg_stat_replication"))
        assert sync_states == {name: "quorum" for name in others}
        # A synchronous commit returns (it would wait forever, then time out, without a standby).
        fetch_one(conn, "INSERT INTO lab_writes (note) VALUES ('quorum check') RETURNING id")


def test_application_writes_through_pgbouncer_and_standbys_see_it(lab):
    note = "lab-test-%s" % uuid.uuid4()
    with lab.connect_pgbouncer("penguinmails_oltp") as conn:
        (row_id,) = fetch_one(conn, "INSERT INTO lab_writes (note) VALUES (%s) RETURNING id", (note,))
        (who,) = fetch_one(conn, "SELECT current_user")
    assert who == lab.credentials["lab_app_user"]
    primary = lab.primary("oltp")
    for standby in (server for server in lab.tier("oltp") if server != primary):
        with lab.connect(standby, dbname="penguinmails_oltp") as conn:

            def visible(conn=conn):
                return fetch_one(conn, "SELECT note FROM lab_writes WHERE id = %s", (row_id,)) == (note,)

            assert lablib.wait_until(visible, timeout=10), "row %s never reached %s" % (row_id, standby.name)


def test_pgbouncer_points_at_the_primary_with_the_seed_pool_sizes(lab):
    rows = lab.pgbouncer_show("DATABASES", user=lab.credentials["pgbouncer_stats_user"])
    databases = {row["name"]: row for row in rows}
    oltp = databases["penguinmails_oltp"]
    assert int(oltp["port"]) == lab.primary("oltp").port
    assert (int(oltp["pool_size"]), int(oltp["min_pool_size"])) == (50, 5)


def test_checksums_and_extensions(lab):
    for server in lab.servers.values():
        with lab.connect(server, dbname="penguinmails_oltp") as conn:
            assert fetch_one(conn, "SHOW data_checksums") == ("on",)
            assert fetch_one(conn, "SHOW wal_log_hints") == ("on",)
            assert "pg_stat_statements" in fetch_one(conn, "SHOW shared_preload_libraries")[0]
            extensions = {name for (name,) in fetch_all(conn, "SELECT extname FROM pg_extension")}
            assert {"pg_stat_statements", "amcheck"} <= extensions
            assert fetch_one(conn, "SELECT count(*) >= 0 FROM pg_stat_statements") == (True,)
            assert fetch_one(conn, "SHOW listen_addresses") == ("127.0.0.1",)


def test_application_role_can_create_a_table_in_every_tier_database(lab):
    """The lab grants CREATE on schema public to the application role (PUBLIC has only USAGE there)."""
    app_user = lab.credentials["lab_app_user"]
    for tier in lab.tiers():
        database = lablib.TIERS[tier].database
        table = "app_can_create_%s" % uuid.uuid4().hex[:12]
        conn = lab.connect(lab.primary(tier), dbname=database, user=app_user)
        try:
            assert fetch_one(conn, "SELECT has_schema_privilege('public', 'CREATE')") == (True,), database
            with conn.cursor() as cursor:
                cursor.execute("CREATE TABLE public.%s (id int)" % table)
            assert fetch_one(conn, "SELECT tableowner FROM pg_tables WHERE tablename = %s", (table,)) == (app_user,)
            with conn.cursor() as cursor:
                cursor.execute("DROP TABLE public.%s" % table)
        finally:
            conn.close()


def test_second_present_run_changes_nothing(lab):
    run = lab.up()
    assert run.changed == 0, {host: counts for host, counts in run.recap.items() if counts["changed"]}
    assert set(run.recap) == {*lab.servers, "pgbouncer-1"}


def test_present_brings_back_a_sigkilled_standby(lab):
    primary = lab.primary("oltp")
    standby = next(server for server in lab.tier("oltp") if server != primary)
    old_pid = lablib.kill_postmaster(standby.data_dir)
    assert lablib.wait_until(lambda: not lablib.process_alive(old_pid), timeout=10)
    assert lab.role(standby) == "down"

    run = lab.up()

    assert run.recap[standby.name]["changed"] > 0
    assert lab.role(standby) == "standby"
    assert standby.postmaster_pid() != old_pid
    with lab.connect(primary) as conn:
        state = fetch_one(
            conn, "SELECT state FROM pg_stat_replication WHERE application_name = %s", (standby.member_name,)
        )
    assert state == ("streaming",)


def test_status_playbook_prints_the_table(lab):
    run = lab.status()
    for server in lab.servers.values():
        assert server.name in run.stdout
    assert "primary" in run.stdout and "streaming" in run.stdout and "quorum" in run.stdout
    assert "penguinmails_oltp" in run.stdout


@pytest.mark.lab_teardown
def test_absent_leaves_no_process_port_or_file(lab):
    pids = [pid for server_pids in lab.all_pids().values() for pid in server_pids]
    assert len(pids) >= 3 * 5 + 1, "expected every server's processes and PgBouncer to be running"

    run = lab.down()

    assert run.changed > 0
    survivors = [pid for pid in pids if lablib.process_alive(pid)]
    assert survivors == [], "processes left: %s" % {pid: lablib.process_state(pid) for pid in survivors}
    assert [port for port in lab.ports() if lablib.port_open(port)] == []
    assert not lab.lab_root.exists()
    assert lab.down().changed == 0, "a second absent run has nothing left to do"
