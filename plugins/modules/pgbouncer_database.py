#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pgbouncer_database
short_description: Point a PgBouncer database entry at a server, or hold its clients during a switch
version_added: 0.1.0
description:
  - Runs on the PgBouncer host. Edits one entry of the C([databases]) section of the PgBouncer ini
    file (other keys of the entry, other entries and comments are kept), then C(RELOAD)s PgBouncer
    through its admin console and C(RESUME)s the database if it was paused or killed.
  - O(state=held) takes the database out of service without refusing clients - C(PAUSE) and new
    clients wait (up to PgBouncer's C(query_wait_timeout)) until the entry is pointed somewhere with
    O(state=present). C(PAUSE) returns once the database's server connections are gone, which is at
    once when its server was killed or fenced; when they do not drain within O(pause_timeout) (a
    server behind a partition) it falls back to C(KILL), which drops client and server connections.
    C(PAUSE) comes first because PgBouncer has crashed on C(KILL) while clients were being refused
    with C(server_login_retry) (seen with 1.18 in 1 of 17 lab failovers; pgbouncer issue 1401).
    The outage playbook holds the tier while it fences and promotes.
  - When PgBouncer does not accept the admin connection (stopped, or crashed after C(KILL)), O(state=present)
    still rewrites the entry in the ini file, so PgBouncer serves the new server once it is started, and
    fails saying so. It never starts PgBouncer itself.
  - The database name, host, port and every setting are checked against PgBouncer's ini grammar before
    anything is written, on every path. Names are letters, digits, C(_), C(.) and C(-); a line break or
    NUL anywhere is refused; a value with other characters (spaces, C(=), C(;), quotes) is written
    single-quoted, as PgBouncer reads it back. No input can add a line or a setting.
  - The ini file is replaced through a new file in its directory (owner and mode kept) and a rename; an
    ini file or directory that is a symbolic link is refused.
  - Idempotent. Check mode and diff mode show the entry line before and after, with C(password=) masked.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.pgbouncer
options:
  name:
    description: Name of the database entry (what clients put in dbname).
    type: str
    required: true
  state:
    description:
      - V(present) points the entry at O(host)/O(port) (plus O(settings)), reloads and resumes.
      - V(held) kills the database's connections and keeps new clients waiting.
    type: str
    default: present
    choices: [present, held]
  ini_path:
    description: PgBouncer's ini file. Required with O(state=present).
    type: path
  host:
    description: Server host for the entry. Required with O(state=present).
    type: str
  port:
    description: Server port for the entry. Required with O(state=present).
    type: int
  settings:
    description: Other keys of the entry to set, e.g. C(pool_size) or C(dbname).
    type: dict
    default: {}
  pause_timeout:
    description: With O(state=held), seconds C(PAUSE) may wait for server connections to drain before C(KILL) is used.
    type: float
    default: 2
attributes:
  check_mode:
    support: full
    description: Plans instead of acting; reports what it would do and changes nothing.
  diff_mode:
    support: full
    description: Shows the state before and after.
"""

EXAMPLES = r"""
- name: Hold the tier's clients while the primary is replaced
  penguinmails.dbops.pgbouncer_database:
    name: penguinmails_oltp
    state: held
    pgbouncer_port: 6432
    pgbouncer_user: "{{ dbops_login_user }}"
    pgbouncer_password: "{{ dbops_login_password }}"

- name: Send the tier's clients to the new primary
  penguinmails.dbops.pgbouncer_database:
    name: penguinmails_oltp
    ini_path: /etc/pgbouncer/pgbouncer.ini
    host: 10.0.1.12
    port: 5432
    pgbouncer_user: "{{ dbops_login_user }}"
    pgbouncer_password: "{{ dbops_login_password }}"
"""

RETURN = r"""
entry_before:
  description: The entry line before the change, secrets masked; null when it did not exist or with O(state=held).
  returned: always
  type: str
  sample: penguinmails_oltp = host=127.0.0.1 port=5432 dbname=penguinmails_oltp pool_size=50
entry_after:
  description: The entry line after the change, secrets masked; null with O(state=held).
  returned: always
  type: str
  sample: penguinmails_oltp = host=127.0.0.1 port=5433 dbname=penguinmails_oltp pool_size=50
actions:
  description: Admin console commands run (or, in check mode, that would run) and files written.
  returned: always
  type: list
  elements: str
  sample: ["rewrote /etc/pgbouncer/pgbouncer.ini", "RELOAD", "RESUME \"penguinmails_oltp\""]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import admin_params, pgbouncer_argument_spec
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    check_module_timeouts,
    connection_params,
    ensure_psycopg2,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import PgBouncerEntry


def main() -> None:
    argument_spec = pgbouncer_argument_spec()
    argument_spec.update(
        name={"type": "str", "required": True},
        state={"type": "str", "default": "present", "choices": ["present", "held"]},
        ini_path={"type": "path"},
        host={"type": "str"},
        port={"type": "int"},
        settings={"type": "dict", "default": {}},
        pause_timeout={"type": "float", "default": 2.0},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ("ini_path", "host", "port"))],
    )
    ensure_psycopg2(module)
    check_module_timeouts(module, ["pause_timeout"])
    console = connection_params(module, build=admin_params)
    entry = PgBouncerEntry(module.params, module.check_mode)
    try:
        result = entry.run(console, module.params["state"])
    except ActionFailed as failure:
        module.fail_json(msg=str(failure), **failure.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
