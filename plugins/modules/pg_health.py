#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_health
short_description: Health snapshot of PostgreSQL servers, graded OK / WARNING / CRITICAL like check_postgres
version_added: 0.1.0
description:
  - Reads one PostgreSQL server (or, with O(servers), a whole fleet concurrently) and grades what it
    finds against thresholds, with the actions and OK / WARNING / CRITICAL semantics of check_postgres.
  - "Checks: C(connection); C(backends) (client connections against max_connections minus
    superuser_reserved_connections and reserved_connections); C(txn_idle) (sessions idle in
    transaction); C(txn_time) (open transactions); C(query_time) (running queries); C(lockwait)
    (sessions waiting for a lock, grouped into blocking chains with pg_blocking_pids); C(hot_standby_delay)
    (on a standby its replay backlog in bytes and seconds and its WAL receiver; on a primary each
    replica's replay lag in bytes and seconds); C(replication_slots) (WAL retained by each slot, active
    or not; lost slots); C(txn_wraparound) (transaction and multixact ID age per database);
    C(sequence) (sequences near exhaustion, bounded by the type of the column they feed);
    C(deadlocks), C(conflicts) and C(checksum_failures) (pg_stat_database counters)."
  - "Two checks run only when asked for in O(checks), for triage: C(invalid_indexes) (indexes of
    O(login_db) left invalid by a failed CREATE INDEX or REINDEX CONCURRENTLY; one being built right
    now is not counted) and C(logins) (client and replication sessions by role, superuser or not,
    and client address; always OK, whether a login is expected is the caller's policy)."
  - Round trips. One connection and one statement read every cluster-wide figure and the sequences of
    O(login_db). Sequences are per database, so the C(sequence) check costs one more connection and one
    statement for each further database it reads (see O(databases)). Leave C(sequence) out of O(checks)
    for a strict single round trip.
  - A figure at or above a threshold reaches that level. An unreachable server is CRITICAL
    (C(connection)) and is a result, not a failure, unless O(fail_on) says otherwise.
  - Read-only. The session is opened with C(default_transaction_read_only=on) and a server-side
    C(statement_timeout) equal to O(query_timeout), sent in the startup packet (no extra round trip).
    Never reports C(changed).
  - Sees everything as a superuser or a member of C(pg_monitor); the C(sequence) check only reads
    sequences the login may C(SELECT) or C(USAGE).
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
  - penguinmails.dbops.fleet
options:
  checks:
    description:
      - Which checks to run. C(connection) always runs.
      - C(invalid_indexes) and C(logins) are not in the default list; add them to run them.
    type: list
    elements: str
    choices: [connection, backends, txn_idle, txn_time, query_time, lockwait, hot_standby_delay,
              replication_slots, txn_wraparound, sequence, deadlocks, conflicts, checksum_failures,
              invalid_indexes, logins]
    default: [connection, backends, txn_idle, txn_time, query_time, lockwait, hot_standby_delay,
              replication_slots, txn_wraparound, sequence, deadlocks, conflicts, checksum_failures]
  databases:
    description:
      - Databases whose sequences the C(sequence) check reads.
      - When not set, every database that accepts connections and is not a template.
      - Other checks are cluster-wide and read every database regardless (wraparound ages and
        pg_stat_database counters come from shared catalogs).
      - A listed database that does not exist or refuses connections gives an UNKNOWN finding.
    type: list
    elements: str
  fail_on:
    description:
      - V(never) reports and never fails, so a triage play can read every result.
      - V(critical) fails when the overall status is CRITICAL (an unreachable server included).
      - V(warning) fails when it is WARNING or CRITICAL.
      - UNKNOWN findings (a check that could not be evaluated) never fail the task.
      - In fleet mode the task fails when any server reaches the level; RV(servers) is still returned.
    type: str
    choices: [never, warning, critical]
    default: never
  thresholds:
    description:
      - Warning and critical levels per check. Set a level to V(null) to disable it.
      - "Give only what differs from the defaults, for example C({query_time: {warning: 30}})."
      - Counters (C(deadlocks), C(conflicts), C(checksum_failures)) count since pg_stat_database
        was last reset (returned as C(stats_reset)); set them against your own baseline.
    type: dict
    suboptions:
      backends:
        description: Percent of usable connection slots in use (max_connections minus reserved slots).
        type: dict
        suboptions:
          warning:
            description: Warning level in percent.
            type: float
            default: 80.0
          critical:
            description: Critical level in percent.
            type: float
            default: 90.0
      txn_idle:
        description: Seconds a session has been idle in transaction.
        type: dict
        suboptions:
          warning:
            description: Warning level in seconds.
            type: float
            default: 60.0
          critical:
            description: Critical level in seconds.
            type: float
            default: 300.0
      txn_time:
        description: Seconds a transaction has been open.
        type: dict
        suboptions:
          warning:
            description: Warning level in seconds.
            type: float
            default: 300.0
          critical:
            description: Critical level in seconds.
            type: float
            default: 1800.0
      query_time:
        description: Seconds one query has been running (the seed's alert is a query over 5 s).
        type: dict
        suboptions:
          warning:
            description: Warning level in seconds.
            type: float
            default: 5.0
          critical:
            description: Critical level in seconds.
            type: float
            default: 60.0
      lockwait:
        description: Seconds a session has waited for a lock (pg_locks.waitstart from PostgreSQL 14).
        type: dict
        suboptions:
          warning:
            description: Warning level in seconds.
            type: float
            default: 10.0
          critical:
            description: Critical level in seconds.
            type: float
            default: 60.0
      hot_standby_delay:
        description:
          - Replication delay. Bytes of WAL not yet replayed, and seconds of replay delay.
          - On a standby the delay in seconds is the time since it last replayed a transaction while WAL
            is waiting to be replayed (0 when nothing waits, so an idle primary does not look like lag).
          - On a primary it is the replica's C(replay_lag) from pg_stat_replication.
          - Each dimension is graded on its own; the worse one wins.
        type: dict
        suboptions:
          warning:
            description: Warning level in bytes (units like V(64MB) accepted, 1MB = 1048576 bytes).
            type: bytes
            default: 64MB
          critical:
            description: Critical level in bytes.
            type: bytes
            default: 1GB
          warning_seconds:
            description: Warning level in seconds.
            type: float
            default: 60.0
          critical_seconds:
            description: Critical level in seconds.
            type: float
            default: 300.0
      replication_slots:
        description:
          - Bytes of WAL a replication slot retains. A slot whose C(wal_status) is C(lost) is CRITICAL,
            C(unreserved) at least WARNING.
        type: dict
        suboptions:
          warning:
            description: Warning level in bytes (units like V(1GB) accepted).
            type: bytes
            default: 1GB
          critical:
            description: Critical level in bytes.
            type: bytes
            default: 10GB
      txn_wraparound:
        description: Age in transactions of a database's oldest unfrozen transaction or multixact ID.
        type: dict
        suboptions:
          warning:
            description: Warning level in transactions (wraparound is at about 2.1 billion).
            type: int
            default: 1300000000
          critical:
            description: Critical level in transactions.
            type: int
            default: 1400000000
      sequence:
        description:
          - Percent of a sequence's values used, up to the smaller of its maximum and the maximum of
            the column it feeds. Cycling sequences are not graded.
        type: dict
        suboptions:
          warning:
            description: Warning level in percent.
            type: float
            default: 85.0
          critical:
            description: Critical level in percent.
            type: float
            default: 95.0
      deadlocks:
        description: Deadlocks per database since the statistics were reset.
        type: dict
        suboptions:
          warning:
            description: Warning level (count).
            type: int
            default: 100
          critical:
            description: Critical level (count); disabled by default.
            type: int
      conflicts:
        description: Queries cancelled by recovery conflicts per database (standbys) since the statistics were reset.
        type: dict
        suboptions:
          warning:
            description: Warning level (count).
            type: int
            default: 100
          critical:
            description: Critical level (count); disabled by default.
            type: int
      checksum_failures:
        description: Data page checksum failures per database since the statistics were reset.
        type: dict
        suboptions:
          warning:
            description: Warning level (count); disabled by default.
            type: int
          critical:
            description: Critical level (count); any failure means corrupted pages.
            type: int
            default: 1
      invalid_indexes:
        description: Invalid indexes in O(login_db).
        type: dict
        suboptions:
          warning:
            description: Warning level (count).
            type: int
            default: 1
          critical:
            description: Critical level (count); disabled by default.
            type: int
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
seealso:
  - module: penguinmails.dbops.pg_node_info
  - name: check_postgres
    description: The Nagios plugin whose actions and thresholds this module follows.
    link: https://bucardo.org/check_postgres/
"""

EXAMPLES = r"""
- name: Health of this host's PostgreSQL server, graded
  penguinmails.dbops.pg_health:
    login_host: "{{ ansible_host }}"
    login_port: "{{ pg_port }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
  delegate_to: localhost
  register: health

- name: Say what is wrong
  ansible.builtin.debug:
    msg: "{{ health.problems | map(attribute='message') | list }}"
  when: health.status != 'OK'

- name: Fleet mode - every server of the oltp tier from one task, OLTP thresholds, stop on CRITICAL
  penguinmails.dbops.pg_health:
    servers: "{{ groups['oltp'] | penguinmails.dbops.fleet_servers(hostvars) }}"
    connect_timeout: 2
    query_timeout: 5
    thresholds:
      query_time: {warning: 5, critical: 30}
      txn_idle: {warning: 30, critical: 120}
    fail_on: critical
  run_once: true
  delegate_to: localhost
  register: fleet_health

- name: Servers not OK, keyed by inventory hostname
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.status }}"
  loop: "{{ fleet_health.servers | dict2items | rejectattr('value.status', 'eq', 'OK') }}"
  run_once: true

