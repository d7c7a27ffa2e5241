# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The finding and status vocabulary shared by every check (health, pools, PostHog, triage).

Statuses follow check_postgres/Nagios: OK, WARNING, CRITICAL and UNKNOWN (the check
could not be evaluated). UNKNOWN ranks between OK and WARNING: it is worse than a
clean result but does not page anyone by itself. A figure at or above a threshold
reaches that level; a threshold of None disables that level.

A finding is `{check, status, value, threshold, unit, subject, message}` plus
whatever a source adds (pool, database, condition, ...). Plain Python, no I/O.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

OK, UNKNOWN, WARNING, CRITICAL = "OK", "UNKNOWN", "WARNING", "CRITICAL"
STATUS_RANK = {OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3}
FAIL_ON_RANK = {"warning": STATUS_RANK[WARNING], "critical": STATUS_RANK[CRITICAL]}

Finding = Dict[str, Any]


def finding(
    check: str,
    status: str,
    value: Any,
    threshold: Any,
    message: str,
    unit: Optional[str] = None,
    subject: Optional[str] = None,
    **extra: Any,
) -> Finding:
    """One finding; `extra` keys (pool, database, condition, ...) follow the common ones."""
    entry = {
        "check": check,
        "status": status,
        "value": value,
        "threshold": threshold,
        "unit": unit,
        "subject": subject,
        "message": message,
    }
    entry.update(extra)
    return entry


def rank(status: Optional[str]) -> int:
    """How bad a status is (OK 0 .. CRITICAL 3); a missing or foreign status counts as OK."""
    return STATUS_RANK.get(status or OK, 0)


def at_least(status: Optional[str], minimum: str) -> bool:
    """True when `status` is `minimum` or worse."""
    return rank(status) >= STATUS_RANK[minimum]


def worst(statuses: Iterable[str]) -> str:
    """The worst of some statuses; OK for none."""
    return max(statuses, key=rank, default=OK)


def overall_status(findings: Sequence[Mapping[str, Any]]) -> str:
    """The worst status among findings; OK for none."""
    return worst(item["status"] for item in findings)


def should_fail(status: str, fail_on: str) -> bool:
    """fail_on: never | warning (WARNING or CRITICAL) | critical."""
    if fail_on == "never":
        return False
    return rank(status) >= FAIL_ON_RANK[fail_on]


def level(value: Optional[float], warning: Optional[float], critical: Optional[float]) -> str:
    """OK / WARNING / CRITICAL for a figure where higher is worse; UNKNOWN when there is no figure."""
    if value is None:
        return UNKNOWN
    if critical is not None and value >= critical:
        return CRITICAL
    if warning is not None and value >= warning:
        return WARNING
    return OK


def crossed(status: str, warning: Optional[float], critical: Optional[float]) -> Optional[float]:
    """The threshold a status refers to: the one reached, or for OK the nearest one not reached."""
    if status == CRITICAL:
        return critical
    if status == WARNING:
        return warning
    return warning if warning is not None else critical
