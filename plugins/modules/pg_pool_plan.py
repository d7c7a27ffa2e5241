#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_pool_plan
short_description: Look at a tier's PgBouncer pool and its server, say why it is exhausted and what to do next
version_added: 0.2.0
description:
  - Reads, in one look, PgBouncer's console (SHOW POOLS, DATABASES, CONFIG, LISTS, STATS, CLIENTS) and the
    tier's server (C(max_connections), reserved slots, backends, replication connections, the database's
    sessions active or idle in transaction, the seed's connection pool metrics of the last 5 minutes
    where the tables exist). Changes nothing.
  - Returns the causes (sessions idle in transaction past O(idle_tx_max_s), queries past O(query_max_s),
    one client address or application flooding, a pool too small for a healthy load, a server out of
    slots), each with its evidence; the server's capacity for this pool (C(max_connections) - reserved -
    replication - every other pool pointing at the same server); the largest raise within O(ceiling) and
    that capacity; and the next rung of the relief ladder (terminate, raise, reconnect, restart) not in
    O(tried), or escalate. The rules are in module_utils/pool_relief.py.
  - With O(login_host) empty it reads the server PgBouncer's entry for O(database) points at, the one whose
    slots the pool uses.
  - With O(window_s) above 0 it then samples the pool and a probe query through PgBouncer once a second
    for that long and returns RV(verification).
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
  - penguinmails.dbops.pgbouncer
