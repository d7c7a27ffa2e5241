#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_node_info
short_description: Role, timeline, WAL positions and replication state of one PostgreSQL server
version_added: 0.1.0
description:
  - Connects to one PostgreSQL server and reports what it says about itself, in one round trip.
  - Answers "is it up, is it primary or standby, how far along is it, who streams from it".
  - An unreachable server is a result (O(fail_on_unreachable=false)), not a failure, so an
    outage playbook can treat "down" as data. A hung server costs at most O(connect_timeout)
    (connect) or O(query_timeout) (query), enforced on the client side.
  - Read-only; never reports C(changed).
  - With O(servers) (fleet mode) one task checks a whole list of servers concurrently from the
    controller and returns RV(servers) keyed by inventory hostname; see the examples.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
  - penguinmails.dbops.fleet
options:
  fail_on_unreachable:
    description:
      - Fail the task when the server cannot be reached or does not answer.
      - In fleet mode, fail when any server in O(servers) cannot be reached; RV(servers) is still returned.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
"""

EXAMPLES = r"""
- name: Verify service status of every tier member
  penguinmails.dbops.pg_node_info:
    login_host: "{{ ansible_host }}"
    login_port: "{{ pg_port }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    connect_timeout: 2
  delegate_to: localhost
  register: node

- name: Stop when the server is a standby
  ansible.builtin.assert:
    that: node.role == 'primary'
    fail_msg: "{{ inventory_hostname }} is {{ node.role }}: {{ node.conn_err_msg | default('', true) }}"

- name: Fail outright if the server is down
  penguinmails.dbops.pg_node_info:
    login_host: db1.example.com
    login_user: dbops_admin
    login_password: "{{ vault_dbops_password }}"
    fail_on_unreachable: true

- name: Fleet mode - every PostgreSQL server of the inventory from one task on the controller
  penguinmails.dbops.pg_node_info:
    servers: "{{ groups['postgres'] | penguinmails.dbops.fleet_servers(hostvars) }}"
    connect_timeout: 2
    query_timeout: 5
  run_once: true
  delegate_to: localhost
  register: fleet

- name: Show the live role of each server, keyed by inventory hostname
  ansible.builtin.debug:
    msg: "{{ item.key }} is {{ item.value.role }}"
  loop: "{{ fleet.servers | dict2items }}"
  run_once: true
"""

RETURN = r"""
reachable:
  description: Whether the server accepted the connection and answered.
  returned: when O(servers) is not set
  type: bool
  sample: true
role:
  description: C(primary), C(standby), or C(down) when unreachable.
  returned: when O(servers) is not set
  type: str
  sample: standby
endpoint:
  description: The host:port that was asked.
  returned: when O(servers) is not set
  type: str
  sample: 127.0.0.1:5433
connect_latency_ms:
  description: Time to establish the connection in milliseconds; null when it failed.
  returned: when O(servers) is not set
  type: float
  sample: 3.4
elapsed_ms:
  description: Time for the whole check in milliseconds; in fleet mode, for the whole sweep.
  returned: always
  type: float
  sample: 5.1
conn_err_msg:
  description: Why the server could not be reached; null when reachable.
  returned: when O(servers) is not set
  type: str
  sample: "connect to PostgreSQL at 127.0.0.1:5433 as dbops_admin failed (refused): Connection refused; ..."
conn_err_kind:
  description: Machine-readable failure kind (refused, timeout, auth, missing_database, ...); null when reachable.
  returned: when O(servers) is not set
  type: str
  sample: refused
in_recovery:
  description: Result of pg_is_in_recovery(); null when unreachable.
  returned: when O(servers) is not set
  type: bool
  sample: false
server_version_num:
  description: The server's server_version_num.
  returned: when O(servers) is not set
  type: int
  sample: 150010
server_version:
  description: The server's version string.
  returned: when O(servers) is not set
  type: str
  sample: "15.10 (Debian 15.10-0+deb12u1)"
timeline_id:
  description: Timeline the primary writes on, or the newest timeline a standby has received or checkpointed.
  returned: when O(servers) is not set
  type: int
  sample: 3
current_lsn:
  description: Primary only, pg_current_wal_lsn().
  returned: when O(servers) is not set
  type: str
  sample: 0/3000148
received_lsn:
  description: Standby only, pg_last_wal_receive_lsn().
  returned: when O(servers) is not set
  type: str
  sample: 0/3000148
