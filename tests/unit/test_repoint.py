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


@pytest.mark.parametrize(
    ("settings", "conninfo"),
    [
        ({"host": "a", "port": "1"}, "host=a port=1"),
        ({"user": "rep sslmode=disable"}, "user='rep sslmode=disable'"),
        ({"password": "it's"}, "password='it\\'s'"),
        ({"passfile": "C:\\pg\\pass"}, "passfile='C:\\\\pg\\\\pass'"),
        ({"application_name": ""}, "application_name=''"),
    ],
)
def test_build_conninfo_quotes_per_libpq(settings, conninfo):
    from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import build_conninfo

    assert build_conninfo(settings) == conninfo
    assert parse_dsn(conninfo) == settings


@pytest.mark.parametrize(
    "settings", [{"user": "a\nb"}, {"user": "a\rb"}, {"user": "a\0b"}, {"user x": "a"}, {"User": "a"}]
)
def test_build_conninfo_refuses_what_libpq_cannot_hold(settings):
    from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import build_conninfo

    with pytest.raises(ValueError, match="refusing"):
        build_conninfo(settings)


INJECTIONS = [
    ("name", "penguinmails_oltp\n[pgbouncer]\nauth_type = trust"),
    ("name", "x = host=evil\n"),
    ("name", "[pgbouncer]"),
    ("name", ";comment"),
    ("name", "a b"),
    ("name", ""),
    ("host", "127.0.0.1\n[pgbouncer]\nauth_type = trust"),
    ("host", "127.0.0.1\rauth_type = trust"),
    ("host", "127.0.0.1\0"),
    ("setting", {"pool_size": "5\nauth_type = trust"}),
    ("setting", {"pool_size\n[pgbouncer]": "5"}),
    ("setting", {"pool size": "5"}),
    ("setting", {"a=b": "5"}),
]


@pytest.mark.parametrize(("where", "value"), INJECTIONS)
def test_no_input_adds_a_line_or_a_section(where, value):
    name, wanted = "penguinmails_oltp", {"host": "127.0.0.1", "port": "5402"}
    if where == "name":
        name = value
    elif where == "host":
        wanted["host"] = value
    else:
        wanted.update(value)
    with pytest.raises(ValueError, match="refusing"):
        update_database_entry(INI, name, wanted)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("host=evil port=1", "'host=evil port=1'"),
        ("a;b", "'a;b'"),
        ("a#b", "'a#b'"),
        ("a=b", "'a=b'"),
        ("it's", "'it''s'"),
        ("", "''"),
        ("10.0.0.1", "10.0.0.1"),
        ("/var/run/postgresql", "/var/run/postgresql"),
    ],
)
def test_values_are_quoted_where_pgbouncer_allows_it(value, written):
    from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import parse_db_value

    text, _before, after = update_database_entry(INI, "penguinmails_oltp", {"host": value})
    assert after.startswith("penguinmails_oltp = host=%s port=5401" % written)
    assert len(text.splitlines()) == len(INI.splitlines())
    assert dict(parse_db_value(after.split(" = ", 1)[1]))["host"] == written


def test_an_existing_quoted_value_is_kept_as_it_is():
    ini = INI.replace("pool_size=15", "connect_query='SELECT ''a b'''")
    _text, before, after = update_database_entry(ini, "penguinmails_olap", {"port": "5411"})
    assert before.replace("5410", "5411") == after


def test_entry_lines_are_masked_for_output():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import masked_entry

    line = "penguinmails_oltp = host=h port=1 user=app password='s3cr et' dbname=x"
    masked = masked_entry(line)
    assert "s3cr" not in masked
    assert masked.startswith("penguinmails_oltp = host=h port=1 user=app password=")
    assert masked.endswith("dbname=x")
    assert masked_entry(None) is None
