# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server settings the performance runbook may change, and how to put them back.

Only names on the inventory's allow list are ever changed: server-wide with ALTER SYSTEM (applied
by a reload), or for one role with ALTER ROLE ... SET (applied to its new sessions). A setting that
needs a restart, or that cannot be set per role, is reported and not applied. Each change keeps the
value it replaced (None: it was not set there) so that a revert puts exactly that back.
"""

from __future__ import annotations

import re
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


SETTING_SQL = "SELECT context, vartype, unit, min_val, max_val, enumvals FROM pg_settings WHERE name = %s"

# PostgreSQL's units (case-sensitive, as the server reads them): memory in bytes, time in milliseconds.
MEMORY_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME_UNITS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
BOOL_WORDS = ("on", "off", "true", "false", "yes", "no", "1", "0")
NUMBER_WITH_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")


def unit_size(unit: str) -> Tuple[Optional[Dict[str, float]], float]:
    """(the unit family, the size of one base unit in it) for pg_settings.unit ('8kB' -> memory, 8192)."""
    match = re.match(r"^(\d*)\s*([A-Za-z]+)$", unit or "")
    if not match:
        return None, 1.0
    count = float(match.group(1) or 1)
    for family in (MEMORY_UNITS, TIME_UNITS):
        if match.group(2) in family:
            return family, count * family[match.group(2)]
    return None, 1.0


def is_bool_word(value: str) -> bool:
    """on/off/true/false/yes/no/1/0 or an unambiguous prefix of one, as the server reads booleans."""
    word = value.strip().lower()
    if word in BOOL_WORDS:
        return True
    matches = {full for full in BOOL_WORDS if len(word) >= 1 and full.startswith(word)}
    return len(matches) == 1 and word not in ("o",)


def number_problem(setting: Dict[str, Any], value: str) -> Optional[str]:
    """A numeric value (with an optional unit) outside the setting's range or grammar, else None."""
    match = NUMBER_WITH_UNIT.match(value)
    if not match:
        return "invalid value for parameter %s: %r is not a number" % (setting["name"], value)
    number, unit = float(match.group(1)), match.group(2)
    family, base = unit_size(setting.get("unit") or "")
    if unit:
        if family is None or unit not in family:
            valid = ", ".join(family) if family else "none (this parameter takes no unit)"
            return "invalid value for parameter %s: %r (valid units: %s)" % (setting["name"], value, valid)
        number = number * family[unit] / base
    if setting.get("vartype") == "integer":
        number = float(round(number))
    low, high = setting.get("min_val"), setting.get("max_val")
    if (low not in (None, "") and number < float(low)) or (high not in (None, "") and number > float(high)):
        return "%s = %s is outside the valid range for parameter %s (%s .. %s%s)" % (
            setting["name"],
            value,
            setting["name"],
            low,
            high,
            " " + setting["unit"] if setting.get("unit") else "",
        )
    return None


def value_problem(setting: Dict[str, Any], value: str) -> Optional[str]:
    """Why the server would refuse `value` for a setting (its pg_settings row: name, vartype, unit,
    min_val, max_val, enumvals), or None. For settings no session may SET (a reload applies them), so that
    check mode refuses the same values ALTER SYSTEM would."""
    kind = setting.get("vartype")
    if kind == "bool" and not is_bool_word(value):
        return "parameter %s requires a Boolean value (got %r)" % (setting["name"], value)
    if kind == "enum":
        choices = [str(choice) for choice in setting.get("enumvals") or []]
        if value.strip().lower() not in [choice.lower() for choice in choices]:
            return "invalid value for parameter %s: %r (available values: %s)" % (
                setting["name"],
                value,
                ", ".join(choices),
            )
    if kind in ("integer", "real"):
        return number_problem(setting, value)
    return None


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


def pool_revert_from_record(record: Dict[str, Any], host: str = "") -> Dict[str, Any]:
    """One PgBouncer host's pool settings before the incident's first scaling of each (empty: nothing to put back).

    A scaling step keeps each host's settings under `pools_before` (host -> settings); a record written
    before every host was scaled has one `pool_before`, which stands for any host.
    """
    before: Dict[str, Any] = {}
    for entry in (record or {}).get("timeline") or []:
        if entry.get("name") != POOL_STEP:
            continue
        details = entry.get("details") or {}
        if "pools_before" in details:
            settings = (details.get("pools_before") or {}).get(host) or {}
        else:
            settings = details.get("pool_before") or {}
        for key, value in settings.items():
            before.setdefault(key, value)
    return before