replay_lsn:
  description: Standby only, pg_last_wal_replay_lsn().
  returned: when O(servers) is not set
  type: str
  sample: 0/3000148
replay_paused:
  description: Standby only, whether WAL replay is paused.
  returned: when O(servers) is not set
  type: bool
  sample: false
replay_delay_bytes:
  description: Standby only, WAL received but not yet replayed, in bytes.
  returned: when O(servers) is not set
  type: int
  sample: 0
last_replay_timestamp:
  description: Standby only, commit time of the last replayed transaction (ISO 8601).
  returned: when O(servers) is not set
  type: str
  sample: "2026-11-26T18:00:00.123456+00:00"
synchronous_standby_names:
  description: The server's synchronous_standby_names setting.
  returned: when O(servers) is not set
  type: str
  sample: ANY 1 (oltp_2, oltp_3)
postmaster_start_time:
  description: When the server started (ISO 8601).
  returned: when O(servers) is not set
  type: str
  sample: "2026-11-26T17:59:00+00:00"
server_time:
  description: The server's now() (ISO 8601).
  returned: when O(servers) is not set
  type: str
  sample: "2026-11-26T18:00:00+00:00"
wal_receiver:
  description:
    - Standby only, the row of pg_stat_wal_receiver (status, sender_host, sender_port, slot_name,
      received_tli, flushed_lsn, last_msg_send_time, last_msg_receipt_time, seconds_since_last_message, ...).
    - Null on a primary or a standby whose WAL receiver is not running.
  returned: when O(servers) is not set
  type: dict
  sample: {"status": "streaming", "sender_host": "127.0.0.1", "sender_port": 5432, "slot_name": "oltp_2"}
replicas:
  description:
    - Servers streaming from this one (pg_stat_replication), with state, sync_state,
      LSNs, replay_lag_bytes, flush_lag_bytes and the lag intervals in seconds.
  returned: when O(servers) is not set
  type: list
  elements: dict
  sample: [{"application_name": "oltp_2", "state": "streaming", "sync_state": "quorum", "replay_lag_bytes": 0}]
replication_slots:
  description: Replication slots on this server with active flag, wal_status and retained_bytes.
  returned: when O(servers) is not set
  type: list
  elements: dict
  sample: [{"slot_name": "oltp_2", "slot_type": "physical", "active": true, "retained_bytes": 0}]
servers:
  description: Fleet mode, the result of each server keyed by name (see O(servers)).
  returned: when O(servers) is set
  type: dict
  sample: {"oltp_1": {"reachable": true, "role": "primary", "endpoint": "127.0.0.1:57101"},
           "oltp_2": {"reachable": false, "role": "down", "conn_err_kind": "timeout"}}
unreachable_servers:
  description: Fleet mode, names of the servers that could not be reached (see O(servers)).
  returned: when O(servers) is set
  type: list
  elements: str
  sample: [oltp_2]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.fleet import (
    fleet_targets,
    run_fleet,
    servers_argument_spec,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.node_info import collect_node_info
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionParams,
    connection_argument_spec,
    connection_params,
    ensure_psycopg2,
)


def run_fleet_mode(module: AnsibleModule, base: ConnectionParams) -> None:
    try:
        targets = fleet_targets(base, module.params["servers"])
    except ValueError as error:
        module.fail_json(msg=str(error))
    sweep = run_fleet(targets, collect_node_info, module.params["concurrency"])
    servers = sweep["servers"]
    unreachable = [name for name, info in servers.items() if not info.get("reachable")]
    result = {
        "changed": False,
        "servers": servers,
        "unreachable_servers": unreachable,
        "elapsed_ms": sweep["elapsed_ms"],
    }
    if unreachable and module.params["fail_on_unreachable"]:
        reasons = "; ".join("%s: %s" % (name, servers[name].get("conn_err_msg")) for name in unreachable)
        module.fail_json(msg="%d of %d servers unreachable: %s" % (len(unreachable), len(servers), reasons), **result)
    module.exit_json(**result)


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec["fail_on_unreachable"] = {"type": "bool", "default": False}
    argument_spec.update(servers_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)

    base = connection_params(module)
    if module.params["servers"] is not None:
        run_fleet_mode(module, base)
        return
    info = collect_node_info(base)
    if not info["reachable"] and module.params["fail_on_unreachable"]:
        module.fail_json(msg=info["conn_err_msg"], changed=False, **info)
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
