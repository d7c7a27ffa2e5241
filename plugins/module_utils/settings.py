# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server settings the performance runbook may change, and how to put them back.

Only names on the inventory's allow list are ever changed: server-wide with ALTER SYSTEM (applied
by a reload), or for one role with ALTER ROLE ... SET (applied to its new sessions). A setting that
needs a restart, or that cannot be set per role, is reported and not applied. Each change keeps the
value it replaced (None: it was not set there) so that a revert puts exactly that back.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

# pg_settings.context values a reload (server-wide) or a new session (per role) applies.
RELOADABLE_CONTEXTS = ("sighup", "superuser", "user", "superuser-backend", "backend")
ROLE_CONTEXTS = ("superuser", "user")

SYSTEM_VALUE_SQL = """SELECT setting FROM pg_file_settings
WHERE name = %s AND sourcefile LIKE '%%postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1"""
ROLE_VALUES_SQL = """SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
WHERE s.setdatabase = 0 AND r.rolname = %s"""


def spec_problems(specs: Any, allowed: Sequence[str], require_value: bool = True) -> List[str]:
    """What is wrong with the requested settings before any server is asked (a null value resets,
    which only a revert does: require_value=False)."""
    if not isinstance(specs, list) or not all(isinstance(spec, dict) for spec in specs):
        return ["performance_settings must be a list of dicts (name, value, optionally role)"]
    problems = []
    allowed_names = {str(name).lower() for name in allowed or []}
    for position, spec in enumerate(specs):
        name = str(spec.get("name") or "").strip().lower()
        where = "performance_settings[%d]" % position
        if not name:
            problems.append("%s: name is required" % where)
        elif name not in allowed_names:
            listed = ", ".join(sorted(allowed_names)) or "empty"
            problems.append(
                "%s: %s is not on the allow list (performance_allowed_settings: %s)" % (where, name, listed)
            )
        if require_value and (spec.get("value") is None or str(spec.get("value")).strip() == ""):
            problems.append("%s: value is required" % where)
    return problems


def scope_of(spec: Dict[str, Any]) -> str:
    return "role" if spec.get("role") else "system"


def not_applied_reason(spec: Dict[str, Any], context: Optional[str]) -> Optional[str]:
    """Why a setting is reported and not applied, or None when it may be applied now."""
    if context is None:
        return None
    if context not in RELOADABLE_CONTEXTS:
        return "needs a restart (context %s): not applied; plan a restart window" % context
    if scope_of(spec) == "role" and context not in ROLE_CONTEXTS:
        return "cannot be set per role (context %s): not applied" % context
    return None


def role_value(configs: Optional[Sequence[str]], name: str) -> Optional[str]:
    """The value of `name` in a pg_db_role_setting.setconfig array, or None when it is not set."""
    for entry in configs or []:
        key, _sep, value = entry.partition("=")
        if key.lower() == name.lower():
            return value
    return None


def needs_change(current: Optional[str], wanted: Optional[str]) -> bool:
    return (current is None) != (wanted is None) or (current is not None and str(current) != str(wanted))


def change_entry(spec: Dict[str, Any], previous: Optional[str]) -> Dict[str, Any]:
    """One replaced value, as kept in the incident for a revert."""
    return {
        "scope": scope_of(spec),
        "role": spec.get("role") or None,
        "name": str(spec["name"]).lower(),
        "previous": previous,
        "value": None if spec.get("value") is None else str(spec["value"]),
    }


def originals(steps: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The changes an incident recorded, one per (scope, role, name) with the value before the first change.

    `steps` are the details of the incident's settings steps, oldest first, each with `replaced`.
    Reverting to these puts back what was there before any run of the incident.
    """
    first: Dict[Tuple[str, Optional[str], str], Dict[str, Any]] = {}
    for step in steps:
        for entry in (step or {}).get("replaced") or []:
            key = (entry["scope"], entry.get("role"), entry["name"])
            first.setdefault(key, dict(entry))
    return list(first.values())


def revert_spec(entry: Dict[str, Any]) -> Dict[str, Any]:
    """The setting to apply to put `entry` back (value None: RESET)."""
    return {"name": entry["name"], "role": entry.get("role"), "value": entry.get("previous")}


SETTINGS_STEP = "change settings"


def revert_from_record(record: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The settings that put back what the incident's settings steps replaced (from its record.json)."""
    steps = [
        entry.get("details") for entry in (record or {}).get("timeline") or [] if entry.get("name") == SETTINGS_STEP
    ]
    return [revert_spec(entry) for entry in originals(steps)]


POOL_STEP = "scale pgbouncer pool"


def pool_revert_from_record(record: Dict[str, Any]) -> Dict[str, Any]:
    """The PgBouncer pool settings before the incident's first scaling of each (empty: nothing to put back)."""
    before: Dict[str, Any] = {}
    for entry in (record or {}).get("timeline") or []:
        if entry.get("name") == POOL_STEP:
            for key, value in ((entry.get("details") or {}).get("pool_before") or {}).items():
                before.setdefault(key, value)
    return before
