"""The outage runbook's rules after the plan: go on after fencing, verify by host identity, the outcome."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.filter.outage import fence_verdict_filter, outage_closing
from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import (
    FAILOVER,
    HEALTHY,
    Member,
    decide,
    fence_verdict,
    run_closing,
    run_outcome,
    streams_from,
    verification,
)

HEARD = ["db-2 heard from 10.0.0.1:5432 0.4 s ago"]


def fenced(name, ok=True, changed=True):
    return {"item": name, "fenced": ok, "changed": changed, "actions": ["stop %s" % name], "msg": ""}


def unreachable(name):
    return {"item": name, "unreachable": True, "msg": "ssh: connect to host %s port 22: timed out" % name}


def skipped(name):
    return {"item": name, "skipped": True}


@pytest.mark.parametrize(
    ("results", "policy", "heard", "refused", "unfenced"),
    [
        ([fenced("db-1")], "auto", HEARD, False, []),
        ([unreachable("db-1")], "auto", HEARD, True, ["db-1"]),
        ([unreachable("db-1")], "skip", HEARD, False, ["db-1"]),
        ([unreachable("db-1")], "auto", [], False, ["db-1"]),
        ([fenced("db-1", ok=False)], "auto", HEARD, True, ["db-1"]),
        ([fenced("db-1"), unreachable("db-4")], "auto", HEARD, True, ["db-4"]),
        ([skipped("db-1")], "auto", HEARD, False, []),
        ([], "auto", HEARD, False, []),
    ],
)
def test_fence_verdict(results, policy, heard, refused, unfenced):
    verdict = fence_verdict(results, policy, heard, 10)
    assert verdict["refused"] is refused
    assert verdict["unfenced"] == unfenced
    assert bool(verdict["reason"]) is refused


def test_fence_refusal_says_why_and_how_to_override():
    verdict = fence_verdict([unreachable("db-1")], "auto", HEARD, 10)
    assert verdict["reason"].startswith("refused: could not fence db-1 (ssh: connect")
    assert "may still be serving writes behind a partition" in verdict["reason"]
    assert "failover_fence=skip" in verdict["reason"]
    assert verdict["result"] == "not fenced: db-1 (failover_fence=auto, risk accepted)"


def test_fence_verdict_collects_what_the_fences_did():
    verdict = fence_verdict([fenced("db-1"), fenced("db-4", changed=False)], "auto", [], 10)
    assert verdict["result"] == "fenced"
    assert verdict["changed"] is True
    assert verdict["actions"] == ["stop db-1", "stop db-4"]


def test_fence_verdict_filter_reads_a_skipped_loop_and_rejects_unknown_policies():
    assert fence_verdict_filter({"skipped": True}, "auto", HEARD, "10")["refused"] is False
    assert fence_verdict_filter(None, "skip", [], 10)["unfenced"] == []
    with pytest.raises(Exception, match="auto or skip"):
        fence_verdict_filter({}, "yes", [], 10)


def receiving(host, port, status="streaming"):
    return {
        "reachable": True,
        "in_recovery": True,
        "wal_receiver": {"status": status, "sender_host": host, "sender_port": port},
    }


@pytest.mark.parametrize(
    ("info", "host", "port", "streams"),
    [
        (receiving("10.0.0.2", 5432), "10.0.0.2", 5432, True),
        (receiving("10.0.0.1", 5432), "10.0.0.2", 5432, False),  # same port, another server
        (receiving("10.0.0.2", 5433), "10.0.0.2", 5432, False),
        (receiving("DB-2.example.com", 5432), "db-2.example.com", "5432", True),
        (receiving("/var/run/postgresql", 5432), "10.0.0.2", 5432, False),
        (receiving("localhost", 5432), "127.0.0.1", 5432, False),  # compared as given, not resolved
        (receiving("10.0.0.2", 5432, status="catchup"), "10.0.0.2", 5432, False),
        ({"reachable": True, "in_recovery": True}, "10.0.0.2", 5432, False),
    ],
)
def test_streams_from_compares_address_and_port(info, host, port, streams):
    assert streams_from(info, host, port) is streams


def tier_after(primary_tli=2):
    """db-2 promoted on 10.0.0.2; db-3 streams from it, db-4 still from the old primary db-1 (same port)."""
    members = [
        Member("db-1", {"reachable": False, "in_recovery": None}),
        Member("db-2", {"reachable": True, "in_recovery": False, "timeline_id": primary_tli}),
        Member("db-3", receiving("10.0.0.2", 5432)),
        Member("db-4", receiving("10.0.0.1", 5432)),
    ]
    addresses = {"db-%d" % number: ("10.0.0.%d" % number, 5432) for number in range(1, 5)}
    return members, addresses


def test_only_the_standby_streaming_from_the_new_primarys_address_counts():
    members, addresses = tier_after()
    verdict = verification(decide(members), members, addresses, "db-2", ["db-3", "db-4"], timeline_above=1)
    assert verdict["streaming"] == ["db-3"]
    assert verdict["not_streaming"] == ["db-4"]
    assert verdict["verified"] is False
    assert "db-4" in verdict["reason"]


@pytest.mark.parametrize(
    ("primary", "standbys", "timeline_above", "primary_tli", "verified"),
    [
        ("db-2", ["db-3"], 1, 2, True),
        ("db-2", ["db-3"], None, 1, True),
        ("db-2", ["db-3"], 1, 1, False),  # promoted but still on the old timeline
        ("db-3", [], None, 2, False),  # another server is the primary
        ("db-2", ["db-3", "db-4"], 1, 2, False),
    ],
)
def test_verification(primary, standbys, timeline_above, primary_tli, verified):
    members, addresses = tier_after(primary_tli)
    assert verification(decide(members), members, addresses, primary, standbys, timeline_above)["verified"] is verified


def test_healthy_plan_names_the_standbys_to_repoint_and_the_tier_primary():
    decision = decide(tier_after()[0])
    assert decision.action == HEALTHY
    assert decision.standbys_to_repoint == ["db-3", "db-4"]
    assert decision.as_dict()["tier_primary"] == "db-2"


def test_failover_plan_names_the_candidate_as_tier_primary_and_its_timeline():
    members = [
        Member("db-1", {"reachable": False}),
        Member("db-2", {"reachable": True, "in_recovery": True, "received_lsn": "0/5", "timeline_id": 3}),
    ]
    decision = decide(members)
    assert decision.action == FAILOVER
    assert decision.as_dict()["tier_primary"] == "db-2"
    assert decision.candidate_timeline_id == 3


@pytest.mark.parametrize(
    ("action", "fence_refused", "failed", "changed", "earlier", "outcome"),
    [
        ("healthy", False, False, False, 0, "no_action"),
        ("healthy", False, False, True, 0, "resolved"),  # re-pointed a standby or PgBouncer
        ("healthy", False, False, False, 2, "resolved"),  # an earlier run of the incident acted
        ("failover", False, False, True, 0, "resolved"),
        ("split_brain", False, True, False, 0, "refused"),
        ("refused", False, True, False, 0, "refused"),
        ("failover", True, True, False, 0, "refused"),
        ("failover", False, True, True, 0, "escalated"),  # verification failed
        (None, False, True, False, 0, "escalated"),  # could not even observe
    ],
)
def test_run_outcome(action, fence_refused, failed, changed, earlier, outcome):
    assert run_outcome(action, fence_refused, failed, changed, earlier) == outcome


def test_closing_note():
    healthy = {"action": "healthy", "reason": "db-2 is a reachable, writable primary", "candidate": None}
    assert run_closing(healthy) == {"outcome": "no_action", "note": "no action: db-2 is a reachable, writable primary"}
    failover = {"action": "failover", "candidate": "db-3"}
    assert run_closing(failover, changed=True) == {"outcome": "resolved", "note": "failed over to db-3"}
    assert run_closing(failover, failure="Verify: lost") == {"outcome": "escalated", "note": "Verify: lost"}


def test_outage_closing_filter_reads_registered_results():
    plan = {"decision": {"action": "healthy", "reason": "ok"}}
    assert outage_closing(plan, changed=[{"changed": False}, {"skipped": True}])["outcome"] == "no_action"
    assert outage_closing(plan, changed=[{}, {"changed": True}])["outcome"] == "resolved"
    assert outage_closing({}, failure="observe: boom")["outcome"] == "escalated"
    refused = outage_closing({"decision": {"action": "failover"}}, fence={"refused": True}, failure="refused: x")
    assert refused["outcome"] == "refused"
