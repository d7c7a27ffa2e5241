#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pgbouncer_admin
short_description: Run PgBouncer admin console commands and change its settings, only where they differ
version_added: 0.2.0
description:
  - Talks to PgBouncer's admin console (the virtual database C(pgbouncer)). Looks first (C(SHOW VERSION),
    C(SHOW CONFIG), C(SHOW DATABASES), C(SHOW SERVERS), C(SHOW CLIENTS)) and changes only the difference.
  - O(settings) are C([pgbouncer]) settings. Without O(ini_path) they are changed online with C(SET); a
    setting PgBouncer cannot change online is refused. With O(ini_path) they are written to the ini file
    and applied with one C(RELOAD), so they survive the next reload or restart; a setting that needs a
    restart is written and named in RV(restart_required).
  - O(pool_settings) are keys of the O(database)'s C([databases]) entry (C(pool_size), C(reserve_pool),
    C(min_pool_size), C(max_db_connections), C(pool_mode)); PgBouncer reads them only from the ini file,
    so O(ini_path) is required. Written, then applied with C(RELOAD), then read back from C(SHOW DATABASES).
  - O(command) then runs one console command. C(PAUSE) of a paused database, C(RESUME) of one that is not
    paused, C(RECONNECT) of a database without server connections, C(KILL) of a paused database without
    connections and C(KILL_CLIENT) of a client that is gone change nothing. C(RELOAD) always runs.
    C(WAIT_CLOSE) waits and changes nothing. C(KILL_CLIENT) needs PgBouncer 1.24 or later; an older
    PgBouncer is refused with its version, before anything is sent.
  - Names and values are checked against PgBouncer's grammar (the console's and the ini file's) before
    anything is sent or written; a value with a quote, a comment mark or a line break is refused. The ini
    file is replaced through a new file and a rename (owner and mode kept); a link is refused.
  - Check mode looks, plans and changes nothing. Diff mode shows the ini lines before and after. The admin
    password is never returned.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.pgbouncer
options:
  command:
    description: The console command to run after the settings.
    type: str
    choices: [RELOAD, PAUSE, RESUME, RECONNECT, KILL, KILL_CLIENT, WAIT_CLOSE]
  database:
    description:
      - The database of O(command) (all databases when omitted, where the command allows it; C(KILL) needs
        one) and of O(pool_settings).
    type: str
  client:
    description: With O(command=KILL_CLIENT), the client's id from C(SHOW CLIENTS).
    type: str
  settings:
    description: C([pgbouncer]) settings, e.g. C(default_pool_size) or C(reserve_pool_size).
    type: dict
    default: {}
  pool_settings:
    description: Keys of O(database)'s C([databases]) entry, e.g. C(pool_size). Needs O(ini_path).
    type: dict
    default: {}
  ini_path:
    description: PgBouncer's ini file, on the host the module runs on.
    type: path
  lock_out_users:
    description:
      - Users to keep out of PgBouncer (the security breach runbook). Their lines are removed from the
        C(auth_file) (O(auth_file), else the one C(SHOW CONFIG) names) and remembered in
        O(lock_out_state_file), then C(RELOAD); their clients are dropped. With C(auth_query) and no
        C(auth_file), the server's C(NOLOGIN) and C(pg_hba.conf) reject keep them out.
      - A client is dropped with C(KILL_CLIENT) on PgBouncer 1.24 and later. Older releases have no
        command that drops one client (C(KILL) drops every client of the database), so its TCP
        connection is closed at PgBouncer's end (C(ss -K), one connection, needs root on the PgBouncer
        host); a Unix-socket client of an older PgBouncer is left and reported in RV(clients_left).
    type: list
    elements: str
  lock_out_state:
    description: V(present) locks O(lock_out_users) out; V(absent) puts the remembered lines back.
    type: str
    default: present
    choices: [present, absent]
  lock_out_state_file:
    description: Where the removed C(auth_file) lines are kept for the lift (mode 0600, directory 0700).
    type: path
  auth_file:
    description: PgBouncer's C(auth_file) on this host, when it is not the one C(SHOW CONFIG) names.
    type: path
