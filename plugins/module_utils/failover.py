# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover decisions for one tier, from what its members report (pg_node_info results).

Pure functions, no I/O. The rules, in the order they are applied:

* a reachable primary means there is no outage (nothing to do);
* two or more servers out of recovery is split brain: change nothing, a person decides;
* otherwise every member that is not a reachable standby must be fenced before
  anything is promoted, because we cannot see what it is doing;
* the candidate is the reachable standby with the most WAL received on the newest
  timeline (ties: named in synchronous_standby_names, then less replay backlog,
  then inventory order), excluding members marked failover_candidate: false;
* its lag against the best position anyone reported bounds the data loss; over the
  bound the decision is a refusal unless data loss is explicitly allowed.

After the plan, three more rules of the outage runbook live here too, so the playbook only
branches on their fields: whether to go on after fencing (`fence_verdict`), whether the tier
is verified (`verification`: standbys stream from the primary by host identity, address and
port), and the run's outcome (`run_outcome`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils.fleet import fleet_targets, run_fleet
from ansible_collections.penguinmails.dbops.plugins.module_utils.node_info import lsn_to_int
from ansible_collections.penguinmails.dbops.plugins.module_utils.replication import (
    parse_synchronous_standby_names,
    slot_name_for,
    synchronous_after_promotion,
    synchronous_names,
)

DEFAULT_MAX_LAG_BYTES = 1024 * 1024

HEALTHY = "healthy"
SPLIT_BRAIN = "split_brain"
FAILOVER = "failover"
REFUSED = "refused"

# The run's outcome, as the incident record closes it.
RESOLVED = "resolved"
NO_ACTION = "no_action"
ESCALATED = "escalated"


@dataclass
class Member:
    """One tier member as observed: its name, pg_node_info result and inventory flags."""

    name: str
    info: Dict[str, Any]
    failover_candidate: bool = True

    @property
    def reachable(self) -> bool:
        return bool(self.info.get("reachable"))

    @property
    def is_primary(self) -> bool:
        return self.reachable and self.info.get("in_recovery") is False

    @property
    def is_standby(self) -> bool:
        return self.reachable and self.info.get("in_recovery") is True

    @property
    def received(self) -> Optional[int]:
        return lsn_to_int(self.info.get("received_lsn")) or lsn_to_int(self.info.get("replay_lsn"))

    @property
    def replayed(self) -> Optional[int]:
        return lsn_to_int(self.info.get("replay_lsn"))

    @property
    def timeline(self) -> int:
        return int(self.info.get("timeline_id") or 0)

    @property
    def slot_name(self) -> str:
        return slot_name_for(self.name)


@dataclass
class Decision:
    """What to do, and the evidence for it, as returned to the playbook."""

    action: str
    reason: str
    primary: Optional[str] = None
    candidate: Optional[str] = None
    fence: List[str] = field(default_factory=list)
    standbys_to_repoint: List[str] = field(default_factory=list)
    estimated_data_loss_bytes: Optional[int] = None
    candidate_lag_bytes: Optional[int] = None
    best_known_lsn: Optional[str] = None
    synchronous_standby_names: Optional[str] = None
    durability_reduced: bool = False
    candidate_timeline_id: Optional[int] = None
    evidence: List[str] = field(default_factory=list)

    @property
    def tier_primary(self) -> Optional[str]:
        """The primary the later steps work with: the healthy one, or the candidate once promoted."""
        return self.primary if self.action == HEALTHY else self.candidate if self.action == FAILOVER else None

    def as_dict(self) -> Dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "primary": self.primary,
            "candidate": self.candidate,
            "fence": self.fence,
            "standbys_to_repoint": self.standbys_to_repoint,
            "estimated_data_loss_bytes": self.estimated_data_loss_bytes,
            "candidate_lag_bytes": self.candidate_lag_bytes,
            "best_known_lsn": self.best_known_lsn,
            "synchronous_standby_names": self.synchronous_standby_names,
            "durability_reduced": self.durability_reduced,
            "candidate_timeline_id": self.candidate_timeline_id,
            "tier_primary": self.tier_primary,
            "evidence": self.evidence,
        }


def int_to_lsn(position: Optional[int]) -> Optional[str]:
    if position is None:
        return None
    return "%X/%X" % (position >> 32, position & 0xFFFFFFFF)


