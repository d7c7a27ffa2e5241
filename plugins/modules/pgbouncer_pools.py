#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pgbouncer_pools
short_description: PgBouncer pool usage with exhaustion findings, next to the stored pool metrics
version_added: 0.1.0
description:
  - The runbook's "monitor pools". Reads C(SHOW POOLS), C(DATABASES), C(LISTS), C(CONFIG), C(STATS)
    and C(VERSION) from PgBouncer's admin console, by column name (PgBouncer 1.18 to 1.25).
  - Per pool (database and user) reports active and waiting clients, server connections against
    C(pool_size) and C(reserve_pool), utilization (busy server connections in percent of
    C(pool_size)) and the longest wait (C(maxwait) plus C(maxwait_us)).
  - Grades findings OK, WARNING or CRITICAL like check_postgres, each
    C({check, status, value, threshold, unit, subject, message, pool, database}), the shape of
    pg_health's findings. Checks are C(waiting_clients),
    C(maxwait), C(utilization) (the runbook alerts at 90%), C(database_state) (paused or disabled
    databases), C(client_connections) (against C(max_client_conn)) and C(connection) when
    PgBouncer cannot be reached.
  - An unreachable PgBouncer is a result (RV(reachable=false) and a CRITICAL finding), not a
    failure, unless O(fail_on) says so.
  - With O(metrics_db), also runs the runbook's "check connection pool metrics" query on the
    C(connection_pool_metrics) and C(connection_pool_config) tables (last O(metrics_window) seconds)
    when they exist, so stored metrics show side by side with the live ones.
  - With O(record_sample=true), records the live figures as one sample per PgBouncer database into
    those tables (in one transaction). This is the only path that changes anything.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.pgbouncer
options:
  waiting_warning:
    description: Waiting clients (C(cl_waiting)) in one pool from which the pool is WARNING.
    type: int
    default: 1
  waiting_critical:
    description: Waiting clients in one pool from which the pool is CRITICAL.
    type: int
    default: 10
  maxwait_warning:
    description: Seconds the oldest waiting client has waited from which the pool is WARNING.
    type: float
    default: 1
  maxwait_critical:
    description: Seconds the oldest waiting client has waited from which the pool is CRITICAL.
    type: float
    default: 5
  utilization_warning:
    description: Busy server connections in percent of C(pool_size) from which the pool is WARNING.
    type: float
    default: 80
  utilization_critical:
    description: Utilization in percent from which the pool is CRITICAL (the runbook alerts at 90%).
    type: float
    default: 90
  client_connections_warning:
    description: Client connections in percent of C(max_client_conn) from which PgBouncer is WARNING.
    type: float
    default: 80
  client_connections_critical:
    description: Client connections in percent of C(max_client_conn) from which PgBouncer is CRITICAL.
    type: float
    default: 95
  fail_on:
    description:
      - Fail the task when the overall status is at least V(critical) or V(warning); V(never) only
        reports.
    type: str
    default: never
    choices: [critical, warning, never]
  metrics_db:
    description:
      - PostgreSQL database that holds the runbook's C(connection_pool_metrics) and
        C(connection_pool_config) tables. Unset skips stored metrics.
      - Missing tables or an unreachable database are reported in RV(metrics), never fatal,
        unless O(record_sample=true).
      - Takes the PostgreSQL connection options of the other modules of this collection; one left
        out takes the default its description names, and O(metrics_db.connect_timeout) and
        O(metrics_db.query_timeout) take this module's O(connect_timeout) and O(query_timeout).
        No environment variable applies.
    type: dict
    suboptions:
      login_host:
        description: Host name or IP address of the PostgreSQL server; empty (the default) means the Unix socket.
        type: str
      login_port:
        description: TCP port of the server (default 5432).
        type: int
      login_user:
        description:
          - Role to log in as (default C(postgres)); needs SELECT (and INSERT, UPDATE for O(record_sample))
            on the tables.
        type: str
      login_password:
        description: Password of O(metrics_db.login_user). Never logged or returned.
        type: str
      login_db:
        description: Database that holds the tables (default C(postgres)).
        type: str
      login_unix_socket:
        description: Directory of the server's Unix socket; overrides O(metrics_db.login_host) when set.
        type: str
      ssl_mode:
        description: libpq C(sslmode) (default V(prefer)).
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: CA certificate file that must have signed the server's certificate (libpq C(sslrootcert)).
        type: path
        aliases: [ssl_rootcert]
      connect_timeout:
        description: Seconds to wait for the connection, enforced on the client side; from 0.1 to 3600.
        type: float
      query_timeout:
        description: Seconds each statement may take, enforced on the client side; from 0.1 to 3600.
        type: float
      target_session_attrs:
        description: libpq C(target_session_attrs) (default V(any)); V(read-write) refuses a standby.
        type: str
        choices: [any, read-write, read-only, primary, standby, prefer-standby]
  metrics_schema:
    description: Schema of the metrics tables.
    type: str
    default: public
  metrics_window:
    description: Seconds of stored metrics to return; the runbook looks at the last 5 minutes.
    type: float
    default: 300
  metrics_limit:
    description: Most stored metric rows to return, newest first.
    type: int
    default: 500
  record_sample:
    description:
      - Record the live figures into the metrics tables of O(metrics_db), one row per PgBouncer
        database, creating or updating its C(connection_pool_config) row (tier, pool size, reserve).
      - Every run records a new sample, so it reports C(changed=true).
      - Fails when the tables are missing or the write fails; skipped (with a warning) when
        PgBouncer cannot be reached.
    type: bool
    default: false
  pool_tiers:
    description:
      - Tier of each PgBouncer database for new C(connection_pool_config) rows, a mapping of
        database name to tier name (see the examples). A database not listed keeps the tier of its
        existing row, or is filed under its own name.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Reads the same; with O(record_sample) returns the statements it would run and writes nothing.
  diff_mode:
    support: none
    description: Samples are appended, not configured.
