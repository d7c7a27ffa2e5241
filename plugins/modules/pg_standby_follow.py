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
attributes:
  check_mode:
    support: full
    description: Plans instead of acting; reports what it would do and changes nothing.
  diff_mode:
    support: full
    description: Shows the state before and after.
"""

EXAMPLES = r"""
- name: Re-point the remaining standbys at the new primary
  penguinmails.dbops.pg_standby_follow:
    primary_host: "{{ hostvars[new_primary].ansible_host }}"
    primary_port: "{{ hostvars[new_primary].pg_port }}"
    standbys:
      - name: oltp-3
        login_host: 127.0.0.1
        login_port: 5433
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
  delegate_to: localhost
"""

RETURN = r"""
standbys:
  description:
    - Per standby, C(changed), C(slot), masked C(conninfo_before) / C(conninfo_after), C(replay_paused)
      and C(replay_resumed).
  returned: always
  type: dict
  sample: {"oltp-3": {"changed": true, "slot": "oltp_3", "conninfo_after": "host=127.0.0.1 port=5432 ..."}}
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

import dataclasses

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import member_entry_spec, slot_name_for
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    close_quietly,
    connect,
    connection_argument_spec,
    ensure_psycopg2,
    execute,
    require_primary,
    statement_text,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import (
    follow_conninfo,
    mask_conninfo,
    same_conninfo,
)

SLOT_EXISTS = "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s"
CREATE_SLOT = "SELECT pg_create_physical_replication_slot(%s, true)"
CURRENT = (
    "SELECT current_setting('primary_conninfo'), current_setting('primary_slot_name'), "
    "current_setting('recovery_target_timeline'), pg_is_in_recovery(), "
    "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END"
)
RESUME = "SELECT pg_wal_replay_resume()"
SET_CONNINFO = "ALTER SYSTEM SET primary_conninfo = %s"
SET_SLOT = "ALTER SYSTEM SET primary_slot_name = %s"
RELOAD = "SELECT pg_reload_conf()"


class Follower:
    """Collects what is done (or planned) across the primary and the standbys."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.check_mode = module.check_mode
        self.base = ConnectionParams.from_module_params(module.params)
        self.executed: list = []
        self.slots_created: list = []
        self.standbys: dict = {}

    def params_for(self, host: str, port: int) -> ConnectionParams:
        return dataclasses.replace(self.base, host=host, port=port)

    def run(self, conn, params, statement, args=None, masked_args=None):
        """Execute (or in check mode only record) one changing statement."""
        self.executed.append("%s: %s" % (params.endpoint, statement_text(conn, statement, masked_args or args)))
        if not self.check_mode:
            execute(conn, params, statement, args)

    def ensure_slots(self, names: list) -> None:
        params = self.params_for(
            self.module.params["primary_login_host"] or self.module.params["primary_host"],
            self.module.params["primary_login_port"] or self.module.params["primary_port"],
        )
        conn = connect(params)
        try:
            # In check mode the candidate has not been promoted yet: plan against it as it is.
            if not self.check_mode:
                require_primary(conn, params)
            for name in names:
                if not execute(conn, params, SLOT_EXISTS, (name,)).fetchone():
                    self.run(conn, params, CREATE_SLOT, (name,))
                    self.slots_created.append(name)
        finally:
            close_quietly(conn)

    def follow(self, standby: dict) -> None:
        params = self.params_for(standby["login_host"], standby["login_port"])
        slot = slot_name_for(standby["name"])
        conn = connect(params)
        try:
            conninfo, slot_now, target_timeline, recovering, paused = execute(conn, params, CURRENT).fetchone()
            if not recovering:
                raise ConnectionFailure(
                    "not_standby",
                    "%s (%s) is not in recovery; refusing to re-point a primary" % (standby["name"], params.endpoint),
                )
            if target_timeline != "latest":
                raise ConnectionFailure(
                    "timeline",
                    "%s has recovery_target_timeline=%s; it must be 'latest' to follow a promotion"
                    % (standby["name"], target_timeline),
                )
            wanted = follow_conninfo(
                conninfo, self.module.params["primary_host"], self.module.params["primary_port"], slot
            )
            state = {"slot": slot, "conninfo_before": mask_conninfo(conninfo), "conninfo_after": mask_conninfo(wanted)}
            conninfo_changes = not same_conninfo(wanted, conninfo)
            state["changed"] = conninfo_changes or slot_now != slot
            if conninfo_changes:
                self.run(conn, params, SET_CONNINFO, (wanted,), (mask_conninfo(wanted),))
            if slot_now != slot:
                self.run(conn, params, SET_SLOT, (slot,))
            if state["changed"]:
                self.run(conn, params, RELOAD)
            state["replay_paused"] = bool(paused)
            if paused and self.module.params["resume_replay"]:
                self.run(conn, params, RESUME)
                state.update(changed=True, replay_paused=False, replay_resumed=True)
            self.standbys[standby["name"]] = state
        finally:
            close_quietly(conn)


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
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)

    follower = Follower(module)
    try:
        if module.params["create_slots"]:
            follower.ensure_slots([slot_name_for(standby["name"]) for standby in module.params["standbys"]])
        for standby in module.params["standbys"]:
            follower.follow(standby)
    except ConnectionFailure as failure:
        module.fail_json(msg=str(failure), executed_queries=follower.executed, standbys=follower.standbys)
    changed = bool(follower.slots_created) or any(state["changed"] for state in follower.standbys.values())
    diff = {
        "before": "".join("%s: %s\n" % (name, state["conninfo_before"]) for name, state in follower.standbys.items()),
        "after": "".join("%s: %s\n" % (name, state["conninfo_after"]) for name, state in follower.standbys.items()),
    }
    module.exit_json(
        changed=changed,
        standbys=follower.standbys,
        slots_created=follower.slots_created,
        executed_queries=follower.executed,
        diff=diff,
    )


if __name__ == "__main__":
    main()
