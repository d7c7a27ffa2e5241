#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_restore_diff
short_description: Restore a pgBackRest backup to a point in time into a throw-away instance and diff tables by key
version_added: 0.3.0
description:
  - The data integrity runbook's "begin recovery" for heap damage and bad rows. Runs on the host that
    has pgBackRest, its configuration and the PostgreSQL binaries (the tier's primary, or the controller
    in the lab), and connects to the live primary with the login options.
  - The restore target is O(target_time), else O(detected_at); a target in the future, a tier without a
    stanza, a stanza without a backup, or backups that all ended after the target are refused with one
    line before anything is created.
  - Runs C(pgbackrest check) (switches WAL and waits until it is archived), then
    C(pgbackrest restore --type=time --target-action=promote --archive-mode=off) into a new directory
    under O(restore_root), starts it on O(restore_port) (127.0.0.1 only, archiving off), waits until it
    has reached the target and promoted, and compares each table of O(tables) with the live one by its
    primary key, rows missing, rows changed, rows extra.
  - The throw-away instance is stopped and removed at the end unless O(keep=true).
  - With O(apply=true) the missing and changed rows are written back in one transaction on the live
    primary (one parameterised upsert per row, parents before children) and the diff is computed again;
    extra rows are never deleted.
  - pgBackRest and the instance run as O(run_as) when the module runs as root.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  tables:
    description: Tables to diff (V(schema.table)); each needs a primary key. Required unless O(validate_only).
    type: list
    elements: str
    default: []
  target_time:
    description: Point in time to restore to (ISO, naive is UTC), a time before the damage.
    type: str
  detected_at:
    description: The incident's detected_at, the target when O(target_time) is not set.
    type: str
  pgbackrest_config:
    description: The pgBackRest configuration file of the tier's primary.
    type: path
    default: /etc/pgbackrest/pgbackrest.conf
  stanza:
    description: The tier's pgBackRest stanza; empty means the tier has no backup (refused).
    type: str
    default: ""
  pg_bin_dir:
    description: PostgreSQL binaries of the server's major version; empty looks in C(/usr/lib/postgresql/<major>/bin).
    type: path
    default: ""
  restore_root:
    description: Directory under which the throw-away data directory is made (one per run); not a link.
    type: path
    default: /var/tmp/penguinmails-dbops-restore
  restore_port:
    description: Port of the throw-away instance on 127.0.0.1; V(0) picks a free one.
    type: int
    default: 0
  run_as:
    description: OS user that runs pgBackRest and the throw-away instance when the module runs as root.
    type: str
    default: postgres
  keep:
    description: Leave the throw-away instance running (its directory and port are in RV(restore)).
    type: bool
    default: false
  apply:
    description: Write the missing and changed rows back to the live primary in one transaction.
    type: bool
    default: false
  row_limit:
    description: At most this many rows of each kind returned per table in RV(rows).
    type: int
    default: 100
  start_timeout_s:
    description: Seconds the throw-away instance may take to start and reach the target.
    type: float
    default: 300
  command_timeout_s:
    description: Seconds each pgBackRest command may take.
    type: float
    default: 1800
  validate_only:
    description: Check the target, the stanza and the tables, and stop (read-only).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Checks the target and the backups, lists the commands it would run; restores nothing, writes nothing.
  diff_mode:
    support: none
    description: RV(differences) is the data difference; RV(applied) what was written.
notes:
  - Needs a superuser login on the live primary, pgBackRest and the PostgreSQL server binaries on the host it runs on.
"""

EXAMPLES = r"""
- name: Restore public.accounts as it was before the deploy and diff it
  penguinmails.dbops.pg_restore_diff:
    login_host: 127.0.0.1
    login_port: 5411
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    login_db: penguinmails_content
    tables: [public.accounts, public.orders]
    target_time: "2026-12-03T05:40:00Z"
    pgbackrest_config: /etc/pgbackrest/pgbackrest.conf
    stanza: content
  register: restored