"""

EXAMPLES = r"""
- name: Monitor pools (the runbook's first look at a pool exhaustion)
  penguinmails.dbops.pgbouncer_pools:
    pgbouncer_host: "{{ ansible_host }}"
    pgbouncer_port: "{{ pgbouncer_port }}"
    pgbouncer_user: "{{ pgbouncer_admin_user }}"
    pgbouncer_password: "{{ pgbouncer_admin_password }}"
  delegate_to: localhost
  register: pools

- name: Show the exhausted pools
  ansible.builtin.debug:
    msg: "{{ pools.findings | selectattr('status', 'ne', 'OK') | map(attribute='message') | list }}"

- name: Record a sample and read the last 5 minutes of stored metrics
  penguinmails.dbops.pgbouncer_pools:
    pgbouncer_host: 127.0.0.1
    pgbouncer_port: 6432
    pgbouncer_user: pgbouncer_admin
    pgbouncer_password: "{{ vault_pgbouncer_password }}"
    metrics_db:
      login_host: 127.0.0.1
      login_user: dbops_admin
      login_password: "{{ vault_dbops_password }}"
      login_db: penguinmails_oltp
    record_sample: true
    pool_tiers:
      penguinmails_oltp: oltp
      penguinmails_olap: olap
    fail_on: critical
"""

RETURN = r"""
reachable:
  description: Whether PgBouncer's admin console answered.
  returned: always
  type: bool
  sample: true
endpoint:
  description: The PgBouncer host:port that was asked.
  returned: always
  type: str
  sample: 127.0.0.1:6432
conn_err_msg:
  description: Why PgBouncer could not be reached; null when reachable.
  returned: always
  type: str
  sample: "connect to PgBouncer at 127.0.0.1:6432 as pgbouncer failed (refused): ..."
version:
  description: SHOW VERSION of PgBouncer.
  returned: when reachable
  type: str
  sample: PgBouncer 1.18.0
status:
  description: Worst status of all findings, OK, WARNING or CRITICAL.
  returned: always
  type: str
  sample: CRITICAL
findings:
  description:
    - One entry per check and pool, C(check), C(status) (OK, WARNING, CRITICAL), C(value),
      C(threshold) (the one crossed, or the warning threshold when OK), C(unit), C(subject)
      (the pool, database or endpoint concerned), C(message), C(pool) (C(database/user) or null)
      and C(database).
  returned: always
  type: list
  elements: dict
  sample: [{"check": "utilization", "status": "CRITICAL", "value": 100.0, "threshold": 90.0,
            "message": "pool penguinmails_oltp/app uses 3 of 3 server connections (100.0%, reserve 1)",
            "pool": "penguinmails_oltp/app", "database": "penguinmails_oltp"}]
pools:
  description:
    - Per pool, database, user, pool_mode, cl_active, cl_waiting, cl_cancel_req, the server
      connection states (sv_active, sv_active_cancel, sv_being_canceled, sv_idle, sv_used,
      sv_tested, sv_login, zero when the PgBouncer version lacks the column), server_connections,
      pool_size, reserve_pool, capacity, utilization_pct, maxwait, maxwait_us and maxwait_seconds.
  returned: always
  type: list
  elements: dict
  sample: [{"database": "penguinmails_oltp", "user": "app", "cl_active": 3, "cl_waiting": 5,
            "sv_active": 3, "pool_size": 3, "utilization_pct": 100.0, "maxwait_seconds": 2.5}]
databases:
  description: SHOW DATABASES rows as PgBouncer returned them (no passwords are part of them).
  returned: always
  type: list
  elements: dict
lists:
  description: SHOW LISTS as a mapping of list name to item count.
  returned: always
  type: dict
  sample: {"used_clients": 12, "free_clients": 38}
stats:
  description: SHOW STATS rows, per database.
  returned: always
  type: list
  elements: dict
config:
  description: The pool-related settings of SHOW CONFIG (pool_mode, max_client_conn, default_pool_size, ...).
  returned: always
  type: dict
  sample: {"max_client_conn": "100", "default_pool_size": "20", "pool_mode": "transaction"}
metrics:
  description:
    - The runbook's stored metrics. C(queried) says whether O(metrics_db) was given and answered,
      C(tables_present) whether both tables exist, C(rows) the runbook query's rows (tier,
      pool_name, active_connections, idle_connections, connection_usage_rate, pending_acquires,
      max_wait_seconds, collected_at), newest first, C(error) why they could not be read,
      C(window_seconds) and C(endpoint).
  returned: always
  type: dict
  sample: {"queried": true, "tables_present": true, "rows": [], "error": null, "window_seconds": 300.0}
