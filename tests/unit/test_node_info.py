"""Turning the one-round-trip row into pg_node_info's result."""

import datetime
import decimal

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.node_info import (
    json_safe,
    lsn_to_int,
    node_facts_from_row,
    replay_delay_bytes,
    role_of,
    timeline_of,
)


@pytest.mark.parametrize(
    ("lsn", "value"),
    [("0/0", 0), ("0/3000148", 0x3000148), ("16/B374D848", (0x16 << 32) + 0xB374D848), (None, None), ("", None)],
)
def test_lsn_to_int(lsn, value):
    assert lsn_to_int(lsn) == value


@pytest.mark.parametrize(("in_recovery", "role"), [(True, "standby"), (False, "primary"), (None, "down")])
def test_role_of(in_recovery, role):
    assert role_of(in_recovery) == role


def test_timeline_primary_uses_the_wal_it_writes():
    assert timeline_of({"primary_timeline_id": 4, "checkpoint_timeline_id": 3}) == 4


def test_timeline_standby_takes_newest_of_received_and_checkpoint():
    row = {"primary_timeline_id": None, "checkpoint_timeline_id": 2, "wal_receiver": {"received_tli": 3}}
    assert timeline_of(row) == 3
    assert timeline_of({"primary_timeline_id": None, "checkpoint_timeline_id": 2, "wal_receiver": None}) == 2


def test_replay_delay_is_received_minus_replayed_and_never_negative():
    assert replay_delay_bytes({"received_lsn": "0/2000", "replay_lsn": "0/1000"}) == 0x1000
    assert replay_delay_bytes({"received_lsn": "0/1000", "replay_lsn": "0/2000"}) == 0
    assert replay_delay_bytes({"received_lsn": None, "replay_lsn": "0/2000"}) is None


def test_json_safe_converts_nested_timestamps_and_decimals():
    moment = datetime.datetime(2026, 11, 26, 18, 0, tzinfo=datetime.timezone.utc)
    assert json_safe({"a": [moment, decimal.Decimal("1.5")]}) == {"a": ["2026-11-26T18:00:00+00:00", 1.5]}


def test_node_facts_for_a_standby():
    row = {
        "in_recovery": True,
        "server_version_num": 150018,
        "server_version": "15.18",
        "current_lsn": None,
        "received_lsn": "0/5000",
        "replay_lsn": "0/4000",
        "replay_paused": True,
        "primary_timeline_id": None,
        "checkpoint_timeline_id": 1,
        "wal_receiver": {"status": "streaming", "received_tli": 1},
        "replicas": None,
    }
    facts = node_facts_from_row(row)
    assert facts["role"] == "standby"
    assert facts["replay_delay_bytes"] == 0x1000
    assert facts["replay_paused"] is True
    assert facts["replicas"] == []
    assert facts["timeline_id"] == 1


def test_timeline_standby_uses_history_files_when_receiver_is_down():
    row = {"primary_timeline_id": None, "checkpoint_timeline_id": 1, "wal_receiver": None, "history_timeline_id": 2}
    assert timeline_of(row) == 2
