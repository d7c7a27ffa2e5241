"""pgbouncer_admin's pure parts: what the console and the ini take, versions, what differs."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import (
    check_setting,
    kill_client_command,
    parse_version,
    set_command,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer_admin import differing, setting_text
from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import update_setting

INI = """[databases]
penguinmails_olap = host=127.0.0.1 port=5431 dbname=penguinmails_olap pool_size=15

[pgbouncer]
listen_port = 6431
; the reserve
reserve_pool_size = 0

"""


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("reserve_pool_size", "3", "SET reserve_pool_size = '3'"),
        ("admin_users", "pgbouncer_admin, dbops_admin", "SET admin_users = 'pgbouncer_admin, dbops_admin'"),
        ("ignore_startup_parameters", "", "SET ignore_startup_parameters = ''"),
    ],
)
def test_set_command_renders(key, value, text):
    assert set_command(key, value) == text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("admin_users", "x'; SHUTDOWN; --"),
        ("admin_users", "a\nlisten_port = 1"),
        ("admin_users", "a ; comment"),
        ("admin_users", "a # comment"),
        ("Bad-Key", "1"),
        ("", "1"),
        ("max_client_conn", "1" * 1025),
    ],
)
def test_check_setting_refuses_what_the_grammar_cannot_carry(key, value):
    with pytest.raises(ValueError):
        check_setting(key, value)


@pytest.mark.parametrize(
    ("text", "version"),
    [("PgBouncer 1.18.0", (1, 18, 0)), ("PgBouncer 1.24.1 (abc)", (1, 24, 1)), ("PgBouncer 1.25", (1, 25, 0))],
)
def test_parse_version(text, version):
    assert parse_version(text) == version


def test_parse_version_refuses_text_without_one():
    with pytest.raises(ValueError):
        parse_version("PgBouncer")


def test_kill_client_names_the_version_that_lacks_it():
    with pytest.raises(ValueError, match=r"KILL_CLIENT needs PgBouncer 1\.24 or later; this PgBouncer is 1\.18\.0"):
        kill_client_command("0x55ed6def6da0", (1, 18, 0))


@pytest.mark.parametrize(
    ("client", "text"), [("0x55ed6def6da0", "KILL_CLIENT 0x55ed6def6da0"), ("42", "KILL_CLIENT 42")]
)
def test_kill_client_renders_where_the_version_has_it(client, text):
    assert kill_client_command(client, (1, 24, 0)) == text


@pytest.mark.parametrize("client", ["1; SHUTDOWN", "", "0xZZ", "1" * 17])
def test_kill_client_refuses_odd_ids(client):
    with pytest.raises(ValueError):
        kill_client_command(client, (1, 25, 0))


def test_update_setting_replaces_in_place_and_keeps_comments():
    text, old, new = update_setting(INI, "pgbouncer", "reserve_pool_size", "3")
    assert (old, new) == ("reserve_pool_size = 0", "reserve_pool_size = 3")
    assert "; the reserve\nreserve_pool_size = 3\n" in text
    assert text.count("reserve_pool_size") == 1
    assert "pool_size=15" in text


def test_update_setting_appends_to_its_section_only():
    text, old, new = update_setting(INI, "pgbouncer", "max_client_conn", "500")
    assert old is None and new == "max_client_conn = 500"
    assert text.index("max_client_conn") > text.index("[pgbouncer]")
    assert text.index("max_client_conn") > text.index("reserve_pool_size")


def test_update_setting_is_a_no_op_when_equal():
    text, old, new = update_setting(INI, "pgbouncer", "listen_port", "6431")
    assert text == INI and old == new == "listen_port = 6431"


def test_update_setting_refuses_a_missing_section_and_bad_values():
    with pytest.raises(ValueError, match="no \\[pgbouncer\\] section"):
        update_setting("[databases]\n", "pgbouncer", "listen_port", "1")
    with pytest.raises(ValueError):
        update_setting(INI, "pgbouncer", "admin_users", "a\n[databases]")


@pytest.mark.parametrize(
    ("value", "text"), [(True, "1"), (False, "0"), (20, "20"), ("transaction", "transaction"), (None, "None")]
)
def test_setting_text(value, text):
    assert setting_text(value) == text


@pytest.mark.parametrize(
    ("live", "wanted", "changes"),
    [
        ({"pool_size": 15}, {"pool_size": "15"}, {}),
        ({"pool_size": 15}, {"pool_size": "20"}, {"pool_size": "20"}),
        ({}, {"reserve_pool": "2"}, {"reserve_pool": "2"}),
        ({"a": "1", "b": "2"}, {"a": "1", "b": "3"}, {"b": "3"}),
    ],
)
def test_differing(live, wanted, changes):
    assert differing(live, wanted) == changes