"""

RETURN = r"""
decision:
  description: The target, where it came from and the backup the restore starts from.
  returned: always
  type: dict
  sample: {"target": "2026-12-03T05:40:00+00:00", "source": "integrity_restore_target", "backup": "20261203-054916F",
           "backup_stop": "2026-12-03T05:49:19+00:00"}
tables:
  description: The tables diffed, parents before children.
  returned: always
  type: list
  elements: str
  sample: ["public.accounts", "public.orders"]
differences:
  description: Per table, its key columns and the keys of the rows missing, changed and extra in the live table.
  returned: always
  type: list
  elements: dict
  sample: [{"table": "public.accounts", "key": ["id"], "missing": [[21]], "changed": [[7]], "extra": []}]
rows:
  description: Per table, the rows themselves (up to O(row_limit) of each kind), restored and current.
  returned: always
  type: list
  elements: dict
  sample: []
applied:
  description: Per table, rows inserted and updated (O(apply=true)).
  returned: always
  type: list
  elements: dict
  sample: [{"table": "public.accounts", "inserted": 1, "updated": 1}]
after:
  description: The diff computed again after applying (missing and changed empty).
  returned: always
  type: list
  elements: dict
  sample: []
unreadable:
  description: Tables whose live rows could not be read (a damaged page), with the server's error; not diffed.
  returned: always
  type: list
  elements: dict
  sample: []
restore:
  description: The throw-away instance, data_dir, port, kept, backup.
  returned: always
  type: dict
  sample: {"data_dir": "/var/tmp/penguinmails-dbops-restore/content-20261203T055000000000", "port": 40211,
           "kept": false, "backup": "20261203-054916F"}
actions:
  description: The commands run (in check mode, that would run).
  returned: always
  type: list
  elements: str
  sample: ["pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=content --log-level-console=warn check"]
executed_queries:
  description: The statements run on the live primary (each restored row shown by its key).
  returned: always
  type: list
  elements: str
  sample: []
endpoint:
  description: The live primary's host:port.
  returned: always
  type: str
  sample: 127.0.0.1:5411
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.connected import run_connected
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    check_module_timeouts,
    connection_argument_spec,
    ensure_psycopg2,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.restore_run import restore_and_diff


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update(
        tables={"type": "list", "elements": "str", "default": []},
        target_time={"type": "str"},
        detected_at={"type": "str"},
        pgbackrest_config={"type": "path", "default": "/etc/pgbackrest/pgbackrest.conf"},
        stanza={"type": "str", "default": ""},
        pg_bin_dir={"type": "path", "default": ""},
        restore_root={"type": "path", "default": "/var/tmp/penguinmails-dbops-restore"},
        restore_port={"type": "int", "default": 0},
        run_as={"type": "str", "default": "postgres"},
        keep={"type": "bool", "default": False},
        apply={"type": "bool", "default": False},
        row_limit={"type": "int", "default": 100},
        start_timeout_s={"type": "float", "default": 300.0},
        command_timeout_s={"type": "float", "default": 1800.0},
        validate_only={"type": "bool", "default": False},
    )
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ensure_psycopg2(module)
    check_module_timeouts(module, ["start_timeout_s", "command_timeout_s"])
    if not module.params["tables"] and not module.params["validate_only"]:
        module.fail_json(msg="tables: name at least one table to restore and diff")
    if not 0 <= module.params["restore_port"] <= 65535:
        module.fail_json(
            msg="restore_port must be 0 (a free port) or a port number (got %s)" % module.params["restore_port"]
        )
    if module.params["row_limit"] < 1:
        module.fail_json(msg="row_limit must be at least 1 (got %s)" % module.params["row_limit"])
    result = run_connected(
        module, lambda conn, params: restore_and_diff(conn, params, module.params, module.check_mode), primary=True
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
