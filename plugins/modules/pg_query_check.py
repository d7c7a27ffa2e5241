#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_query_check
short_description: The performance runbook's "check queries" on one PostgreSQL server (read-only)
version_added: 0.2.0
description:
  - Longest active queries, blocking chains from C(pg_blocking_pids) (root blockers, depth, how long
    each waiter waits) and sessions by wait event type.
  - Top statements from C(pg_stat_statements) by total and by mean time (calls, rows, shared blocks
    hit and read, temp blocks), their text truncated to 200 characters and redacted. Where the
    extension is not loaded or not created, says so in a warning and goes on.
  - Tables with heavy sequential scans against index fetches, the top statements that name them
    (missing-index candidates, reported only), and tables whose statistics are stale.
  - The plan, RV(plan.blockers) (root blockers holding someone longer than O(block_max_s)) and
    RV(plan.long_queries) (active statements running longer than O(query_max_s)), for
    M(penguinmails.dbops.pg_activity) to cancel, then terminate.
  - Optionally sums the C(pg_stat_statements) entries of a watched statement (O(watch)) and times a
    probe statement (O(probe)) in a read-only transaction, for before/after evidence.
  - Changes nothing.
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  top:
    description: How many queries and statements each list keeps. At least 1.
    type: int
    default: 10
  query_max_s:
    description: Active statements running longer than this many seconds go to RV(plan.long_queries). At least 1.
    type: float
    default: 300
  block_max_s:
    description: Root blockers holding a waiter longer than this many seconds go to RV(plan.blockers). At least 0.
    type: float
    default: 60
  seq_scan_min_rows:
    description: A table is a heavy sequential scan from this many rows read by sequential scans on. At least 0.
    type: int
    default: 1000000
  seq_scan_ratio:
    description: ... and when those rows are at least this many times the rows index scans fetched. At least 0.
    type: float
    default: 10
  watch:
    description: Text that identifies the slow statement in C(pg_stat_statements) (case-insensitive substring).
    type: str
  probe:
    description:
      - A read-only statement the inventory names as the slow query's probe, timed O(probe_runs) times
        in a read-only transaction that is rolled back.
    type: str
  probe_runs:
    description: How many times the probe runs; the median is reported. From 1 to 100.
    type: int
    default: 5
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing.
notes:
  - Needs a superuser or a member of C(pg_read_all_stats) to see other sessions' queries.
"""

EXAMPLES = r"""
- name: Check queries
  penguinmails.dbops.pg_query_check:
    login_host: "{{ ansible_host }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    login_db: penguinmails_oltp
    query_max_s: 300
    block_max_s: 60
    watch: FROM orders WHERE customer_email
  delegate_to: localhost
  register: performance_check
"""

RETURN = r"""
longest_active:
  description:
    - The longest running active sessions, longest first, with the fields of the sessions of
      M(penguinmails.dbops.pg_activity).
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "usename": "app", "duration_seconds": 312.5, "query_preview": "SELECT ..."}]
blocking_chains:
  description:
    - One per root blocker, with root_pid, user, state, age_seconds, depth, longest_wait_seconds and
      waiters (pid, depth, waiting_seconds, user).
  returned: always
  type: list
  elements: dict
  sample: [{"root_pid": 4242, "depth": 1, "longest_wait_seconds": 75.2, "waiters": [{"pid": 4250, "depth": 1}]}]
waits_by_type:
  description: How many sessions wait on each wait event type (V(none) when not waiting).
  returned: always
  type: dict
  sample: {"Lock": 2, "none": 3}
statements_available:
  description: Whether C(pg_stat_statements) is loaded and created in this database.
  returned: always
  type: bool
  sample: true
top_by_total:
  description:
    - Top statements by total execution time (queryid, query, calls, rows, total_ms, mean_ms,
      shared and temp blocks).
  returned: always
  type: list
  elements: dict
  sample: []
top_by_mean:
  description: Top statements by mean execution time, same fields as RV(top_by_total).
  returned: always
  type: list
  elements: dict
  sample: []
heavy_seq_scans:
  description:
    - Tables read mostly by sequential scans (schema, table, seq_scan, seq_tup_read, idx_tup_fetch,
      n_live_tup).
  returned: always
  type: list
  elements: dict
  sample: []
missing_index_candidates:
  description: The heavy sequential scan tables with the queryids of top statements that name them. Reported only.
  returned: always
  type: list
  elements: dict
  sample: []
stale_statistics:
  description: Tables modified past autovacuum's analyze trigger since their last analyze.
  returned: always
  type: list
  elements: dict
  sample: []
plan:
  description: The sessions to cancel, then terminate.
  returned: always
  type: dict
  sample: {"blockers": [4242], "long_queries": []}
  contains:
    blockers:
      description: Pids of root blockers holding a waiter longer than O(block_max_s).
      type: list
      elements: int
      returned: always
    long_queries:
      description: Pids of active statements running longer than O(query_max_s).
      type: list
      elements: int
      returned: always
watched:
  description: Calls and total_ms summed over the entries matching O(watch); null without O(watch) or the extension.
  returned: always
  type: dict
  sample: {"calls": 120, "total_ms": 5400.5}
probe:
  description: runs, median_ms and durations_ms of the probe; null without O(probe).
  returned: always
  type: dict
  sample: {"runs": 5, "median_ms": 12.4, "durations_ms": [12.1, 12.4, 13.0, 11.9, 12.6]}
endpoint:
  description: The host:port that was asked.
  returned: always
  type: str
  sample: 127.0.0.1:5432
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.connected import run_connected
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    connection_argument_spec,
    ensure_psycopg2,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.query_check import check_queries

MINIMUMS = {"top": 1, "query_max_s": 1, "block_max_s": 0, "seq_scan_min_rows": 0, "seq_scan_ratio": 0, "probe_runs": 1}


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update(
        top={"type": "int", "default": 10},
        query_max_s={"type": "float", "default": 300.0},
        block_max_s={"type": "float", "default": 60.0},
        seq_scan_min_rows={"type": "int", "default": 1000000},
        seq_scan_ratio={"type": "float", "default": 10.0},
        watch={"type": "str"},
        probe={"type": "str"},
        probe_runs={"type": "int", "default": 5},
    )
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ensure_psycopg2(module)
    for option, minimum in MINIMUMS.items():
        if module.params[option] < minimum:
            module.fail_json(msg="%s must be at least %s (got %s)" % (option, minimum, module.params[option]))
    if module.params["probe_runs"] > 100:
        module.fail_json(msg="probe_runs must be at most 100 (got %d)" % module.params["probe_runs"])
    result = run_connected(module, lambda conn, params: check_queries(conn, params, module.params), primary=False)
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
