# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Severity, response targets and escalation for penguinmails.dbops incidents.

Pure logic over data. The policy (incident types, severity levels, escalation
paths, contacts, business hours, outcomes) is plain dictionaries: the seed's
matrix is the default here and in the incident role's defaults, and an
inventory overrides any part of it. Nothing in this file talks to Ansible, the
disk or the network, so the whole matrix is unit-tested in isolation.

Timing model (documented in docs/incident-lifecycle.md):

* level 1 of the escalation path is due at ``detected_at``;
* level 2 is due ``escalate_after`` after detection;
* every further level is due ``escalate_every`` after the previous one.

Both delays are minutes or the string ``next_business_day`` (the first
business day after the previous due time, at the business-day start).
The clock stops at ``mitigated_at``: a mitigated incident escalates no further,
even when its playbook is rerun later.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Mapping, Optional, Sequence

UTC = dt.timezone.utc
NEXT_BUSINESS_DAY = "next_business_day"
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

INCIDENT_TYPES = ("db_outage", "pool_exhaustion", "data_integrity", "performance", "security_breach")
SEVERITIES = ("critical", "high", "medium", "low")
OUTCOMES = ("resolved", "mitigated", "escalated", "refused", "no_action")
PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve", "none")
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")

# The seed's "Critical Incident Types": response target per type and its escalation path.
DEFAULT_TYPES: Dict[str, Dict[str, Any]] = {
    "db_outage": {
        "label": "Database Outage",
        "response_target_minutes": 5,
        "default_severity": "critical",
        "escalation_path": "database",
    },
    "pool_exhaustion": {
        "label": "Connection Pool Exhaustion",
        "response_target_minutes": 10,
        "default_severity": "high",
        "escalation_path": "database",
    },
    "data_integrity": {
        "label": "Data Integrity Issues",
        "response_target_minutes": 15,
        "default_severity": "high",
        "escalation_path": "data_integrity",
    },
    "performance": {
        "label": "Performance Degradation",
        "response_target_minutes": 30,
        "default_severity": "low",
        "escalation_path": "database",
    },
    "security_breach": {
        "label": "Security Breach",
        "response_target_minutes": 5,
        "default_severity": "critical",
        "escalation_path": "security",
    },
}

# The seed's "Severity Levels & Response Times"; escalate_every and paging are ours.
DEFAULT_SEVERITY_LEVELS: Dict[str, Dict[str, Any]] = {
    "critical": {
        "description": "Complete service outage",
        "response_minutes": 5,
        "escalate_after": 0,
        "escalate_every": 15,
        "page": True,
        "pagerduty_severity": "critical",
    },
    "high": {
        "description": "Major functionality impaired",
        "response_minutes": 15,
        "escalate_after": 30,
        "escalate_every": 30,
        "page": True,
        "pagerduty_severity": "error",
    },
    "medium": {
        "description": "Minor functionality issues",
        "response_minutes": 60,
        "escalate_after": 240,
        "escalate_every": 240,
        "page": False,
        "pagerduty_severity": "warning",
    },
    "low": {
        "description": "Performance degradation",
        "response_minutes": 240,
        "escalate_after": NEXT_BUSINESS_DAY,
        "escalate_every": NEXT_BUSINESS_DAY,
        "page": False,
        "pagerduty_severity": "info",
    },
}

# The seed's escalation path and levels; integrity adds the Product Owner, security goes to Legal.
DEFAULT_ESCALATION_PATHS: Dict[str, List[Dict[str, Any]]] = {
    "database": [
        {"name": "Database Operations Team", "contacts": ["database_lead", "oncall_engineer"]},
        {"name": "Engineering Management", "contacts": ["engineering_manager", "senior_engineer"]},
        {"name": "CTO", "contacts": ["cto"]},
        {"name": "CEO", "contacts": ["ceo"]},
    ],
    "data_integrity": [
        {"name": "Database Operations Team", "contacts": ["database_lead", "oncall_engineer"]},
        {"name": "Product Owner and Engineering Management", "contacts": ["product_owner", "engineering_manager"]},
        {"name": "CTO", "contacts": ["cto"]},
        {"name": "CEO", "contacts": ["ceo"]},
    ],
    "security": [
        {"name": "Security Team", "contacts": ["security_team"]},
        {"name": "Legal", "contacts": ["legal"]},
    ],
}

