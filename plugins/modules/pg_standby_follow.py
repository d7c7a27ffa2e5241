#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_standby_follow
short_description: Make PostgreSQL standbys stream from a (new) primary, with a slot each
version_added: 0.1.0
description:
  - For every standby in O(standbys), ensures a physical replication slot exists on the primary,
    then points the standby's C(primary_conninfo) (host and port only; user, passfile, TLS and
    other settings are kept) and C(primary_slot_name) at the primary with C(ALTER SYSTEM) and
    reloads. PostgreSQL 13 and newer restart the WAL receiver on reload; no server restart.
  - The standbys follow the newest timeline (C(recovery_target_timeline=latest), the default
    since PostgreSQL 12); a standby configured otherwise is reported as an error.
  - Idempotent. Check mode returns the statements it would run. Passwords inside
    C(primary_conninfo) are masked in every output.
  - Runs on the controller (C(delegate_to=localhost)); one invocation handles the whole tier.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  primary_host:
    description: Host name of the primary as the standbys reach it (goes into primary_conninfo).
    type: str
    required: true
  primary_port:
    description: Port of the primary as the standbys reach it.
    type: int
    required: true
  primary_login_host:
    description: Host the controller uses to reach the primary for slot creation; defaults to O(primary_host).
    type: str
  primary_login_port:
    description: Port the controller uses to reach the primary; defaults to O(primary_port).
    type: int
  standbys:
    description:
      - The standbys to re-point. O(standbys[].name) gives the slot and C(application_name)
        (lower case, anything but letters, digits and C(_) becomes C(_)).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Inventory name of the standby.
        type: str
        required: true
      login_host:
        description: Host the controller uses to reach this standby.
        type: str
        required: true
      login_port:
        description: Port of this standby.
        type: int
        required: true
      failover_candidate:
        description:
          - Ignored; accepted so the output of the P(penguinmails.dbops.tier_members#filter) filter
            can be passed as it is.
        type: bool
        default: true
  create_slots:
    description: Create a missing physical slot on the primary for each standby.
    type: bool
    default: true
  resume_replay:
    description:
      - Resume WAL replay on a standby where it is paused (C(pg_wal_replay_resume())). A paused standby
        cannot switch to the new primary's timeline, so it would neither follow nor acknowledge
        synchronous commits. Set to false to leave paused standbys alone (they are reported).
    type: bool
    default: true
  wait_streaming_s:
    description:
      - After re-pointing, wait up to this many seconds until every standby's WAL receiver streams from
        the primary (O(primary_host):O(primary_port)); 0 does not wait. Those that do not by then are
        returned in RV(not_streaming) with why, and the module does not fail; a standby that replayed WAL
        the primary never had (an old primary left running kept taking writes) cannot follow it and must
        be rejoined. Not in check mode.
    type: float
    default: 0
attributes:
  check_mode:
    support: full
    description: Plans instead of acting; reports what it would do and changes nothing.
  diff_mode:
    support: full
    description: Shows the state before and after.
"""

EXAMPLES = r"""
- name: Re-point the remaining standbys at the new primary, then wait until they stream from it
  penguinmails.dbops.pg_standby_follow:
    primary_host: "{{ hostvars[new_primary].ansible_host }}"
    primary_port: "{{ hostvars[new_primary].pg_port }}"
    standbys:
      - name: oltp-3
        login_host: 127.0.0.1
        login_port: 5433
    wait_streaming_s: 10
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
  register: following
  delegate_to: localhost
"""

RETURN = r"""
standbys:
  description:
    - Per standby, C(changed), C(slot), masked C(conninfo_before) / C(conninfo_after), C(replay_paused)
      and C(replay_resumed); with O(wait_streaming_s), C(streaming).
  returned: always
  type: dict
  sample: {"oltp-3": {"changed": true, "slot": "oltp_3", "conninfo_after": "host=127.0.0.1 port=5432 ..."}}
not_streaming:
  description:
    - With O(wait_streaming_s), the standbys that did not stream from the primary within it, and why
      (their WAL receiver's state, how far they replayed, what to do); empty otherwise.
  returned: always
  type: dict
  sample: {"oltp-3": "oltp-3 does not stream from 198.18.0.2:5432 10s after it was re-pointed: ..."}
slots_created:
  description: Slots created on the primary.
  returned: always
  type: list
  elements: str
  sample: ["oltp_3"]
executed_queries:
  description: Statements executed (check mode, would be executed), secrets masked, prefixed with the server.
  returned: always
  type: list
  elements: str
  sample: ["127.0.0.1:5432: SELECT pg_create_physical_replication_slot('oltp_3', true)"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed
from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import member_entry_spec
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    check_module_timeouts,
    connection_argument_spec,
    connection_params,
    ensure_psycopg2,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import Follower


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec.update(
        primary_host={"type": "str", "required": True},
        primary_port={"type": "int", "required": True},
        primary_login_host={"type": "str"},
        primary_login_port={"type": "int"},
        standbys={
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": member_entry_spec(),
        },
        create_slots={"type": "bool", "default": True},
        resume_replay={"type": "bool", "default": True},
        wait_streaming_s={"type": "float", "default": 0},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    if module.params["wait_streaming_s"] != 0:
        check_module_timeouts(module, ["wait_streaming_s"])

    follower = Follower(connection_params(module), module.params, module.check_mode)
    try:
        result = follower.run(
            module.params["standbys"], module.params["create_slots"], module.params["wait_streaming_s"]
        )
    except ActionFailed as failure:
        module.fail_json(msg=str(failure), **failure.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
