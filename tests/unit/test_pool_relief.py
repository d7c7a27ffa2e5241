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
FLOOD = [{"addr": "198.18.0.9", "application_name": "batch"}] * 6 + [
    {"addr": "198.18.0.2", "application_name": "web"}
] * 2
MIXED = [{"addr": "198.18.0.%d" % n, "application_name": "web"} for n in range(3)] + [
    {"addr": "198.18.0.%d" % n, "application_name": "api"} for n in range(3, 6)
]


@pytest.mark.parametrize(
    ("pool", "sessions", "clients", "server", "expected"),
    [
        (CALM, [LEAK], [], ROOMY, []),
        (BUSY, [LEAK, YOUNG_LEAK], MIXED, ROOMY, [rules.LEAKED]),
        (BUSY, [RUNAWAY], MIXED, ROOMY, [rules.RUNAWAY]),
        (BUSY, [LEAK, RUNAWAY], MIXED, ROOMY, [rules.LEAKED, rules.RUNAWAY]),
        (BUSY, [], FLOOD, ROOMY, [rules.FLOOD]),
        (
            BUSY,
            [],
            [{"addr": "127.0.0.1", "application_name": "app - 127.0.0.1:%d" % n} for n in range(9)],
            ROOMY,
            [rules.UNDERSIZED],
        ),
        (BUSY, [YOUNG_LEAK], MIXED, ROOMY, [rules.UNDERSIZED]),
        (CALM, [], [], FULL, [rules.SERVER_FULL]),
        (BUSY, [], MIXED, {**ROOMY, "refused_too_many_clients": True}, [rules.SERVER_FULL]),
        (dict(CALM, maxwait_seconds=2.0), [], [], ROOMY, [rules.UNDERSIZED]),
        (dict(CALM, sv_active=15, utilization_pct=100), [LEAK], MIXED, ROOMY, []),
    ],
)
def test_causes(pool, sessions, clients, server, expected):
    assert [item["cause"] for item in rules.causes(pool, sessions, clients, server, LIMITS)] == expected


@pytest.mark.parametrize(("utilization", "full"), [(None, False), (89.9, False), (90, True), (133.3, True)])
def test_near_full_is_reported_at_the_alerts_share(utilization, full):
    assert rules.near_full({"utilization_pct": utilization}, LIMITS) is full


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
        ({"pool_size": 3, "cl_active": 3, "cl_waiting": 5}, 15, 37, True, 8),
        ({"pool_size": 3, "cl_active": 3, "cl_waiting": 30}, 15, 37, True, 15),
        ({"pool_size": 3, "cl_active": 3, "cl_waiting": 30}, 15, 10, True, 10),
        ({"pool_size": 10, "cl_active": 10, "cl_waiting": 0}, 15, 37, True, 11),
        ({"pool_size": 15, "cl_active": 15, "cl_waiting": 9}, 15, 37, False, 15),
        ({"pool_size": 12, "cl_active": 12, "cl_waiting": 9}, 15, 12, False, 12),
    ],
)
def test_pool_raise_stays_within_both_limits(pool, ceiling, capacity, allowed, size):
    plan = rules.pool_raise(pool, ceiling, {"capacity": capacity})
    assert (plan["allowed"], plan["pool_size"]) == (allowed, size)
    assert "tier ceiling %d, server capacity %d" % (ceiling, capacity) in plan["reason"]


LEAKED = [{"cause": rules.LEAKED}]
SMALL = [{"cause": rules.UNDERSIZED}]
FLOODED = [{"cause": rules.FLOOD, "evidence": [{"by": "addr", "value": "198.18.0.9", "clients": 6, "of": 8}]}]
CAN_RAISE = {"allowed": True, "reason": "pool_size 3 -> 8"}
AT_CEILING = {"allowed": False, "reason": "pool_size 15 is already at its limit"}


@pytest.mark.parametrize(
    ("found", "tried", "raise_plan", "answers", "restart", "rung"),
    [
        ([], [], None, True, False, rules.NONE),
        (LEAKED, [], CAN_RAISE, True, False, rules.TERMINATE),
        (LEAKED, [rules.TERMINATE], CAN_RAISE, True, False, rules.RAISE),
        (SMALL, [], CAN_RAISE, True, False, rules.RAISE),
        (SMALL, [], AT_CEILING, True, False, rules.ESCALATE),
        (SMALL, [rules.RAISE], CAN_RAISE, True, False, rules.ESCALATE),
        (LEAKED, [rules.TERMINATE, rules.RAISE], CAN_RAISE, True, False, rules.RECONNECT),
        (LEAKED, [rules.TERMINATE], AT_CEILING, True, False, rules.RECONNECT),
        (LEAKED, [rules.TERMINATE, rules.RECONNECT], AT_CEILING, True, False, rules.ESCALATE),
        (FLOODED, [], CAN_RAISE, True, False, rules.ESCALATE),
        (FLOODED + LEAKED, [], CAN_RAISE, True, False, rules.TERMINATE),
        (SMALL, [], None, False, False, rules.ESCALATE),
        (SMALL, [], None, False, True, rules.RESTART),
        (SMALL, [rules.RESTART], None, False, True, rules.ESCALATE),
    ],
)
def test_next_rung(found, tried, raise_plan, answers, restart, rung):
    assert rules.next_rung(found, tried, raise_plan, answers, restart)["rung"] == rung


