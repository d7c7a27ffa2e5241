#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_activity
short_description: List, cancel or terminate PostgreSQL sessions matching filters
version_added: 0.1.0
description:
  - The runbook's "check active queries" (C(pg_stat_activity) with duration and a 100 character
    query preview, oldest first), filtered by state, minimum duration, user, database,
    application name, client address (CIDR), wait event and blocked/blocking (C(pg_blocking_pids)).
  - With O(action=cancel) or O(action=terminate), calls C(pg_cancel_backend) or
    C(pg_terminate_backend) on the matching sessions and returns exactly what it signalled.
  - Never lists nor signals its own backend or anything but client backends (no WAL senders,
    autovacuum, background or parallel workers). Superuser sessions are listed but signalled
    only with O(allow_superuser=true).
  - Race-safe, the statement that signals re-checks every filter at that instant and only
    touches the sessions (pid and backend start time) that were listed, so a session that ended
    or a pid reused in between is left alone.
  - A rerun after a termination finds nothing and reports C(changed=false).
author:
  - PenguinMails Database Operations (@penguinmails)
extends_documentation_fragment:
  - penguinmails.dbops.postgres
options:
  action:
    description:
      - V(list) only reports the matching sessions.
      - V(cancel) cancels their current query, V(terminate) ends their connection.
      - Signalling requires at least one filter beyond O(states) that picks sessions out, so that a
        bare O(action=terminate) can never end every active session. Filters that match (almost)
        every session do not count - O(min_duration) under 1 second, O(client_addresses) that span
        every address (V(0.0.0.0/0), V(::/0)), O(blocked=false), O(blocking=false), lists of empty
        names - unless O(allow_all=true).
      - At most O(max_sessions) sessions are signalled by one call.
    type: str
    default: list
    choices: [list, cancel, terminate]
  states:
    description:
      - Session states to match (C(pg_stat_activity.state)). An empty list matches any state.
      - The default is the runbook's C(state = 'active').
    type: list
    elements: str
    default: [active]
  min_duration:
    description:
      - Match only sessions at least this many seconds old, measured from O(duration_basis).
    type: float
  duration_basis:
    description:
      - Which timestamp O(min_duration) is measured from. The runbook measures from C(query_start);
        V(xact_start) finds long transactions, V(state_change) long idle-in-transaction.
    type: str
    default: query_start
    choices: [query_start, xact_start, state_change, backend_start]
  users:
    description: Match only sessions of these roles (C(usename)).
    type: list
    elements: str
  databases:
    description: Match only sessions connected to these databases.
    type: list
    elements: str
  application_names:
    description: Match only sessions whose C(application_name) is one of these.
    type: list
    elements: str
  client_addresses:
    description:
      - Match only sessions whose client address lies in one of these addresses or CIDR ranges,
        for example V(10.0.0.0/8). Unix socket sessions have no address and never match.
      - Ranges that together span every address do not count as a filter for signalling.
    type: list
    elements: str
  wait_event_types:
    description: Match only sessions waiting on one of these wait event types, for example V(Lock).
    type: list
    elements: str
  wait_events:
    description: Match only sessions waiting on one of these wait events, for example V(transactionid).
    type: list
    elements: str
  blocked:
    description:
      - V(true) matches only sessions blocked by another one (C(pg_blocking_pids) not empty),
        V(false) only sessions that are not. Unset matches both.
    type: bool
  blocking:
    description:
      - V(true) matches only sessions that block at least one other session, V(false) only
        sessions that block nobody. Unset matches both.
    type: bool
  pids:
    description: Match only these backend process IDs.
    type: list
    elements: int
  allow_all:
    description:
      - Allow O(action=cancel) or O(action=terminate) without a filter that picks sessions out,
        that is on every session matching O(states). O(max_sessions) still applies.
    type: bool
    default: false
  max_sessions:
    description:
      - Most sessions one call cancels or terminates, oldest query first. The matching sessions beyond
        it are left alone and reported in RV(over_limit), with RV(limit_reached) true and a warning;
        run again (or raise the limit) to act on them.
      - At least 1.
    type: int
    default: 20
  allow_superuser:
    description:
      - Also signal sessions of superusers. Without it they are reported under RV(skipped).
    type: bool
    default: false
  wait:
    description:
      - After O(action=terminate), wait until the terminated sessions have left
        C(pg_stat_activity), up to O(wait_timeout) seconds.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for terminated sessions to disappear. Sessions still present then are
        reported in RV(still_present) with a warning; the task does not fail.
      - From 0.1 to 3600.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    description: Lists the sessions it would cancel or terminate and signals nothing.
  diff_mode:
    support: none
    description: Sessions are not configuration; RV(acted_on) says what was signalled.
notes:
  - Needs a superuser, or a member of C(pg_signal_backend) to signal non-superuser sessions and of
    C(pg_read_all_stats) to see their queries.