sample:
  description:
    - With O(record_sample), the rows recorded (in check mode, that would be), one per PgBouncer
      database, and C(recorded) whether they were written.
  returned: always
  type: dict
  sample: {"recorded": true,
           "rows": [{"pool_name": "penguinmails_oltp", "active_connections": 3, "pending_acquires": 5}]}
executed_queries:
  description: The statements that recorded the sample, parameters rendered. Empty otherwise and in check mode.
  returned: always
  type: list
  elements: str
planned_queries:
  description: In check mode with O(record_sample), the statements that would have recorded the sample.
  returned: always
  type: list
  elements: str
"""


from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.findings import OK, overall_status, should_fail
from ansible_collections.penguinmails.dbops.plugins.module_utils.node_info import json_safe
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import (
    admin_params,
    pgbouncer_argument_spec,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.pools import (
    Thresholds,
    metrics_tables_present,
    observe_pools,
    read_metrics,
    sample_rows,
    write_sample,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    TIMEOUT_OPTIONS,
    ConnectionFailure,
    ConnectionParams,
    close_quietly,
    connect,
    connection_entry_spec,
    connection_params,
    ensure_psycopg2,
)


def argument_spec() -> dict:
    spec = pgbouncer_argument_spec()
    spec.update(
        waiting_warning={"type": "int", "default": 1},
        waiting_critical={"type": "int", "default": 10},
        maxwait_warning={"type": "float", "default": 1.0},
        maxwait_critical={"type": "float", "default": 5.0},
        utilization_warning={"type": "float", "default": 80.0},
        utilization_critical={"type": "float", "default": 90.0},
        client_connections_warning={"type": "float", "default": 80.0},
        client_connections_critical={"type": "float", "default": 95.0},
        fail_on={"type": "str", "default": "never", "choices": ["critical", "warning", "never"]},
        metrics_db={"type": "dict", "options": connection_entry_spec()},
        metrics_schema={"type": "str", "default": "public"},
        metrics_window={"type": "float", "default": 300.0},
        metrics_limit={"type": "int", "default": 500},
        record_sample={"type": "bool", "default": False},
        pool_tiers={"type": "dict", "default": {}},
    )
    return spec


def metrics_params(module: AnsibleModule) -> ConnectionParams:
    """metrics_db's connection; its timeouts default to the module's own."""
    options = dict(module.params["metrics_db"])
    for option in TIMEOUT_OPTIONS:
        if options.get(option) is None:
            options[option] = module.params[option]
    return connection_params(module, options=options)


def stored_metrics(module: AnsibleModule, live: dict, result: dict) -> None:
    """Record a sample when asked, then read the runbook's metrics query; fills result in place."""
    metrics = {"queried": False, "tables_present": False, "rows": [], "error": None}
    metrics["window_seconds"] = module.params["metrics_window"]
    result.update(metrics=metrics, sample={"recorded": False, "rows": []})
    result.update(executed_queries=[], planned_queries=[])
    if not module.params["metrics_db"]:
        return
    params = metrics_params(module)
    schema = module.params["metrics_schema"]
    metrics["endpoint"] = params.endpoint
    conn = None
    try:
        conn = connect(params)
        metrics["tables_present"] = metrics_tables_present(conn, params, schema)
        metrics["queried"] = True
        if module.params["record_sample"]:
            sample_into(module, live, result, conn, params)
        if metrics["tables_present"]:
            metrics["rows"] = read_metrics(
                conn, params, schema, module.params["metrics_window"], module.params["metrics_limit"]
            )
    except ConnectionFailure as failure:
        metrics["error"] = str(failure)
        if module.params["record_sample"] and live["reachable"] and not result["sample"]["recorded"]:
            fail(module, "recording the pool sample failed: %s" % failure, result)
    finally:
        close_quietly(conn)