- name: Only the cheap single-round-trip checks, for a tight loop during an incident
  penguinmails.dbops.pg_health:
    login_host: db1.example.com
    login_user: dbops_admin
    login_password: "{{ vault_dbops_password }}"
    checks: [backends, txn_idle, query_time, lockwait, hot_standby_delay]
    connect_timeout: 2
"""

RETURN = r"""
status:
  description:
    - Overall status, the worst finding; in fleet mode the worst over all servers.
    - One of C(OK), C(UNKNOWN), C(WARNING), C(CRITICAL), from best to worst.
  returned: always
  type: str
  sample: WARNING
problems:
  description:
    - The findings that are not OK (same keys as RV(findings)). In fleet mode, those of every server,
      each with a C(server) key naming it.
  returned: always
  type: list
  elements: dict
  sample: [{"check": "txn_idle", "status": "WARNING", "value": 75.2, "threshold": 60.0, "unit": "s",
            "subject": "pid 4242", "message": "pid 4242 (app@penguinmails_oltp) idle in transaction for 75.2 s"}]
elapsed_ms:
  description: Time for the whole check (fleet mode, the whole sweep) in milliseconds.
  returned: always
  type: float
  sample: 21.4
findings:
  description:
    - Every finding, in check order. A check with nothing to report gives one OK finding with its
      headline figure; a check with problems gives one finding per problem (session, blocking chain,
      replica, slot, database, sequence).
    - C(check) check name; C(status) OK, WARNING, CRITICAL or UNKNOWN; C(value) the figure graded;
      C(threshold) the level reached (for OK, the nearest level not reached; null when none);
      C(unit) of value and threshold (C(%), C(s), C(bytes), C(xids), C(count), C(ms));
      C(subject) what the finding is about (C(pid 4242), C(slot s1), C(replica oltp_2), ...);
      C(message) one readable line.
  returned: when O(servers) is not set
  type: list
  elements: dict
  sample: [{"check": "backends", "status": "OK", "value": 12.0, "threshold": 80.0, "unit": "%",
            "subject": null, "message": "3 of 25 usable connection slots in use (12.0%; ...)"}]
