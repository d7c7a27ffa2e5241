"""The pool exhaustion runbook's rules, one table each."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import pool_relief as rules
from ansible_collections.penguinmails.dbops.plugins.module_utils.pool_relief import Limits

LIMITS = Limits(idle_tx_max_s=60, query_max_s=300, maxwait_max_s=1.0, flood_share_pct=50, flood_min_clients=5)
CALM = {"cl_active": 2, "cl_waiting": 0, "sv_active": 2, "pool_size": 15, "maxwait_seconds": 0.0, "utilization_pct": 13}
BUSY = dict(CALM, cl_active=15, cl_waiting=8, sv_active=15, maxwait_seconds=3.0, utilization_pct=100)
ROOMY = {"max_connections": 100, "reserved": 3, "backends": 20}
FULL = {"max_connections": 100, "reserved": 3, "backends": 97}
LEAK = {
    "pid": 11,
    "state": "idle in transaction",
    "xact_duration_seconds": 120,
    "usename": "app",
    "query_preview": "UPDATE t" * 40,
}
YOUNG_LEAK = {"pid": 12, "state": "idle in transaction", "xact_duration_seconds": 5, "usename": "app"}
RUNAWAY = {"pid": 13, "state": "active", "duration_seconds": 900, "usename": "report"}
FLOOD = [{"addr": "10.0.0.9", "application_name": "batch"}] * 6 + [{"addr": "10.0.0.2", "application_name": "web"}] * 2
MIXED = [{"addr": "10.0.0.%d" % n, "application_name": "web"} for n in range(3)] + [
    {"addr": "10.0.0.%d" % n, "application_name": "api"} for n in range(3, 6)
]


@pytest.mark.parametrize(
    ("pool", "sessions", "clients", "server", "expected"),
    [
        (CALM, [LEAK], [], ROOMY, []),
        (BUSY, [LEAK, YOUNG_LEAK], MIXED, ROOMY, [rules.LEAKED]),
        (BUSY, [RUNAWAY], MIXED, ROOMY, [rules.RUNAWAY]),
        (BUSY, [LEAK, RUNAWAY], MIXED, ROOMY, [rules.LEAKED, rules.RUNAWAY]),
        (BUSY, [], FLOOD, ROOMY, [rules.FLOOD]),
        (BUSY, [YOUNG_LEAK], MIXED, ROOMY, [rules.UNDERSIZED]),
        (CALM, [], [], FULL, [rules.SERVER_FULL]),
        (BUSY, [], MIXED, {**ROOMY, "refused_too_many_clients": True}, [rules.SERVER_FULL]),
        (dict(CALM, maxwait_seconds=2.0), [], [], ROOMY, [rules.UNDERSIZED]),
    ],
)
def test_causes(pool, sessions, clients, server, expected):
    assert [item["cause"] for item in rules.causes(pool, sessions, clients, server, LIMITS)] == expected


def test_cause_evidence_names_pid_user_and_truncated_query():
    (leak,) = rules.causes(BUSY, [LEAK], [], ROOMY, LIMITS)
    (evidence,) = leak["evidence"]
    assert evidence["pid"] == 11 and evidence["user"] == "app" and evidence["age_s"] == 120
    assert len(evidence["query"]) == rules.PREVIEW_CHARS


@pytest.mark.parametrize(
    ("server", "other", "capacity"),
    [
        ({"max_connections": 100, "reserved": 3, "replication": 10}, 50, 37),
        ({"max_connections": 100}, 0, 100),
        ({"max_connections": 20, "reserved": 3, "replication": 2}, 30, -15),
    ],
)
def test_server_capacity(server, other, capacity):
    assert rules.server_capacity(server, other)["capacity"] == capacity


@pytest.mark.parametrize(
    ("ceiling", "capacity", "problem"),
    [(15, 37, None), (37, 37, None), (50, 37, "(50) is above what its server can take (37 = max_connections")],
)
def test_ceiling_problem(ceiling, capacity, problem):
    parts = {"capacity": capacity, "max_connections": 100, "reserved": 3, "replication": 10, "other_pools": 50}
    found = rules.ceiling_problem("olap", ceiling, parts)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize(
    ("pool", "ceiling", "capacity", "allowed", "size"),
    [
        ({"pool_size": 3, "sv_active": 3, "cl_waiting": 5}, 15, 37, True, 8),
        ({"pool_size": 3, "sv_active": 3, "cl_waiting": 30}, 15, 37, True, 15),
        ({"pool_size": 3, "sv_active": 3, "cl_waiting": 30}, 15, 10, True, 10),
        ({"pool_size": 10, "sv_active": 10, "cl_waiting": 0}, 15, 37, True, 11),
        ({"pool_size": 15, "sv_active": 15, "cl_waiting": 9}, 15, 37, False, 15),
        ({"pool_size": 12, "sv_active": 12, "cl_waiting": 9}, 15, 12, False, 12),
    ],
)
def test_pool_raise_stays_within_both_limits(pool, ceiling, capacity, allowed, size):
    plan = rules.pool_raise(pool, ceiling, {"capacity": capacity})
    assert (plan["allowed"], plan["pool_size"]) == (allowed, size)
    assert "tier ceiling %d, server capacity %d" % (ceiling, capacity) in plan["reason"]


LEAKED = [{"cause": rules.LEAKED}]
SMALL = [{"cause": rules.UNDERSIZED}]
CAN_RAISE = {"allowed": True, "reason": "pool_size 3 -> 8"}
AT_CEILING = {"allowed": False, "reason": "pool_size 15 is already at its limit"}


@pytest.mark.parametrize(
    ("found", "tried", "raise_plan", "answers", "restart", "rung"),
    [
        ([], [], None, True, False, rules.NONE),
        (LEAKED, [], CAN_RAISE, True, False, rules.TERMINATE),
        (LEAKED, [rules.TERMINATE], CAN_RAISE, True, False, rules.RAISE),
        (SMALL, [], CAN_RAISE, True, False, rules.RAISE),
        (SMALL, [], AT_CEILING, True, False, rules.RECONNECT),
        (SMALL, [rules.RAISE], CAN_RAISE, True, False, rules.RECONNECT),
        (SMALL, [rules.RAISE, rules.RECONNECT], CAN_RAISE, True, False, rules.ESCALATE),
        (SMALL, [], None, False, False, rules.ESCALATE),
        (SMALL, [], None, False, True, rules.RESTART),
        (SMALL, [rules.RESTART], None, False, True, rules.ESCALATE),
    ],
)
def test_next_rung(found, tried, raise_plan, answers, restart, rung):
    assert rules.next_rung(found, tried, raise_plan, answers, restart)["rung"] == rung


def test_escalation_says_why_the_raise_was_refused():
    step = rules.next_rung(SMALL, [rules.RECONNECT], AT_CEILING, True, False)
    assert step == {"rung": rules.ESCALATE, "reason": "not relieved: pool_size 15 is already at its limit"}


OK_SAMPLE = {"cl_waiting": 0, "maxwait_seconds": 0.0, "probe_ok": True}


@pytest.mark.parametrize(
    ("samples", "verified", "reason"),
    [
        ([OK_SAMPLE] * 3, True, "3 samples"),
        ([], False, "no sample"),
        ([OK_SAMPLE, dict(OK_SAMPLE, cl_waiting=2)], False, "sample 2: 2 clients waiting"),
        ([dict(OK_SAMPLE, maxwait_seconds=1.5)], False, "sample 1: maxwait 1.500 s"),
        ([dict(OK_SAMPLE, probe_ok=False)], False, "probe query"),
    ],
)
def test_verification(samples, verified, reason):
    result = rules.verification(samples, LIMITS)
    assert result["verified"] is verified and reason in result["reason"]


@pytest.mark.parametrize(
    ("exhausted", "acted", "relieved", "refused", "outcome"),
    [
        (False, False, True, False, "no_action"),
        (True, True, True, False, "resolved"),
        (True, False, True, False, "no_action"),
        (True, True, False, False, "escalated"),
        (True, False, False, False, "escalated"),
        (True, False, False, True, "refused"),
    ],
)
def test_run_outcome(exhausted, acted, relieved, refused, outcome):
    assert rules.run_outcome(exhausted, acted, relieved, refused) == outcome