def describe(member: Member) -> str:
    info = member.info
    if not member.reachable:
        return "%s is down (%s)" % (member.name, info.get("conn_err_kind") or "unreachable")
    if member.is_primary:
        return "%s is primary on timeline %s at %s" % (member.name, info.get("timeline_id"), info.get("current_lsn"))
    receiver = info.get("wal_receiver") or {}
    return "%s is standby on timeline %s, received %s, replayed %s, receiver %s" % (
        member.name,
        info.get("timeline_id"),
        info.get("received_lsn"),
        info.get("replay_lsn"),
        receiver.get("status") or "not running",
    )


def best_known_position(members: List[Member], last_primary_lsn: Optional[str] = None) -> Optional[int]:
    """The furthest WAL position anyone reported: what the old primary had at least."""
    positions = [member.received for member in members if member.is_standby and member.received is not None]
    primary_position = lsn_to_int(last_primary_lsn)
    if primary_position is not None:
        positions.append(primary_position)
    return max(positions) if positions else None


def rank_candidates(members: List[Member], sync_names: List[str]) -> List[Member]:
    """Eligible standbys, best first."""
    standbys = [member for member in members if member.is_standby and member.failover_candidate]
    if not standbys:
        return []
    newest_timeline = max(member.timeline for member in standbys)
    order = {member.name: index for index, member in enumerate(members)}

    def sort_key(member: Member) -> tuple:
        backlog = (member.received or 0) - (member.replayed or 0)
        return (-(member.received or 0), member.slot_name not in sync_names, backlog, order[member.name])

    return sorted((member for member in standbys if member.timeline == newest_timeline), key=sort_key)


def decide(
    members: List[Member],
    requested_candidate: Optional[str] = None,
    max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES,
    allow_data_loss: bool = False,
    last_primary_lsn: Optional[str] = None,
    sync_standby_names: Optional[str] = None,
    strict_synchronous: bool = False,
) -> Decision:
    """The whole decision for one tier."""
    evidence = [describe(member) for member in members]
    primaries = [member for member in members if member.is_primary]
    if len(primaries) > 1:
        names = ", ".join(member.name for member in primaries)
        return Decision(SPLIT_BRAIN, "more than one server reports itself primary: %s" % names, evidence=evidence)
    if primaries:
        return Decision(
            HEALTHY,
            "%s is a reachable, writable primary" % primaries[0].name,
            primary=primaries[0].name,
            standbys_to_repoint=[member.name for member in members if member.is_standby],
            evidence=evidence,
        )

    to_fence = [member.name for member in members if not member.is_standby]
    sync_names = synchronous_names(sync_standby_names) or _sync_names_from_members(members)
    ranked = rank_candidates(members, sync_names)
    if requested_candidate:
        ranked = [member for member in ranked if member.name == requested_candidate]
        if not ranked:
            return Decision(
                REFUSED,
                "requested candidate %s is not a reachable standby on the newest timeline eligible for failover"
                % requested_candidate,
                fence=to_fence,
                evidence=evidence,
            )
    if not ranked:
        return Decision(REFUSED, "no reachable standby is eligible for promotion", fence=to_fence, evidence=evidence)

    candidate = ranked[0]
    best = best_known_position(members, last_primary_lsn)
    lag = max(0, (best or 0) - (candidate.replayed or candidate.received or 0))
    loss = max(0, (best or 0) - (candidate.received or 0))
    decision = Decision(
        FAILOVER,
        "no reachable primary; promote %s" % candidate.name,
        candidate=candidate.name,
        fence=to_fence,
        standbys_to_repoint=[member.name for member in members if member.is_standby and member.name != candidate.name],
        estimated_data_loss_bytes=loss,
        candidate_lag_bytes=lag,
        best_known_lsn=int_to_lsn(best),
        candidate_timeline_id=candidate.timeline,
        evidence=evidence,
    )
    candidate_setting = candidate.info.get("synchronous_standby_names")
    decision.synchronous_standby_names, decision.durability_reduced = synchronous_after_promotion(
        candidate_setting, decision.standbys_to_repoint, strict_synchronous
    )
    if lag > max_lag_bytes and not allow_data_loss:
        decision.action = REFUSED
        decision.reason = (
            "candidate %s lags %d bytes behind the best known position %s (bound %d bytes); "
            "set failover_allow_data_loss=true to promote anyway"
            % (candidate.name, lag, decision.best_known_lsn, max_lag_bytes)
        )
    return decision


