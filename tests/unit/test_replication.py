"""Replication names: slot names and synchronous_standby_names, parsed and built in one place."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.penguinmails.dbops.plugins.filter.slot_name import slot_name
from ansible_collections.penguinmails.dbops.plugins.filter.synchronous_standby_names import (
    synchronous_standby_names,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.replication import (
    ANY,
    FIRST,
    SyncStandbyNames,
    build_synchronous_standby_names,
    parse_synchronous_standby_names,
    slot_name_for,
    synchronous_names,
)


@pytest.mark.parametrize(
    ("host", "slot"),
    [("oltp-1", "oltp_1"), ("OLTP.db-2", "oltp_db_2"), ("queue_3", "queue_3"), ("db 4", "db_4")],
)
def test_slot_name(host, slot):
    assert slot_name_for(host) == slot
    assert slot_name(host) == slot


@pytest.mark.parametrize(
    ("setting", "parsed"),
    [
        ("ANY 1 (a, b)", SyncStandbyNames(ANY, 1, ("a", "b"))),
        ("any 1(a,b)", SyncStandbyNames(ANY, 1, ("a", "b"))),
        ("FIRST 2 (a,b,c)", SyncStandbyNames(FIRST, 2, ("a", "b", "c"))),
        ("2 (a, b)", SyncStandbyNames(FIRST, 2, ("a", "b"))),
        ("a, b", SyncStandbyNames(FIRST, 1, ("a", "b"))),
        ("a", SyncStandbyNames(FIRST, 1, ("a",))),
        ("*", SyncStandbyNames(FIRST, 1, ("*",))),
        ("ANY 1 (*)", SyncStandbyNames(ANY, 1, ("*",))),
        ('FIRST 1 ("db_2")', SyncStandbyNames(FIRST, 1, ("db_2",))),
        ('ANY 1 ("a, b", "any", "x""y")', SyncStandbyNames(ANY, 1, ("a, b", "any", 'x"y'))),
        ("ANY 1 (123, db$1)", SyncStandbyNames(ANY, 1, ("123", "db$1"))),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_parse(setting, parsed):
    assert parse_synchronous_standby_names(setting) == parsed


@pytest.mark.parametrize(
    "setting",
    [
        "ANY (a, b)",
        "ANY a, b",
        "FIRST",
        "ANY 1 (a, b",
        "ANY 1 (a,, b)",
        "ANY 1 (a, b) c",
        "0 (a)",
        "a b",
        '"unterminated',
        "a, any",
        "a;b",
    ],
)
def test_parse_refuses_what_postgresql_refuses(setting):
    with pytest.raises(ValueError, match="synchronous_standby_names"):
        parse_synchronous_standby_names(setting)


@pytest.mark.parametrize(
    ("names", "num_sync", "method", "built"),
    [
        (["a", "b"], 1, ANY, "ANY 1 (a, b)"),
        (["a", "b", "c"], 2, FIRST, "FIRST 2 (a, b, c)"),
        (["a"], 1, "any", "ANY 1 (a)"),
        ([], 1, ANY, ""),
        (["a"], 0, ANY, ""),
        (["a, b", "Any", 'x"y', "1db"], 1, ANY, 'ANY 1 ("a, b", "Any", "x""y", "1db")'),
    ],
)
def test_build(names, num_sync, method, built):
    assert build_synchronous_standby_names(names, num_sync, method) == built


@pytest.mark.parametrize(
    ("names", "num_sync", "method"),
    [(["a", "b"], 1, ANY), (["x", "y", "z"], 3, FIRST), (["a, b", "first", 'q"', "12", "ünï"], 2, ANY)],
)
def test_round_trip(names, num_sync, method):
    built = build_synchronous_standby_names(names, num_sync, method)
    assert parse_synchronous_standby_names(built) == SyncStandbyNames(method, num_sync, tuple(names))


def test_build_refuses_an_unknown_method():
    with pytest.raises(ValueError):
        build_synchronous_standby_names(["a"], 1, "ALL")


@pytest.mark.parametrize(
    ("setting", "names"),
    [("ANY 1 (Oltp_2, oltp_3)", ["oltp_2", "oltp_3"]), ("*", []), ('"DB_2", *', ["db_2"])],
)
def test_synchronous_names_are_lower_case_without_the_wildcard(setting, names):
    assert synchronous_names(setting) == names


@pytest.mark.parametrize(
    ("hosts", "quorum", "built"),
    [
        (["oltp-2", "oltp-3"], 1, "ANY 1 (oltp_2, oltp_3)"),
        (["oltp-2", "oltp-3"], "2", "ANY 2 (oltp_2, oltp_3)"),
        ([], 1, ""),
        (["oltp-2"], 0, ""),
    ],
)
def test_filter_builds_a_quorum_over_slot_names(hosts, quorum, built):
    assert synchronous_standby_names(hosts, quorum) == built


@pytest.mark.parametrize(("hosts", "quorum"), [("oltp-2", 1), (["a"], "x"), (["a"], -1)])
def test_filter_refuses_bad_input(hosts, quorum):
    with pytest.raises(AnsibleFilterError):
        synchronous_standby_names(hosts, quorum)
