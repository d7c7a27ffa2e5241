#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_failover_plan
short_description: Observe a PostgreSQL tier and decide whether, and how, to fail over
version_added: 0.1.0
description:
  - Looks at every member of a tier at once (one process, one thread per member, each connection
    bounded by its own timeouts) and decides, with the evidence, one of
    C(healthy) (a reachable primary exists; change nothing),
    C(split_brain) (more than one server is out of recovery; change nothing, a person decides),
    C(failover) (no primary answers; fence the members in RV(decision.fence), promote RV(decision.candidate)),
    or C(refused) (no safe candidate, or the candidate lags beyond O(max_lag_bytes)).
  - A primary that does not answer is looked at again for O(grace_period) seconds, so a blip is not an outage.
  - The candidate is the reachable standby with the most WAL received on the newest timeline; ties go to a
    standby named in C(synchronous_standby_names), then less replay backlog, then inventory order.
    Members with C(failover_candidate=false) are never chosen.
  - Also reports which standbys heard from their upstream within O(upstream_silence) seconds
    (RV(upstream_heard_recently)). If the old primary cannot be fenced, that is the sign it may still
    be serving writes behind a partition.
  - Read-only; runs on the controller; C(changed) is always false.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  members:
    description: The tier's servers, in inventory order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Inventory name of the server.
        type: str
        required: true
      login_host:
        description: Host the controller connects to.
        type: str
        required: true
      login_port:
        description: Port of the server.
        type: int
        required: true
      failover_candidate:
        description: Whether this server may be promoted.
        type: bool
        default: true
  candidate:
    description: Promote this member instead of the best ranked one; it must qualify like any other.
    type: str
  max_lag_bytes:
    description: Refuse a candidate whose replayed position is further than this behind the best known position.
    type: int
    default: 1048576
  allow_data_loss:
    description: Promote even when the candidate lags beyond O(max_lag_bytes); the loss is reported.
    type: bool
    default: false
  grace_period:
    description: Seconds to keep looking for a primary before calling it an outage.
    type: float
    default: 1.0
  grace_interval:
    description: Seconds between looks during the grace period.
    type: float
    default: 0.25
  strict_synchronous:
    description:
      - The candidate inherits a C(synchronous_standby_names) naming members that are now fenced; the plan
        rewrites it to the standbys that remain (RV(decision.synchronous_standby_names)).
      - When none remain, commits become asynchronous and RV(decision.durability_reduced) is true, unless this
        is true, in which case the setting is left alone and commits wait until a synchronous standby returns.
    type: bool
    default: false
  upstream_silence:
    description:
      - A standby that heard from its upstream more recently than this many seconds
        is evidence that the upstream is alive.
    type: float
    default: 10
  verify:
    description:
      - After acting, check the tier against what the run made it (RV(verification)); the task fails with
        a message that starts with C(verification failed) and says what does not hold.
      - A standby counts as streaming from the primary only when its WAL receiver's C(sender_host) and
        C(sender_port) equal the primary's O(members[].login_host) and O(members[].login_port). Point standbys at
        the primary by the same address the inventory gives (C(ansible_host)); a host name in one place and an
        address in the other do not match.
    type: dict
    suboptions:
      primary:
        description: The member that must be the only primary.
        type: str
        required: true
      standbys:
        description: The members that must stream from it.
        type: list
        elements: str
        default: []
      timeline_above:
        description: The primary's timeline must be newer than this (the candidate's timeline before promotion).
        type: int
      not_following:
        description:
          - Why standbys found not to follow the primary do not
            (RV(penguinmails.dbops.pg_standby_follow#module:not_streaming)); the reasons of those still not
            streaming go into the message.
        type: dict
        default: {}
attributes:
  check_mode:
    support: full
    description: Plans instead of acting; reports what it would do and changes nothing.
  diff_mode:
    support: none
    description: Nothing to show as a diff.
"""

EXAMPLES = r"""
- name: Decide
  penguinmails.dbops.pg_failover_plan:
    members: "{{ groups[incident_tier] | penguinmails.dbops.tier_members(hostvars) }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    connect_timeout: 2
  delegate_to: localhost
  run_once: true
  register: plan

- name: Decide, with explicit members
  penguinmails.dbops.pg_failover_plan:
    members:
      - {name: oltp-1, login_host: 10.0.1.11, login_port: 5432}
      - {name: oltp-2, login_host: 10.0.1.12, login_port: 5432}
      - {name: oltp-3, login_host: 10.0.1.13, login_port: 5432, failover_candidate: false}
    login_user: dbops_admin
    login_password: "{{ vault_dbops_password }}"
    allow_data_loss: false
"""

RETURN = r"""
decision:
  description: What to do, with the evidence.
  returned: always
  type: dict
  sample: {"action": "failover", "candidate": "oltp-2", "fence": ["oltp-1"], "estimated_data_loss_bytes": 0}
  contains:
    action:
      description: C(healthy), C(split_brain), C(failover) or C(refused).
      type: str
    reason:
      description: The decision in one sentence.
      type: str
    primary:
      description: The reachable primary, when C(healthy).
      type: str
    candidate:
      description: The member to promote.
      type: str
    fence:
      description: Members to fence before promoting (every member that is not a reachable standby).
      type: list
      elements: str
    standbys_to_repoint:
      description: Standbys that must follow the tier's primary (the candidate, or the healthy primary).
      type: list
      elements: str
    estimated_data_loss_bytes:
      description: WAL the candidate never received, against the best position anyone reported.
      type: int
    candidate_lag_bytes:
      description: How far the candidate's replayed position is behind the best known position.
      type: int
    best_known_lsn:
      description: The furthest WAL position any member reported.
      type: str
    synchronous_standby_names:
      description: The promoted server's synchronous_standby_names; null leaves it alone.
      type: str
    durability_reduced:
      description: True when fewer synchronous standbys remain than the setting asked for.
      type: bool
    candidate_timeline_id:
      description: The candidate's timeline before promotion; the promoted server must be past it.
      type: int
    tier_primary:
      description: The primary the later steps work with (the healthy primary, or the candidate); null otherwise.
      type: str
    evidence:
      description: One line per member saying what it reported.
      type: list
      elements: str
members:
  description: What each member reported (pg_node_info's result), keyed by name.
  returned: always
  type: dict
  sample: {"oltp-1": {"reachable": false, "conn_err_kind": "refused"}}
looks:
  description: How many times the tier was observed (more than one when the grace period was used).
  returned: always
  type: int
  sample: 3
upstream_heard_recently:
  description: Standbys whose WAL receiver heard from its upstream within O(upstream_silence) seconds.
  returned: always
  type: list
  elements: str
  sample: ["oltp-2 heard from 127.0.0.1:5401 0.4 s ago"]
verification:
  description: With O(verify), the verdict.
  returned: when O(verify) is set
  type: dict
  sample: {"verified": true, "reason": "oltp-2 is the only primary; streaming: oltp-3", "streaming": ["oltp-3"]}
  contains:
    verified:
      description: The primary is the only one, on a newer timeline when asked, and every standby streams from it.
      type: bool
    reason:
      description: What failed, or what was verified.
      type: str
    streaming:
      description: Standbys streaming from the primary's address and port.
      type: list
      elements: str
    not_streaming:
      description: Standbys that do not.
      type: list
      elements: str
observe_seconds:
  description: Wall time spent observing.
  returned: always
  type: float
  sample: 1.07
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import (
    decide,
    member_entry_spec,
    observe_with_grace,
    upstream_heard_recently,
    verification,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.node_info import collect_node_info
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    connection_argument_spec,
    connection_params,
    ensure_psycopg2,
)

NON_NEGATIVE = ("max_lag_bytes", "grace_period", "grace_interval", "upstream_silence")


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec.update(
        members={
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": member_entry_spec(),
        },
        candidate={"type": "str"},
        max_lag_bytes={"type": "int", "default": 1048576},
        allow_data_loss={"type": "bool", "default": False},
        grace_period={"type": "float", "default": 1.0},
        grace_interval={"type": "float", "default": 0.25},
        upstream_silence={"type": "float", "default": 10.0},
        strict_synchronous={"type": "bool", "default": False},
        verify={
            "type": "dict",
            "options": {
                "primary": {"type": "str", "required": True},
                "standbys": {"type": "list", "elements": "str", "default": []},
                "timeline_above": {"type": "int"},
                "not_following": {"type": "dict", "default": {}},
            },
        },
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    if not module.params["members"]:
        module.fail_json(msg="members is empty: the tier has no servers in the inventory")
    negative = [name for name in NON_NEGATIVE if module.params[name] < 0]
    if negative:
        module.fail_json(msg="must not be negative: %s" % ", ".join(negative))

    base = connection_params(module)
    started = time.monotonic()
    try:
        observed, looks, last_primary_lsn = observe_with_grace(
            module.params["members"],
            base,
            collect_node_info,
            module.params["grace_period"],
            module.params["grace_interval"],
        )
    except ValueError as error:  # a member named twice: results are keyed by name
        module.fail_json(msg="members: %s" % error)
    decision = decide(
        observed,
        requested_candidate=module.params["candidate"],
        max_lag_bytes=module.params["max_lag_bytes"],
        allow_data_loss=module.params["allow_data_loss"],
        last_primary_lsn=last_primary_lsn,
        strict_synchronous=module.params["strict_synchronous"],
    )
    result = {
        "changed": False,
        "decision": decision.as_dict(),
        "members": {member.name: member.info for member in observed},
        "looks": looks,
        "upstream_heard_recently": upstream_heard_recently(observed, module.params["upstream_silence"]),
        "observe_seconds": round(time.monotonic() - started, 3),
    }
    if module.params["verify"]:
        result["verification"] = verify(module, decision, observed)
        if not result["verification"]["verified"]:
            module.fail_json(msg="verification failed: %s" % result["verification"]["reason"], **result)
    module.exit_json(**result)


def verify(module: AnsibleModule, decision, observed) -> dict:
    expected = module.params["verify"]
    addresses = {member["name"]: (member["login_host"], member["login_port"]) for member in module.params["members"]}
    unknown = [name for name in [expected["primary"], *expected["standbys"]] if name not in addresses]
    if unknown:
        module.fail_json(msg="verify names servers that are not members: %s" % ", ".join(unknown))
    return verification(
        decision,
        observed,
        addresses,
        expected["primary"],
        expected["standbys"],
        expected["timeline_above"],
        {str(name): str(why) for name, why in (expected["not_following"] or {}).items()},
    )


if __name__ == "__main__":
    main()
