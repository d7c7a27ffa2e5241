#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_integrity
short_description: Find corrupt indexes, damaged heap pages and bad rows in one PostgreSQL database, read-only
version_added: 0.3.0
description:
  - The data integrity runbook's "identify scope" on one server (primary or standby). Read-only,
    every check runs in its own C(READ ONLY) transaction that is rolled back.
  - B-tree indexes of the tables in scope are checked with amcheck's C(bt_index_check) (with
    C(heapallindexed) when O(heapallindexed=true)); with O(parent_check=true) C(bt_index_parent_check)
    instead, which blocks writes to the table while it runs and is never used on a standby.
  - Tables are checked with C(verify_heapam); a page that fails its data checksum makes the check fail,
    and that failure is the finding, with its block number.
  - The database's data checksum failures (C(pg_stat_database)), constraints left C(NOT VALID) and
    the rows that violate them, foreign-key orphans, and O(invariants), queries that must return no rows.
  - Each check has a statement deadline (O(check_timeout_s)); once the scan has run O(budget_s) seconds
    the checks left are listed in RV(not_reached), not run.
  - Before any check runs, the inputs are checked with the server, an unknown table, a scope that
    matches nothing, an invariant that is not a read-only query (parsed by the server inside a
    read-only transaction) or amcheck missing fail the task with one line.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  scope:
    description:
      - Which tables of O(login_db) to check; empty checks every table outside the system schemas
        and the C(quarantine) schema.
      - C(schemas) (list of names), C(tables) (list of V(schema.table) or V(table) in C(public)) and
        C(changed_since), an ISO timestamp; only tables whose data file changed since then (as the
        file system says, written at checkpoints) are checked.
    type: dict
    default: {}
  invariants:
    description:
      - Queries that must return no rows, each with C(name), C(table) (V(schema.table), the table it
        guards) and C(query), a read-only SELECT without C(;). Rows it returns are the violation;
        when they carry the table's primary key columns they can be quarantined.
    type: list
    elements: dict
    default: []
  heapallindexed:
    description: Also check that every heap tuple has its index entry (slower, reads the table).
    type: bool
    default: false
  parent_check:
    description: Use C(bt_index_parent_check) (takes a ShareLock, blocks writes); ignored on a standby.
    type: bool
    default: false
  heap:
    description: Run C(verify_heapam) on each table.
    type: bool
    default: true
  check_timeout_s:
    description: Statement deadline of each check, in seconds.
    type: float
    default: 60
  budget_s:
    description: Seconds the whole scan may run; checks left then are not run and listed. V(0) is no budget.
    type: float
    default: 600
  row_limit:
    description: At most this many rows (or heap problems) reported per check.
    type: int
    default: 1000
  checksum_failures_since:
    description: Count data checksum failures only when the last one happened after this time (ISO timestamp).
    type: str
  validate_only:
    description: Check the inputs with the server and list the checks that would run; run none.
    type: bool
    default: false
  wait_for_replay_lsn:
    description:
      - On a standby, wait until it has replayed WAL up to this position (for example RV(wal_lsn) of the
        primary's check after its repairs) before checking, for at most O(check_timeout_s); fail if it
        has not. A primary does not wait.
    type: str
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
notes:
  - Needs the amcheck extension in the database and a superuser (or the amcheck functions granted).
  - The C(query) of each of O(invariants) is SQL from the inventory; it runs inside a read-only transaction.
"""

EXAMPLES = r"""
- name: Check the content tier's documents
  penguinmails.dbops.pg_integrity:
    login_host: 127.0.0.1
    login_port: 5432
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    login_db: penguinmails_content
    scope:
      schemas: [public]
    invariants:
      - name: no negative balance
        table: public.accounts
        query: SELECT id, balance FROM public.accounts WHERE balance < 0
  register: integrity
"""

RETURN = r"""
findings:
  description: What is wrong, each with check, relation, table, problem, blocks or key and keys, evidence.
  returned: always
  type: list
  elements: dict
  sample: [{"check": "bt_index_check", "relation": "public.orders_pkey", "table": "public.orders",
            "problem": "invalid page in block 1 of relation base/16384/16390", "blocks": [1], "evidence": []}]
plan:
  description:
    - The recovery plan, reindex (indexes), quarantine (table, key, keys), restore (tables),
      for_a_person, clean.
  returned: always
  type: dict
  sample: {"reindex": ["public.orders_pkey"], "quarantine": [], "restore": [], "for_a_person": [], "clean": false}
checks:
  description: The checks that ran (with O(validate_only), that would run).
  returned: always
  type: list
  elements: str
  sample: ["bt_index_check public.orders_pkey", "verify_heapam public.orders"]
not_reached:
  description: Checks not run within O(budget_s), or that passed their deadline.
  returned: always
  type: list
  elements: str
  sample: []
timed_out:
  description: Checks that passed O(check_timeout_s).
  returned: always
  type: list
  elements: str
  sample: []
tables:
  description: The tables in scope.
  returned: always
  type: list
  elements: str
  sample: ["public.orders"]
bytes_in_scope:
  description: Size of the tables in scope and their indexes.
  returned: always
  type: int
  sample: 8192000
standby:
  description: Whether the server is a standby (no bt_index_parent_check there).
  returned: always
  type: bool
  sample: false
wal_lsn:
  description:
    - The WAL position when the checks started, written (on a primary) or replayed (on a standby). A
      standby checked after repairs on the primary waits for it (O(wait_for_replay_lsn)).
  returned: always
  type: str
  sample: 0/3000148
started_at:
  description: The server's time when the checks started.
  returned: always
  type: str
  sample: "2026-12-02 15:40:00.123+00"
finished_at:
  description: The server's time when the checks ended (checksum failures after it are new).
  returned: when the checks ran
  type: str
  sample: "2026-12-02 15:40:01.456+00"
seconds:
  description: How long the checks took.
  returned: when the checks ran
  type: float
  sample: 1.2
database:
  description: The database checked.
  returned: always
  type: str
  sample: penguinmails_content
endpoint:
  description: The host:port that was asked.
  returned: always
  type: str
  sample: 127.0.0.1:5432
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.connected import run_connected
from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity_run import scan
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    check_module_timeouts,
    connection_argument_spec,
    ensure_psycopg2,
)

