#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_quarantine
short_description: Quarantine affected rows and tables in PostgreSQL, reversibly and on record
version_added: 0.3.0
description:
  - The data integrity runbook's "quarantine affected data" on a primary, in one transaction.
  - Copies the affected rows (by key) into a table of the C(quarantine) schema named after the
    table and the incident, each row stamped with the incident id and the time; a row already
    copied for the incident is not copied again.
  - Revokes the write privileges (or all, O(privileges=all)) that the application roles in
    O(roles) hold directly on the affected tables; the run's own role is never touched. Each
    revocation is logged in C(quarantine.dbops_quarantine_log), and RV(undo) lists the statements
    that lift the incident's quarantine.
  - O(state=absent) grants back exactly what the incident's quarantine revoked, once; the copied
    rows stay as evidence.
  - Idempotent, a second run with the same targets changes nothing.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  incident_id:
    description: The incident the quarantine belongs to (stamped on rows, names the copy tables).
    type: str
    required: true
  targets:
    description:
      - Affected tables with the rows to copy, as the C(plan.quarantine) of pg_integrity gives them,
        C(table) (V(schema.table)), C(key) (key columns) and C(keys) (each a list of values).
    type: list
    elements: dict
    default: []
  roles:
    description: Application roles whose privileges on the affected tables are revoked.
    type: list
    elements: str
    default: []
  privileges:
    description: Revoke V(write) (INSERT, UPDATE, DELETE, TRUNCATE) or V(all) privileges.
    type: str
    choices: [write, all]
    default: write
  state:
    description: V(present) quarantines; V(absent) lifts the incident's quarantine.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Plans; RV(executed_queries) lists what would run and nothing changes.
  diff_mode:
    support: none
    description: RV(copied), RV(revoked) and RV(granted) say what changed.
notes:
  - Needs a superuser or the owner of the tables. Refuses to run on a standby.
"""

EXAMPLES = r"""
- name: Quarantine what pg_integrity found
  penguinmails.dbops.pg_quarantine:
    login_host: 127.0.0.1
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    login_db: penguinmails_content
    incident_id: INC-42
    targets: "{{ integrity.plan.quarantine }}"
    roles: [lab_app_user]

- name: Lift it
  penguinmails.dbops.pg_quarantine:
    login_db: penguinmails_content
    incident_id: INC-42
    state: absent
"""

RETURN = r"""
copied:
  description: Rows copied, per table, with the quarantine table.
  returned: always
  type: list
  elements: dict
  sample: [{"table": "public.orders", "quarantine_table": "quarantine.public_orders__inc_42", "rows": 3}]
revoked:
  description: Privileges revoked, per table and role.
  returned: always
  type: list
  elements: dict
  sample: [{"table": "public.orders", "role": "lab_app_user", "privileges": ["INSERT", "UPDATE"]}]
granted:
  description: Privileges granted back (O(state=absent)).
  returned: when state is absent
  type: list
  elements: dict
  sample: []
left_alone:
  description: Roles in O(roles) left alone because the run logs in as them.
  returned: always
  type: list
  elements: str
  sample: []
undo:
  description: The statements that lift the incident's whole quarantine.
  returned: always
  type: list
  elements: str
  sample: ["GRANT INSERT, UPDATE ON TABLE \"public\".\"orders\" TO \"lab_app_user\""]
executed_queries:
  description: The statements run (in check mode, that would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["CREATE SCHEMA \"quarantine\""]
endpoint:
  description: The host:port that was asked.
  returned: always
  type: str
  sample: 127.0.0.1:5432
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.connected import run_connected
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    connection_argument_spec,
    ensure_psycopg2,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.quarantine_run import lift, quarantine


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update(
        incident_id={"type": "str", "required": True},
        targets={"type": "list", "elements": "dict", "default": []},
        roles={"type": "list", "elements": "str", "default": []},
        privileges={"type": "str", "choices": ["write", "all"], "default": "write"},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
    )
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ensure_psycopg2(module)
    work = quarantine if module.params["state"] == "present" else lift
    result = run_connected(
        module, lambda conn, params: work(conn, params, module.params, module.check_mode), primary=True
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
