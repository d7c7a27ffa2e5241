# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data integrity runbook's rules that need results of earlier tasks: thin calls into
module_utils/integrity.py (imported when a filter is called, like filter/outage.py)."""

from __future__ import annotations


def scans_by_member(registered):
    """A looped pg_integrity task's registered result -> {member: its result}; skipped items left out."""
    return {
        str(result["item"]): dict(result)
        for result in (registered or {}).get("results") or []
        if "item" in result and not result.get("skipped")
    }


def integrity_standby_findings(registered):
    """The standbys' scans for the incident's record: {member: {findings, not_reached, seconds} or {failed}}."""
    summary = {}
    for member, scan in scans_by_member(registered).items():
        if scan.get("failed") or "findings" not in scan:
            summary[member] = {"failed": str(scan.get("msg") or "not checked")}
        else:
            summary[member] = {key: scan.get(key) for key in ("findings", "not_reached", "seconds", "wal_lsn")}
    return summary


def integrity_plan(before, primary, standbys=None):
    """The recovery plan: the primary's own (pg_integrity), or across copies when standbys were checked."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import recovery_across_copies

    scans = scans_by_member(standbys)
    if not scans:
        return dict((before or {}).get("plan") or {})
    return recovery_across_copies(str(primary), dict(before or {}), scans)


def integrity_verdict(before, after, standbys_before=None, standbys_after=None, plan=None):
    """pg_integrity before and after the repairs (the standbys' too, when checked) -> {verified, reason,
    remaining, advice}; {} when after did not run."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import copies_advice, verification

    if not after or after.get("skipped"):
        return {}
    return verification(
        dict(before or {}),
        dict(after),
        scans_by_member(standbys_before),
        scans_by_member(standbys_after),
        copies_advice(dict(plan or {})),
    )


def integrity_closing(verdict=None, changed=(), failures=(), quarantined=False, earlier_changed_steps=0):
    """-> {outcome, note} for the incident's close (a rerun of an incident an earlier run changed stays resolved)."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import run_outcome

    changed_any = int(earlier_changed_steps or 0) > 0 or any(bool((result or {}).get("changed")) for result in changed)
    return run_outcome(changed_any, verdict or None, [str(f) for f in failures or []], bool(quarantined))


class FilterModule:
    def filters(self):
        return {
            "integrity_plan": integrity_plan,
            "integrity_standby_findings": integrity_standby_findings,
            "integrity_verdict": integrity_verdict,
            "integrity_closing": integrity_closing,
        }
