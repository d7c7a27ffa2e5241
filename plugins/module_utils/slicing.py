# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX job slicing: which hosts a slice covers, and what a slice may conclude about a tier.

AWX runs a job template with ``job_slice_count`` N as N jobs (a workflow of slices). Slice k
(1-based) gets an inventory holding only the hosts ``sorted(hosts)[k-1::N]``, every group
restricted to those hosts (group variables kept, empty groups kept). Slices share nothing.

* ``slice_hosts`` / ``slice_inventory`` - the slicing itself, the way AWX does it (the second on an
  inventory script's ``--list`` JSON): every host in exactly one slice.
* ``slice_outage_view`` - a tier-level verdict from a slice's part of a tier. A sliced triage
  probes only its own hosts, so "no primary among my hosts" is not "no primary in the tier". The
  slice decides from what its hosts themselves report:

  - a member that says it is primary: the tier has one (split brain only within the slice);
  - no primary in view, a standby whose WAL receiver streams: its upstream is alive, so the tier
    has a live primary in another slice - no outage from this slice;
  - no primary in view, standbys that answer and none streams: the standbys report their upstream
    lost - outage (each slice that sees it opens the same incident id, tier + type, so the record
    is continued, not duplicated);
  - no member in view answers: the slice cannot tell a lone down standby from a dead tier. When
    the inventory declares the whole tier (group variable ``tier_members``), only the slice
    holding its first member by name owns the verdict and reports the outage; without it every
    such slice reports it (the same incident id: continued, never a second record; the outage
    playbook verifies the whole tier before it acts).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence


class SliceError(ValueError):
    """A slice number or count out of range."""


def check_slice(number: int, count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SliceError("job_slice_count must be a whole number of at least 1 (got %r)" % (count,))
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= count:
        raise SliceError("job_slice_number must be between 1 and %d (got %r)" % (count, number))


def slice_hosts(hosts: Sequence[str], number: int, count: int) -> List[str]:
    """The hosts of slice `number` (1-based) of `count`: sorted by name, every count-th from number-1."""
    check_slice(number, count)
    return sorted(set(str(host) for host in hosts))[number - 1 :: count]


def inventory_hosts(inventory: Mapping[str, Any]) -> List[str]:
    """Every host of an inventory script's --list output (group hosts and _meta hostvars)."""
    hosts = set((inventory.get("_meta") or {}).get("hostvars") or {})
    for name, group in inventory.items():
        if name == "_meta":
            continue
        if isinstance(group, list):
            hosts.update(str(host) for host in group)
        elif isinstance(group, Mapping):
            hosts.update(str(host) for host in group.get("hosts") or [])
    return sorted(hosts)


def slice_inventory(inventory: Mapping[str, Any], number: int, count: int) -> Dict[str, Any]:
    """The inventory slice `number` of `count` gets: only its hosts, every group restricted to them."""
    keep = set(slice_hosts(inventory_hosts(inventory), number, count))
    sliced: Dict[str, Any] = {}
    for name, group in inventory.items():
        if name == "_meta":
            continue
        if isinstance(group, list):
            sliced[name] = {"hosts": [host for host in group if host in keep]}
            continue
        restricted = dict(group)
        restricted["hosts"] = [host for host in group.get("hosts") or [] if host in keep]
        sliced[name] = restricted
    hostvars = (inventory.get("_meta") or {}).get("hostvars") or {}
    sliced["_meta"] = {"hostvars": {host: dict(values) for host, values in hostvars.items() if host in keep}}
    return sliced


def streaming_upstream(result: Mapping[str, Any]) -> Optional[str]:
    """host:port a standby's WAL receiver streams from, from its pg_health result; None if it does not."""
    figures = result.get("figures") or {}
    standby = (figures.get("hot_standby_delay") or {}).get("standby") or {}
    if standby.get("receiver_status") != "streaming":
        return None
    host = standby.get("sender_host")
    port = standby.get("sender_port")
    return "%s:%s" % (host, port) if host else "its upstream"


def slice_outage_view(
    members: Sequence[str],
    roles: Mapping[str, str],
    servers: Mapping[str, Any],
    tier_members: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """What a slice may conclude about its tier. members: the tier's hosts in this slice.

    Returns verdict ``primary`` (a primary in view: the whole-tier rule applies to what is in
    view), ``upstream_alive`` (no outage: a standby streams), ``outage`` (standbys in view lost
    their upstream, or the owner slice sees no member answer), or ``not_owner`` (no member in view
    answers and another slice owns the verdict); ``reason`` says why in one line.
    """
    in_view = sorted(members)
    if any(roles.get(member) == "primary" for member in in_view):
        return {"verdict": "primary", "reason": "a member in this slice says it is primary"}
    standbys = [member for member in in_view if roles.get(member) == "standby"]
    for member in standbys:
        upstream = streaming_upstream(servers.get(member) or {})
        if upstream:
            return {
                "verdict": "upstream_alive",
                "reason": "%s streams WAL from %s: the tier's primary is alive (in another slice)" % (member, upstream),
            }
    if standbys:
        return {
            "verdict": "outage",
            "reason": "no primary in this slice and its standbys (%s) receive no WAL from an upstream"
            % ", ".join(standbys),
        }
    if not in_view:
        return {"verdict": "not_owner", "reason": "this slice holds no member of the tier"}
    tier_first = min(str(member) for member in tier_members) if tier_members else None
    owner = tier_first is None or tier_first in in_view
    if owner:
        return {
            "verdict": "outage",
            "reason": "no member of the tier in this slice answers, and this slice owns the tier's verdict",
        }
    return {
        "verdict": "not_owner",
        "reason": "no member of the tier in this slice answers (%s); the slice holding %s owns the tier's verdict"
        % (", ".join(in_view), tier_first),
    }
