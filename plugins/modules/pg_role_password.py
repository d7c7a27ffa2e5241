#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_role_password
short_description: Give application roles strong new passwords after a breach, the secrets only to the operator's file
version_added: 0.3.0
description:
  - The security breach runbook's optional password rotation, on the tier's primary. For each of O(roles)
    a strong new secret (256 bits, Python's C(secrets)) is generated where the module runs (the controller),
    its SCRAM-SHA-256 verifier is computed there (RFC 5802 and RFC 7677, as libpq's C(PQencryptPasswordConn)
    does) and only the verifier is sent - C(ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'), so the clear text
    never reaches the server or its log.
  - The secrets go to O(out_file) only, written before any password changes - a new file (never
    overwritten, created exclusively, mode 0600, no link followed), encrypted with ansible-vault when
    O(vault_password_file) is given. They are never in the module's result, the log or the audit trail;
    C(executed_queries) shows the statements with the verifier masked.
  - Refuses, before changing anything, a role that does not exist, a role name with quotes, semicolons,
    backslashes or line breaks, the role the module logs in with, a standby, and an O(out_file) that exists.
  - Not undone by the lockdown's lift - the old password is not restored.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  roles:
    description: The roles that get new passwords.
    type: list
    elements: str
    required: true
  out_file:
    description: The new file the secrets are written to (a YAML mapping role to password).
    type: path
    required: true
  vault_password_file:
    description:
      - A file holding the ansible-vault password; O(out_file) is then encrypted (C(ansible-vault view) reads it).
    type: path
attributes:
  check_mode:
    support: full
    description: Checks the roles and the files and returns the plan; generates, writes and changes nothing.
  diff_mode:
    support: none
    description: The roles rotated are named in RV(rotated).
"""

EXAMPLES = r"""
- name: New passwords for the application roles, to a vault file
  penguinmails.dbops.pg_role_password:
    login_host: 198.18.0.10
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    roles: [app_orders]
    out_file: /root/incident-rotated.vault.yml
    vault_password_file: /root/.vault-pass
  delegate_to: localhost
"""

RETURN = r"""
server:
  description: The server, C(host:port).
  returned: always
  type: str
rotated:
  description: The roles whose password was changed.
  returned: always
  type: list
  elements: str
out_file:
  description: Where the secrets are.
  returned: always
  type: str
vault:
  description: Whether O(out_file) is ansible-vault encrypted.
  returned: always
  type: bool
plan:
  description: What the rotation does for each role.
  returned: always
  type: list
  elements: dict
actions:
  description: What was done, in words.
  returned: always
  type: list
  elements: str
executed_queries:
  description: The statements, the verifier masked.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.lockdown_run import (
    PasswordRotation,
    role_argument_spec,
    run_on_server,
)


def main() -> None:
    spec = role_argument_spec(
        out_file={"type": "path", "required": True},
        vault_password_file={"type": "path"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_on_server(
        module,
        lambda conn, params: PasswordRotation(module.params, params, module.check_mode).work(conn),
        "pg_role_password",
    )


if __name__ == "__main__":
    main()
