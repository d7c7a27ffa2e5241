#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_role_lockdown
short_description: Lock suspect roles out of one PostgreSQL server after a breach, and lift it exactly
version_added: 0.3.0
description:
  - The security breach runbook's containment on one server. With O(state=present) it first snapshots
    what containment destroys (the suspect roles' sessions from C(pg_stat_activity) with client
    addresses, application names and queries). The investigation is M(penguinmails.dbops.pg_security_facts).
  - Then it contains. On a primary, C(ALTER ROLE ... NOLOGIN CONNECTION LIMIT 0) and C(REVOKE CONNECT) on
    each of O(databases) where the role has an explicit grant (a standby takes both from its primary).
    On every server, reject lines for the roles at the top of C(pg_hba.conf) (checked in
    C(pg_hba_file_rules) before and after writing; on an error the old file is put back and nothing is
    reloaded), C(log_connections) and C(log_disconnections) on, one C(pg_reload_conf()), and the roles'
    sessions terminated (pids chosen first, in a C(MATERIALIZED) CTE).
  - Refuses, before changing anything, a role that does not exist, a role name with quotes,
    semicolons, backslashes or line breaks, the role the module logs in with, and locking out the last
    superuser that can log in.
  - What was there before is remembered in O(state_file) (mode 0600, in a 0700 directory). O(state=absent)
    puts exactly that back (login, connection limit, CONNECT grants, settings, pg_hba.conf lines) and
    removes the file; with no file there is nothing to lift.
  - A second run changes nothing. Check mode snapshots, investigates and returns the plan; it executes
    no change and writes no file.
  - C(pg_hba.conf) is read and written on the host the module runs on (the server's host).
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  roles:
    description: The suspect roles.
    type: list
    elements: str
    required: true
  databases:
    description: The tier's databases, whose explicit C(CONNECT) grants to the roles are revoked.
    type: list
    elements: str
    default: []
  state:
    description: V(present) locks the roles out; V(absent) lifts the lockdown recorded in O(state_file).
    type: str
    default: present
    choices: [present, absent]
  state_file:
    description: Where what was there before is remembered for the lift, one file per server.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Snapshots and plans; executes no change and writes no file.
  diff_mode:
    support: none
    description: The changed lines are named in RV(actions).
"""

EXAMPLES = r"""
- name: Lock app_reporting out of the oltp primary
  penguinmails.dbops.pg_role_lockdown:
    login_host: 198.18.0.10
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    roles: [app_reporting]
    databases: [penguinmails_oltp]
    state_file: /var/lib/penguinmails-dbops/security/oltp-oltp-1.json

- name: Lift it
  penguinmails.dbops.pg_role_lockdown:
    login_host: 198.18.0.10
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    roles: [app_reporting]
    state: absent
    state_file: /var/lib/penguinmails-dbops/security/oltp-oltp-1.json
"""

RETURN = r"""
server:
  description: The server, as host and port.
  returned: always
  type: str
  sample: 127.0.0.1:5432
in_recovery:
  description: Whether the server is a standby (role changes come from its primary).
  returned: always
  type: bool
sessions_before:
  description: The suspects' sessions before anything was terminated (the snapshot).
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "usename": "app_reporting", "client_addr": "198.18.0.7", "query": "SELECT ..."}]
terminated:
  description: The pids terminated.
  returned: always
  type: list
  elements: int
executed_queries:
  description: The statements executed (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: ["ALTER ROLE \"app_reporting\" NOLOGIN CONNECTION LIMIT 0"]
actions:
  description: Files written or removed.
  returned: always
  type: list
  elements: str
hba_errors_before:
  description: Errors C(pg_hba_file_rules) reported before the file was changed.
  returned: always
  type: list
  elements: dict
hba_errors_after:
  description: Errors it reported after the file was written (the file is put back when there are any).
  returned: always
  type: list
  elements: dict
hba_put_back:
  description:
    - When writing C(pg_hba.conf) failed or C(pg_hba_file_rules) reported an error in the new file - C(path),
      C(put_back) (the old bytes are back, byte for byte), C(reloaded) (always V(false) - the server keeps the
      rules it had loaded), C(errors), C(errors_left) and the C(message) the task fails with.
  returned: on that failure
  type: dict
verification:
  description: With O(state=present), whether the server is contained, the reason and the sessions left.
  returned: always
  type: dict
  sample: {"contained": true, "reason": "contained", "sessions_left": []}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.lockdown_run import (
    RoleLockdown,
    role_argument_spec,
    run_on_server,
)


def main() -> None:
    spec = role_argument_spec(
        databases={"type": "list", "elements": "str", "default": []},
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
        state_file={"type": "path", "required": True},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)

    def work(conn, params):
        return RoleLockdown(module.params, params, module.check_mode).work(conn, module.params["state"])

    run_on_server(module, work, "pg_role_lockdown")


if __name__ == "__main__":
    main()