def _sync_names_from_members(members: List[Member]) -> List[str]:
    names: List[str] = []
    for member in members:
        names.extend(synchronous_names(member.info.get("synchronous_standby_names")))
    return names


def upstream_heard_recently(members: List[Member], silence_s: float) -> List[str]:
    """Standbys whose WAL receiver heard from its upstream within silence_s: it may be alive."""
    recent = []
    for member in members:
        receiver = member.info.get("wal_receiver") or {}
        seconds = receiver.get("seconds_since_last_message")
        if member.is_standby and seconds is not None and seconds < silence_s:
            recent.append(
                "%s heard from %s:%s %.1f s ago"
                % (member.name, receiver.get("sender_host"), receiver.get("sender_port"), seconds)
            )
    return recent


def fence_verdict(
    fence_results: List[Dict[str, Any]], fence_policy: str, heard_recently: List[str], silence_s: float
) -> Dict[str, Any]:
    """After fencing: go on, or refuse because an unfenced member may still take writes.

    `fence_results` are pg_fence's loop results (`item` is the member). A member is unfenced
    when its fence did not run to `fenced: true` (unreachable, failed, or could not stop it).
    Unfenced members are a refusal only while a standby heard from its upstream within
    `silence_s` (it may be alive behind a partition) and the policy is not `skip`.
    """
    attempted = [result for result in fence_results if not result.get("skipped")]
    unfenced = [result["item"] for result in attempted if not result.get("fenced")]
    refused = bool(unfenced) and fence_policy != "skip" and bool(heard_recently)
    failures = "; ".join(str(result.get("msg", "")) for result in attempted if result["item"] in unfenced)
    reason = ""
    if refused:
        reason = (
            "refused: could not fence %s (%s) and a standby heard from its upstream within %s s (%s): "
            "it may still be serving writes behind a partition. Nothing was promoted. "
            "Fence it by hand, or rerun with -e failover_fence=skip to accept the risk."
            % (", ".join(unfenced), failures, silence_s, "; ".join(heard_recently))
        )
    summary = "fenced"
    if unfenced:
        summary = "not fenced: %s (failover_fence=%s, risk accepted)" % (", ".join(unfenced), fence_policy)
    return {
        "refused": refused,
        "unfenced": unfenced,
        "reason": reason,
        "result": summary,
        "changed": any(result.get("changed") for result in attempted),
        "actions": [action for result in attempted for action in result.get("actions") or []],
    }


def streams_from(info: Dict[str, Any], host: str, port: int) -> bool:
    """A standby streams from host:port when its WAL receiver streams and names that address and port.

    `sender_host` is what the standby's primary_conninfo says (an address, a host name or a socket
    directory), so it matches only when the standbys are pointed at the primary by the same
    `ansible_host` the inventory gives the controller. Ports alone prove nothing: every
    production server listens on 5432.
    """
    receiver = info.get("wal_receiver") or {}
    if receiver.get("status") != "streaming":
        return False
    sender_host = str(receiver.get("sender_host") or "").lower()
    return sender_host == str(host).lower() and _as_port(receiver.get("sender_port")) == _as_port(port)


