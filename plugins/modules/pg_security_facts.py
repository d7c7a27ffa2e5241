#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_security_facts
short_description: Investigate one PostgreSQL server for a security breach, and say whether a lockdown would be refused
version_added: 0.3.0
description:
  - Read-only. Returns the suspect roles' sessions and the investigation of the security breach runbook -
    superusers, login roles, C(valid until), the suspects' C(pg_roles) rows, memberships with grantors,
    grants on O(sensitive_tables), the rules of C(pg_hba_file_rules), security settings (C(ssl),
    C(password_encryption), C(log_connections), C(log_disconnections), C(listen_addresses),
    C(authentication_timeout), C(hba_file)) and the suspects' lines of the server's current log file.
  - The log is read from one file only - the one C(pg_current_logfile()) names (relative to the data
    directory), or O(log_file) when the server has no logging collector - and only its last megabyte,
    opened without following a link; nothing else on the host is read. RV(log_file_read) says which.
  - RV(refusal) says why M(penguinmails.dbops.pg_role_lockdown) would refuse these roles - one does not
    exist, it is the role this module logs in with, or no other superuser could log in afterwards - so a
    playbook can stop before anything is opened.
  - Role names with quotes, semicolons, backslashes or line breaks are refused before connecting.
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
  sensitive_tables:
    description: Tables (C(schema.table)) whose grants are listed.
    type: list
    elements: str
    default: []
  log_file:
    description:
      - The server's log file on this host when the server has no logging collector (started with
        C(pg_ctl -l)). Ignored when C(pg_current_logfile()) names a file.
    type: path
  investigate:
    description:
      - V(false) reads only the roles, the sessions and RV(refusal) (a pre-flight check, which a login
        without the right to read C(pg_hba_file_rules) can run too); the investigation's keys are then absent.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reads only, in check mode as in a normal run.
  diff_mode:
    support: none
    description: Nothing is changed.
"""

EXAMPLES = r"""
- name: Investigate app_reporting on the oltp primary
  penguinmails.dbops.pg_security_facts:
    login_host: 198.18.0.10
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    roles: [app_reporting]
    sensitive_tables: [public.customers]
    log_file: /var/log/postgresql/postgresql-15-main.log
  register: facts
"""

RETURN = r"""
server:
  description: The server, as host and port.
  returned: always
  type: str
in_recovery:
  description: Whether the server is a standby.
  returned: always
  type: bool
refusal:
  description: Why a lockdown of O(roles) would be refused; null when it would not.
  returned: always
  type: str
  sample: no role ghost on the server; nothing was changed
missing_roles:
  description: The roles of O(roles) that do not exist.
  returned: always
  type: list
  elements: str
sessions:
  description:
    - The suspects' sessions (pid, usename, datname, client_addr, client_port, application_name,
      backend_start, state, query).
  returned: always
  type: list
  elements: dict
superusers:
  description: Every superuser role.
  returned: always
  type: list
  elements: str
login_roles:
  description: Every role that can log in.
  returned: always
  type: list
  elements: str
valid_until:
  description: Roles with a password expiry, and when.
  returned: always
  type: dict
suspects:
  description: The suspects' C(pg_roles) rows.
  returned: always
  type: dict
memberships:
  description: Role memberships (role, member, grantor, admin_option).
  returned: with O(investigate=true)
  type: list
  elements: dict
table_grants:
  description: Grants on O(sensitive_tables) (table_name, grantee, privilege_type).
  returned: with O(investigate=true)
  type: list
  elements: dict
hba_rules:
  description: C(pg_hba_file_rules), errors included.
  returned: with O(investigate=true)
  type: list
  elements: dict
settings:
  description: The security settings.
  returned: with O(investigate=true)
  type: dict
log_lines:
  description: The suspects' lines of the server's current log file, the last 200.
  returned: with O(investigate=true)
  type: list
  elements: str
log_file_read:
  description:
    - The one log file read - C(path), C(source) (V(pg_current_logfile), V(log_file) or V(none)), C(size),
      C(bytes_read) (at most 1 MiB, its tail) and a C(note).
  returned: with O(investigate=true)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.lockdown_run import (
    SecurityFacts,
    role_argument_spec,
    run_on_server,
)


def main() -> None:
    spec = role_argument_spec(
        sensitive_tables={"type": "list", "elements": "str", "default": []},
        log_file={"type": "path"},
        investigate={"type": "bool", "default": True},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_on_server(module, lambda conn, params: SecurityFacts(module.params, params).read(conn), "pg_security_facts")


if __name__ == "__main__":
    main()
