"""Rewriting primary_conninfo and PgBouncer [databases] entries without losing anything else."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import (
    follow_conninfo,
    mask_conninfo,
    update_database_entry,
)
from psycopg2.extensions import parse_dsn

INI = """[databases]
; the tiers
penguinmails_oltp = host=127.0.0.1 port=5401 dbname=penguinmails_oltp pool_size=50 min_pool_size=5
penguinmails_olap = host=127.0.0.1 port=5410 dbname=penguinmails_olap pool_size=15

[pgbouncer]
listen_port = 6401
"""


def test_follow_conninfo_changes_only_host_and_port():
    current = "user=replicator passfile=/srv/pgpass host=10.0.0.1 port=5432 application_name=oltp_3 sslmode=prefer"
    wanted = parse_dsn(follow_conninfo(current, "10.0.0.2", 5433, "oltp_3"))
    assert wanted == {
        "user": "replicator",
        "passfile": "/srv/pgpass",
        "host": "10.0.0.2",
        "port": "5433",
        "application_name": "oltp_3",
        "sslmode": "prefer",
    }


def test_follow_conninfo_names_the_standby_when_unnamed():
    assert parse_dsn(follow_conninfo("host=a port=1", "b", 2, "db_2"))["application_name"] == "db_2"


def test_mask_conninfo_hides_passwords():
    masked = mask_conninfo("host=a password=s3cret user=r")
    assert "s3cret" not in masked
    assert parse_dsn(masked)["password"] == "********"


def test_update_entry_keeps_other_keys_entries_and_comments():
    text, before, after = update_database_entry(INI, "penguinmails_oltp", {"host": "127.0.0.1", "port": "5402"})
    assert before.startswith("penguinmails_oltp = host=127.0.0.1 port=5401")
    assert after == "penguinmails_oltp = host=127.0.0.1 port=5402 dbname=penguinmails_oltp pool_size=50 min_pool_size=5"
    assert "; the tiers" in text
    assert "penguinmails_olap = host=127.0.0.1 port=5410" in text
    assert "listen_port = 6401" in text


def test_update_entry_is_a_no_op_when_already_pointed():
    text, before, after = update_database_entry(INI, "penguinmails_olap", {"port": "5410"})
    assert text == INI
    assert before == after


def test_missing_entry_is_added_inside_the_databases_section():
    text, before, _after = update_database_entry(INI, "penguinmails_queue", {"host": "h", "port": "1"})
    assert before is None
    lines = text.splitlines()
    assert lines.index("penguinmails_queue = host=h port=1") < lines.index("[pgbouncer]")


def test_ini_without_databases_section_is_an_error():
    with pytest.raises(ValueError):
        update_database_entry("[pgbouncer]\nlisten_port = 1\n", "x", {"host": "h"})


def test_same_conninfo_ignores_order_and_quoting():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import same_conninfo

    assert same_conninfo("host=a port=1 user=r", "user='r' port=1 host=a")
    assert not same_conninfo("host=a port=1", "host=a port=2")
