# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks every runbook runs before it opens, locks or sends anything."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence


def out_of_range(minimums: Dict[str, float], values: Sequence[Any]) -> List[str]:
    """One readable line per input below its minimum or not a finite number.

    `values` are the inputs' values in the order of `minimums` (Ansible's
    `query('vars', *minimums)`); strings such as AWX survey answers ("42") are read as numbers.
    """
    problems = []
    for (name, minimum), value in zip(minimums.items(), values):
        number = _as_number(value)
        if number is None:
            problems.append("%s must be a number (got %r)" % (name, value))
        elif number < minimum:
            problems.append("%s must be at least %s (got %s)" % (name, minimum, value))
    return problems


def _as_number(value: Any):
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
