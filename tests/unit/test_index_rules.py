"""pg_indexes's rules, without a server: one table per rule."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.indexes import (
    approved_index_action,
    approved_problems,
    definition_key,
    duplicate_indexes,
    index_name,
    invalid_index_actions,
    plan_has_subquery,
    single_expression_problem,
    split_table,
    still_invalid,
    unused_indexes,
)


def index(name, valid=True, definition=None, table="orders", **extra):
    row = {
        "schema": "public",
        "table": table,
        "name": name,
        "valid": valid,
        "definition": definition or "CREATE INDEX %s ON public.%s USING btree (email)" % (name, table),
    }
    row.update(extra)
    return row


@pytest.mark.parametrize(
    "definition, key",
    [
        ("CREATE INDEX a ON public.t USING btree (email)", "btree (email)"),
        ("CREATE UNIQUE INDEX a ON public.t USING btree (ref)", "UNIQUE btree (ref)"),
        (
            "CREATE INDEX a ON pg_temp_3.p USING btree (lower(email)) WHERE (id > 5)",
            "btree (lower(email)) WHERE (id > 5)",
        ),
    ],
)
def test_definition_key_leaves_out_name_and_table(definition, key):
    assert definition_key(definition) == key


@pytest.mark.parametrize(
    "spec, problem",
    [
        ({"table": "t", "columns": ["a"]}, None),
        ({"table": "t", "expression": "lower(a)"}, None),
        ({"table": "", "columns": ["a"]}, "table is required"),
        ({"table": "t"}, "exactly one of columns"),
        ({"table": "t", "columns": ["a"], "expression": "lower(a)"}, "exactly one of columns"),
        ({"table": "t", "columns": ["a"], "method": "bitmap"}, "method must be one of"),
        ({"table": "t", "expression": "a); DROP TABLE t"}, "without ';'"),
        ({"table": "t", "columns": ["a"], "predicate": "true; SELECT 1"}, "without ';'"),
        ({"table": "t", "columns": ["a"], "name": "x" * 64}, "1 to 63 bytes"),
    ],
)
def test_approved_problems(spec, problem):
    problems = approved_problems(spec)
    assert (problem is None and problems == []) or any(problem in found for found in problems)


@pytest.mark.parametrize(
    "spec, name",
    [
        ({"table": "orders", "columns": ["email"]}, "orders_email_idx"),
        ({"table": "orders", "columns": ["a", "b"], "name": "mine"}, "mine"),
        ({"table": "orders", "expression": "lower(email)"}, "orders_expr_idx"),
        ({"table": "t" * 70, "columns": ["a"]}, "t" * 63),
    ],
)
def test_index_name(spec, name):
    assert index_name(spec) == name


def test_invalid_indexes_drop_leftovers_first_then_rebuild():
    rows = [
        index("a_key", valid=False),
        index("a_key_ccnew", valid=False),
        index("b_ccold1", valid=False),
        index("c_ccnew"),
        index("d"),
    ]
    assert [(a["action"], a["name"]) for a in invalid_index_actions(rows)] == [
        ("drop_leftover", "a_key_ccnew"),
        ("drop_leftover", "b_ccold1"),
        ("reindex", "a_key"),
    ]


@pytest.mark.parametrize(
    "existing, expected",
    [
        ([], {"action": "create", "name": "want"}),
        ([index("other")], {"action": "present", "name": "other"}),
        ([index("other", valid=False)], {"action": "reindex", "name": "other"}),
        ([index("other", valid=False), index("good")], {"action": "present", "name": "good"}),
        ([index("want", definition="CREATE INDEX want ON public.orders USING btree (ref)")], "name_taken"),
        (
            [index("x", definition="CREATE UNIQUE INDEX x ON public.orders USING btree (email)")],
            {"action": "create", "name": "want"},
        ),
    ],
)
def test_approved_index_action_is_by_definition(existing, expected):
    result = approved_index_action("want", "btree (email)", existing)
    assert result == expected if isinstance(expected, dict) else result["action"] == expected


def test_duplicates_are_same_table_same_definition_valid_only():
    rows = [index("a"), index("b"), index("c", valid=False), index("d", table="other")]
    assert duplicate_indexes(rows) == [
        {"schema": "public", "table": "orders", "definition": "btree (email)", "indexes": ["a", "b"]}
    ]


@pytest.mark.parametrize(
    "row, unused",
    [
        (index("a", idx_scan=0, size_bytes=8192), True),
        (index("a", idx_scan=3, size_bytes=8192), False),
        (index("a", idx_scan=0, size_bytes=8192, backs_constraint=True), False),
        (index("a", valid=False, idx_scan=0, size_bytes=8192), False),
        (index("a", idx_scan=0, size_bytes=10), False),
    ],
)
def test_unused_indexes(row, unused):
    assert bool(unused_indexes([row], 100)) is unused


def test_still_invalid_after_the_run():
    assert still_invalid(["a", "b", "c"], [index("a"), index("b", valid=False)]) == ["b", "c"]


@pytest.mark.parametrize("name, expected", [("orders", ("public", "orders")), ("sales.orders", ("sales", "orders"))])
def test_split_table(name, expected):
    assert split_table(name) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("lower(customer_email)", None),
        ("(a + b) * 2", None),
        ("coalesce(note, ')')", None),  # a parenthesis inside a string is text
        ("status = 'it''s ok, really'", None),
        ('"Mixed Case" IS NOT NULL', None),
        ("E'a\\'b' = x", None),
        ("(a, b)", None),  # a row in parentheses is one expression
        ("a, b", "is a list, not one expression"),
        ("a) UNION SELECT (1", "closes a parenthesis it did not open"),
        ("')' ) UNION SELECT (')'", "closes a parenthesis it did not open"),
        ("lower(x", "leaves a parenthesis open"),
        ("x = 'open", "never ends"),
        ("x -- the rest is gone", "may not contain a comment"),
        ("x /* hidden */", "may not contain a comment"),
        ("$$x$$", "may not contain '$'"),
        ("x = 1; DROP TABLE t", "without ';'"),
        ("  ", "is empty"),
        ("id IN (SELECT id FROM t)", "may not contain a subquery (SELECT)"),
        ("id IN (VALUES (1))", "may not contain a subquery (VALUES)"),
        ("x = (TABLE t)", "may not contain a subquery (TABLE)"),
        ('"select" > 1', None),  # a quoted name is a name
        ("selected_at::timestamp with time zone > now()", None),
    ],
)
def test_single_expression_problem(text, problem):
    found = single_expression_problem(text)
    assert found is None if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("plan", "subquery"),
    [
        (
            [{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer"}]}}],
            False,
        ),
        (
            [{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Result", "Parent Relationship": "InitPlan"}]}}],
            True,
        ),
        ([{"Plan": {"Node Type": "Seq Scan", "Plans": [{"Subplan Name": "SubPlan 1", "Node Type": "Result"}]}}], True),
        (
            [
                {
                    "Plan": {
                        "Node Type": "Hash Join",
                        "Plans": [
                            {"Node Type": "Seq Scan", "Relation Name": "t"},
                            {"Node Type": "Seq Scan", "Relation Name": "t"},
                        ],
                    }
                }
            ],
            True,
        ),
        ([{"Plan": {"Node Type": "Result", "One-Time Filter": "false"}}], False),
        (
            [
                {
                    "Plan": {
                        "Node Type": "Bitmap Heap Scan",
                        "Relation Name": "t",
                        "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "t_pkey"}],
                    }
                }
            ],
            False,
        ),
    ],
)
def test_plan_has_subquery(plan, subquery):
    assert plan_has_subquery(plan) is subquery


def test_approved_problems_refuse_what_is_not_one_expression():
    assert approved_problems({"table": "t", "expression": "a, b"}) == [
        "expression is a list, not one expression (',' outside parentheses)"
    ]
    assert approved_problems({"table": "t", "columns": ["a"], "predicate": "a > 1) OR (true"}) == [
        "predicate closes a parenthesis it did not open: not one expression"
    ]