def test_escalation_says_why_the_raise_was_refused():
    step = rules.next_rung(SMALL, [], AT_CEILING, True, False)
    assert step == {"rung": rules.ESCALATE, "reason": "not relieved: pool_size 15 is already at its limit"}


def test_escalation_names_the_flooding_client():
    step = rules.next_rung(FLOODED, [], CAN_RAISE, True, False)
    assert step["reason"].endswith("addr 198.18.0.9 holds 6 of 8 clients")


@pytest.mark.parametrize(
    ("verified", "found", "tried", "rung"),
    [
        ({"verified": True, "reason": "3 samples"}, LEAKED, [rules.TERMINATE], rules.NONE),
        ({"verified": False, "reason": "2 waiting"}, [], [rules.TERMINATE], rules.RAISE),
        ({"verified": False, "reason": "2 waiting"}, [], [rules.TERMINATE, rules.RAISE], rules.RECONNECT),
        ({"verified": False, "reason": "2 waiting"}, SMALL, [rules.RAISE], rules.ESCALATE),
    ],
)
def test_rung_after_window(verified, found, tried, rung):
    assert rules.rung_after_window(verified, found, tried, CAN_RAISE)["rung"] == rung


FIRST = {
    "database": "penguinmails_olap",
    "exhausted": True,
    "causes": [{"cause": rules.LEAKED}],
    "pool": {"cl_waiting": 8, "pool_size": 3},
    "ceiling_problem": None,
}
RELIEVED = {"pool": {"cl_waiting": 0, "pool_size": 3}, "verification": {"verified": True, "reason": "10 samples"}}
STILL = {
    "pool": {"cl_waiting": 5, "pool_size": 15},
    "verification": {"verified": False, "reason": "sample 1: 5 waiting"},
}


@pytest.mark.parametrize(
    ("first", "latest", "acted", "failure", "outcome", "note"),
    [
        (
            FIRST,
            RELIEVED,
            True,
            None,
            "resolved",
            "causes: leaked_idle_in_transaction; pool penguinmails_olap: waiting 8 -> 0",
        ),
        (FIRST, STILL, True, None, "escalated", "pool_size 3 -> 15; sample 1: 5 waiting"),
        (FIRST, RELIEVED, True, "raise failed", "escalated", "; raise failed"),
        (dict(FIRST, exhausted=False, causes=[]), RELIEVED, False, None, "no_action", "causes: none"),
        (dict(FIRST, ceiling_problem="ceiling 50 above 37"), FIRST, False, None, "refused", "; ceiling 50 above 37"),
    ],
)
def test_run_closing(first, latest, acted, failure, outcome, note):
    closing = rules.run_closing(first, latest, acted, failure)
    assert closing["outcome"] == outcome and note in closing["note"]


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
        (False, True, True, False, "resolved"),
        (True, True, True, False, "resolved"),
        (True, False, True, False, "no_action"),
        (True, True, False, False, "escalated"),
        (True, False, False, False, "escalated"),
        (True, False, False, True, "refused"),
    ],
)
def test_run_outcome(exhausted, acted, relieved, refused, outcome):
    assert rules.run_outcome(exhausted, acted, relieved, refused) == outcome


@pytest.mark.parametrize(
    ("found", "raise_plan", "answers", "restart", "rungs"),
    [
        ([], None, True, False, [rules.NONE]),
        (LEAKED, CAN_RAISE, True, False, [rules.TERMINATE, rules.RAISE, rules.RECONNECT, rules.ESCALATE]),
        (LEAKED, AT_CEILING, True, False, [rules.TERMINATE, rules.RECONNECT, rules.ESCALATE]),
        (SMALL, CAN_RAISE, True, False, [rules.RAISE, rules.ESCALATE]),
        (SMALL, AT_CEILING, True, False, [rules.ESCALATE]),
        (FLOODED, CAN_RAISE, True, False, [rules.ESCALATE]),
        ([], None, False, False, [rules.ESCALATE]),
        ([], None, False, True, [rules.RESTART, rules.ESCALATE]),
    ],
)
def test_ladder_lists_every_rung_a_run_would_take(found, raise_plan, answers, restart, rungs):
    assert [step["rung"] for step in rules.ladder(found, raise_plan, answers, restart)] == rungs


def test_the_ladders_last_step_says_why_it_escalates():
    assert rules.ladder(SMALL, AT_CEILING, True, False)[-1]["reason"] == (
        "not relieved: pool_size 15 is already at its limit"
    )


@pytest.mark.parametrize(
    ("manager", "lab", "method"),
    [
        ("process_api", True, rules.LAB),
        ("systemd", True, rules.LAB),  # the lab's process is not the system's pgbouncer service
        ("systemd", False, rules.SERVICE),
        ("openrc", False, rules.SERVICE),
        ("process_api", False, rules.NONE),
        (None, False, rules.NONE),
    ],
)
def test_restart_method(manager, lab, method):
    assert rules.restart_method(manager, lab, "pgbouncer")["method"] == method


def test_no_restart_method_says_what_the_host_has():
    reason = rules.restart_method("process_api", False, "pgbouncer")["reason"]
    assert reason.startswith("no service manager on the PgBouncer host (process_api)")