checks:
  description: Status of each check that ran, keyed by check name.
  returned: when O(servers) is not set
  type: dict
  sample: {"connection": "OK", "backends": "OK", "lockwait": "CRITICAL"}
figures:
  description:
    - The raw figures the findings were graded from, per check that ran.
    - C(backends) counts and settings (max_connections, superuser_reserved_connections,
      reserved_connections, usable_connections, client_backends, free_slots, percent_used, by state);
      C(txn_idle), C(txn_time), C(query_time) with C(count) and the C(top) 10 sessions (pid, user,
      database, application_name, client_addr, state, seconds, query preview of 100 characters);
      C(lockwait) with C(waits), C(blockers) and C(chains) (root, blocked, depth, longest_wait_seconds);
      C(hot_standby_delay) with C(standby) (receive/replay LSN, replay_backlog_bytes,
      replay_delay_seconds, replay_paused, receiver_status, and backlog_after_recheck when
      WAL not yet replayed was read again) and C(replicas);
      C(replication_slots); C(databases) (xid_age, mxid_age); C(sequences) per database
      (count and the 10 fullest); C(database_counters) (deadlocks, conflicts, checksum_failures,
      stats_reset); C(connect_ms); with the optional checks, C(invalid_indexes) (schema, index, table,
      is_unique, is_ready, being_built), C(logins) (user, superuser, client_addr, backend_type, sessions,
      pids, databases, applications) and C(current_database).
  returned: when O(servers) is not set
  type: dict
  sample: {"backends": {"client_backends": 3, "usable_connections": 25, "percent_used": 12.0}}
reachable:
  description: Whether the server accepted the connection and answered the health statement.
  returned: when O(servers) is not set
  type: bool
  sample: true
role:
  description: C(primary), C(standby), or C(down) when unreachable.
  returned: when O(servers) is not set
  type: str
  sample: primary
in_recovery:
  description: Result of pg_is_in_recovery(); null when unreachable.
  returned: when O(servers) is not set
  type: bool
  sample: false
server_version_num:
  description: The server's server_version_num; null when unreachable.
  returned: when O(servers) is not set
  type: int
  sample: 150010
endpoint:
  description: The host:port that was asked.
  returned: when O(servers) is not set
  type: str
  sample: 127.0.0.1:5432
