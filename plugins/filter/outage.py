# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The outage runbook's rules that need results of earlier tasks: thin calls into module_utils/failover.py.

failover.py is imported when a filter is called, not with this file: looking up any of the
collection's filters loads every filter file, in every task's worker, and failover.py brings the
connection layer with it (about 20 ms a task).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def fence_verdict_filter(fence_loop, fence_policy, heard_recently, silence_s):
    """pg_fence's registered loop -> {refused, unfenced, reason, result, changed, actions}."""
    if fence_policy not in ("auto", "skip"):
        raise AnsibleFilterError("failover_fence must be auto or skip (got %r)" % (fence_policy,))
    from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import fence_verdict

    results = (fence_loop or {}).get("results") or []
    return fence_verdict(results, fence_policy, list(heard_recently or []), float(silence_s))


def outage_closing(plan, fence=None, failure=None, changed=(), earlier_changed_steps=0):
    """pg_failover_plan's result -> {outcome, note} for the incident's close."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import run_closing

    return run_closing(
        (plan or {}).get("decision"),
        fence_refused=bool((fence or {}).get("refused")),
        failure=failure,
        changed=any(bool((result or {}).get("changed")) for result in changed),
        earlier_changed_steps=int(earlier_changed_steps or 0),
    )


def synchronous_for_followers_filter(decision, following, standbys, strict):
    """The plan's decision and pg_standby_follow's wait (registered) -> what the promoted primary's
    synchronous_standby_names becomes without the standbys that do not follow."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import synchronous_for_followers

    waited = following or {}
    states = waited.get("standbys") or {}
    not_following = sorted(waited.get("not_streaming") or {})
    followers = [name for name in standbys or [] if (states.get(name) or {}).get("streaming")]
    return synchronous_for_followers(
        (decision or {}).get("synchronous_standby_names"), followers, not_following, bool(strict)
    )


class FilterModule:
    def filters(self):
        return {
            "fence_verdict": fence_verdict_filter,
            "outage_closing": outage_closing,
            "synchronous_for_followers": synchronous_for_followers_filter,
        }