# Who the path keys are. Addresses belong to the inventory (see inventories/example).
DEFAULT_CONTACTS: Dict[str, Dict[str, Any]] = {
    "database_lead": {"name": "Database Operations Lead"},
    "oncall_engineer": {"name": "On-Call Engineer"},
    "backup_engineer": {"name": "Backup Engineer"},
    "engineering_manager": {"name": "Engineering Manager"},
    "senior_engineer": {"name": "Senior Engineer"},
    "cto": {"name": "CTO"},
    "ceo": {"name": "CEO"},
    "product_owner": {"name": "Product Owner"},
    "security_team": {"name": "Security Team"},
    "legal": {"name": "Legal"},
}

DEFAULT_OUTCOMES: Dict[str, Dict[str, Any]] = {
    "resolved": {"mitigated": True, "escalate_to_level": 0, "pagerduty_action": "resolve"},
    "mitigated": {"mitigated": True, "escalate_to_level": 0, "pagerduty_action": "acknowledge"},
    "escalated": {"mitigated": False, "escalate_to_level": 2, "pagerduty_action": "trigger"},
    "refused": {"mitigated": False, "escalate_to_level": 2, "pagerduty_action": "trigger"},
    "no_action": {"mitigated": True, "escalate_to_level": 0, "pagerduty_action": "resolve"},
}

DEFAULT_BUSINESS_HOURS: Dict[str, Any] = {
    "timezone": "UTC",
    "start": "09:00",
    "weekdays": ["mon", "tue", "wed", "thu", "fri"],
}


class PolicyError(ValueError):
    """The escalation policy or an incident's classification is not usable."""


def _require_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _delay_is_valid(value: Any) -> bool:
    if value == NEXT_BUSINESS_DAY:
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def validate_severity_level(name: str, level: Mapping[str, Any]) -> None:
    """Raise PolicyError when one severity level lacks a usable field."""
    where = f"severity level {name!r}"
    _require_mapping(level, where)
    for key in ("response_minutes", "escalate_after", "escalate_every"):
        if key not in level:
            raise PolicyError(f"{where} has no {key}")
    if not _delay_is_valid(level["escalate_after"]) or not _delay_is_valid(level["escalate_every"]):
        raise PolicyError(f"{where}: escalate_after and escalate_every must be minutes >= 0 or {NEXT_BUSINESS_DAY!r}")
    if level["escalate_every"] == 0:
        raise PolicyError(f"{where}: escalate_every must be more than 0 minutes")
    if level.get("pagerduty_severity", "critical") not in PAGERDUTY_SEVERITIES:
        raise PolicyError(f"{where}: pagerduty_severity must be one of {', '.join(PAGERDUTY_SEVERITIES)}")


def classify(
    incident_type: str,
    severity: Optional[str],
    types: Mapping[str, Any],
    severity_levels: Mapping[str, Any],
) -> Dict[str, Any]:
    """Resolve the type's policy and the severity (the type's default when none is given)."""
    if incident_type not in types:
        raise PolicyError(f"unknown incident type {incident_type!r}; known: {', '.join(sorted(types))}")
    type_policy = _require_mapping(types[incident_type], f"incident type {incident_type!r}")
    chosen = severity or type_policy.get("default_severity")
    if chosen not in severity_levels:
        raise PolicyError(f"unknown severity {chosen!r}; known: {', '.join(severity_levels)}")
    validate_severity_level(chosen, severity_levels[chosen])
    if "response_target_minutes" not in type_policy:
        raise PolicyError(f"incident type {incident_type!r} has no response_target_minutes")
    return {"type": dict(type_policy), "severity": chosen, "severity_policy": dict(severity_levels[chosen])}