def sample_into(module: AnsibleModule, live: dict, result: dict, conn, params: ConnectionParams) -> None:
    schema = module.params["metrics_schema"]
    if not live["reachable"]:
        module.warn("PgBouncer at %s is unreachable: no pool sample recorded" % live["endpoint"])
        return
    if not result["metrics"]["tables_present"]:
        fail(
            module,
            "record_sample needs the tables %s.connection_pool_config and %s.connection_pool_metrics in "
            "database %s at %s; create them with roles/lab/files/pool_metrics.sql"
            % (schema, schema, params.dbname, params.endpoint),
            result,
        )
    rows = sample_rows(live["pools"], live["_limits"], module.params["pool_tiers"])
    outcome = write_sample(conn, params, schema, rows, module.check_mode)
    result["sample"] = {"recorded": outcome["recorded"], "rows": rows}
    result["executed_queries"] = outcome["executed_queries"]
    result["planned_queries"] = outcome["planned_queries"]
    result["changed"] = bool(rows)


def fail(module: AnsibleModule, message: str, result: dict) -> None:
    module.fail_json(msg=message, **json_safe(result))


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[("record_sample", True, ("metrics_db",))],
    )
    ensure_psycopg2(module)
    thresholds = Thresholds.from_module_params(module.params)
    try:
        thresholds.validate()
    except ValueError as error:
        module.fail_json(msg=str(error))

    live = observe_pools(connection_params(module, admin_params), thresholds)
    result = {key: value for key, value in live.items() if not key.startswith("_")}
    result["changed"] = False
    result["status"] = overall_status(result["findings"])
    stored_metrics(module, live, result)

    result = json_safe(result)
    if should_fail(result["status"], module.params["fail_on"]):
        problems = [item["message"] for item in result["findings"] if item["status"] != OK]
        module.fail_json(msg="PgBouncer pools are %s: %s" % (result["status"], "; ".join(problems)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
