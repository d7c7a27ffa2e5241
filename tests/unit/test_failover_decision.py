"""Failover decisions from observed tier state: every safety rule has a case here."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import (
    FAILOVER,
    HEALTHY,
    REFUSED,
    SPLIT_BRAIN,
    Member,
    decide,
    int_to_lsn,
    synchronous_names,
    upstream_heard_recently,
)


def primary(name, lsn="0/5000000", tli=1):
    return Member(name, {"reachable": True, "in_recovery": False, "current_lsn": lsn, "timeline_id": tli})


def standby(name, received, replayed=None, tli=1, candidate=True, heard_s=None):
    receiver = {"status": "streaming", "sender_host": "10.0.0.1", "sender_port": 5432}
    if heard_s is not None:
        receiver["seconds_since_last_message"] = heard_s
    info = {
        "reachable": True,
        "in_recovery": True,
        "received_lsn": received,
        "replay_lsn": replayed or received,
        "timeline_id": tli,
        "wal_receiver": receiver,
    }
    return Member(name, info, failover_candidate=candidate)


def down(name, kind="refused"):
    return Member(name, {"reachable": False, "in_recovery": None, "conn_err_kind": kind})


def test_reachable_primary_means_no_outage():
    decision = decide([primary("db-1"), standby("db-2", "0/5000000")])
    assert decision.action == HEALTHY
    assert decision.primary == "db-1"
    assert decision.fence == []


def test_two_primaries_is_split_brain_and_nothing_else():
    decision = decide([primary("db-1"), primary("db-2"), standby("db-3", "0/1")])
    assert decision.action == SPLIT_BRAIN
    assert decision.candidate is None
    assert "db-1, db-2" in decision.reason


def test_outage_promotes_most_advanced_standby_and_fences_the_rest():
    members = [down("db-1"), standby("db-2", "0/4000000"), standby("db-3", "0/5000000")]
    decision = decide(members)
    assert decision.action == FAILOVER
    assert decision.candidate == "db-3"
    assert decision.fence == ["db-1"]
    assert decision.standbys_to_repoint == ["db-2"]
    assert decision.estimated_data_loss_bytes == 0


def test_every_member_we_cannot_see_is_fenced():
    members = [down("db-1"), down("db-2", "timeout"), standby("db-3", "0/5000000")]
    assert decide(members).fence == ["db-1", "db-2"]


def test_equal_positions_prefer_the_synchronous_standby():
    members = [down("db-1"), standby("db-2", "0/5000000"), standby("db-3", "0/5000000")]
    assert decide(members, sync_standby_names="ANY 1 (db_3)").candidate == "db-3"
    assert decide(members).candidate == "db-2"


def test_newest_timeline_wins_over_position():
    members = [down("db-1"), standby("db-2", "0/9000000", tli=1), standby("db-3", "0/5000000", tli=2)]
    assert decide(members).candidate == "db-3"


def test_members_marked_not_candidate_are_never_promoted():
    members = [down("db-1"), standby("db-2", "0/9000000", candidate=False), standby("db-3", "0/8000000")]
    decision = decide(members)
    assert decision.candidate == "db-3"
    assert "db-2" in decision.standbys_to_repoint


def test_lagging_candidate_is_refused_unless_data_loss_allowed():
    backlog = 8 * 1024 * 1024
    members = [down("db-1"), standby("db-2", int_to_lsn(0x5000000 + backlog), replayed="0/5000000")]
    refused = decide(members, max_lag_bytes=1024 * 1024)
    assert refused.action == REFUSED
    assert refused.candidate_lag_bytes == backlog
    assert "failover_allow_data_loss" in refused.reason
    allowed = decide(members, max_lag_bytes=1024 * 1024, allow_data_loss=True)
    assert allowed.action == FAILOVER
    assert allowed.candidate == "db-2"


def test_loss_is_measured_against_the_last_primary_position_when_known():
    members = [down("db-1"), standby("db-2", "0/5000000")]
    decision = decide(members, last_primary_lsn="0/5000100", allow_data_loss=True)
    assert decision.estimated_data_loss_bytes == 0x100


def test_requested_candidate_must_qualify():
    members = [down("db-1"), standby("db-2", "0/5000000"), standby("db-3", "0/5000000", candidate=False)]
    assert decide(members, requested_candidate="db-2").candidate == "db-2"
    assert decide(members, requested_candidate="db-3").action == REFUSED
    assert decide(members, requested_candidate="db-1").action == REFUSED


def test_no_standby_left_is_a_refusal():
    decision = decide([down("db-1"), down("db-2")])
    assert decision.action == REFUSED
    assert decision.fence == ["db-1", "db-2"]


@pytest.mark.parametrize(
    ("setting", "names"),
    [
        ("ANY 1 (oltp_2, oltp_3)", ["oltp_2", "oltp_3"]),
        ('FIRST 1 ("db_2")', ["db_2"]),
        ("a, b", ["a", "b"]),
        ("", []),
        ("*", []),
    ],
)
def test_synchronous_names(setting, names):
    assert synchronous_names(setting) == names


def test_upstream_heard_recently_flags_a_possible_partition():
    members = [down("db-1"), standby("db-2", "0/1", heard_s=0.8), standby("db-3", "0/1", heard_s=30)]
    assert [line.split()[0] for line in upstream_heard_recently(members, silence_s=5)] == ["db-2"]


@pytest.mark.parametrize(
    ("current", "remaining", "strict", "expected"),
    [
        ("ANY 1 (db_2, db_3)", ["db-3"], False, ("ANY 1 (db_3)", False)),
        ("ANY 2 (db_1, db_2, db_3)", ["db-2"], False, ("ANY 1 (db_2)", True)),
        ("FIRST 1 (db_1, db_2)", [], False, ("", True)),
        ("ANY 1 (db_1, db_2)", [], True, (None, False)),
        ("db_1, db_2", ["db-2"], False, ("FIRST 1 (db_2)", False)),
        ("", ["db-2"], False, (None, False)),
    ],
)
def test_synchronous_setting_after_promotion(current, remaining, strict, expected):
    from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import synchronous_after_promotion

    assert synchronous_after_promotion(current, remaining, strict) == expected


def test_decision_carries_the_promoted_servers_synchronous_setting():
    members = [down("db-1"), standby("db-2", "0/5000000"), standby("db-3", "0/5000000")]
    members[1].info["synchronous_standby_names"] = "ANY 1 (db_1, db_3)"
    members[2].info["synchronous_standby_names"] = "ANY 1 (db_1, db_2)"
    decision = decide(members)
    assert decision.candidate == "db-2"
    assert decision.synchronous_standby_names == "ANY 1 (db_3)"
    assert not decision.durability_reduced


def test_observe_uses_every_member_once_and_keeps_inventory_order():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import observe
    from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams

    def collect(params):
        return {"reachable": True, "in_recovery": params.port != 5402, "endpoint": params.endpoint}

    members = [
        {"name": "db-1", "login_host": "127.0.0.1", "login_port": 5401},
        {"name": "db-2", "login_host": "127.0.0.1", "login_port": 5402, "failover_candidate": False},
    ]
    observed = observe(members, ConnectionParams(user="ops"), collect)
    assert [member.name for member in observed] == ["db-1", "db-2"]
    assert observed[1].is_primary and observed[0].is_standby
    assert observed[1].failover_candidate is False
    assert observed[0].info["endpoint"] == "127.0.0.1:5401"
    with pytest.raises(ValueError):
        observe(members + members[:1], ConnectionParams(), collect)
