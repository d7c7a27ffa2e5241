#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_rejoin
short_description: Bring a fenced old primary back as a standby of the current primary
version_added: 0.1.0
description:
  - Runs on the host of the server to rejoin, which must be stopped (fenced). Connection options
    (O(login_host), O(login_port), ...) reach the tier's current primary from that host, as a
    superuser (pg_rewind reads the primary's files through it).
  - C(CHECKPOINT) on the primary (so pg_rewind sees its new timeline), a physical slot for the
    rejoining member, then C(pg_rewind) of the data directory, which also finishes crash recovery of
    a server that was killed. When pg_rewind is impossible or fails and O(allow_reclone=true), the
    data directory is moved aside (its path is returned) and re-cloned with C(pg_basebackup).
  - The server's own C(postgresql.conf), C(pg_hba.conf), C(pg_ident.conf) and C(postgresql.auto.conf)
    are kept (pg_rewind and pg_basebackup would copy the primary's), then C(standby.signal),
    C(primary_conninfo) and C(primary_slot_name) are written and the server is started and waited for
    until it streams.
  - Runs as root, it reads and writes files of the data directory (owned by the server's user) without
    following links - descriptors opened with C(O_NOFOLLOW), new files with C(O_EXCL), owner set with
    C(fchown), replacements written to a new file and renamed. A link in the place of C(postgresql.auto.conf),
    a kept configuration file or a new C(standby.signal), or a data directory that is a link, is refused; a
    leftover signal file that is a link is removed, never followed.
  - Connection strings (for pg_rewind, pg_basebackup and C(primary_conninfo)) are quoted as libpq reads
    them, so a value cannot add a setting; a value with a line break or NUL is refused.
  - Idempotent, a member already streaming from the primary is C(changed=false). Check mode reports
    the plan and changes nothing.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  data_dir:
    description: Data directory of the server to rejoin.
    type: path
    required: true
  bin_dir:
    description: Directory with pg_rewind, pg_basebackup and pg_ctl of the server's major version.
    type: path
    required: true
  member_name:
    description: Inventory name of the rejoining server; gives its slot and C(application_name).
    type: str
    required: true
  replication_conninfo:
    description:
      - Connection settings the standby streams with, apart from host, port and application_name,
        for example C(user=replicator passfile=/var/lib/postgresql/.pgpass sslmode=verify-full).
    type: str
    required: true
  allow_reclone:
    description: When pg_rewind fails, discard (move aside) the data directory and re-clone it with pg_basebackup.
    type: bool
    default: false
  log_file:
    description: Server log file for C(pg_ctl start); defaults to C(postgresql.log) beside the data directory.
    type: path
  run_as:
    description: OS user that owns and runs the server; defaults to the owner of O(data_dir).
    type: str
  start_timeout:
    description: Seconds to wait for the server to start and then to stream.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Plans instead of acting; reports what it would do and changes nothing.
  diff_mode:
    support: none
    description: Nothing to show as a diff.
"""

EXAMPLES = r"""
- name: Rejoin the fenced old primary
  penguinmails.dbops.pg_rejoin:
    data_dir: "{{ pg_data_dir }}"
    bin_dir: "{{ pg_bin_dir }}"
    member_name: "{{ inventory_hostname }}"
    replication_conninfo: "user=replicator passfile=/var/lib/postgresql/.pgpass"
    login_host: "{{ hostvars[primary].ansible_host }}"
    login_port: "{{ hostvars[primary].pg_port }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
  become: true
"""

RETURN = r"""
method:
  description: C(none) (already streaming), C(rewind) or C(reclone).
  returned: always
  type: str
  sample: rewind
streaming:
  description: Whether the primary shows the member streaming at the end.
  returned: always
  type: bool
  sample: true
discarded_data_dir:
  description: Where the old data directory was moved before a re-clone.
  returned: when method is reclone
  type: str
  sample: /srv/pg/data.discarded-20261126T182000
actions:
  description: What was done (or, in check mode, would be done).
  returned: always
  type: list
  elements: str
  sample: ["CHECKPOINT on 127.0.0.1:5402", "pg_rewind from 127.0.0.1:5402", "started the server"]
executed_queries:
  description: Statements executed on the primary.
  returned: always
  type: list
  elements: str
  sample: ["CHECKPOINT", "SELECT pg_create_physical_replication_slot('oltp_1', true)"]
tool_output:
  description: The last lines pg_rewind or pg_basebackup printed.
  returned: when changed
  type: str
  sample: "pg_rewind: Done!"
rewind_failure:
  description:
    - Why pg_rewind failed, in an operator's words, when the cause is a known one (empty otherwise).
    - E.g. the old primary no longer holds the WAL back to the last checkpoint before the divergence.
  returned: when pg_rewind failed and re-cloning was not allowed
  type: str
  sample: "the old primary has neither data checksums nor wal_log_hints=on, which pg_rewind needs"
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    connection_argument_spec,
    connection_params,
    ensure_psycopg2,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.rejoin import Rejoin


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec.update(
        data_dir={"type": "path", "required": True},
        bin_dir={"type": "path", "required": True},
        member_name={"type": "str", "required": True},
        replication_conninfo={"type": "str", "required": True, "no_log": True},
        allow_reclone={"type": "bool", "default": False},
        log_file={"type": "path"},
        run_as={"type": "str"},
        start_timeout={"type": "int", "default": 60},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    primary = connection_params(module)
    if not os.path.isfile(os.path.join(module.params["data_dir"], "PG_VERSION")):
        module.fail_json(msg="%s is not a PostgreSQL data directory (no PG_VERSION)" % module.params["data_dir"])
    try:
        rejoin = Rejoin(primary, module.params, module.run_command, module.check_mode)
        result = rejoin.run()
    except ActionFailed as failure:
        module.fail_json(msg=str(failure), **failure.result)
    except OSError as error:
        module.fail_json(msg="rejoining %s: %s" % (module.params["data_dir"], error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
