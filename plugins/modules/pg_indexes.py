#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_indexes
short_description: Rebuild invalid indexes, create approved ones and analyze stale tables, concurrently
version_added: 0.2.0
description:
  - The performance runbook's "optimize indexes" on one PostgreSQL primary.
  - Invalid indexes are rebuilt with C(REINDEX INDEX CONCURRENTLY); the C(_ccnew) and C(_ccold)
    leftovers of an earlier failed concurrent rebuild are dropped first (C(DROP INDEX CONCURRENTLY)),
    and the leftovers of a rebuild that fails in this run are dropped too. Every index rebuilt or
    created is re-checked valid.
  - An index is created only when it is listed in O(approved), with C(CREATE INDEX CONCURRENTLY).
    It is idempotent by definition, not by name, the server renders the approved index's definition
    on an empty copy of the table (C(pg_get_indexdef)) and compares it with the table's indexes, name
    left out. An invalid index of the same definition is rebuilt instead.
  - Duplicate and unused indexes are reported only, never dropped.
  - With O(analyze_stale=true), runs C(ANALYZE) on tables modified past autovacuum's own analyze
    trigger since their last analyze.
  - Every approved entry is checked (fields, the table and columns exist, the server parses it, read-only)
    before anything changes, a bad entry fails the task naming it and nothing is changed (O(validate_only)
    does only that).
  - The concurrent statements cannot run in a transaction block; the module runs in autocommit.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  approved:
    description:
      - The indexes the inventory approved (C(performance_approved_indexes)).
    type: list
    elements: dict
    default: []
    suboptions:
      table:
        description: Table name, optionally V(schema.table); the schema defaults to V(public).
        type: str
        required: true
      columns:
        description: Columns of the index, in order. Give this or O(approved[].expression).
        type: list
        elements: str
      expression:
        description: One index expression, for example V(lower(email)).
        type: str
      method:
        description: Index access method.
        type: str
        default: btree
        choices: [btree, hash, gist, spgist, gin, brin]
      predicate:
        description: C(WHERE) condition of a partial index, without the keyword.
        type: str
      unique:
        description: Create a unique index.
        type: bool
        default: false
      name:
        description: Index name; defaults to V(<table>_<columns>_idx).
        type: str
  rebuild_invalid:
    description: Rebuild invalid indexes and drop C(_ccnew)/C(_ccold) leftovers.
    type: bool
    default: true
  reindex:
    description:
      - Indexes (V(schema.index), or V(index) in C(public)) to rebuild with C(REINDEX INDEX CONCURRENTLY)
        whether valid or not, for example the corrupt ones pg_integrity found. An unknown name fails the
        task before anything changes.
    type: list
    elements: str
    default: []
  analyze_stale:
    description: C(ANALYZE) the tables whose statistics are stale.
    type: bool
    default: true
  unused_min_bytes:
    description: Report a never-scanned index as unused only from this size on. At least 0.
    type: int
    default: 0
  validate_only:
    description:
      - Only check O(approved), read-only, and change nothing, on a primary or a standby; the playbook does
        it before its incident opens. Each entry's fields (one expression each, no comment, C(;) or C($)),
        its table and columns in the catalog, then its expression and predicate parsed by the server with
        C(EXPLAIN) of C(SELECT <keys> FROM <table> WHERE <predicate> LIMIT 0) in a C(READ ONLY) transaction
        that is rolled back (nothing runs, nothing is built; a subquery is refused).
      - RV(approved) then lists each entry with action V(valid); the other results are empty.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reads and plans; RV(executed_queries) lists what would run and nothing changes.
  diff_mode:
    support: none
    description: RV(actions) says what changed.
notes:
  - Needs the owner of the tables or a superuser. Refuses to run on a standby.
  - O(approved[].expression) and O(approved[].predicate) are SQL; only operators who may approve an
    index should be able to set them. They may not contain C(;) and are parsed by the server before
    any change.
"""

EXAMPLES = r"""
- name: Optimize indexes
  penguinmails.dbops.pg_indexes:
    login_host: "{{ ansible_host }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    login_db: penguinmails_oltp
    approved:
      - table: public.orders
        columns: [customer_email]
  delegate_to: localhost
"""

RETURN = r"""
actions:
  description: What was (in check mode, would be) done, each with action, schema, table and name.
  returned: always
  type: list
  elements: dict
  sample: [{"action": "reindex", "schema": "public", "table": "orders", "name": "orders_ref_key"}]
failures:
  description: Steps that failed (first line of the server's message), or indexes still invalid on the re-check.
  returned: always
  type: list
  elements: str
  sample: ["reindex public.orders_ref_key: could not create unique index \"orders_ref_key_ccnew\""]
approved:
  description:
    - Each approved index with its name and what it needed (present, create, reindex, name_taken).
    - With O(validate_only), each with action V(valid).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "orders_customer_email_idx", "action": "present"}]
invalid:
  description: Invalid indexes found before the run.
  returned: always
  type: list
  elements: str
  sample: ["public.orders_ref_key"]
duplicates:
  description: Groups of indexes with the same definition on one table (reported only).
  returned: always
  type: list
  elements: dict
  sample: []
unused:
  description: Valid indexes never scanned that back no constraint (reported only).
  returned: always
  type: list
  elements: dict
  sample: []
stale_tables:
  description: Tables whose statistics were stale (analyzed when O(analyze_stale)).
  returned: always
  type: list
  elements: dict
  sample: [{"schema": "public", "table": "orders", "n_mod_since_analyze": 200000}]
executed_queries:
  description: The statements run (in check mode, that would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["REINDEX INDEX CONCURRENTLY \"public\".\"orders_ref_key\""]
endpoint:
  description: The host:port that was asked.
  returned: always
  type: str
  sample: 127.0.0.1:5432
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.connected import run_connected
from ansible_collections.penguinmails.dbops.plugins.module_utils.index_run import optimize_indexes, validate_only
from ansible_collections.penguinmails.dbops.plugins.module_utils.indexes import INDEX_METHODS
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    connection_argument_spec,
    ensure_psycopg2,
)


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update(
        approved={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "table": {"type": "str", "required": True},
                "columns": {"type": "list", "elements": "str"},
                "expression": {"type": "str"},
                "method": {"type": "str", "default": "btree", "choices": list(INDEX_METHODS)},
                "predicate": {"type": "str"},
                "unique": {"type": "bool", "default": False},
                "name": {"type": "str"},
            },
        },
        rebuild_invalid={"type": "bool", "default": True},
        reindex={"type": "list", "elements": "str", "default": []},
        analyze_stale={"type": "bool", "default": True},
        unused_min_bytes={"type": "int", "default": 0},
        validate_only={"type": "bool", "default": False},
    )
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ensure_psycopg2(module)
    if module.params["unused_min_bytes"] < 0:
        module.fail_json(msg="unused_min_bytes must be at least 0 (got %d)" % module.params["unused_min_bytes"])
    if module.params["validate_only"]:
        result = run_connected(
            module, lambda conn, params: validate_only(conn, params, module.params["approved"]), False
        )
    else:
        result = run_connected(
            module, lambda conn, params: optimize_indexes(conn, params, module.params, module.check_mode), primary=True
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
