"""The data integrity runbook's rules, without a server: one table per rule."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.index_run import named_indexes
from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import (
    block_of,
    budget_left,
    check_plan,
    checksum_finding,
    heapam_finding,
    invariant_problems,
    plan_modifies,
    quarantine_problems,
    quarantine_table_name,
    recovery_plan,
    revocations,
    row_diff,
    row_finding,
    run_outcome,
    scope_problems,
    select_tables,
    split_name,
    verification,
)

GOOD = {"name": "no negative balance", "table": "public.accounts", "query": "SELECT id FROM accounts WHERE balance < 0"}


@pytest.mark.parametrize(
    "name, expected",
    [("orders", ("public", "orders")), ("app.orders", ("app", "orders")), ("a.b.c", None), (".x", None)],
)
def test_split_name(name, expected):
    if expected is None:
        with pytest.raises(ValueError, match=r"schema\.table"):
            split_name(name)
    else:
        assert split_name(name) == expected


@pytest.mark.parametrize(
    "invariants, problem",
    [
        ([GOOD], None),
        ([dict(GOOD, query="  select 1 ;")], None),
        ([dict(GOOD, query="WITH x AS (SELECT 1) SELECT * FROM x")], None),
        ([dict(GOOD, query="(SELECT 1)")], None),
        ([dict(GOOD, query="DELETE FROM accounts")], "must be a SELECT"),
        ([dict(GOOD, query="SELECT 1; DROP TABLE accounts")], "without ';'"),
        ([dict(GOOD, query="")], "needs a query"),
        ([dict(GOOD, name="")], "needs a name"),
        ([GOOD, GOOD], "used twice"),
        ([dict(GOOD, table="")], "needs the table"),
        ([dict(GOOD, table="a.b.c")], "schema.table"),
    ],
)
def test_invariant_problems(invariants, problem):
    problems = invariant_problems(invariants)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


@pytest.mark.parametrize(
    "plan, modifies",
    [
        ([{"Plan": {"Node Type": "Seq Scan"}}], False),
        ([{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "ModifyTable"}]}}], True),
        ([{"Plan": {"Node Type": "LockRows"}}], True),
    ],
)
def test_plan_modifies(plan, modifies):
    assert plan_modifies(plan) is modifies


@pytest.mark.parametrize(
    "scope, problem",
    [
        ({}, None),
        ({"schemas": ["public"], "tables": ["public.a"], "changed_since": "2026-01-01"}, None),
        ({"schemas": "public"}, "must be a list"),
        ({"tables": ["a.b.c"]}, "schema.table"),
        ({"table": ["a"]}, "unknown keys: table"),
    ],
)
def test_scope_problems(scope, problem):
    problems = scope_problems(scope)
    assert (problems == []) if problem is None else (problem in "; ".join(problems))


TABLES = [{"schema": "public", "name": "a"}, {"schema": "public", "name": "b"}, {"schema": "app", "name": "a"}]


@pytest.mark.parametrize(
    "scope, changed, selected, unknown",
    [
        ({}, None, ["public.a", "public.b", "app.a"], []),
        ({"schemas": ["app"]}, None, ["app.a"], []),
        ({"tables": ["a", "app.a", "x.y"]}, None, ["public.a", "app.a"], ["x.y"]),
        ({"schemas": ["public"], "tables": ["app.a"]}, None, [], []),
        ({}, ["public.b"], ["public.b"], []),
        ({"schemas": ["nope"]}, None, [], []),
    ],
)
def test_select_tables(scope, changed, selected, unknown):
    tables, missing = select_tables(TABLES, scope, changed)
    assert ["%s.%s" % (t["schema"], t["name"]) for t in tables] == selected
    assert missing == unknown


INDEXES = [
    {"schema": "public", "name": "a_pkey", "table": "a", "method": "btree", "valid": True},
    {"schema": "public", "name": "a_gin", "table": "a", "method": "gin", "valid": True},
    {"schema": "public", "name": "a_broken", "table": "a", "method": "btree", "valid": False},
    {"schema": "public", "name": "b_pkey", "table": "b", "method": "btree", "valid": True},
]
CONSTRAINTS = [
    {"schema": "public", "table": "a", "name": "a_b_fk", "type": "f", "validated": True},
    {"schema": "public", "table": "a", "name": "a_pos", "type": "c", "validated": False},
    {"schema": "public", "table": "a", "name": "a_ok", "type": "c", "validated": True},
]


@pytest.mark.parametrize(
    "options, standby, expected",
    [
        (
            {},
            False,
            [
                "checksum_failures",
                "bt_index_check public.a_pkey",
                "verify_heapam public.a",
                "fk_orphans public.a",
                "not_valid_constraint public.a",
                "invariant public.a",
            ],
        ),
        ({"parent_check": True}, False, ["bt_index_parent_check public.a_pkey"]),
        ({"parent_check": True}, True, ["bt_index_check public.a_pkey"]),
        ({"heap": False}, False, []),
    ],
)
def test_check_plan(options, standby, expected):
    invariants = [dict(GOOD, table="public.a"), dict(GOOD, name="other", table="public.b")]
    checks = check_plan([{"schema": "public", "name": "a"}], INDEXES, CONSTRAINTS, invariants, options, standby)
    labels = [("%s %s" % (c["check"], c["relation"])).strip() for c in checks]
    if options == {}:
        assert labels == expected
    else:
        for label in expected:
            assert label in labels
        assert not any(label.startswith("verify_heapam") for label in labels) or options.get("heap", True)
        if standby:
            assert not any("parent" in label for label in labels)


@pytest.mark.parametrize(
    "message, block",
    [
        ("invalid page in block 7 of relation base/1/2", 7),
        ('index "x" contains unexpected zero page at block 12', 12),
        ("something else", None),
    ],
)
def test_block_of(message, block):
    assert block_of(message) == block


def test_heapam_finding_lists_blocks_and_none_when_clean():
    check = {"relation": "public.a", "table": "public.a"}
    assert heapam_finding(check, []) is None
    rows = [{"blkno": 3, "offnum": 1, "attnum": None, "msg": "line pointer out of range"}, {"blkno": 1, "msg": "x"}]
    finding = heapam_finding(check, rows)
    assert finding["blocks"] == [1, 3] and "line pointer out of range" in finding["problem"]


@pytest.mark.parametrize(
    "rows, key, limit, keys, words",
    [
        ([{"id": 1, "x": 2}, {"id": 5, "x": 0}], ["id"], 10, [[1], [5]], "2 rows breaking"),
        ([{"x": 2}], ["id"], 10, [], "1 rows"),
        ([{"id": 1}, {"id": 2}], ["id"], 2, [[1], [2]], "at least 2"),
        ([], ["id"], 10, None, None),
    ],
)
def test_row_finding(rows, key, limit, keys, words):
    check = {"check": "invariant", "relation": "public.a", "table": "public.a", "name": "inv"}
    finding = row_finding(check, rows, key, limit)
    if keys is None:
        assert finding is None
    else:
        assert finding["keys"] == keys and words in finding["problem"]


@pytest.mark.parametrize("failures, baseline, found", [(0, 0, False), (2, 0, True), (2, 2, False)])
def test_checksum_finding(failures, baseline, found):
    row = {"checksum_failures": failures, "checksum_last_failure": "t"}
    assert (checksum_finding("db", row, baseline) is not None) is found


@pytest.mark.parametrize("elapsed, budget, left", [(0, 0, True), (10, 0, True), (4, 5, True), (5, 5, False)])
def test_budget_left(elapsed, budget, left):
    assert budget_left(elapsed, budget) is left


def test_recovery_plan():
    findings = [
        {"check": "bt_index_check", "relation": "public.a_pkey", "table": "public.a"},
        {"check": "verify_heapam", "relation": "public.b", "table": "public.b", "blocks": [2], "problem": "p"},
        {
            "check": "invariant",
            "relation": "public.c",
            "table": "public.c",
            "key": ["id"],
            "keys": [[1], [2]],
            "problem": "i",
        },
        {
            "check": "fk_orphans",
            "relation": "public.c",
            "table": "public.c",
            "key": ["id"],
            "keys": [[2], [3]],
            "problem": "f",
        },
        {"check": "fk_orphans", "relation": "public.d", "table": "public.d", "key": [], "keys": [], "problem": "nokey"},
        {"check": "checksum_failures", "relation": "", "table": "", "problem": "1 data checksum failure(s)"},
    ]
    plan = recovery_plan(findings)
    assert plan["reindex"] == ["public.a_pkey"]
    assert plan["quarantine"] == [{"table": "public.c", "key": ["id"], "keys": [[1], [2], [3]]}]
    assert plan["restore"] == ["public.b", "public.c", "public.d"]
    assert any("no key" in line for line in plan["for_a_person"])
    assert any("blocks [2]" in line for line in plan["for_a_person"])
    assert plan["clean"] is False
    assert recovery_plan([])["clean"] is True


@pytest.mark.parametrize(
    "table, incident, name",
    [
        ("public.orders", "INC-42", "public_orders__inc_42"),
        ("orders", "MOLECULE INTEGRITY", "public_orders__molecule_integrity"),
        ("s." + "t" * 80, "INC-1", ("s_" + "t" * 80)[: 63 - 7] + "__inc_1"),
    ],
)
def test_quarantine_table_name(table, incident, name):
    assert quarantine_table_name(table, incident) == name
    assert len(quarantine_table_name(table, incident)) <= 63


@pytest.mark.parametrize(
    "targets, incident, privileges, problem",
    [
        ([{"table": "a", "key": ["id"], "keys": [[1]]}], "INC", "write", None),
        ([], "", "write", "incident_id is required"),
        ([], "INC", "some", "privileges must be"),
        ([{"table": "a", "key": [], "keys": []}], "INC", "all", "needs its key"),
        ([{"table": "a", "key": ["id"], "keys": [[1, 2]]}], "INC", "all", "each key needs 1"),
    ],
)
def test_quarantine_problems(targets, incident, privileges, problem):
    problems = quarantine_problems(targets, incident, privileges)
    assert (problems == []) if problem is None else (problem in "; ".join(problems))


@pytest.mark.parametrize(
    "held, own, privileges, revoke, alone",
    [
        ({"app": ["SELECT", "INSERT", "UPDATE"]}, ["admin"], "write", {"app": ["INSERT", "UPDATE"]}, []),
        ({"app": ["SELECT", "INSERT"]}, ["admin"], "all", {"app": ["SELECT", "INSERT"]}, []),
        ({"app": ["SELECT"]}, ["admin"], "write", {}, []),
        ({"admin": ["INSERT"], "app": ["DELETE"]}, ["admin"], "write", {"app": ["DELETE"]}, ["admin"]),
    ],
)
def test_revocations_never_touch_the_runs_own_role(held, own, privileges, revoke, alone):
    assert revocations(held, own, privileges) == (revoke, alone)


def test_row_diff_names_missing_changed_and_extra_rows_by_key():
    restored = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    current = [{"id": 1, "v": "a"}, {"id": 3, "v": "X"}, {"id": 4, "v": "d"}]
    diff = row_diff(restored, current, ["id"])
    assert [d["key"] for d in diff["missing"]] == [[2]]
    assert [(d["key"], d["restored"]["v"], d["current"]["v"]) for d in diff["changed"]] == [([3], "c", "X")]
    assert [d["key"] for d in diff["extra"]] == [[4]]
    assert row_diff(restored, restored, ["id"]) == {"missing": [], "changed": [], "extra": []}


@pytest.mark.parametrize(
    "after, verified, remaining",
    [
        ({"findings": [], "not_reached": []}, True, 0),
        (
            {"findings": [{"check": "verify_heapam", "relation": "public.b", "problem": "p"}], "not_reached": []},
            False,
            1,
        ),
        ({"findings": [], "not_reached": ["verify_heapam public.z"]}, False, 1),
    ],
)
def test_verification(after, verified, remaining):
    verdict = verification({"findings": [{}]}, after)
    assert verdict["verified"] is verified and len(verdict["remaining"]) == remaining


@pytest.mark.parametrize(
    "changed, verdict, failures, quarantined, outcome, words",
    [
        (False, None, [], False, "no_action", "nothing found"),
        (True, {"verified": True, "reason": "ok"}, [], False, "resolved", "repaired; ok"),
        (True, {"verified": False, "remaining": ["x"]}, [], True, "escalated", "quarantine kept in place"),
        (True, {"verified": True, "reason": "ok"}, ["reindex failed"], False, "escalated", "reindex failed"),
    ],
)
def test_run_outcome(changed, verdict, failures, quarantined, outcome, words):
    result = run_outcome(changed, verdict, failures, quarantined)
    assert result["outcome"] == outcome and words in result["note"]


@pytest.mark.parametrize(
    "names, expected",
    [
        (["a_pkey"], [{"schema": "public", "table": "a", "name": "a_pkey"}]),
        (["app.b_idx"], [{"schema": "app", "table": "b", "name": "b_idx"}]),
        (["nope"], "unknown index(es): public.nope"),
    ],
)
def test_named_indexes_for_reindex(names, expected):
    indexes = [
        {"schema": "public", "table": "a", "name": "a_pkey", "valid": True},
        {"schema": "app", "table": "b", "name": "b_idx", "valid": True},
    ]
    if isinstance(expected, str):
        with pytest.raises(ValueError, match="unknown index"):
            named_indexes(indexes, names)
    else:
        assert named_indexes(indexes, names) == expected
