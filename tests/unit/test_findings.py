"""The one finding/status vocabulary every check uses (health, pools, PostHog, triage)."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import health, pools, posthog, triage
from ansible_collections.penguinmails.dbops.plugins.module_utils.findings import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    at_least,
    crossed,
    finding,
    overall_status,
    rank,
    worst,
)

COMMON_KEYS = ["check", "status", "value", "threshold", "unit", "subject", "message"]


def test_finding_has_the_common_keys_in_order_then_the_extra_ones():
    entry = finding("maxwait", WARNING, 1.5, 1.0, "slow", "s", "oltp/app", pool="oltp/app", database="oltp")
    assert list(entry) == [*COMMON_KEYS, "pool", "database"]
    assert (entry["status"], entry["value"], entry["subject"]) == (WARNING, 1.5, "oltp/app")


@pytest.mark.parametrize(
    ("status", "expected"),
    [(OK, 0), (UNKNOWN, 1), (WARNING, 2), (CRITICAL, 3), (None, 0), ("", 0), ("SOMETHING-ELSE", 0)],
)
def test_rank_orders_ok_unknown_warning_critical(status, expected):
    assert rank(status) == expected


@pytest.mark.parametrize(
    ("status", "minimum", "expected"),
    [
        (CRITICAL, WARNING, True),
        (WARNING, WARNING, True),
        (UNKNOWN, WARNING, False),
        (None, WARNING, False),
        (WARNING, CRITICAL, False),
        (OK, OK, True),
    ],
)
def test_at_least(status, minimum, expected):
    assert at_least(status, minimum) is expected


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], OK),
        ([OK], OK),
        ([UNKNOWN, OK], UNKNOWN),
        ([WARNING, UNKNOWN], WARNING),
        ([OK, CRITICAL, WARNING], CRITICAL),
    ],
)
def test_worst_and_overall_status(statuses, expected):
    assert worst(statuses) == expected
    assert overall_status([{"status": status} for status in statuses]) == expected


# should_fail's table is in test_health.py (it moved here from health.py unchanged).


@pytest.mark.parametrize(
    ("status", "warning", "critical", "threshold"),
    [(CRITICAL, 10, 20, 20), (WARNING, 10, 20, 10), (OK, 10, 20, 10), (OK, None, 20, 20), (UNKNOWN, None, None, None)],
)
def test_crossed_names_the_threshold_a_status_refers_to(status, warning, critical, threshold):
    assert crossed(status, warning, critical) == threshold


def test_every_source_builds_the_same_shape_from_the_one_vocabulary():
    """health, pools and PostHog findings all carry the common keys first; triage ranks with the same scale."""
    from_health = health.graded("backends", 95, {"warning": 80, "critical": 90}, "95 of 100", "%")
    from_pools = pools.unreachable_finding("127.0.0.1:6432", "refused")
    from_posthog = posthog.unreachable_finding(posthog.PostHogError("timeout", "PostHog did not answer"))
    for entry in (from_health, from_pools, from_posthog):
        assert list(entry)[: len(COMMON_KEYS)] == COMMON_KEYS
    assert (from_health["status"], from_pools["status"], from_posthog["status"]) == (CRITICAL, CRITICAL, WARNING)
    assert from_pools["subject"] == "127.0.0.1:6432"
    assert health.OK is OK and triage.CRITICAL is CRITICAL