options:
  tier:
    description: The tier (oltp, content, queue, olap); names the ceiling's default.
    type: str
    required: true
  database:
    description: The tier's database, as PgBouncer and the server name it.
    type: str
    required: true
  ceiling:
    description: Largest pool_size for the tier. Default the seed's (oltp 50, content 25, queue 40, olap 15).
    type: int
  idle_tx_max_s:
    description: A session idle in transaction longer than this is a leak.
    type: float
    default: 60
  query_max_s:
    description: A query running longer than this is a runaway.
    type: float
    default: 300
  maxwait_max_s:
    description: The oldest waiting client may have waited less than this for the pool to count as relieved.
    type: float
    default: 1
  utilization_pct:
    description:
      - Share of pool_size in use reported as RV(near_full) (the alert's 90).
      - Only waiting clients or maxwait make a pool exhausted.
    type: float
    default: 90
  tried:
    description: Rungs this run already took (terminate, raise, reconnect, restart).
    type: list
    elements: str
    default: []
  restart_allowed:
    description: Whether PgBouncer may be restarted when its console does not answer.
    type: bool
    default: false
  metrics_schema:
    description: Schema of the seed's connection_pool_metrics tables; empty to skip them.
    type: str
    default: public
  window_s:
    description: Seconds to sample the pool and the probe after looking (0 for none).
    type: float
    default: 0
  probe_user:
    description: Login of the probe query through PgBouncer; no probe when empty.
    type: str
    default: ""
  probe_password:
    description: Its password.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: It changes nothing, so there is nothing to show.
"""

EXAMPLES = r"""
- name: Look at the olap pool and decide
  penguinmails.dbops.pg_pool_plan:
    tier: olap
    database: penguinmails_olap
    login_host: 10.0.4.11
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    pgbouncer_user: "{{ dbops_login_user }}"
    pgbouncer_password: "{{ dbops_login_password }}"
  register: pool_plan
"""

RETURN = r"""
console_answers:
  description: Whether PgBouncer's console answered.
  returned: always
  type: bool
exhausted:
  description: Whether any cause holds (clients waiting, maxwait past its limit, a full server).
  returned: always
  type: bool
near_full:
  description: Whether the busiest pool uses O(utilization_pct) of pool_size or more (reported, not acted on).
  returned: when the console answered
  type: bool
causes:
  description: Each cause that holds, with its evidence (pids, users, ages, truncated queries; a client; figures).
  returned: always
  type: list
  elements: dict
rung:
  description: The next rung (terminate, raise, reconnect, restart, escalate, none) and why.
  returned: always
  type: dict
  sample: {"rung": "terminate", "reason": "sessions past their limits hold server connections"}
ladder:
  description:
    - Every rung a run would take, in order, if none relieved the pool, ending with escalate or none
      (check mode shows it as the plan). Independent of O(tried).
  returned: always
  type: list
  elements: dict
  sample: [{"rung": "terminate", "reason": "sessions past their limits hold server connections"}]
pool:
  description: The database's busiest pool (one per user) with cl_active, cl_waiting, sv_active, maxwait_seconds.
  returned: when the console answered
  type: dict
capacity:
  description: max_connections, reserved, replication, other_pools and the capacity left for this pool.
  returned: when the console answered
  type: dict
ceiling_problem:
  description: Why the ceiling cannot be honoured by the server, with both numbers; null when it can.
  returned: when the console answered
  type: str
raise_plan:
  description: allowed, the pool_size to set and the reason (both limits named).
  returned: when the console answered
  type: dict
verification:
  description: verified and reason, over the samples of O(window_s).
  returned: when window_s is above 0 and the console answered
  type: dict
samples:
  description: One per second of the window (cl_waiting, maxwait_seconds, probe_ok, probe_ms).
  returned: when window_s is above 0 and the console answered
  type: list
  elements: dict
"""

import dataclasses

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils import pool_relief as rules
from ansible_collections.penguinmails.dbops.plugins.module_utils.node_info import json_safe
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import admin_params, pgbouncer_argument_spec
from ansible_collections.penguinmails.dbops.plugins.module_utils.pool_watch import PlanRequest, plan
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    connection_argument_spec,
    connection_params,
    ensure_psycopg2,
)

NON_NEGATIVE = ("idle_tx_max_s", "query_max_s", "maxwait_max_s", "utilization_pct", "window_s", "ceiling")


def probe_params(module, console):
    if not module.params["probe_user"]:
        return None
    return dataclasses.replace(
        console,
        user=module.params["probe_user"],
        password=module.params["probe_password"],
        dbname=module.params["database"],
    )


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec.update(pgbouncer_argument_spec())
    argument_spec.update(
        tier={"type": "str", "required": True},
        database={"type": "str", "required": True},
        ceiling={"type": "int"},
        idle_tx_max_s={"type": "float", "default": 60.0},
        query_max_s={"type": "float", "default": 300.0},
        maxwait_max_s={"type": "float", "default": 1.0},
        utilization_pct={"type": "float", "default": 90.0},
        tried={"type": "list", "elements": "str", "default": []},
        restart_allowed={"type": "bool", "default": False},
        metrics_schema={"type": "str", "default": "public"},
        window_s={"type": "float", "default": 0.0},
        probe_user={"type": "str", "default": ""},
        probe_password={"type": "str", "default": "", "no_log": True},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    params = module.params
    for option in NON_NEGATIVE:
        if params[option] is not None and params[option] < 0:
            module.fail_json(msg="%s must be at least 0 (got %s)" % (option, params[option]))
    unknown = sorted(set(params["tried"]) - set(rules.RUNGS))
    if unknown:
        module.fail_json(msg="tried: unknown rung %s; known: %s" % (", ".join(unknown), ", ".join(rules.RUNGS)))
    ceiling = params["ceiling"] if params["ceiling"] is not None else rules.TIER_CEILINGS.get(params["tier"])
    if ceiling is None:
        module.fail_json(msg="no pool ceiling for tier %s: give ceiling" % params["tier"])
    server = dataclasses.replace(connection_params(module), dbname=params["database"])
    console = connection_params(module, build=admin_params)
    limits = rules.Limits(
        idle_tx_max_s=params["idle_tx_max_s"],
        query_max_s=params["query_max_s"],
        maxwait_max_s=params["maxwait_max_s"],
        utilization_pct=params["utilization_pct"],
    )
    request = PlanRequest(
        tier=params["tier"],
        database=params["database"],
        ceiling=ceiling,
        limits=limits,
        tried=list(params["tried"]),
        restart_allowed=params["restart_allowed"],
        metrics_schema=params["metrics_schema"],
        window_s=params["window_s"],
    )
    try:
        result = plan(server, console, request, probe_params(module, console))
    except ConnectionFailure as failure:
        module.fail_json(msg=str(failure))
    module.exit_json(changed=False, **json_safe(result))


if __name__ == "__main__":
    main()