def resolve_path(
    path_name: str,
    paths: Mapping[str, Any],
    contacts: Mapping[str, Any],
) -> List[Dict[str, Any]]:
    """Expand an escalation path into numbered levels with their contacts' names and addresses."""
    if path_name not in paths:
        raise PolicyError(f"unknown escalation path {path_name!r}; known: {', '.join(sorted(paths))}")
    levels = paths[path_name]
    if not isinstance(levels, Sequence) or isinstance(levels, str) or not levels:
        raise PolicyError(f"escalation path {path_name!r} must be a non-empty list of levels")
    resolved = []
    for number, level in enumerate(levels, start=1):
        level = _require_mapping(level, f"escalation path {path_name!r} level {number}")
        resolved.append(
            {
                "level": number,
                "name": str(level.get("name") or f"Level {number}"),
                "contacts": [resolve_contact(key, contacts) for key in level.get("contacts") or []],
            }
        )
    return resolved


def resolve_contact(key: str, contacts: Mapping[str, Any]) -> Dict[str, Any]:
    """One contact as {key, name, email}; unknown keys are kept by name so a typo is visible."""
    entry = contacts.get(key) or {}
    if not isinstance(entry, Mapping):
        raise PolicyError(f"contact {key!r} must be a mapping with name and email")
    return {"key": key, "name": str(entry.get("name") or key), "email": entry.get("email") or None}


def validate_outcomes(outcomes: Mapping[str, Any]) -> None:
    """Every outcome named, each PagerDuty action one the Events API knows."""
    missing = [name for name in OUTCOMES if name not in outcomes]
    if missing:
        raise PolicyError(f"outcomes policy lacks {', '.join(missing)}")
    for name, outcome in outcomes.items():
        action = (outcome or {}).get("pagerduty_action")
        if action is not None and action not in PAGERDUTY_ACTIONS:
            raise PolicyError(f"outcome {name}: pagerduty_action must be one of {', '.join(PAGERDUTY_ACTIONS)}")


def validate_business_hours(hours: Mapping[str, Any]) -> None:
    _require_mapping(hours, "business hours")
    days = hours.get("weekdays") or []
    unknown = [day for day in days if str(day).lower()[:3] not in WEEKDAY_NAMES]
    if unknown or not days:
        raise PolicyError(f"business hours weekdays must be names from {', '.join(WEEKDAY_NAMES)}, got {days!r}")
    _start_time(hours)
    _zone(hours)


def _start_time(hours: Mapping[str, Any]) -> dt.time:
    text = str(hours.get("start", "09:00"))
    try:
        hour, minute = (int(part) for part in text.split(":"))
        return dt.time(hour, minute)
    except ValueError as exc:
        raise PolicyError(f"business hours start must be HH:MM, got {text!r}") from exc


def _zone(hours: Mapping[str, Any]) -> dt.tzinfo:
    name = str(hours.get("timezone") or "UTC")
    if name.upper() == "UTC":
        return UTC
    try:
        from zoneinfo import ZoneInfo  # Python >= 3.9

        return ZoneInfo(name)
    except Exception as exc:
        raise PolicyError(f"unknown business hours timezone {name!r}") from exc


def next_business_day_start(after: dt.datetime, hours: Mapping[str, Any]) -> dt.datetime:
    """The start of the first business day after the calendar day of ``after`` (in the business timezone)."""
    zone = _zone(hours)
    workdays = {WEEKDAY_NAMES.index(str(day).lower()[:3]) for day in hours.get("weekdays") or []}
    day = after.astimezone(zone).date()
    for _attempt in range(14):
        day += dt.timedelta(days=1)
        if day.weekday() in workdays:
            return dt.datetime.combine(day, _start_time(hours), tzinfo=zone).astimezone(UTC)
    raise PolicyError("business hours name no working day")


