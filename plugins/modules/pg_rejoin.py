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
"""

import os
import pwd
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import slot_name_for
from ansible_collections.penguinmails.dbops.plugins.module_utils.fence import processes_in
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    close_quietly,
    connect,
    connection_argument_spec,
    ensure_psycopg2,
    execute,
    require_primary,
    statement_text,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.rejoin import (
    configure_standby,
    remove_signal_files,
    remove_stale_pid_file,
    restore_config,
    save_config,
    set_aside,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.repoint import follow_conninfo

STREAMING = "SELECT state FROM pg_stat_replication WHERE application_name = %s"
SLOT_EXISTS = "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s"
CREATE_SLOT = "SELECT pg_create_physical_replication_slot(%s, true)"


class Rejoin:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = ConnectionParams.from_module_params(module.params)
        self.data_dir = module.params["data_dir"]
        self.slot = slot_name_for(module.params["member_name"])
        self.run_as = module.params["run_as"] or pwd.getpwuid(os.stat(self.data_dir).st_uid).pw_name
        self.actions: list = []
        self.executed: list = []

    def tool(self, name: str, *args: str, with_password: bool = True):
        """Run a PostgreSQL program as the server's OS user.

        The password reaches pg_rewind and pg_basebackup through the environment, never a
        command line. The server itself (pg_ctl start) must not inherit it: the postmaster
        would carry the superuser password in its environment, and its WAL receiver would
        use it instead of the passfile in primary_conninfo.
        """
        command = [os.path.join(self.module.params["bin_dir"], name), *args]
        if not with_password:
            command = ["env", "-u", "PGPASSWORD", "-u", "PGPASSFILE", *command]
        if os.geteuid() == 0 and self.run_as != "root":
            command = ["runuser", "-u", self.run_as, "--", *command]
        environment = {"PGCONNECT_TIMEOUT": str(int(max(2, self.params.connect_timeout)))}
        if with_password:
            environment["PGPASSWORD"] = self.params.password
        return self.module.run_command(command, environ_update=environment, cwd="/")

    def source_conninfo(self) -> str:
        return "host=%s port=%d user=%s dbname=postgres" % (self.params.host, self.params.port, self.params.user)

    def streaming(self, conn) -> bool:
        row = execute(conn, self.params, STREAMING, (self.slot,)).fetchone()
        return bool(row) and row[0] == "streaming"

    def prepare_primary(self, conn) -> None:
        execute(conn, self.params, "CHECKPOINT")
        self.executed.append("CHECKPOINT")
        if not execute(conn, self.params, SLOT_EXISTS, (self.slot,)).fetchone():
            execute(conn, self.params, CREATE_SLOT, (self.slot,))
            self.executed.append(statement_text(conn, CREATE_SLOT, (self.slot,)))

    def rewind_or_reclone(self) -> dict:
        result = {}
        stale, stale_files = remove_stale_pid_file(self.data_dir)
        if stale:
            self.actions.append("removed %s of dead postmaster %d" % (", ".join(stale_files), stale))
        saved = save_config(self.data_dir)
        removed = remove_signal_files(self.data_dir)
        if removed:
            self.actions.append("removed %s for pg_rewind's crash recovery" % ", ".join(removed))
        rc, out, err = self.tool(
            "pg_rewind", "--target-pgdata", self.data_dir, "--source-server", self.source_conninfo()
        )
        output = (out + err).strip()
        if rc == 0:
            result["method"] = "rewind"
            self.actions.append("pg_rewind from %s" % self.params.endpoint)
        elif self.module.params["allow_reclone"]:
            self.actions.append("pg_rewind failed: %s" % output.splitlines()[-1:])
            result["discarded_data_dir"], output = self.reclone()
            result["method"] = "reclone"
        else:
            configure_standby(self.data_dir, self.primary_conninfo(), self.slot)
            self.module.fail_json(
                msg="pg_rewind of %s from %s failed (rc %d): %s. The server stays stopped with standby.signal; "
                "rerun with rejoin_allow_reclone=true to discard its data directory and re-clone it"
                % (self.data_dir, self.params.endpoint, rc, output.splitlines()[-1] if output else "no output"),
                actions=self.actions,
                executed_queries=self.executed,
                tool_output=output[-2000:],
            )
        restore_config(self.data_dir, saved)
        configure_standby(self.data_dir, self.primary_conninfo(), self.slot)
        self.actions.append("kept the server's own configuration files; wrote standby.signal and primary_conninfo")
        result["tool_output"] = "\n".join(output.splitlines()[-5:])
        return result

    def reclone(self) -> tuple:
        owner = os.stat(self.data_dir)
        aside = set_aside(self.data_dir, time.strftime("%Y%m%dT%H%M%S", time.gmtime()))
        self.actions.append("moved the data directory aside to %s" % aside)
        os.mkdir(self.data_dir, 0o700)
        os.chown(self.data_dir, owner.st_uid, owner.st_gid)
        rc, out, err = self.tool(
            "pg_basebackup", "-D", self.data_dir, "-X", "stream", "-c", "fast", "-d", self.source_conninfo()
        )
        if rc != 0:
            self.module.fail_json(
                msg="pg_basebackup from %s failed (rc %d): %s; the old data directory is at %s"
                % (self.params.endpoint, rc, (out + err).strip().splitlines()[-1:], aside),
                actions=self.actions,
            )
        self.actions.append("re-cloned with pg_basebackup from %s" % self.params.endpoint)
        return aside, (out + err).strip()

    def primary_conninfo(self) -> str:
        return follow_conninfo(
            self.module.params["replication_conninfo"], self.params.host, self.params.port, self.slot
        )

    def start(self) -> None:
        log_file = self.module.params["log_file"] or os.path.join(
            os.path.dirname(self.data_dir.rstrip("/")), "postgresql.log"
        )
        timeout = str(self.module.params["start_timeout"])
        rc, out, err = self.tool(
            "pg_ctl", "-D", self.data_dir, "-l", log_file, "-w", "-t", timeout, "start", with_password=False
        )
        if rc != 0:
            self.module.fail_json(
                msg="pg_ctl start of %s failed: %s; see %s" % (self.data_dir, (out + err).strip(), log_file),
                actions=self.actions,
            )
        self.actions.append("started the server")

    def wait_streaming(self, conn) -> bool:
        deadline = time.monotonic() + self.module.params["start_timeout"]
        while time.monotonic() < deadline:
            if self.streaming(conn):
                return True
            time.sleep(0.2)
        return self.streaming(conn)


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
    if not os.path.isfile(os.path.join(module.params["data_dir"], "PG_VERSION")):
        module.fail_json(msg="%s is not a PostgreSQL data directory (no PG_VERSION)" % module.params["data_dir"])

    rejoin = Rejoin(module)
    result = {
        "changed": False,
        "method": "none",
        "streaming": False,
        "actions": rejoin.actions,
        "executed_queries": rejoin.executed,
    }
    conn = None
    try:
        conn = connect(rejoin.params)
        require_primary(conn, rejoin.params)
        if rejoin.streaming(conn):
            result["streaming"] = True
            module.exit_json(**result)
        if processes_in(rejoin.data_dir):
            module.fail_json(
                msg="%s is running but not streaming from %s; fence it (pg_fence) before it rejoins"
                % (rejoin.data_dir, rejoin.params.endpoint),
                **result,
            )
        result["changed"] = True
        if module.check_mode:
            rejoin.actions.extend(
                [
                    "CHECKPOINT on %s and a slot %s" % (rejoin.params.endpoint, rejoin.slot),
                    "pg_rewind %s from %s%s"
                    % (
                        rejoin.data_dir,
                        rejoin.params.endpoint,
                        " (re-clone if it fails)" if module.params["allow_reclone"] else "",
                    ),
                    "keep the configuration files, write standby.signal and primary_conninfo, start, wait to stream",
                ]
            )
            module.exit_json(**result)
        rejoin.prepare_primary(conn)
        result.update(rejoin.rewind_or_reclone())
        rejoin.start()
        result["streaming"] = rejoin.wait_streaming(conn)
    except ConnectionFailure as failure:
        module.fail_json(msg=str(failure), **result)
    finally:
        close_quietly(conn)
    if not result["streaming"]:
        module.fail_json(
            msg="%s started but is not streaming from %s within %d s"
            % (rejoin.data_dir, rejoin.params.endpoint, module.params["start_timeout"]),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
