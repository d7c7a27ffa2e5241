"""A runbook's inputs, checked before it opens anything: numeric ranges and inventory groups."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.filter.input_problems import input_problems_filter
from ansible_collections.penguinmails.dbops.plugins.module_utils.inputs import input_problems

GROUPS = {"all": ["db-1", "db-2"], "ungrouped": [], "oltp": ["db-1", "db-2"], "olap": [], "pgbouncer": ["pgb-1"]}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, None),
        (1048576, None),
        ("42", None),  # an AWX survey answer
        (0.5, None),
        (-1, "lag must be at least 0 (got -1)"),
        ("-5", "lag must be at least 0 (got -5)"),
        ("lots", "lag must be a number (got 'lots')"),
        (None, "lag must be a number (got None)"),
        (True, "lag must be a number (got True)"),
        ("nan", "lag must be a number (got 'nan')"),
        ("inf", "lag must be a number (got 'inf')"),
    ],
)
def test_numeric_ranges(value, problem):
    assert input_problems({"lag": 0}, [value]) == ([problem] if problem else [])


@pytest.mark.parametrize(
    ("tier", "ok"),
    [("oltp", True), ("olap", False), ("nope", False), ("", False), (None, False), (["oltp"], False)],
)
def test_group_inputs_name_a_group_with_hosts(tier, ok):
    problems = input_problems({}, [], GROUPS, {"incident_tier": tier})
    assert (problems == []) is ok
    if not ok:
        assert problems[0].startswith("incident_tier must name an inventory group with hosts (got ")
        assert problems[0].endswith("groups with hosts: oltp, pgbouncer)")


def test_every_wrong_input_is_reported_in_order():
    minimums = {"a": 0, "b": 0.1, "c": 1}
    assert input_problems(minimums, [-1, 0, 1], GROUPS, {"incident_tier": "x"}) == [
        "incident_tier must name an inventory group with hosts (got 'x'; groups with hosts: oltp, pgbouncer)",
        "a must be at least 0 (got -1)",
        "b must be at least 0.1 (got 0)",
    ]


def test_filter_takes_a_single_value_and_checks_counts():
    assert input_problems_filter({"a": 0}, -2) == ["a must be at least 0 (got -2)"]
    with pytest.raises(Exception, match="2 minimums but 1 values"):
        input_problems_filter({"a": 0, "b": 0}, [1])
