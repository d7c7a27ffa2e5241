"""The performance runbook's rules, without a server: one table per rule."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.performance import (
    blockers_over,
    blocking_chains,
    heavy_seq_scans,
    input_problems,
    missing_index_candidates,
    performance_verdict,
    refusal_of,
    run_outcome,
    sessions_over,
    stale_statistics,
    statement_delta,
    verification,
    waits_by_type,
)


def session(pid, blocked_by=(), duration=1.0, state="active", wait=None):
    return {
        "pid": pid,
        "blocked_by": list(blocked_by),
        "duration_seconds": duration,
        "state": state,
        "wait_event_type": wait,
        "usename": "app",
        "xact_duration_seconds": None,
    }


@pytest.mark.parametrize(
    "sessions, roots, depths",
    [
        ([], [], []),
        ([session(1), session(2)], [], []),
        ([session(1, state="idle in transaction"), session(2, [1])], [1], [1]),
        ([session(1), session(2, [1]), session(3, [2]), session(4, [3])], [1], [3]),
        ([session(1), session(2, [1]), session(5), session(6, [5]), session(7, [5])], [1, 5], [1, 1]),
        ([session(2, [3]), session(3, [2])], [], []),  # a deadlock cycle has no root
        ([session(2, [1])], [1], [1]),  # the blocker is not a client backend we can see
    ],
)
def test_blocking_chains(sessions, roots, depths):
    chains = blocking_chains(sessions)
    assert [chain["root_pid"] for chain in chains] == roots
    assert [chain["depth"] for chain in chains] == depths


def test_a_chain_reports_each_waiter_and_the_longest_wait():
    [chain] = blocking_chains([session(1), session(2, [1], duration=40), session(3, [2], duration=75)])
    assert chain["waiters"] == [
        {"pid": 2, "depth": 1, "waiting_seconds": 40, "user": "app"},
        {"pid": 3, "depth": 2, "waiting_seconds": 75, "user": "app"},
    ]
    assert chain["longest_wait_seconds"] == 75


@pytest.mark.parametrize(
    "chains, block_max_s, expected",
    [
        ([], 60, []),
        ([{"root_pid": 1, "longest_wait_seconds": 61}], 60, [1]),
        ([{"root_pid": 1, "longest_wait_seconds": 60}], 60, []),
        ([{"root_pid": 1, "longest_wait_seconds": None}], 0, []),
    ],
)
def test_blockers_over(chains, block_max_s, expected):
    assert blockers_over(chains, block_max_s) == expected


@pytest.mark.parametrize(
    "sessions, expected",
    [
        ([session(1, duration=301)], [1]),
        ([session(1, duration=300)], []),
        ([session(1, duration=999, state="idle in transaction")], []),
        ([session(2, duration=None)], []),
    ],
)
def test_sessions_over(sessions, expected):
    assert sessions_over(sessions, 300) == expected


def test_waits_by_type():
    assert waits_by_type([session(1, wait="Lock"), session(2, wait="Lock"), session(3)]) == {"Lock": 2, "none": 1}


def table(name="orders", seq=0, idx=0, live=1000, mods=0, analyzed="2026-01-01", threshold=50, factor=0.1):
    return {
        "schemaname": "public",
        "relname": name,
        "seq_scan": 3,
        "seq_tup_read": seq,
        "idx_tup_fetch": idx,
        "n_live_tup": live,
        "n_mod_since_analyze": mods,
        "last_analyzed": analyzed,
        "analyze_threshold": threshold,
        "analyze_scale_factor": factor,
    }


@pytest.mark.parametrize(
    "row, heavy",
    [
        (table(seq=2_000_000, idx=0), True),
        (table(seq=2_000_000, idx=100_000), True),
        (table(seq=2_000_000, idx=300_000), False),
        (table(seq=999_999, idx=0), False),
        (table(seq=None, idx=None), False),
    ],
)
def test_heavy_seq_scans(row, heavy):
    assert bool(heavy_seq_scans([row], 1_000_000, 10)) is heavy


@pytest.mark.parametrize(
    "row, stale",
    [
        (table(mods=150), False),
        (table(mods=151), True),
        (table(mods=0, analyzed=None), False),
        (table(mods=1, analyzed=None), True),
        (table(live=0, mods=51), True),
        (table(mods=None), False),
    ],
)
def test_stale_statistics_follow_autovacuums_trigger(row, stale):
    assert bool(stale_statistics([row])) is stale


def test_missing_index_candidates_name_the_statements_touching_the_table():
    heavy = heavy_seq_scans([table(seq=5_000_000)], 1_000_000, 10)
    statements = [
        {"queryid": "7", "query": "SELECT * FROM Orders WHERE email = $1"},
        {"queryid": "8", "query": "SELECT 1"},
    ]
    [candidate] = missing_index_candidates(heavy, statements)
    assert candidate["statements"] == ["7"] and candidate["table"] == "orders"


@pytest.mark.parametrize(
    "before, after, expected",
    [
        ({"calls": 10, "total_ms": 100.0}, {"calls": 20, "total_ms": 150.0}, {"calls": 10, "mean_ms": 5.0}),
        ({"calls": 10, "total_ms": 100.0}, {"calls": 10, "total_ms": 100.0}, {"calls": 0, "mean_ms": None}),
        ({}, {"calls": 4, "total_ms": 10.0}, {"calls": 4, "mean_ms": 2.5}),
        ({"calls": 50, "total_ms": 900.0}, {"calls": 3, "total_ms": 3.0}, {"calls": 0, "mean_ms": None}),
    ],  # reset
)
def test_statement_delta(before, after, expected):
    assert statement_delta(before, after) == expected


@pytest.mark.parametrize(
    "chains, mean, target, verified, says",
    [
        ([], None, None, True, "no blocking chain"),
        ([{"root_pid": 9}], 1.0, 100.0, False, "root pids 9"),
        ([], 50.0, 100.0, True, "under 100.0 ms"),
        ([], 150.0, 100.0, False, "over its target"),
        ([], None, 100.0, False, "did not run"),
    ],
)
def test_verification(chains, mean, target, verified, says):
    verdict = verification(chains, mean, target)
    assert verdict["verified"] is verified and says in verdict["reason"]


GOOD = {"verified": True, "reason": "no blocking chain"}
BAD = {"verified": False, "reason": "the slow statement's mean is 900.0 ms, over its target of 100.0 ms"}


@pytest.mark.parametrize(
    "changed, verdict, failures, refusal, outcome, says",
    [
        (False, GOOD, [], None, "no_action", "nothing needed changing; no blocking chain"),
        (True, GOOD, [], None, "resolved", "mitigated; no blocking chain"),
        (True, None, [], None, "resolved", "mitigated"),
        (True, BAD, [], None, "escalated", "over its target"),
        (False, BAD, [], None, "escalated", "not better"),
        (True, GOOD, ["reindex public.x: failed"], None, "escalated", "reindex public.x"),
        (False, None, [], "pgdb-2 is a standby", "refused", "standby"),
    ],
)
def test_run_outcome(changed, verdict, failures, refusal, outcome, says):
    closing = run_outcome(changed, verdict, failures, refusal)
    assert closing["outcome"] == outcome and says in closing["note"]


def check(chains=0, probe=None, watched=None):
    return {"blocking_chains": [{"root_pid": n} for n in range(chains)], "probe": probe, "watched": watched}


@pytest.mark.parametrize(
    "before, start, end, target, verified, before_ms, after_ms",
    [
        (check(1, {"median_ms": 90.0}), check(), check(0, {"median_ms": 2.0}), 10.0, True, 90.0, 2.0),
        (check(0, {"median_ms": 90.0}), check(), check(0, {"median_ms": 50.0}), 10.0, False, 90.0, 50.0),
        (check(2), check(), check(1), None, False, None, None),
        (
            check(0, watched={"calls": 10, "total_ms": 1000.0}),
            check(watched={"calls": 10, "total_ms": 1000.0}),
            check(0, watched={"calls": 30, "total_ms": 1040.0}),
            5.0,
            True,
            100.0,
            2.0,
        ),
        (
            check(0, watched={"calls": 10, "total_ms": 1000.0}),
            check(watched={"calls": 10, "total_ms": 1000.0}),
            check(0, watched={"calls": 10, "total_ms": 1000.0}),
            5.0,
            False,
            100.0,
            None,
        ),
    ],
)
def test_performance_verdict_before_and_after(before, start, end, target, verified, before_ms, after_ms):
    verdict = performance_verdict(before, start, end, target)
    assert verdict["verified"] is verified
    assert (verdict["before_ms"], verdict["after_ms"]) == (before_ms, after_ms)
    assert verdict["blocking_chains_after"] == len(end["blocking_chains"])


@pytest.mark.parametrize(
    "decision, refused",
    [
        (None, False),
        ({"action": "healthy"}, False),
        ({"action": "failover", "reason": "primary down"}, True),
        ({"action": "split_brain", "reason": "two primaries"}, True),
    ],
)
def test_refusal_of(decision, refused):
    assert bool(refusal_of(decision)) is refused


@pytest.mark.parametrize(
    "approved, target, watch, probe, says",
    [
        ([], 0, "", "", None),
        ([{"table": "t", "columns": ["a"]}], 50, "", "SELECT 1", None),
        ([{"table": "t"}], 0, "", "", "performance_approved_indexes[0]: give exactly one of columns"),
        (
            [{"table": "t", "columns": ["a"]}, {"table": "t", "expression": "x; drop"}],
            0,
            "",
            "",
            "[1]: expression must be",
        ),
        ("orders", 0, "", "", "must be a list of dicts"),
        ([], 50, "", " ", "performance_target_ms needs performance_watch or performance_probe"),
    ],
)
def test_input_problems(approved, target, watch, probe, says):
    problems = input_problems(approved, target, watch, probe)
    assert (says is None and problems == []) or any(says in problem for problem in problems)


@pytest.mark.parametrize(
    "pool, says",
    [
        ((0, 10), None),
        ((10, 10), None),
        ((11, 10), "must be at most performance_pool_size_max (10; got 11)"),
        ((20, None), None),
    ],
)
def test_pool_size_stays_under_its_ceiling(pool, says):
    problems = input_problems([], 0, "", "", pool=pool)
    assert (says is None and problems == []) or any(says in problem for problem in problems)
