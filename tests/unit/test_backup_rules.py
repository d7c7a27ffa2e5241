"""Table tests of the backup and restore rules (plugins/module_utils/backups.py): pgbackrest.conf
grammar, the restore target, which backup covers it, which rows are applied and in what order."""

from __future__ import annotations

import datetime as dt

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.backups import (
    apply_order,
    archive_command,
    backups_from_info,
    check_option,
    pgbackrest_config,
    restore_decision,
    restore_dir_name,
    restore_target,
    restored_server_options,
    rows_to_apply,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import recovery_plan

NOW = dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.timezone.utc)
EPOCH = int(NOW.timestamp())


def test_config_renders_sections_and_booleans():
    text = pgbackrest_config(
        {"global": {"repo1-path": "/var/lib/pgbackrest", "start-fast": True}, "content": {"pg1-port": 5411}}
    )
    assert text == "[global]\nrepo1-path=/var/lib/pgbackrest\nstart-fast=y\n\n[content]\npg1-port=5411\n"


@pytest.mark.parametrize(
    "section, key, value, words",
    [
        ("global", "repo1-path", "/x\n[evil]", "no line break"),
        ("global", "repo1-path", "/x # comment", "no line break, quote or comment mark"),
        ("global", "repo1-path", "a'b", "quote"),
        ("global", "repo1-path", "", "no line break"),
        ("global", "Repo1-Path", "/x", "option name"),
        ("global", "repo1 path", "/x", "option name"),
        ("glo]bal", "repo1-path", "/x", "section"),
        ("content", "pg1-path", "/srv/x=y", "no line break"),
    ],
)
def test_config_refuses_what_the_grammar_cannot_carry(section, key, value, words):
    with pytest.raises(ValueError, match=words.split()[0]):
        check_option(section, key, value)


@pytest.mark.parametrize(
    "config, stanza, ok",
    [
        ("/etc/pgbackrest/pgbackrest.conf", "content", True),
        ("/etc/pg backrest.conf'; rm -rf /", "content", False),
        ("/etc/pgbackrest.conf", "content;x", False),
        ("/etc/pgbackrest.conf", "", False),
    ],
)
def test_archive_command(config, stanza, ok):
    if ok:
        assert archive_command(config, stanza) == (
            "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=content archive-push %p"
        )
    else:
        with pytest.raises(ValueError):
            archive_command(config, stanza)


@pytest.mark.parametrize(
    "explicit, detected, expected",
    [
        ("2026-12-03T05:00:00Z", "2026-12-03T05:30:00Z", ("2026-12-03T05:00:00+00:00", "integrity_restore_target")),
        ("", "2026-12-03T05:30:00+00:00", ("2026-12-03T05:30:00+00:00", "incident detected_at")),
        (None, "2026-12-03 05:30:00", ("2026-12-03T05:30:00+00:00", "incident detected_at")),
        ("2026-12-03 07:30:00+02", "", ("2026-12-03T05:30:00+00:00", "integrity_restore_target")),
        ("2026-12-03T07:00:00Z", "", "in the future"),
        ("yesterday", "", "not an ISO time"),
        ("", "", "no restore target"),
    ],
)
def test_restore_target(explicit, detected, expected):
    target = restore_target(explicit, detected, NOW)
    if isinstance(expected, tuple):
        assert (target["target"], target["source"]) == expected
    else:
        assert expected in target["refused"]


INFO = [
    {
        "name": "content",
        "status": {"code": 0, "message": "ok"},
        "backup": [
            {"label": "F2", "type": "full", "timestamp": {"start": EPOCH - 600, "stop": EPOCH - 590}},
            {"label": "F1", "type": "full", "timestamp": {"start": EPOCH - 3600, "stop": EPOCH - 3590}},
            {"label": "BAD", "type": "full", "error": True, "timestamp": {"start": EPOCH - 100, "stop": EPOCH - 90}},
        ],
    }
]


def target_at(seconds_before_now):
    return {"target": (NOW - dt.timedelta(seconds=seconds_before_now)).isoformat(), "source": "t"}


@pytest.mark.parametrize(
    "stanza, info, target, expected",
    [
        ("content", INFO, target_at(60), "F2"),  # newest good backup before the target (BAD has an error)
        ("content", INFO, target_at(1000), "F1"),
        ("content", INFO, target_at(4000), "every backup of stanza content ended after"),
        ("", INFO, target_at(60), "no pgBackRest stanza"),
        ("queue", INFO, target_at(60), "stanza queue not in the repository"),
        (
            "content",
            [{"name": "content", "status": {"code": 2, "message": "no valid backups"}}],
            target_at(60),
            "no backup yet",
        ),
        (
            "content",
            [{"name": "content", "status": {"code": 1, "message": "missing stanza path"}}],
            target_at(60),
            "missing stanza path",
        ),
        ("content", INFO, {"refused": "no restore target: x"}, "no restore target"),
    ],
)
def test_restore_decision(stanza, info, target, expected):
    decision = restore_decision(stanza, backups_from_info(info, stanza), target)
    if expected in ("F1", "F2"):
        assert decision["backup"] == expected and not decision.get("refused")
    else:
        assert expected in decision["refused"]
        if "no restore target" not in expected:
            assert decision["refused"].startswith("no backup to restore from")


def test_rows_to_apply_never_deletes_extra_rows():
    diff = {
        "missing": [{"key": [21], "row": {}}],
        "changed": [{"key": [7], "restored": {}, "current": {}}],
        "extra": [{"key": [5000], "row": {}}],
    }
    assert rows_to_apply(diff) == {"insert": [[21]], "update": [[7]], "left_alone": [[5000]]}
    assert rows_to_apply({"missing": [], "changed": [], "extra": []}) == {"insert": [], "update": [], "left_alone": []}


@pytest.mark.parametrize(
    "tables, references, expected",
    [
        (
            ["public.orders", "public.accounts"],
            [("public.orders", "public.accounts")],
            ["public.accounts", "public.orders"],
        ),
        (["c", "b", "a"], [("c", "b"), ("b", "a")], ["a", "b", "c"]),
        (["a", "b"], [("a", "b"), ("b", "a")], ["a", "b"]),  # a cycle keeps the given order
        (["a"], [("a", "a"), ("a", "elsewhere")], ["a"]),
        (["a", "b", "a"], [], ["a", "b"]),
    ],
)
def test_apply_order_puts_parents_first(tables, references, expected):
    assert apply_order(tables, references) == expected


def test_orphans_restore_their_parent_table_too():
    finding = {
        "check": "fk_orphans",
        "relation": "public.orders",
        "table": "public.orders",
        "references": "public.accounts",
        "key": ["id"],
        "keys": [[1]],
        "problem": "1 rows referencing missing public.accounts rows",
    }
    assert recovery_plan([finding])["restore"] == ["public.accounts", "public.orders"]


def test_restored_instance_never_archives_and_listens_on_loopback():
    options = restored_server_options(6010, "/var/tmp/restore")
    assert "-c archive_mode=off" in options and "-c listen_addresses=127.0.0.1" in options
    assert "-c port=6010" in options and "-c synchronous_standby_names=''" in options
    with pytest.raises(ValueError):
        restored_server_options(6010, "/var/tmp/re'store")
    assert restore_dir_name("content", NOW) == "content-20261203T060000000000"