def _as_port(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def verification(
    decision: Decision,
    members: List[Member],
    addresses: Dict[str, Tuple[str, int]],
    primary: str,
    standbys: List[str],
    timeline_above: Optional[int] = None,
    not_following: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """The verdict after acting: `primary` is the only primary, on a newer timeline when it was
    promoted, and every one of `standbys` streams from its address and port (`not_following`: why
    some were found not to, told with them)."""
    info = {member.name: member.info for member in members}
    not_following = not_following or {}
    host, port = addresses[primary]
    streaming = [name for name in standbys if streams_from(info.get(name) or {}, host, port)]
    not_streaming = [name for name in standbys if name not in streaming]
    problems = []
    if decision.action != HEALTHY or decision.primary != primary:
        problems.append("%s is not the only primary: %s" % (primary, decision.reason))
    timeline = int((info.get(primary) or {}).get("timeline_id") or 0)
    if timeline_above is not None and timeline <= timeline_above:
        problems.append("%s is on timeline %d, not past %d" % (primary, timeline, timeline_above))
    if not_streaming:
        problems.append("standbys not streaming from %s (%s:%s): %s" % (primary, host, port, ", ".join(not_streaming)))
        problems.extend(not_following[name] for name in not_streaming if name in not_following)
    return {
        "verified": not problems,
        "reason": "; ".join(problems)
        or "%s is the only primary; streaming: %s" % (primary, ", ".join(streaming) or "no standby"),
        "streaming": streaming,
        "not_streaming": not_streaming,
    }


def synchronous_for_followers(
    names: Optional[str], following: List[str], not_following: List[str], strict: bool
) -> Dict[str, Any]:
    """The promoted primary's synchronous_standby_names once its standbys were waited for.

    `names` is what the promotion set (synchronous_after_promotion of the plan). A standby it waits
    for that does not follow (it replayed WAL the new primary never had) would hold every commit
    forever: the list becomes the standbys that do follow, by the same rule, and with none of them
    commits go asynchronous, recorded as reduced durability, unless strict (they keep waiting, as
    asked). `change`: whether to set `synchronous_standby_names` now.
    """
    parsed = parse_synchronous_standby_names(names)
    listed = [name.lower() for name in parsed.names] if parsed else []
    waits_for = [name for name in not_following if "*" in listed or slot_name_for(name) in listed]
    unchanged = {"change": False, "synchronous_standby_names": names, "durability_reduced": False, "dropped": []}
    if not waits_for:
        return unchanged
    wanted, reduced = synchronous_after_promotion(names, list(following), strict)
    if wanted is None:
        return dict(unchanged, dropped=sorted(waits_for), waiting=True)
    return {
        "change": wanted != names,
        "synchronous_standby_names": wanted,
        "durability_reduced": reduced,
        "dropped": sorted(waits_for),
    }


def run_outcome(
    plan_action: Optional[str],
    fence_refused: bool = False,
    failed: bool = False,
    changed: bool = False,
    earlier_changed_steps: int = 0,
) -> str:
    """How the incident closes: refused (the plan or the fence said no), escalated (a step failed),
    no_action (healthy and nothing changed, now or in an earlier run of the incident), else resolved."""
    if plan_action in (SPLIT_BRAIN, REFUSED) or fence_refused:
        return REFUSED
    if failed or plan_action is None:
        return ESCALATED
    if plan_action == HEALTHY and not changed and earlier_changed_steps == 0:
        return NO_ACTION
    return RESOLVED


def run_closing(
    decision: Optional[Dict[str, Any]],
    fence_refused: bool = False,
    failure: Optional[str] = None,
    changed: bool = False,
    earlier_changed_steps: int = 0,
) -> Dict[str, str]:
    """The outcome and the one-line note the incident closes with (`failure`: the failed step's message)."""
    decision = decision or {}
    action = decision.get("action")
    outcome = run_outcome(action, fence_refused, failure is not None, changed, earlier_changed_steps)
    if failure is not None:
        note = failure
    elif action == HEALTHY:
        note = "no action: %s" % decision.get("reason")
    else:
        note = "failed over to %s" % decision.get("candidate")
    return {"outcome": outcome, "note": note}


def member_entry_spec() -> Dict[str, Dict[str, Any]]:
    """Suboptions of a tier member list (the shape the tier_members filter produces)."""
    return {
        "name": {"type": "str", "required": True},
        "login_host": {"type": "str", "required": True},
        "login_port": {"type": "int", "required": True},
        "failover_candidate": {"type": "bool", "default": True},
    }


def observe(members: List[Dict[str, Any]], base: Any, collect: Any) -> List[Member]:
    """One concurrent look at every member (the fleet runner); `collect(params)` is pg_node_info's collector."""
    looked = run_fleet(fleet_targets(base, members), collect)["servers"]
    return [
        Member(member["name"], looked[member["name"]], bool(member.get("failover_candidate", True)))
        for member in members
    ]


def observe_with_grace(
    members: List[Dict[str, Any]],
    base: Any,
    collect: Any,
    grace_s: float,
    interval_s: float,
    clock: Any = None,
    sleep: Any = None,
) -> Tuple[List[Member], int, Optional[str]]:
    """Look until a primary answers or grace_s has passed since the first look.

    Returns the last observation, how many looks it took, and the last WAL position a
    primary reported during the grace period (it bounds the data loss if it then died).
    """
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    started = clock()
    looks = 0
    last_primary_lsn = None
    while True:
        observed = observe(members, base, collect)
        looks += 1
        primaries = [member for member in observed if member.is_primary]
        for member in primaries:
            last_primary_lsn = member.info.get("current_lsn") or last_primary_lsn
        if primaries or clock() - started >= grace_s:
            return observed, looks, last_primary_lsn
        sleep(interval_s)
