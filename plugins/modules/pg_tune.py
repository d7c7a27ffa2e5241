#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_tune
short_description: Change allowed PostgreSQL settings with ALTER SYSTEM or ALTER ROLE SET, keeping what they replaced
version_added: 0.2.0
description:
  - The performance runbook's "scale resources" on the server, within an allow list set in inventory.
  - A setting without O(settings[].role) is changed server-wide with C(ALTER SYSTEM) and applied with one
    C(pg_reload_conf()); with a role, with C(ALTER ROLE ... SET), applied to that role's new sessions.
  - Only names in O(allowed) are changed; any other name fails the task before anything changes.
  - A setting that needs a restart (context C(postmaster)), or that cannot be set per role, is reported in
    RV(not_applied) and not changed.
  - Every setting is checked before any is changed, an unknown name or role, or a value the server
    refuses (out of range, wrong unit), fails the task naming it and nothing is changed.
  - Changes only what differs from the value set there (C(postgresql.auto.conf) or the role's settings);
    each change is returned in RV(replaced) with the value it replaced, so a later run with those entries
    as O(settings) (value V(null) resets) puts it back.
  - Refuses to run on a standby.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  settings:
    description: The settings to change (or to put back).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The setting's name, for example V(work_mem).
        type: str
        required: true
      value:
        description: The value, as in C(postgresql.conf); null resets it (removes what was set there).
        type: str
      role:
        description: Change it for this role only (C(ALTER ROLE ... SET)).
        type: str
  allowed:
    description: The names that may be changed (the inventory's allow list).
    type: list
    elements: str
    required: true
attributes:
  check_mode:
    support: full
    description: Checks every setting and plans; RV(executed_queries) lists what would run.
  diff_mode:
    support: none
    description: RV(replaced) has each value before and after.
notes:
  - Needs a superuser (C(ALTER SYSTEM), C(pg_file_settings)).
  - Values of settings no session may set (a reload applies them, context C(sighup)) are checked against
    their range, units or choices in C(pg_settings), the same way in check mode as in a run; C(ALTER SYSTEM)
    checks them again before it writes.
"""

EXAMPLES = r"""
- name: Give sorts more memory, server-wide and for the reporting role
  penguinmails.dbops.pg_tune:
    login_host: "{{ ansible_host }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    allowed: [work_mem, maintenance_work_mem, effective_io_concurrency, statement_timeout]
    settings:
      - {name: work_mem, value: 64MB}
      - {name: statement_timeout, value: 30s, role: reporting}
  delegate_to: localhost
"""

RETURN = r"""
replaced:
  description: Each change with scope (system or role), role, name, previous (null when it was not set there) and value.
  returned: always
  type: list
  elements: dict
  sample: [{"scope": "system", "role": null, "name": "work_mem", "previous": null, "value": "64MB"}]
not_applied:
  description: Settings reported and not changed, each with name, role and reason.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "shared_buffers", "role": null, "reason": "needs a restart (context postmaster): not applied"}]
unchanged:
  description: Names already set to the wanted value.
  returned: always
  type: list
  elements: str
  sample: ["work_mem"]
executed_queries:
  description: The statements run (in check mode, that would run).
  returned: always
  type: list
  elements: str
  sample: ["ALTER SYSTEM SET work_mem = '64MB'", "SELECT pg_reload_conf()"]
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
from ansible_collections.penguinmails.dbops.plugins.module_utils.settings import spec_problems
from ansible_collections.penguinmails.dbops.plugins.module_utils.settings_run import apply_settings


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update(
        settings={
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {"name": {"type": "str", "required": True}, "value": {"type": "str"}, "role": {"type": "str"}},
        },
        allowed={"type": "list", "elements": "str", "required": True},
    )
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ensure_psycopg2(module)
    problems = spec_problems(module.params["settings"], module.params["allowed"], require_value=False)
    if problems:
        module.fail_json(msg="; ".join(problems))
    result = run_connected(
        module,
        lambda conn, params: apply_settings(conn, params, module.params["settings"], module.check_mode),
        primary=True,
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
