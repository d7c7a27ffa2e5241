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
  - Every statement has O(query_timeout) as its deadline except the C(pg_promote) call itself, which
    waits on the server for up to O(wait_seconds) and gets that long plus 5 seconds, so a hung server
    costs O(query_timeout), not the promote wait.
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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    connection_argument_spec,
    connection_params,
    ensure_psycopg2,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.promote import Promotion


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec.update(
        wait_seconds={"type": "int", "default": 30},
        promote_timeout={"type": "float", "default": 30.0},
        synchronous_standby_names={"type": "str"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    promotion = Promotion(
        connection_params(module),
        module.params["wait_seconds"],
        module.params["promote_timeout"],
        module.params["synchronous_standby_names"],
        module.check_mode,
    )
    try:
        result = promotion.run()
    except ActionFailed as failure:
        module.fail_json(msg=str(failure), **failure.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
