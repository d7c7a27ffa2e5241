#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_write_probe
short_description: Prove a tier takes writes (through PgBouncer) and that its standbys replay them
version_added: 0.1.0
description:
  - Upserts one heartbeat row into a probe table through the endpoint it connects to (normally
    PgBouncer, the way the application writes), then waits until every server in O(replicas)
    shows that row, i.e. replays the new primary's WAL.
  - The probe row is a heartbeat, not application data - the same row (O(probe_id)) is overwritten
    on each run - so the module reports C(changed=false), like a monitoring check.
  - In check mode it only runs C(SELECT 1) through the endpoint and reads the replicas; nothing is written,
    and RV(executed_queries) lists the statements a normal run would send.
  - The table is created when missing (C(CREATE TABLE IF NOT EXISTS)), which needs the CREATE privilege
    on the schema; create it once in advance when the login has no such right.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  table:
    description: Probe table name.
    type: str
    default: dbops_write_probe
  schema:
    description: Schema of the probe table.
    type: str
    default: public
  probe_id:
    description: Key of the heartbeat row.
    type: str
    default: penguinmails.dbops
  replicas:
    description: Servers that must show the written row.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Inventory name.
        type: str
        required: true
      login_host:
        description: Host the controller connects to.
        type: str
        required: true
      login_port:
        description: Port.
        type: int
        required: true
      failover_candidate:
        description:
          - Ignored; accepted so the output of the P(penguinmails.dbops.tier_members#filter) filter
            can be passed as it is.
        type: bool
        default: true
  replica_login_user:
    description: Login for the replicas; defaults to O(login_user).
    type: str
  replica_login_password:
    description: Password for O(replica_login_user); defaults to O(login_password).
    type: str
  replica_login_db:
    description: Database on the replicas; defaults to the database behind O(login_db) with the same name.
    type: str
  visibility_timeout:
    description: Seconds to wait for the row to appear on every replica, from 0.1 to 3600.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    description: Plans instead of acting; reports what it would do and changes nothing.
  diff_mode:
    support: none
    description: Nothing to show as a diff.
"""

EXAMPLES = r"""
- name: Write through PgBouncer, see it on the standbys
  penguinmails.dbops.pg_write_probe:
    login_host: "{{ hostvars[groups['pgbouncer'][0]].ansible_host }}"
    login_port: "{{ hostvars[groups['pgbouncer'][0]].pgbouncer_port }}"
    login_db: penguinmails_oltp
    login_user: "{{ lab_app_user }}"
    login_password: "{{ lab_app_password }}"
    replicas: "{{ plan.decision.standbys_to_repoint | penguinmails.dbops.tier_members(hostvars) }}"
    replica_login_user: "{{ dbops_login_user }}"
    replica_login_password: "{{ dbops_login_password }}"
    probe_id: "{{ incident_id }}"
  delegate_to: localhost
"""

RETURN = r"""
written:
  description: Whether the row was written (false in check mode).
  returned: always
  type: bool
  sample: true
written_at:
  description: The row's timestamp as the primary recorded it (ISO 8601).
  returned: when written
  type: str
  sample: "2026-11-26T18:20:01.123456+00:00"
write_ms:
  description: Milliseconds for connect plus write through the endpoint.
  returned: always
  type: float
  sample: 12.5
visible_on:
  description: Per replica, whether the row (at least as new as RV(written_at)) appeared in time.
  returned: always
  type: dict
  sample: {"oltp-3": true}
visible_ms:
  description: Milliseconds until the row was visible on every replica.
  returned: when written
  type: float
  sample: 40.2
executed_queries:
  description: Statements executed through the endpoint (in check mode, the ones that would be).
  returned: always
  type: list
  elements: str
  sample: ["INSERT INTO \"public\".\"dbops_write_probe\" ..."]
"""

import dataclasses
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import member_entry_spec
from ansible_collections.penguinmails.dbops.plugins.module_utils.fleet import server_params
from ansible_collections.penguinmails.dbops.plugins.module_utils.node_info import json_safe
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    StatementRunner,
    check_module_timeouts,
    close_quietly,
    connect,
    connection_argument_spec,
    connection_params,
    ensure_psycopg2,
    execute,
    quote_ident,
    sql,
)


def probe_statements(schema: str, table: str):
    name = sql.SQL("{}.{}").format(quote_ident(schema), quote_ident(table))
    create = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (probe_id text PRIMARY KEY, written_at timestamptz NOT NULL, written_by text)"
    ).format(name)
    upsert = sql.SQL(
        "INSERT INTO {} (probe_id, written_at, written_by) VALUES (%s, clock_timestamp(), current_user) "
        "ON CONFLICT (probe_id) DO UPDATE SET written_at = EXCLUDED.written_at, written_by = EXCLUDED.written_by "
        "RETURNING written_at"
    ).format(name)
    read = sql.SQL("SELECT written_at FROM {} WHERE probe_id = %s").format(name)
    return create, upsert, read


def write(module, params, statements):
    """(when the row was written, or None in check mode; the statements run, or planned in check mode)."""
    create, upsert, _read = statements
    runner = StatementRunner(module.check_mode)
    conn = connect(params)
    try:
        if module.check_mode:
            execute(conn, params, "SELECT 1")  # the endpoint answers; nothing is written
        runner.run(conn, params, create)
        written = runner.run(conn, params, upsert, (module.params["probe_id"],))
        return (written.fetchone()[0] if written else None), runner.executed
    finally:
        close_quietly(conn)


def replica_shows(params, read, probe_id, written_at) -> bool:
    conn = None
    try:
        conn = connect(params)
        row = execute(conn, params, read, (probe_id,)).fetchone()
    except ConnectionFailure as failure:
        # A missing table on the replica simply means it has not replayed the CREATE yet.
        if failure.kind == "error" and "does not exist" in str(failure):
            return False
        raise
    finally:
        close_quietly(conn)
    return bool(row) and (written_at is None or row[0] >= written_at)


def wait_for_replicas(module, base, read, written_at):
    pending = {replica["name"]: replica for replica in module.params["replicas"]}
    visible = {name: False for name in pending}
    deadline = time.monotonic() + module.params["visibility_timeout"]
    while pending:
        for name, replica in list(pending.items()):
            params = server_params(base, replica)
            if replica_shows(params, read, module.params["probe_id"], written_at):
                visible[name] = True
                del pending[name]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return visible


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec.update(
        table={"type": "str", "default": "dbops_write_probe"},
        schema={"type": "str", "default": "public"},
        probe_id={"type": "str", "default": "penguinmails.dbops"},
        replicas={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": member_entry_spec(),
        },
        replica_login_user={"type": "str"},
        replica_login_password={"type": "str", "no_log": True},
        replica_login_db={"type": "str"},
        visibility_timeout={"type": "float", "default": 10.0},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    check_module_timeouts(module, ["visibility_timeout"])

    params = connection_params(module)
    replica_base = dataclasses.replace(
        params,
        user=module.params["replica_login_user"] or params.user,
        password=module.params["replica_login_password"] or params.password,
        dbname=module.params["replica_login_db"] or params.dbname,
    )
    statements = probe_statements(module.params["schema"], module.params["table"])
    result = {"changed": False, "written": False, "visible_on": {}, "executed_queries": []}
    try:
        started = time.monotonic()
        written_at, executed = write(module, params, statements)
        result.update(write_ms=round((time.monotonic() - started) * 1000, 1), executed_queries=executed)
        result["written"] = written_at is not None
        if written_at is not None:
            result["written_at"] = json_safe(written_at)
        started = time.monotonic()
        result["visible_on"] = wait_for_replicas(module, replica_base, statements[2], written_at)
        if written_at is not None:
            result["visible_ms"] = round((time.monotonic() - started) * 1000, 1)
    except ConnectionFailure as failure:
        module.fail_json(msg=str(failure), **result)
    missing = sorted(name for name, seen in result["visible_on"].items() if not seen)
    if missing and result["written"]:
        module.fail_json(
            msg="the probe write was not replayed on %s within %.0f s"
            % (", ".join(missing), module.params["visibility_timeout"]),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
