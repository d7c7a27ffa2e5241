"""Severity x type x elapsed time -> escalation level and who must be told (the seed's matrix).

The expected values are written out by hand from the seed's tables, not computed with the
code under test: level 1 at detection; level 2 immediately (critical), after 30 min (high),
4 h (medium) or on the next business day (low); each further level 15 min / 30 min / 4 h /
one business day later. Detection is on Wednesday 2026-11-18 10:00 UTC, so for "low" the
next business days are Thursday 09:00 (+1380 min), Friday 09:00 (+2820) and Monday 09:00 (+7140).
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
import yaml
from ansible_collections.penguinmails.dbops.plugins.module_utils import escalation

UTC = dt.timezone.utc
DETECTED = dt.datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday
ROLE = Path(__file__).resolve().parents[2] / "roles" / "incident"

# elapsed minutes -> level due on a four-level path for (critical, high, medium, low)
LEVEL_MATRIX = [
    (0, (2, 1, 1, 1)),
    (1, (2, 1, 1, 1)),
    (14.99, (2, 1, 1, 1)),
    (15, (3, 1, 1, 1)),
    (29, (3, 1, 1, 1)),
    (30, (4, 2, 1, 1)),
    (59, (4, 2, 1, 1)),
    (60, (4, 3, 1, 1)),
    (89, (4, 3, 1, 1)),
    (90, (4, 4, 1, 1)),
    (239, (4, 4, 1, 1)),
    (240, (4, 4, 2, 1)),
    (479, (4, 4, 2, 1)),
    (480, (4, 4, 3, 1)),
    (719, (4, 4, 3, 1)),
    (720, (4, 4, 4, 1)),
    (1379, (4, 4, 4, 1)),
    (1380, (4, 4, 4, 2)),
    (2819, (4, 4, 4, 2)),
    (2820, (4, 4, 4, 3)),
    (7139, (4, 4, 4, 3)),
    (7140, (4, 4, 4, 4)),
    (20000, (4, 4, 4, 4)),
]

# incident type -> everyone told once each level is due (cumulative, in path order)
CONTACTS_BY_LEVEL = {
    "db_outage": [
        ["database_lead", "oncall_engineer"],
        ["database_lead", "oncall_engineer", "engineering_manager", "senior_engineer"],
        ["database_lead", "oncall_engineer", "engineering_manager", "senior_engineer", "cto"],
        ["database_lead", "oncall_engineer", "engineering_manager", "senior_engineer", "cto", "ceo"],
    ],
    "pool_exhaustion": "db_outage",
    "performance": "db_outage",
    "data_integrity": [
        ["database_lead", "oncall_engineer"],
        ["database_lead", "oncall_engineer", "product_owner", "engineering_manager"],
        ["database_lead", "oncall_engineer", "product_owner", "engineering_manager", "cto"],
        ["database_lead", "oncall_engineer", "product_owner", "engineering_manager", "cto", "ceo"],
    ],
    "security_breach": [
        ["security_team"],
        ["security_team", "legal"],
    ],
}

RESPONSE_TARGETS = {
    "db_outage": 5,
    "pool_exhaustion": 10,
    "data_integrity": 15,
    "performance": 30,
    "security_breach": 5,
}


def contacts_table(incident_type):
    table = CONTACTS_BY_LEVEL[incident_type]
    return CONTACTS_BY_LEVEL[table] if isinstance(table, str) else table


def policy_for(incident_type, severity, policy=None):
    policy = policy or escalation.default_policy()
    chosen = escalation.classify(incident_type, severity, policy["types"], policy["severity_levels"])
    path = chosen["type"]["escalation_path"]
    return {
        "severity": chosen["severity_policy"],
        "levels": escalation.resolve_path(path, policy["escalation_paths"], policy["contacts"]),
        "business_hours": policy["business_hours"],
    }


MATRIX = [
    pytest.param(incident_type, severity, elapsed, levels[index], id=f"{incident_type}-{severity}-{elapsed}m")
    for incident_type, (index, severity), (elapsed, levels) in itertools.product(
        escalation.INCIDENT_TYPES, enumerate(escalation.SEVERITIES), LEVEL_MATRIX
    )
]


@pytest.mark.parametrize(("incident_type", "severity", "elapsed", "four_level_expectation"), MATRIX)
def test_level_due_and_who_must_be_told(incident_type, severity, elapsed, four_level_expectation):
    table = contacts_table(incident_type)
    expected_level = min(four_level_expectation, len(table))
    at = DETECTED + dt.timedelta(minutes=elapsed)

    state = escalation.escalation_state(policy_for(incident_type, severity), DETECTED, at)

    assert state["level"] == expected_level
    assert state["max_level"] == len(table)
    assert [contact["key"] for contact in state["contacts_due"]] == table[expected_level - 1]
    assert [level["due"] for level in state["levels"]] == [n <= expected_level for n in range(1, len(table) + 1)]
    if expected_level < len(table):
        assert escalation.parse_utc(state["next_level_at"]) > at
    else:
        assert state["next_level_at"] is None


@pytest.mark.parametrize(("incident_type", "target"), sorted(RESPONSE_TARGETS.items()))
def test_response_target_per_type(incident_type, target):
    policy = escalation.default_policy()
    assert policy["types"][incident_type]["response_target_minutes"] == target
    just_in_time = DETECTED + dt.timedelta(minutes=target)
    assert escalation.response_target_met(DETECTED, just_in_time, target)
    assert not escalation.response_target_met(DETECTED, just_in_time + dt.timedelta(seconds=1), target)
    assert not escalation.response_target_met(DETECTED, None, target)


@pytest.mark.parametrize(
    ("incident_type", "severity"),
    [
        ("db_outage", "critical"),
        ("pool_exhaustion", "high"),
        ("data_integrity", "high"),
        ("performance", "low"),
        ("security_breach", "critical"),
    ],
)
def test_default_severity_per_type(incident_type, severity):
    policy = escalation.default_policy()
    chosen = escalation.classify(incident_type, None, policy["types"], policy["severity_levels"])
    assert chosen["severity"] == severity


def test_an_outcome_can_force_a_level():
    state = escalation.escalation_state(policy_for("pool_exhaustion", "medium"), DETECTED, DETECTED, minimum_level=2)
    assert state["level"] == 2
    capped = escalation.escalation_state(policy_for("security_breach", "low"), DETECTED, DETECTED, minimum_level=9)
    assert capped["level"] == 2


@pytest.mark.parametrize(
    ("detected", "expected"),
    [
        ("2026-11-18T10:00:00+00:00", "2026-11-19T09:00:00+00:00"),  # Wednesday -> Thursday
        ("2026-11-20T18:00:00+00:00", "2026-11-23T09:00:00+00:00"),  # Friday evening -> Monday
        ("2026-11-21T12:00:00+00:00", "2026-11-23T09:00:00+00:00"),  # Saturday -> Monday
        ("2026-11-23T03:00:00+00:00", "2026-11-24T09:00:00+00:00"),  # Monday night -> Tuesday, not Monday
    ],
)
def test_next_business_day(detected, expected):
    hours = escalation.DEFAULT_BUSINESS_HOURS
    got = escalation.next_business_day_start(dt.datetime.fromisoformat(detected), hours)
    assert got == dt.datetime.fromisoformat(expected)


def test_next_business_day_in_the_business_timezone():
    hours = {"timezone": "America/New_York", "start": "08:30", "weekdays": ["mon", "tue", "wed", "thu", "fri"]}
    friday_night_in_new_york = dt.datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # Friday 21:00 EST
    got = escalation.next_business_day_start(friday_night_in_new_york, hours)
    assert got == dt.datetime(2026, 11, 23, 13, 30, tzinfo=UTC)  # Monday 08:30 EST


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"types": {"db_outage": {"default_severity": "critical"}}}, "no response_target_minutes"),
        ({"severity_levels": {"critical": {"response_minutes": 5, "escalate_after": -1, "escalate_every": 1}}}, ">= 0"),
        (
            {"severity_levels": {"critical": {"response_minutes": 5, "escalate_after": 0, "escalate_every": 0}}},
            "more than 0",
        ),
        (
            {"severity_levels": {"critical": {"response_minutes": 5, "escalate_after": "soon", "escalate_every": 1}}},
            "next_",
        ),
        ({"severity_levels": {"critical": {"response_minutes": 5, "escalate_after": 0}}}, "no escalate_every"),
    ],
)
def test_bad_policy_is_one_readable_error(change, message):
    policy = dict(escalation.default_policy(), **change)
    with pytest.raises(escalation.PolicyError, match=message):
        escalation.classify("db_outage", "critical", policy["types"], policy["severity_levels"])


def test_unknown_names_are_named_in_the_error():
    policy = escalation.default_policy()
    with pytest.raises(escalation.PolicyError, match="unknown incident type 'fire'"):
        escalation.classify("fire", None, policy["types"], policy["severity_levels"])
    with pytest.raises(escalation.PolicyError, match="unknown severity 'urgent'"):
        escalation.classify("db_outage", "urgent", policy["types"], policy["severity_levels"])
    with pytest.raises(escalation.PolicyError, match="unknown escalation path 'finance'"):
        escalation.resolve_path("finance", policy["escalation_paths"], policy["contacts"])
    with pytest.raises(escalation.PolicyError, match="weekdays"):
        escalation.validate_business_hours({"weekdays": ["someday"]})


def test_the_roles_seed_policy_is_the_modules_default_policy():
    """The role's data (files/seed_policy.yml, wired up in defaults/main.yml) equals the module's built-in policy."""
    assert yaml.safe_load((ROLE / "files" / "seed_policy.yml").read_text()) == escalation.default_policy()
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    for variable, table in [
        ("incident_policy_types", "types"),
        ("incident_policy_severity_levels", "severity_levels"),
        ("incident_policy_escalation_paths", "escalation_paths"),
        ("incident_contacts", "contacts"),
        ("incident_policy_outcomes", "outcomes"),
        ("incident_policy_business_hours", "business_hours"),
    ]:
        assert defaults[variable] == "{{ incident_seed_policy.%s }}" % table


@pytest.mark.parametrize(
    ("outcomes", "problem"),
    [
        ({name: {} for name in escalation.OUTCOMES}, None),
        ({"resolved": {}}, "outcomes policy lacks"),
        (dict({name: {} for name in escalation.OUTCOMES}, resolved={"pagerduty_action": "page"}), "pagerduty_action"),
    ],
)
def test_outcomes_are_validated(outcomes, problem):
    if problem is None:
        escalation.validate_outcomes(outcomes)
        return
    with pytest.raises(escalation.PolicyError, match=problem):
        escalation.validate_outcomes(outcomes)
