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
  - Idempotent. Check mode and diff mode show the entry line before and after.
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
  description: The entry line before the change; null when it did not exist or with O(state=held).
  returned: always
  type: str
  sample: penguinmails_oltp = host=127.0.0.1 port=5432 dbname=penguinmails_oltp pool_size=50
entry_after:
  description: The entry line after the change; null with O(state=held).
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

import dataclasses
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import (
    AdminConsole,
    admin_params,
    pgbouncer_argument_spec,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ensure_psycopg2,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import update_database_entry


def database_row(console: AdminConsole, name: str):
    for row in console.show("DATABASES"):
        if row.get("name") == name:
            return row
    return None


def is_paused(row) -> bool:
    return bool(row) and str(row.get("paused", "0")) not in ("0", "", "None")


def write_atomically(module: AnsibleModule, path: str, text: str) -> None:
    """Replace the file in one rename, keeping owner and mode (PgBouncer must still read it)."""
    fd, temp_path = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".dbops-")
    with os.fdopen(fd, "w") as temp_file:
        temp_file.write(text)
    module.atomic_move(temp_path, path)


def hold(module: AnsibleModule, console: AdminConsole, result: dict) -> None:
    name = module.params["name"]
    row = database_row(console, name)
    if row is None:
        module.fail_json(msg="PgBouncer at %s has no database %s" % (console.params.endpoint, name), **result)
    if is_paused(row):
        return
    result["changed"] = True
    if module.check_mode:
        result["actions"].append('PAUSE "%s"' % name)
        return
    pausing = dataclasses.replace(console.params, query_timeout=module.params["pause_timeout"])
    try:
        with AdminConsole(pausing) as pause_console:
            pause_console.command("PAUSE", name)
        result["actions"].append('PAUSE "%s"' % name)
    except ConnectionFailure as failure:
        if failure.kind != "timeout":
            raise
        result["actions"].append(
            'PAUSE "%s" (server connections still open after %s s)' % (name, pausing.query_timeout)
        )
        console.command("KILL", name)
        result["actions"].append('KILL "%s"' % name)


def plan_entry(module: AnsibleModule, result: dict):
    """The ini text with the entry pointed where wanted; records before/after and the diff."""
    name, path = module.params["name"], module.params["ini_path"]
    wanted = {"host": module.params["host"], "port": str(module.params["port"])}
    wanted.update({key: str(value) for key, value in module.params["settings"].items()})
    with open(path) as ini_file:
        text = ini_file.read()
    new_text, before, after = update_database_entry(text, name, wanted)
    result.update(entry_before=before, entry_after=after)
    if new_text == text:
        return None
    result["diff"] = {
        "before": (before or "") + "\n",
        "after": after + "\n",
        "before_header": path,
        "after_header": path,
    }
    return new_text


def point(module: AnsibleModule, console: AdminConsole, result: dict) -> None:
    name, path = module.params["name"], module.params["ini_path"]
    new_text = plan_entry(module, result)
    paused = is_paused(database_row(console, name))
    if new_text is not None:
        result["actions"].extend(["rewrote %s" % path, "RELOAD"])
    if paused:
        result["actions"].append('RESUME "%s"' % name)
    result["changed"] = new_text is not None or paused
    if module.check_mode:
        return
    if new_text is not None:
        write_atomically(module, path, new_text)
        console.command("RELOAD")
    if paused:
        console.command("RESUME", name)


def point_file_only(module: AnsibleModule, result: dict, failure: ConnectionFailure) -> None:
    """PgBouncer does not answer: still point the ini file, so it serves the right server once started."""
    path = module.params["ini_path"]
    new_text = plan_entry(module, result)
    if new_text is not None:
        result["actions"].append("rewrote %s" % path)
        result["changed"] = True
        if not module.check_mode:
            write_atomically(module, path, new_text)
    module.fail_json(
        msg="%s; %s now points %s at %s:%s, so PgBouncer serves it once started (check why it is not running)"
        % (failure, path, module.params["name"], module.params["host"], module.params["port"]),
        **result,
    )


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

    result = {"changed": False, "entry_before": None, "entry_after": None, "actions": []}
    try:
        with AdminConsole(admin_params(module.params)) as console:
            if module.params["state"] == "held":
                hold(module, console, result)
            else:
                point(module, console, result)
    except ConnectionFailure as failure:
        if module.params["state"] == "present" and not result["actions"]:
            point_file_only(module, result, failure)
        module.fail_json(msg=str(failure), **result)
    except (OSError, ValueError) as error:
        module.fail_json(msg="PgBouncer entry %s: %s" % (module.params["name"], error), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
