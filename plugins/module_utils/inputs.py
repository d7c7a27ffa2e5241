# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks every runbook runs before it opens, locks or sends anything."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence


def input_problems(
    minimums: Dict[str, float],
    values: Sequence[Any],
    groups: Optional[Mapping[str, Sequence[str]]] = None,
    group_inputs: Optional[Mapping[str, Any]] = None,
) -> List[str]:
    """One readable line per input that is wrong: a number below its minimum or not a finite number,
    or an inventory group name that names no group with hosts.

    `values` are the numeric inputs' values in the order of `minimums` (Ansible's
    `query('vars', *minimums)`); strings such as AWX survey answers ("42") are read as numbers.
    `group_inputs` maps an input's name to its value, which must name one of `groups` with hosts.
    """
    problems = [_group_problem(name, value, groups or {}) for name, value in (group_inputs or {}).items()]
    for (name, minimum), value in zip(minimums.items(), values):
        number = _as_number(value)
        if number is None:
            problems.append("%s must be a number (got %r)" % (name, value))
        elif number < minimum:
            problems.append("%s must be at least %s (got %s)" % (name, minimum, value))
    return [problem for problem in problems if problem]


def _group_problem(name: str, value: Any, groups: Mapping[str, Sequence[str]]) -> str:
    if isinstance(value, str) and groups.get(value):
        return ""
    with_hosts = ", ".join(group for group, hosts in groups.items() if hosts and group not in ("all", "ungrouped"))
    return "%s must name an inventory group with hosts (got %r; groups with hosts: %s)" % (
        name,
        value,
        with_hosts or "none",
    )


# Ansible's spellings of a boolean (module_utils.parsing.convert_bool), for values that reach a rule
# as strings: AWX survey answers ("false"), EDA event fields, an inventory script's output.
TRUE_WORDS = frozenset(("true", "yes", "on", "1", "y", "t", "1.0"))
FALSE_WORDS = frozenset(("false", "no", "off", "0", "n", "f", "0.0", ""))


def as_bool(value: Any, otherwise: bool = False) -> bool:
    """A switch's value as a bool whether it came typed (True) or as an AWX survey string ("false");
    `otherwise` for a string that spells no boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    return otherwise


def as_number(value: Any) -> Optional[float]:
    """A number whether typed (42) or a string ("42"); None when it is none (bools are not numbers)."""
    return _as_number(value)


def _as_number(value: Any):
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
