"""Numeric input ranges, checked before a runbook opens anything."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.filter.out_of_range import out_of_range_filter
from ansible_collections.penguinmails.dbops.plugins.module_utils.inputs import out_of_range


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, None),
        (1048576, None),
        ("42", None),  # an AWX survey answer
        (-1, "lag must be at least 0 (got -1)"),
        ("-5", "lag must be at least 0 (got -5)"),
        ("lots", "lag must be a number (got 'lots')"),
        (None, "lag must be a number (got None)"),
        (True, "lag must be a number (got True)"),
        ("nan", "lag must be a number (got 'nan')"),
        ("inf", "lag must be a number (got 'inf')"),
    ],
)
def test_out_of_range(value, problem):
    assert out_of_range({"lag": 0}, [value]) == ([problem] if problem else [])


def test_every_input_is_reported_in_order():
    minimums = {"a": 0, "b": 0.1, "c": 1}
    assert out_of_range(minimums, [-1, 0, 1]) == ["a must be at least 0 (got -1)", "b must be at least 0.1 (got 0)"]


def test_filter_takes_a_single_value_and_checks_counts():
    assert out_of_range_filter({"a": 0}, -2) == ["a must be at least 0 (got -2)"]
    with pytest.raises(Exception, match="2 minimums but 1 values"):
        out_of_range_filter({"a": 0, "b": 0}, [1])
