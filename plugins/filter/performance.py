# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The performance runbook's rules that need results of earlier tasks: thin calls into
module_utils/performance.py (imported when a filter is called, like filter/outage.py)."""

from __future__ import annotations


def performance_verdict(before, window_start, window_end, target_ms=0):
    """pg_query_check results (before the run, window start, window end) -> the verdict with before/after."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.inputs import as_number
    from ansible_collections.penguinmails.dbops.plugins.module_utils.performance import performance_verdict as verdict

    if not window_end or window_end.get("skipped"):
        return {}
    target = as_number(target_ms) or None
    return verdict(dict(before or {}), dict(window_start or {}), dict(window_end or {}), target)


def performance_closing(verdict=None, changed=(), failures=(), tier=None, earlier_changed_steps=0):
    """-> {outcome, note} for the incident's close (`tier`: pg_failover_plan's result, refused when not healthy;
    a rerun of an incident an earlier run changed stays resolved)."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.performance import refusal_of, run_outcome

    changed_any = int(earlier_changed_steps or 0) > 0 or any(bool((result or {}).get("changed")) for result in changed)
    failed = [str(failure) for failure in failures or []]
    return run_outcome(changed_any, verdict or None, failed, refusal_of((tier or {}).get("decision")))


def performance_input_problems(
    approved,
    target_ms=0,
    watch="",
    probe="",
    settings=(),
    allowed_settings=(),
    revert=False,
    incident_id=None,
    pool_size=0,
    pool_size_max=None,
):
    """The runbook's inputs beyond their types -> one line per problem."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.inputs import as_bool
    from ansible_collections.penguinmails.dbops.plugins.module_utils.performance import input_problems

    revert_without_incident = as_bool(revert) and not str(incident_id or "").strip()
    return input_problems(
        approved,
        target_ms,
        watch,
        probe,
        settings,
        allowed_settings or [],
        revert_without_incident,
        (pool_size, pool_size_max),
    )


def performance_settings_to_revert(record):
    """An incident's record.json (parsed) -> the settings that put back what its runs replaced."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.settings import revert_from_record

    return revert_from_record(record or {})


def performance_pool_to_revert(record, host=""):
    """An incident's record.json (parsed) -> one PgBouncer host's pool settings from before its first scaling."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.settings import pool_revert_from_record

    return pool_revert_from_record(record or {}, str(host or ""))


class FilterModule:
    def filters(self):
        return {
            "performance_verdict": performance_verdict,
            "performance_closing": performance_closing,
            "performance_input_problems": performance_input_problems,
            "performance_settings_to_revert": performance_settings_to_revert,
            "performance_pool_to_revert": performance_pool_to_revert,
        }
