#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_promote
short_description: Promote a PostgreSQL standby to primary, once
version_added: 0.1.0
description:
  - Promotes the standby it connects to with C(pg_promote(wait => true)).
  - Idempotent, a server that is already out of recovery reports C(changed=false).
  - A promotion that does not finish within O(wait_seconds) is not rolled back (a promotion
    cannot be undone safely); the module polls until O(promote_timeout) and then fails with
    state C(unknown), so a person looks before anything else happens.
  - Fencing the old primary is the caller's job and must happen first (M(penguinmails.dbops.pg_fence)).
  - In check mode it reports the statement it would run and executes nothing.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  wait_seconds:
    description: Seconds C(pg_promote) waits for the promotion to finish.
    type: int
    default: 30
  promote_timeout:
    description: Seconds to keep polling C(pg_is_in_recovery()) after C(pg_promote) returned without success.
    type: float
    default: 30
  synchronous_standby_names:
    description:
      - When set, the promoted server's C(synchronous_standby_names), e.g. the tier's remaining standbys.
      - Applied with ALTER SYSTEM and a reload right after the promotion, while the caller still holds the
        tier's clients in PgBouncer, so commits never wait for a fenced member.
      - Not before the promotion, because a reload that reaches a standby just ahead of the promote request
        can delay the promotion by C(wal_retrieve_retry_interval), measured on PostgreSQL 15.
      - Unset leaves the setting alone.
    type: str
attributes:
  check_mode:
    support: full
    description: Plans instead of acting; reports what it would do and changes nothing.
  diff_mode:
    support: none
    description: Nothing to show as a diff.
"""

EXAMPLES = r"""
- name: Promote the chosen candidate
  penguinmails.dbops.pg_promote:
    login_host: "{{ hostvars[candidate].ansible_host }}"
    login_port: "{{ hostvars[candidate].pg_port }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    synchronous_standby_names: "ANY 1 (oltp_1, oltp_3)"
  delegate_to: localhost
"""

RETURN = r"""
promoted:
  description: Whether the server is out of recovery at the end.
  returned: always
  type: bool
  sample: true
state:
  description: C(promoted), C(already_primary), C(would_promote) (check mode) or C(unknown).
  returned: always
  type: str
  sample: promoted
timeline_id:
  description: Timeline the server writes on after promotion.
  returned: when promoted
  type: int
  sample: 2
promote_seconds:
  description: Seconds from the promote request until the server left recovery.
  returned: when changed
  type: float
  sample: 0.42
executed_queries:
  description: Statements executed (or, in check mode, that would be executed).
  returned: always
  type: list
  elements: str
  sample: ["SELECT pg_promote(true, 30)"]
"""

import dataclasses
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    close_quietly,
    connect,
    connection_argument_spec,
    ensure_psycopg2,
    execute,
    statement_text,
)

PROMOTE = "SELECT pg_promote(true, %s)"
IN_RECOVERY = "SELECT pg_is_in_recovery()"
TIMELINE = "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
SET_SYNC_NAMES = "ALTER SYSTEM SET synchronous_standby_names = %s"
RELOAD = "SELECT pg_reload_conf()"


def in_recovery(conn, params) -> bool:
    return bool(execute(conn, params, IN_RECOVERY).fetchone()[0])


def poll_until_primary(conn, params, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not in_recovery(conn, params):
            return True
        time.sleep(0.1)
    return not in_recovery(conn, params)


def apply_sync_names(conn, params, wanted, executed) -> None:
    if wanted is None:
        return
    current = execute(conn, params, "SHOW synchronous_standby_names").fetchone()[0]
    if current == wanted:
        return
    execute(conn, params, SET_SYNC_NAMES, (wanted,))
    execute(conn, params, RELOAD)
    executed.extend([statement_text(conn, SET_SYNC_NAMES, (wanted,)), RELOAD])


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec.update(
        wait_seconds={"type": "int", "default": 30},
        promote_timeout={"type": "float", "default": 30.0},
        synchronous_standby_names={"type": "str"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)

    wait_seconds = module.params["wait_seconds"]
    base = ConnectionParams.from_module_params(module.params)
    # pg_promote blocks for up to wait_seconds: give that statement room beyond it.
    params = dataclasses.replace(base, query_timeout=max(base.query_timeout, wait_seconds + 5.0))
    promote_text = PROMOTE % wait_seconds
    result = {"changed": False, "promoted": False, "state": "unknown", "executed_queries": []}
    conn = None
    try:
        conn = connect(params)
        if not in_recovery(conn, params):
            result.update(promoted=True, state="already_primary")
            apply_sync_names(conn, params, module.params["synchronous_standby_names"], result["executed_queries"])
            result["changed"] = bool(result["executed_queries"])
        elif module.check_mode:
            planned = [promote_text]
            if module.params["synchronous_standby_names"] is not None:
                wanted = module.params["synchronous_standby_names"]
                planned.extend([statement_text(conn, SET_SYNC_NAMES, (wanted,)), RELOAD])
            result.update(changed=True, state="would_promote", executed_queries=planned)
        else:
            started = time.monotonic()
            finished = execute(conn, params, PROMOTE, (wait_seconds,)).fetchone()[0]
            result["executed_queries"].append(promote_text)
            result["changed"] = True
            if not finished:
                finished = poll_until_primary(conn, params, module.params["promote_timeout"])
            result["promote_seconds"] = round(time.monotonic() - started, 3)
            if not finished:
                module.fail_json(
                    msg="promotion of %s was requested but the server is still in recovery after %.0f s; "
                    "state unknown, not rolling back: check the server log before retrying"
                    % (params.endpoint, module.params["promote_timeout"] + wait_seconds),
                    **result,
                )
            result.update(promoted=True, state="promoted")
            apply_sync_names(conn, params, module.params["synchronous_standby_names"], result["executed_queries"])
        if result["promoted"]:
            result["timeline_id"] = execute(conn, params, TIMELINE).fetchone()[0]
    except ConnectionFailure as failure:
        if result["promoted"]:
            message = "%s is promoted, but a statement after it failed: %s" % (params.endpoint, failure)
            module.fail_json(msg=message, **result)
        module.fail_json(msg=str(failure), **result)
    finally:
        close_quietly(conn)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