LSN_RE = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update(
        scope={"type": "dict", "default": {}},
        invariants={"type": "list", "elements": "dict", "default": []},
        heapallindexed={"type": "bool", "default": False},
        parent_check={"type": "bool", "default": False},
        heap={"type": "bool", "default": True},
        check_timeout_s={"type": "float", "default": 60.0},
        budget_s={"type": "float", "default": 600.0},
        row_limit={"type": "int", "default": 1000},
        checksum_failures_since={"type": "str"},
        validate_only={"type": "bool", "default": False},
        wait_for_replay_lsn={"type": "str"},
    )
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ensure_psycopg2(module)
    check_module_timeouts(module, ["check_timeout_s"])
    if module.params["budget_s"] < 0:
        module.fail_json(msg="budget_s must be at least 0 (got %s)" % module.params["budget_s"])
    lsn = module.params["wait_for_replay_lsn"]
    if lsn and not LSN_RE.match(lsn):
        module.fail_json(msg="wait_for_replay_lsn must be a WAL position like 0/3000148 (got %r)" % lsn)
    if module.params["row_limit"] < 1:
        module.fail_json(msg="row_limit must be at least 1 (got %s)" % module.params["row_limit"])
    # The client-side deadline of each statement leaves the server's statement_timeout room to fire first.
    module.params["query_timeout"] = max(module.params["query_timeout"], module.params["check_timeout_s"] + 5)
    result = run_connected(module, lambda conn, connection: scan(conn, connection, module.params), primary=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