"""

EXAMPLES = r"""
- name: Check active queries (the runbook's first look)
  penguinmails.dbops.pg_activity:
    login_host: "{{ ansible_host }}"
    login_port: "{{ pg_port }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
  delegate_to: localhost
  register: activity

- name: Cancel queries of the application running longer than 5 minutes
  penguinmails.dbops.pg_activity:
    login_host: "{{ ansible_host }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    action: cancel
    users: [app_user]
    min_duration: 300
  delegate_to: localhost

- name: End sessions idle in transaction for over 10 minutes that block others
  penguinmails.dbops.pg_activity:
    login_host: "{{ ansible_host }}"
    login_user: "{{ dbops_login_user }}"
    login_password: "{{ dbops_login_password }}"
    action: terminate
    states: [idle in transaction]
    duration_basis: state_change
    min_duration: 600
    blocking: true
  delegate_to: localhost
"""

RETURN = r"""
sessions:
  description:
    - Every matching session, oldest query first, with the runbook's columns (pid, usename,
      client_addr, state, query_start, duration_seconds, query_preview) and datname,
      application_name, backend_start, xact_start, state_change, xact_duration_seconds,
      state_duration_seconds, wait_event_type, wait_event, superuser, blocked_by and blocking
      (lists of pids).
    - Timestamps are ISO 8601 strings.
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "usename": "app", "state": "active", "duration_seconds": 312.5,
            "query_preview": "SELECT * FROM orders WHERE ...", "blocked_by": [], "blocking": [4250]}]
acted_on:
  description:
    - Sessions cancelled or terminated (in check mode, those that would be), each with pid, user,
      database, application_name, client_addr, state, duration_seconds and query_preview
      (at most 100 characters). Empty for O(action=list).
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "user": "app", "duration_seconds": 312.5, "query_preview": "SELECT pg_sleep(600)"}]
skipped:
  description: Matching sessions left alone, each with the fields of RV(acted_on) and a reason.
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4301, "user": "postgres", "reason": "superuser session; set allow_superuser to include it"}]
over_limit:
  description:
    - Matching sessions left alone because O(max_sessions) were already acted on, with the fields of
      RV(acted_on). Empty unless RV(limit_reached).
  returned: always
  type: list
  elements: dict
  sample: []
limit_reached:
  description: True when more sessions matched than O(max_sessions); only the first ones were acted on.
  returned: always
  type: bool
  sample: false
vanished:
  description:
    - PIDs listed as matching that no longer matched when the signal was sent (the session ended,
      its query finished or its state changed), and were therefore not signalled.
  returned: always
  type: list
  elements: int
  sample: []
still_present:
  description: Terminated PIDs still in pg_stat_activity when O(wait_timeout) ran out.
  returned: always
  type: list
  elements: int
  sample: []
executed_queries:
  description:
    - The statements that signalled sessions, with their parameters (filters and the listed pids)
      rendered. Empty for O(action=list) and in check mode.
  returned: always
  type: list
  elements: str
  sample: ["WITH everyone AS (...) SELECT s.pid, pg_terminate_backend(s.pid) AS signalled FROM sessions s WHERE ..."]
planned_queries:
  description: In check mode, the signalling statement that would have been sent; otherwise empty.
  returned: always
  type: list
  elements: str
  sample: []
endpoint:
  description: The host:port that was asked.
  returned: always
  type: str
  sample: 127.0.0.1:5432
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.activity import (
    ACTIONS,
    DEFAULT_MAX_SESSIONS,
    DURATION_BASES,
    SessionFilter,
    SignalRequest,
    act_on_sessions,
    empty_result,
    signal_refusal,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.node_info import json_safe
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    check_module_timeouts,
    close_quietly,
    connect,
    connection_argument_spec,
    connection_params,
    ensure_psycopg2,
)


def argument_spec() -> dict:
    spec = connection_argument_spec()
    spec.update(
        action={"type": "str", "default": "list", "choices": list(ACTIONS)},
        states={"type": "list", "elements": "str", "default": ["active"]},
        min_duration={"type": "float"},
        duration_basis={"type": "str", "default": "query_start", "choices": sorted(DURATION_BASES)},
        users={"type": "list", "elements": "str"},
        databases={"type": "list", "elements": "str"},
        application_names={"type": "list", "elements": "str"},
        client_addresses={"type": "list", "elements": "str"},
        wait_event_types={"type": "list", "elements": "str"},
        wait_events={"type": "list", "elements": "str"},
        blocked={"type": "bool"},
        blocking={"type": "bool"},
        pids={"type": "list", "elements": "int"},
        allow_all={"type": "bool", "default": False},
        max_sessions={"type": "int", "default": DEFAULT_MAX_SESSIONS},
        allow_superuser={"type": "bool", "default": False},
        wait={"type": "bool", "default": True},
        wait_timeout={"type": "float", "default": 10.0},
    )
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    ensure_psycopg2(module)
    check_module_timeouts(module, ["wait_timeout"])

    session_filter = SessionFilter.from_module_params(module.params)
    try:
        session_filter.validate()
    except ValueError as error:
        module.fail_json(msg=str(error))
    if module.params["max_sessions"] < 1:
        module.fail_json(msg="max_sessions must be at least 1, got %d" % module.params["max_sessions"])
    refusal = signal_refusal(session_filter, module.params["action"], module.params["allow_all"])
    if refusal:
        module.fail_json(msg=refusal)

    params = connection_params(module)
    request = SignalRequest.from_module_params(module.params)
    conn = None
    try:
        conn = connect(params)
        result = act_on_sessions(conn, params, session_filter, request, module.check_mode, module.warn)
    except ConnectionFailure as failure:
        module.fail_json(msg=str(failure), conn_err_kind=failure.kind, **empty_result(params.endpoint))
    finally:
        close_quietly(conn)
    module.exit_json(**json_safe(result))


if __name__ == "__main__":
    main()
