"""The data integrity runbook against real damage, on one lab shared by every test of this file.

Ports: DBOPS_INTEGRITY_TEST_PORT_BASE (default 5960; the content tier's primary listens on base + 11
and its standby on base + 12, the throw-away restored instance on base + 50, no PgBouncer), data under
DBOPS_INTEGRITY_TEST_ROOT (the restores under its restore/). The content tier takes real pgBackRest
backups (a full backup when the lab comes up, WAL archived). Damage is real: bytes of a heap page or
of a B-tree index page are overwritten while the server is stopped (the lab has data checksums), rows
are deleted and changed with plain SQL. Bad input is refused by the server-side validation before any
incident, lock or file exists.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import lablib
import pytest

pytestmark = pytest.mark.lab

PORT_BASE = int(os.environ.get("DBOPS_INTEGRITY_TEST_PORT_BASE", "5960"))
LAB_ROOT = os.environ.get("DBOPS_INTEGRITY_TEST_ROOT", "/var/tmp/penguinmails-dbops-integrity-pytest")
PLAYBOOK = lablib.REPO_ROOT / "playbooks" / "incident_data_integrity.yml"
DATABASE = "penguinmails_content"
APP = lablib.CREDENTIALS["lab_app_user"]
RESTORE_PORT = PORT_BASE + 50
RESTORE_ROOT = os.path.join(LAB_ROOT, "restore")

SCHEMA = f"""
CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), amount numeric);
INSERT INTO accounts SELECT g, 'owner' || g, 100 FROM generate_series(1, 2000) g;
INSERT INTO orders SELECT g, 1 + g % 2000, g FROM generate_series(1, 4000) g;
CREATE TABLE documents (id bigint PRIMARY KEY, body text NOT NULL);
INSERT INTO documents SELECT g, repeat('d', 200) || g FROM generate_series(1, 20000) g;
CREATE TABLE heap_victim (id bigint PRIMARY KEY, body text NOT NULL);
INSERT INTO heap_victim SELECT g, repeat('h', 100) || g FROM generate_series(1, 3000) g;
GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, orders, documents, heap_victim TO {APP};
"""

INVARIANT = {
    "name": "no negative balance",
    "table": "public.accounts",
    "query": "SELECT id, balance FROM public.accounts WHERE balance < 0",
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lablib.require_binaries()
    lab = lablib.write_inventory(
        tmp_path_factory.mktemp("integrity-lab"),
        tiers={"content": 1},
        port_base=PORT_BASE,
        lab_root=LAB_ROOT,
        with_pgbouncer=False,
        backups=["content"],
    )
    with lablib.running(lab):
        sql(lab, SCHEMA)
        yield lab


def sql(lab, statement, args=None, dbname=DATABASE, server=None):
    conn = lab.connect(server or lab.primary("content"), dbname=dbname)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@pytest.fixture
def run(lab, tmp_path):
    incidents, locks = tmp_path / "incidents", tmp_path / "locks"

    def run_playbook(incident_id=None, check=False, **extra):
        extra.update(incident_tier="content", dbops_incident_dir=str(incidents), integrity_lock_dir=str(locks))
        if incident_id:
            extra["incident_id"] = incident_id
        done = lablib.run_playbook(lab.inventory, PLAYBOOK, extra, args=["--check"] if check else [], timeout=600)
        record = incidents / (incident_id or "") / "record.json"
        return SimpleNamespace(
            rc=done.rc,
            stdout=done.stdout,
            stderr=done.stderr,
            recap=done.recap,
            record=json.loads(record.read_text()) if incident_id and record.exists() else None,
            left=sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")),
        )

    return run_playbook


def step(record, kind, name_part):
    return next(entry for entry in record["timeline"] if entry["kind"] == kind and name_part in entry["name"])


def closing(record):
    return [entry for entry in record["timeline"] if entry["name"] == "close"][-1]["result"]


def standby(lab):
    return next(server for server in lab.tier("content") if server != lab.primary("content"))


def wait_replayed(lab):
    """Until the standby has replayed everything the primary wrote so far."""
    lsn = sql(lab, "SELECT pg_current_wal_lsn()::text")[0][0]
    query = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
    assert lablib.wait_until(lambda: sql(lab, query, [lsn], server=standby(lab))[0][0], timeout=30), lsn


def damage_block(lab, relation, block, dbname=DATABASE, server=None):
    """Overwrite 64 bytes in the middle of `block` of `relation`'s file while its server (the primary, or
    the standby given) is stopped. The standby first replays a checkpoint after everything written, so
    its restart does not replay a page image over the damage."""
    server = server or lab.primary("content")
    path = Path(server.data_dir) / sql(lab, "SELECT pg_relation_filepath(%s)", [relation], dbname)[0][0]
    sql(lab, "CHECKPOINT")
    wait_replayed(lab)
    lablib.stop_server(server)
    with open(path, "r+b") as handle:
        handle.seek(block * 8192 + 4000)
        handle.write(b"\xde\xad\xbe\xef" * 16)
    lablib.start_server(server)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"integrity_scope": {"tables": ["public.no_such_table"]}}, "does not have: public.no_such_table"),
        ({"integrity_scope": {"schemas": ["no_such_schema"]}}, "integrity_scope matches no table"),
        (
            {"integrity_invariants": [dict(INVARIANT, query="DELETE FROM public.accounts WHERE balance < 0")]},
            "the query must be a SELECT",
        ),
        (
            {
                "integrity_invariants": [
                    dict(INVARIANT, query="WITH d AS (DELETE FROM accounts RETURNING id) SELECT id FROM d")
                ]
            },
            "the server refuses it as a query",
        ),
        ({"integrity_invariants": [dict(INVARIANT, query="SELECT 1; DROP TABLE accounts")]}, "without ';'"),
        ({"integrity_database": "postgres"}, "the amcheck extension is not installed in database postgres"),
        ({"integrity_check_timeout_s": 0}, "integrity_check_timeout_s must be at least 0.1"),
        (
            {"integrity_apply_restore": True, "pgbackrest_stanza": ""},
            "no backup to restore from: the tier's primary has no pgBackRest stanza",
        ),
        (
            {"integrity_restore_target": "2000-01-01T00:00:00Z"},
            "no backup to restore from: every backup of stanza content ended after 2000-01-01",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_exists(lab, run, extra, message):
    before = sql(lab, "SELECT count(*) FROM accounts")
    done = run(incident_id="INTEGRITY-BAD", **extra)
    assert done.rc != 0, done.stdout[-3000:]
    assert any(message in line for line in (done.stdout + done.stderr).splitlines()), done.stdout[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert done.left == [], "bad input left files behind: %s" % done.left
    assert done.recap["localhost"]["changed"] == 0
    assert sql(lab, "SELECT count(*) FROM accounts") == before
    assert sql(lab, "SELECT to_regnamespace('quarantine')")[0][0] is None
    assert not os.path.exists(RESTORE_ROOT)


def test_corrupt_index_is_found_rebuilt_and_checked_clean(lab, run):
    damage_block(lab, "documents_pkey", 1)
    done = run(incident_id="INTEGRITY-INDEX", integrity_scope={"tables": ["public.documents"]})
    assert done.rc == 0, done.stdout[-4000:]
    record = done.record
    found = step(record, "decision", "identify scope")["details"]["findings"]
    assert [(f["check"], f["relation"], f["blocks"]) for f in found] == [
        ("bt_index_check", "public.documents_pkey", [1]),
        ("checksum_failures", "", []),
    ], found
    assert "invalid page in block 1" in found[0]["problem"]
    assert step(record, "action", "rebuild corrupt indexes")["changed"]
    assert record["outcome"] == "resolved", closing(record)
    # The server agrees: amcheck passes on the rebuilt index, and its lookups work.
    assert sql(lab, "SELECT bt_index_check('documents_pkey', true)") == [("",)]
    assert sql(lab, "SELECT body FROM documents WHERE id = 777") == [("d" * 200 + "777",)]

    again = run(incident_id="INTEGRITY-INDEX-2", integrity_scope={"tables": ["public.documents"]})
    assert again.rc == 0 and again.recap["localhost"]["changed"] == 0, again.stdout[-3000:]
    assert again.record["outcome"] == "no_action"


@pytest.fixture
def heap_victim(lab):
    """The table whose heap page the test damages, dropped afterwards: left in place, its damaged page
    is met by autovacuum each round, a new checksum failure in the window of a later test's run (the
    run rightly escalates it; a CI run failed on it)."""
    yield "heap_victim"
    sql(lab, "DROP TABLE heap_victim")


def test_damaged_heap_page_is_found_by_checksum_and_escalated(lab, run, heap_victim):
    damage_block(lab, heap_victim, 2)
    done = run(incident_id="INTEGRITY-HEAP", integrity_scope={"tables": ["public.heap_victim"]})
    assert done.rc == 0, done.stdout[-4000:]
    found = step(done.record, "decision", "identify scope")["details"]["findings"]
    heap = [f for f in found if f["check"] == "verify_heapam"]
    assert [(f["relation"], f["blocks"]) for f in heap] == [("public.heap_victim", [2])], found
    assert "invalid page in block 2" in heap[0]["problem"]
    checksum = [f for f in found if f["check"] == "checksum_failures"]
    assert checksum and "checksum failure" in checksum[0]["problem"], found
    assert done.record["outcome"] == "escalated"
    assert "verify_heapam public.heap_victim: invalid page in block 2" in closing(done.record)


def test_bad_rows_are_quarantined_idempotently_and_lifted(lab, run):
    sql(lab, "DELETE FROM orders WHERE account_id IN (11, 12); UPDATE accounts SET balance = -5 WHERE id IN (7, 8)")
    # A "bad deploy" deletes parents behind the foreign key's back.
    sql(lab, "SET session_replication_role = replica; DELETE FROM accounts WHERE id IN (21, 22)")
    options = {
        "integrity_scope": {"tables": ["public.accounts", "public.orders"]},
        "integrity_invariants": [INVARIANT],
        "integrity_app_roles": [APP, lablib.CREDENTIALS["dbops_login_user"]],
    }
    planned = run(incident_id="INTEGRITY-ROWS", check=True, **options)
    assert planned.rc == 0, planned.stdout[-4000:]
    assert "CREATE SCHEMA" in planned.stdout, planned.stdout[-3000:]
    assert "REVOKE INSERT, UPDATE, DELETE ON TABLE" in planned.stdout, planned.stdout[-3000:]
    assert planned.record is None
    assert sql(lab, "SELECT to_regnamespace('quarantine')")[0][0] is None
    assert sql(lab, "SELECT has_table_privilege(%s, 'accounts', 'UPDATE')", [APP]) == [(True,)]

    done = run(incident_id="INTEGRITY-ROWS", **options)
    assert done.rc == 0, done.stdout[-4000:]
    plan = step(done.record, "decision", "identify scope")["details"]["plan"]
    by_table = {entry["table"]: sorted(key[0] for key in entry["keys"]) for entry in plan["quarantine"]}
    orphans = sorted(i for (i,) in sql(lab, "SELECT id FROM orders WHERE account_id IN (21, 22)"))
    assert by_table == {"public.accounts": [7, 8], "public.orders": orphans}, plan
    quarantine = step(done.record, "action", "quarantine")["details"]
    assert {entry["role"] for entry in quarantine["revoked"]} == {APP}
    assert quarantine["left_alone"] == [lablib.CREDENTIALS["dbops_login_user"]]
    assert done.record["outcome"] == "escalated" and "quarantine kept in place" in closing(done.record)
    # The server: the rows are copied aside with the incident id, the application can no longer write.
    copied = sql(lab, "SELECT dbops_incident_id, id FROM quarantine.public_accounts__integrity_rows ORDER BY id")
    assert copied == [("INTEGRITY-ROWS", 7), ("INTEGRITY-ROWS", 8)]
    assert sql(lab, "SELECT count(*) FROM quarantine.public_orders__integrity_rows")[0][0] == len(orphans)
    assert sql(lab, "SELECT has_table_privilege(%s, 'accounts', 'UPDATE')", [APP]) == [(False,)]
    assert sql(lab, "SELECT has_table_privilege(%s, 'orders', 'SELECT')", [APP]) == [(True,)]

    again = run(incident_id="INTEGRITY-ROWS", **options)
    assert again.rc == 0 and again.recap["localhost"]["changed"] == 0, again.stdout[-3000:]
    assert sql(lab, "SELECT count(*) FROM quarantine.public_accounts__integrity_rows")[0][0] == 2

    lifted = run(incident_id="INTEGRITY-ROWS", integrity_lift=True)
    assert lifted.rc == 0, lifted.stdout[-3000:]
    assert sql(lab, "SELECT has_table_privilege(%s, 'accounts', 'UPDATE')", [APP]) == [(True,)]
    assert sql(lab, "SELECT has_table_privilege(%s, 'orders', 'INSERT')", [APP]) == [(True,)]
    assert run(incident_id="INTEGRITY-ROWS", integrity_lift=True).recap["localhost"]["changed"] == 0


LEDGER = f"""
CREATE TABLE ledger (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(12, 2) NOT NULL);
CREATE TABLE entries (id bigint PRIMARY KEY, ledger_id bigint NOT NULL REFERENCES ledger (id), amount numeric);
INSERT INTO ledger SELECT g, 'owner' || g, 100.25 FROM generate_series(1, 1000) g;
INSERT INTO entries SELECT g, 1 + g % 1000, g FROM generate_series(1, 2000) g;
GRANT SELECT, INSERT, UPDATE, DELETE ON ledger, entries TO {APP};
"""
LEDGER_INVARIANT = {
    "name": "no negative ledger balance",
    "table": "public.ledger",
    "query": "SELECT id, balance FROM public.ledger WHERE balance < 0",
}


def stop_restored(data_dir):
    """Stop a kept throw-away instance (pg_ctl as its OS user) and remove it."""
    bin_dir = lablib.find_pg_bin_dir()
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, f"{bin_dir}/pg_ctl", "-D", data_dir, "-m", "immediate", "-w", "stop"], check=True)
    subprocess.run(["rm", "-rf", data_dir], check=True)


def test_restore_and_diff_names_the_rows_and_applies_them(lab, run):
    sql(lab, LEDGER)
    target = sql(lab, "SELECT now()::text")[0][0]
    # The "bad deploy" after the target: two rows changed, two parents deleted behind the foreign key.
    sql(lab, "UPDATE ledger SET balance = -1 WHERE id IN (3, 4)")
    sql(lab, "SET session_replication_role = replica; DELETE FROM ledger WHERE id IN (31, 32)")
    sql(lab, "INSERT INTO ledger VALUES (5001, 'after the deploy', 1)")
    options = {
        "integrity_scope": {"tables": ["public.ledger", "public.entries"]},
        "integrity_invariants": [LEDGER_INVARIANT],
        "integrity_app_roles": [APP],
        "integrity_restore_target": target,
        "integrity_restore_port": RESTORE_PORT,
        "integrity_restore_root": RESTORE_ROOT,
    }

    planned = run(incident_id="INTEGRITY-RESTORE", check=True, integrity_apply_restore=True, **options)
    assert planned.rc == 0, planned.stdout[-4000:]
    assert "would run: pgbackrest" in planned.stdout and "--type=time" in planned.stdout, planned.stdout[-3000:]
    assert not os.path.exists(RESTORE_ROOT) or not os.listdir(RESTORE_ROOT)
    assert sql(lab, "SELECT count(*) FROM ledger WHERE id IN (31, 32)") == [(0,)]

    looked = run(incident_id="INTEGRITY-RESTORE", integrity_keep_restore=True, **options)
    assert looked.rc == 0, looked.stdout[-4000:]
    restored = step(looked.record, "action", "restore to")["details"]
    diff = {entry["table"]: entry for entry in restored["differences"]}
    assert diff["public.ledger"]["missing"] == [[31], [32]], diff
    assert diff["public.ledger"]["changed"] == [[3], [4]], diff
    assert diff["public.ledger"]["extra"] == [[5001]], diff
    assert (diff["public.entries"]["missing"], diff["public.entries"]["changed"]) == ([], []), diff
    assert restored["applied"] == [] and restored["decision"]["source"] == "integrity_restore_target"
    # Kept: the throw-away instance answers on its own port with the rows as they were; the live ones stay bad.
    kept = restored["restore"]
    assert kept["kept"] and kept["port"] == RESTORE_PORT
    conn = lablib.connect(
        RESTORE_PORT, lab.credentials["dbops_login_user"], lab.credentials["dbops_login_password"], dbname=DATABASE
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT id, balance::text FROM ledger WHERE id IN (3, 31) ORDER BY id")
            assert cursor.fetchall() == [(3, "100.25"), (31, "100.25")]
    finally:
        conn.close()
    stop_restored(kept["data_dir"])
    assert sql(lab, "SELECT count(*) FROM ledger WHERE balance < 0") == [(2,)]
    assert looked.record["outcome"] == "escalated"

    applied = run(incident_id="INTEGRITY-RESTORE-APPLY", integrity_apply_restore=True, **options)
    assert applied.rc == 0, applied.stdout[-4000:]
    restored = step(applied.record, "action", "restore to")["details"]
    assert {entry["table"]: (entry["inserted"], entry["updated"]) for entry in restored["applied"]} == {
        "public.ledger": (2, 2),
        "public.entries": (0, 0),
    }
    after = {entry["table"]: entry for entry in restored["after"]}
    assert (after["public.ledger"]["missing"], after["public.ledger"]["changed"]) == ([], [])
    assert after["public.ledger"]["extra"] == [[5001]]  # never deleted
    assert applied.record["outcome"] == "resolved", closing(applied.record)
    # The server: the rows are back as they were, the invariant and the foreign key hold, the instance is gone.
    assert sql(lab, "SELECT id, balance::text FROM ledger WHERE id IN (3, 4, 31, 32) ORDER BY id") == [
        (3, "100.25"),
        (4, "100.25"),
        (31, "100.25"),
        (32, "100.25"),
    ]
    assert sql(
        lab, "SELECT count(*) FROM entries e WHERE NOT EXISTS (SELECT FROM ledger l WHERE l.id = e.ledger_id)"
    ) == [(0,)]
    assert os.listdir(RESTORE_ROOT) == []
    assert not lablib.port_open(RESTORE_PORT, timeout=0.5)

    again = run(incident_id="INTEGRITY-RESTORE-AGAIN", integrity_apply_restore=True, **options)
    assert again.rc == 0 and again.recap["localhost"]["changed"] == 0, again.stdout[-3000:]
    assert again.record["outcome"] == "no_action"


COPIES = """
CREATE TABLE copy_index (id bigint PRIMARY KEY, body text NOT NULL);
INSERT INTO copy_index SELECT g, repeat('i', 200) || g FROM generate_series(1, 20000) g;
CREATE TABLE copy_heap_standby (id bigint PRIMARY KEY, body text NOT NULL);
INSERT INTO copy_heap_standby SELECT g, repeat('s', 100) || g FROM generate_series(1, 3000) g;
CREATE TABLE copy_heap_primary (id bigint PRIMARY KEY, body text NOT NULL);
INSERT INTO copy_heap_primary SELECT g, repeat('p', 100) || g FROM generate_series(1, 3000) g;
"""


@pytest.fixture
def copies(lab):
    """Tables whose copies get damaged one at a time. Frozen first: reading them later sets no hint bit,
    so the primary writes no page image that would repair a standby's damaged copy. Dropped afterwards:
    the drop removes the damaged files on every copy."""
    sql(lab, COPIES)
    sql(lab, "VACUUM (FREEZE, ANALYZE) copy_index, copy_heap_standby, copy_heap_primary")
    yield
    sql(lab, "DROP TABLE copy_index, copy_heap_standby, copy_heap_primary")


def test_index_damaged_on_the_standby_only_is_rebuilt_on_the_primary(lab, run, copies):
    replica = standby(lab)
    damage_block(lab, "copy_index_pkey", 1, server=replica)
    with pytest.raises(Exception, match="invalid page in block 1"):
        sql(lab, "SELECT bt_index_check('copy_index_pkey')", server=replica)
    options = {"integrity_scope": {"tables": ["public.copy_index"]}, "integrity_check_standbys": True}

    done = run(incident_id="INTEGRITY-COPY-INDEX", **options)
    assert done.rc == 0, done.stdout[-4000:]
    found = step(done.record, "decision", "identify scope")["details"]
    # The primary's copy is clean: alone, it would find nothing (its database-wide checksum counter still
    # holds the failures of the pages earlier tests damaged).
    assert [f for f in found["findings"] if f["check"] != "checksum_failures"] == [], found
    on_standby = found["standbys"][replica.name]["findings"]
    assert [(f["check"], f["relation"], f["blocks"]) for f in on_standby][:1] == [
        ("bt_index_check", "public.copy_index_pkey", [1])
    ], on_standby
    damage = {d["relation"]: (d["path"], d["damaged_on"]) for d in found["plan"]["copies"]["damage"]}
    assert damage["public.copy_index_pkey"] == ("reindex_on_primary", [replica.name]), damage
    assert found["plan"]["reindex"] == ["public.copy_index_pkey"]
    assert step(done.record, "action", "rebuild corrupt indexes")["changed"]
    assert done.record["outcome"] == "resolved", closing(done.record)
    # The standby replayed the index the primary rebuilt: amcheck passes on its copy, its lookups work.
    assert sql(lab, "SELECT bt_index_check('copy_index_pkey', true)", server=replica) == [("",)]
    assert sql(lab, "SELECT body FROM copy_index WHERE id = 777", server=replica) == [("i" * 200 + "777",)]

    again = run(incident_id="INTEGRITY-COPY-INDEX-2", **options)
    assert again.rc == 0 and again.recap["localhost"]["changed"] == 0, again.stdout[-3000:]
    assert again.record["outcome"] == "no_action", closing(again.record)


def test_a_heap_page_damaged_on_one_copy_changes_the_recovery_path(lab, run, copies):
    primary, replica = lab.primary("content"), standby(lab)
    target = sql(lab, "SELECT now()::text")[0][0]
    damage_block(lab, "copy_heap_standby", 1, server=replica)
    damage_block(lab, "copy_heap_primary", 1)

    done = run(
        incident_id="INTEGRITY-COPY-HEAP",
        integrity_scope={"tables": ["public.copy_heap_standby", "public.copy_heap_primary"]},
        integrity_check_standbys=True,
        integrity_restore_target=target,
        integrity_restore_port=RESTORE_PORT,
        integrity_restore_root=RESTORE_ROOT,
    )
    assert done.rc == 0, done.stdout[-4000:]
    plan = step(done.record, "decision", "identify scope")["details"]["plan"]
    paths = {d["relation"]: (d["path"], d["damaged_on"], d["clean_on"]) for d in plan["copies"]["damage"]}
    assert paths == {
        # Only the standby's copy is damaged: re-clone it; the primary is left alone.
        "public.copy_heap_standby": ("reclone_standby", [replica.name], [primary.name]),
        # Only the primary's: the standby holds the clean copy, a better source than the backup.
        "public.copy_heap_primary": ("switch_over_to_clean_copy", [primary.name], [replica.name]),
    }, plan["copies"]
    # Nothing restored from the backup, nothing quarantined, nothing rebuilt: no step changed a server.
    assert plan["restore"] == [] and plan["quarantine"] == [] and plan["reindex"] == []
    assert done.recap["localhost"]["changed"] == 0, done.stdout[-3000:]
    assert not [entry for entry in done.record["timeline"] if entry["kind"] == "action"]
    assert not os.path.exists(RESTORE_ROOT) or os.listdir(RESTORE_ROOT) == []
    assert done.record["outcome"] == "escalated"
    note = closing(done.record)
    assert "on %s: verify_heapam public.copy_heap_standby" % replica.name in note, note
    what_to_do = note.split("what to do: ")[1]
    assert "re-clone %s from %s" % (replica.name, primary.name) in what_to_do, note
    assert "switch over to %s (a planned switchover), then re-clone %s" % (replica.name, primary.name) in what_to_do
