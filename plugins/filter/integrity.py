# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data integrity runbook's rules that need results of earlier tasks: thin calls into
module_utils/integrity.py (imported when a filter is called, like filter/outage.py)."""

from __future__ import annotations


def integrity_verdict(before, after):
    """pg_integrity before and after the repairs -> {verified, reason, remaining}; {} when after did not run."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import verification

    if not after or after.get("skipped"):
        return {}
    return verification(dict(before or {}), dict(after))


def integrity_closing(verdict=None, changed=(), failures=(), quarantined=False, earlier_changed_steps=0):
    """-> {outcome, note} for the incident's close (a rerun of an incident an earlier run changed stays resolved)."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import run_outcome

    changed_any = int(earlier_changed_steps or 0) > 0 or any(bool((result or {}).get("changed")) for result in changed)
    return run_outcome(changed_any, verdict or None, [str(f) for f in failures or []], bool(quarantined))


class FilterModule:
    def filters(self):
        return {"integrity_verdict": integrity_verdict, "integrity_closing": integrity_closing}
