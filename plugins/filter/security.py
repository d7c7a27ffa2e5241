# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security breach runbook's rules for YAML: thin calls into module_utils/lockdown.py.

lockdown.py is imported when a filter is called (looking up any filter loads every filter file).
"""

from __future__ import annotations


def security_role_problems(names):
    """Problems of the suspect role names (empty when acceptable)."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.lockdown import role_names_problems

    return role_names_problems(names)


def security_closing(locked, lift=False, acted=(), failure=None):
    """{outcome, note} for the incident's close (lockdown.run_closing) from the loop of pg_role_lockdown results."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.lockdown import run_closing

    results = (locked or {}).get("results") or []
    verdicts = [dict(result.get("verification") or {}, server=result.get("server")) for result in results]
    changed = any(bool((result or {}).get("changed")) for result in list(results) + list(acted or []))
    return run_closing(verdicts, bool(lift), changed, failure or None)


class FilterModule:
    def filters(self):
        return {"security_role_problems": security_role_problems, "security_closing": security_closing}