conn_err_msg:
  description: Why the server could not be reached or did not answer; null when reachable.
  returned: when O(servers) is not set
  type: str
  sample: "connect to PostgreSQL at 127.0.0.1:5433 as dbops_admin failed (timeout): no answer within 2.0 s; ..."
conn_err_kind:
  description: Machine-readable failure kind (refused, timeout, auth, ...); null when reachable.
  returned: when O(servers) is not set
  type: str
  sample: timeout
databases_checked:
  description: Databases whose sequences were read.
  returned: when O(servers) is not set
  type: list
  elements: str
  sample: [penguinmails_oltp, postgres]
timing:
  description:
    - Cost of the check. C(connect_ms), C(query_ms) (the health statement), C(elapsed_ms),
      and the number of C(connections) opened and C(statements) sent (round trips after connecting).
  returned: when O(servers) is not set
  type: dict
  sample: {"connect_ms": 3.1, "query_ms": 9.8, "elapsed_ms": 14.0, "connections": 2, "statements": 2}
servers:
  description: Fleet mode, the result of each server keyed by name (see O(servers)).
  returned: when O(servers) is set
  type: dict
  sample: {"oltp_1": {"status": "OK", "role": "primary", "reachable": true},
           "oltp_2": {"status": "CRITICAL", "role": "down", "reachable": false}}
statuses:
  description: Fleet mode, the overall status of each server keyed by name.
  returned: when O(servers) is set
  type: dict
  sample: {"oltp_1": "OK", "oltp_2": "CRITICAL"}
unreachable_servers:
  description: Fleet mode, names of the servers that could not be reached (see O(servers)).
  returned: when O(servers) is set
  type: list
  elements: str
  sample: [oltp_2]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.findings import (
    UNKNOWN,
    finding,
    should_fail,
    worst,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.fleet import (
    fleet_targets,
    internal_error,
    run_fleet,
    servers_argument_spec,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.health import (
    CHECKS,
    DEFAULT_CHECKS,
    collect_health,
    failure_message,
    thresholds_argument_spec,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionParams,
    connection_argument_spec,
    connection_params,
    ensure_psycopg2,
)


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update(servers_argument_spec())
    spec.update(
        {
            "checks": {"type": "list", "elements": "str", "choices": list(CHECKS), "default": list(DEFAULT_CHECKS)},
            "databases": {"type": "list", "elements": "str"},
            "fail_on": {"type": "str", "choices": ["never", "warning", "critical"], "default": "never"},
            "thresholds": thresholds_argument_spec(),
        }
    )
    return spec


def checker(module: AnsibleModule):
    params = module.params

    def check(connection: ConnectionParams) -> dict:
        return collect_health(connection, params["checks"], params["thresholds"], params["databases"])

    return check


def run_single(module: AnsibleModule, base: ConnectionParams) -> None:
    result = checker(module)(base)
    result["elapsed_ms"] = result["timing"]["elapsed_ms"]
    if should_fail(result["status"], module.params["fail_on"]):
        module.fail_json(msg=failure_message(base.endpoint, result), changed=False, **result)
    module.exit_json(changed=False, **result)


def run_fleet_mode(module: AnsibleModule, base: ConnectionParams) -> None:
    try:
        targets = fleet_targets(base, module.params["servers"])
    except ValueError as error:
        module.fail_json(msg=str(error))
    sweep = run_fleet(targets, checker(module), module.params["concurrency"], on_error=internal_error_result)
    servers = sweep["servers"]
    statuses = {name: result["status"] for name, result in servers.items()}
    problems = [dict(found, server=name) for name, result in servers.items() for found in result["problems"]]
    result = {
        "changed": False,
        "servers": servers,
        "statuses": statuses,
        "status": worst(statuses.values()) if statuses else "OK",
        "problems": problems,
        "unreachable_servers": [name for name, result in servers.items() if not result.get("reachable")],
        "elapsed_ms": sweep["elapsed_ms"],
    }
    failing = [name for name, status in statuses.items() if should_fail(status, module.params["fail_on"])]
    if failing:
        lines = "; ".join(failure_message(name, servers[name]) for name in failing)
        summary = "%d of %d servers fail the health check: %s" % (len(failing), len(servers), lines)
        module.fail_json(msg=summary, **result)
    module.exit_json(**result)


def internal_error_result(connection: ConnectionParams, error: BaseException) -> dict:
    """A bug while checking one server: that server is UNKNOWN, the sweep goes on."""
    result = internal_error(connection, error)
    problem = finding("connection", UNKNOWN, None, None, result["conn_err_msg"])
    result.update(status=UNKNOWN, role="down", findings=[problem], problems=[problem], checks={"connection": UNKNOWN})
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ensure_psycopg2(module)
    base = connection_params(module)
    if module.params["servers"] is not None:
        run_fleet_mode(module, base)
    else:
        run_single(module, base)


if __name__ == "__main__":
    main()