attributes:
  check_mode:
    support: full
    description: Looks and plans; runs no command and writes nothing.
  diff_mode:
    support: full
    description: Shows the ini lines before and after.
"""

EXAMPLES = r"""
- name: Raise the olap pool to 20, in the ini file and online
  penguinmails.dbops.pgbouncer_admin:
    database: penguinmails_olap
    pool_settings:
      pool_size: 20
    settings:
      reserve_pool_size: 3
    ini_path: /etc/pgbouncer/pgbouncer.ini
    pgbouncer_user: "{{ dbops_login_user }}"
    pgbouncer_password: "{{ dbops_login_password }}"

- name: Close the olap pool's server connections once their clients are done
  penguinmails.dbops.pgbouncer_admin:
    command: RECONNECT
    database: penguinmails_olap
    pgbouncer_user: "{{ dbops_login_user }}"
    pgbouncer_password: "{{ dbops_login_password }}"
"""

RETURN = r"""
actions:
  description: Console commands run (in check mode, that would run) and files written, in order.
  returned: always
  type: list
  elements: str
  sample: ["rewrote /etc/pgbouncer/pgbouncer.ini", "RELOAD", "RECONNECT \"penguinmails_olap\""]
version:
  description: PgBouncer's version as C(SHOW VERSION) says it.
  returned: always
  type: str
  sample: PgBouncer 1.18.0
settings_before:
  description: Live values of the O(settings) that differed.
  returned: always
  type: dict
  sample: {"reserve_pool_size": "0"}
settings_after:
  description: The values they were (or would be) changed to.
  returned: always
  type: dict
  sample: {"reserve_pool_size": "3"}
pool_before:
  description: Live values of the O(pool_settings) that differed.
  returned: always
  type: dict
  sample: {"pool_size": "15"}
pool_after:
  description: The values they were (or would be) changed to.
  returned: always
  type: dict
  sample: {"pool_size": "20"}
clients_before:
  description: With O(lock_out_users), their clients found (user, database, state, addresses, id).
  returned: always
  type: list
  elements: dict
clients_left:
  description: Their clients still connected after the drop.
  returned: always
  type: list
  elements: dict
restart_required:
  description: Settings written to the ini file that PgBouncer takes only at a restart.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed
from ansible_collections.penguinmails.dbops.plugins.module_utils.lockdown import role_name_problem
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import admin_params, pgbouncer_argument_spec
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer_admin import COMMANDS, ConsoleAdmin
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import connection_params, ensure_psycopg2


def main() -> None:
    argument_spec = pgbouncer_argument_spec()
    argument_spec.update(
        command={"type": "str", "choices": list(COMMANDS)},
        database={"type": "str"},
        client={"type": "str"},
        settings={"type": "dict", "default": {}},
        pool_settings={"type": "dict", "default": {}},
        ini_path={"type": "path"},
        lock_out_users={"type": "list", "elements": "str"},
        lock_out_state={"type": "str", "default": "present", "choices": ["present", "absent"]},
        lock_out_state_file={"type": "path"},
        auth_file={"type": "path"},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("command", "KILL_CLIENT", ("client",)), ("command", "KILL", ("database",))],
        required_by={"lock_out_users": ("lock_out_state_file",)},
    )
    for user in module.params["lock_out_users"] or []:
        problem = role_name_problem(user)
        if problem:
            module.fail_json(msg=problem)
    if module.params["pool_settings"] and not (module.params["database"] and module.params["ini_path"]):
        module.fail_json(msg="pool_settings needs database and ini_path (PgBouncer reads pool settings from its ini)")
    ensure_psycopg2(module)
    console = connection_params(module, build=admin_params)
    admin = ConsoleAdmin(module.params, module.check_mode)
    try:
        result = admin.run(console)
    except ActionFailed as failure:
        module.fail_json(msg=str(failure), **failure.result)
    if module.check_mode and result["changed"]:
        result["msg"] = "would run: %s" % ", ".join(result["actions"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