def _after(start: dt.datetime, delay: Any, hours: Mapping[str, Any]) -> dt.datetime:
    if delay == NEXT_BUSINESS_DAY:
        return next_business_day_start(start, hours)
    return start + dt.timedelta(minutes=float(delay))


def level_due_times(
    severity_policy: Mapping[str, Any],
    level_count: int,
    detected_at: dt.datetime,
    hours: Mapping[str, Any],
) -> List[dt.datetime]:
    """When each level of a path becomes due: level 1 at detection, then escalate_after, then escalate_every."""
    due = [detected_at]
    for number in range(2, level_count + 1):
        delay = severity_policy["escalate_after"] if number == 2 else severity_policy["escalate_every"]
        due.append(_after(due[-1], delay, hours))
    return due


def due_level(due_times: Sequence[dt.datetime], at: dt.datetime, minimum: int = 0) -> int:
    """The highest level whose due time has come, raised to ``minimum`` and capped at the path length."""
    reached = sum(1 for due in due_times if due <= at)
    return min(max(reached, minimum), len(due_times))


def escalation_state(
    policy: Mapping[str, Any],
    detected_at: dt.datetime,
    at: dt.datetime,
    minimum_level: int = 0,
) -> Dict[str, Any]:
    """Escalation status of an incident at ``at``.

    ``policy`` is the snapshot an incident record keeps: ``severity`` (the
    severity level's data), ``levels`` (from resolve_path) and ``business_hours``.
    """
    levels = policy["levels"]
    due_times = level_due_times(policy["severity"], len(levels), detected_at, policy["business_hours"])
    level = due_level(due_times, at, minimum_level)
    upcoming = [due for due in due_times[level:] if due > at]
    return {
        "level": level,
        "max_level": len(levels),
        "level_name": levels[level - 1]["name"] if level else None,
        "next_level_at": format_utc(upcoming[0]) if upcoming else None,
        "levels": [
            dict(entry, due_at=format_utc(due), due=index < level)
            for index, (entry, due) in enumerate(zip(levels, due_times))
        ],
        "contacts_due": contacts_up_to(levels, level),
    }


def contacts_up_to(levels: Sequence[Mapping[str, Any]], level: int) -> List[Dict[str, Any]]:
    """Everyone who must have been told once ``level`` is due (each contact once, in path order)."""
    seen: Dict[str, Dict[str, Any]] = {}
    for entry in levels[:level]:
        for contact in entry["contacts"]:
            seen.setdefault(contact["key"], contact)
    return list(seen.values())


def response_deadline(detected_at: dt.datetime, target_minutes: float) -> dt.datetime:
    return detected_at + dt.timedelta(minutes=float(target_minutes))


def response_target_met(detected_at: dt.datetime, mitigated_at: Optional[dt.datetime], target_minutes: float) -> bool:
    """True when the incident was mitigated within its response target."""
    if mitigated_at is None:
        return False
    return mitigated_at <= response_deadline(detected_at, target_minutes)


def format_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_utc(text: str) -> dt.datetime:
    """The inverse of format_utc (also accepts an explicit offset)."""
    return dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text).astimezone(UTC)


def default_policy() -> Dict[str, Any]:
    """The seed's policy, as the incident role's defaults repeat it (a unit test keeps them equal)."""
    return {
        "types": DEFAULT_TYPES,
        "severity_levels": DEFAULT_SEVERITY_LEVELS,
        "escalation_paths": DEFAULT_ESCALATION_PATHS,
        "contacts": DEFAULT_CONTACTS,
        "outcomes": DEFAULT_OUTCOMES,
        "business_hours": DEFAULT_BUSINESS_HOURS,
    }
