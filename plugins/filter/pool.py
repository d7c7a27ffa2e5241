# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pool exhaustion runbook's rules that need earlier results: thin calls into module_utils/pool_relief.py.

pool_relief.py is imported when a filter is called (looking up any filter loads every filter file).
"""

from __future__ import annotations


def pool_latest(plans):
    """The last pg_pool_plan result of the run that ran: the first of `plans` (newest first) with a rung."""
    for plan in plans or []:
        if isinstance(plan, dict) and "rung" in plan:
            return plan
    return {}


def pool_closing(first, latest=None, acted=(), failure=None, earlier_changed_steps=0):
    """{outcome, note} for the incident's close (pool_relief.run_closing); a rung taken by an earlier
    run of the same incident counts as acted, so its second run still closes it resolved."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.pool_relief import run_closing

    changed = any(bool((result or {}).get("changed")) for result in acted or []) or int(earlier_changed_steps or 0) > 0
    return run_closing(first or {}, latest or first or {}, changed, failure or None)


def pool_restart_method(service_manager, lab_managed=False, service="pgbouncer"):
    """{method, reason}: how a PgBouncer whose console does not answer is restarted (pool_relief.restart_method)."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.pool_relief import restart_method

    return restart_method(service_manager or None, bool(lab_managed), str(service))


class FilterModule:
    def filters(self):
        return {"pool_latest": pool_latest, "pool_closing": pool_closing, "pool_restart_method": pool_restart_method}
