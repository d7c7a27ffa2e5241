#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: posthog_alerts
short_description: Read a PostHog project's alerts and match the runbook's database conditions
version_added: 0.1.0
description:
  - The runbook's "check PostHog alerts". Lists the alerts of a PostHog project through its REST API,
    returns those firing, and grades the runbook's conditions (C(query_time > 5s),
    C(connection_pool > 90%)) as findings, OK (an alert watches it and is quiet), WARNING (no alert
    watches it, or it could not be evaluated) or CRITICAL (a matching alert is firing).
  - "Endpoints used, as documented at U(https://posthog.com/docs/api/alerts):
    C(GET /api/projects/{project_id}/alerts/) (paginated with C(limit) and C(offset), C(next) followed
    only on the same host) and, for firing or matching alerts the list returned without checks,
    C(GET /api/projects/{project_id}/alerts/{id}/) for their latest checks."
  - "Alert fields read: C(id), C(name), C(state) (C(Firing), C(Not firing), C(Errored), C(Snoozed)),
    C(enabled), C(insight) (id or object with C(name)), C(threshold.configuration) (C(type),
    C(bounds.lower), C(bounds.upper)), C(condition.type), C(calculation_interval),
    C(last_checked_at), C(last_notified_at), C(snoozed_until) and C(checks[].calculated_value),
    C(checks[].created_at), C(checks[].state)."
  - An unreachable or failing PostHog is reported (RV(reachable=false), RV(error), a WARNING finding),
    never fatal unless O(fail_on_unreachable=true); the database itself is the source of truth.
  - Read-only; never reports C(changed).
author:
  - PenguinMails Database Operations (@penguinmails)
options:
  host:
    description:
      - Base URL of PostHog, for example V(https://us.posthog.com), V(https://eu.posthog.com) or a
        self-hosted instance. Falls back to E(POSTHOG_HOST).
    type: str
    default: https://us.posthog.com
  project_id:
    description: ID of the PostHog project. Falls back to E(POSTHOG_PROJECT_ID).
    type: str
    required: true
  api_key:
    description:
      - Personal API key with the C(alert:read) scope, sent as C(Authorization Bearer). Falls back to
        E(POSTHOG_PERSONAL_API_KEY). Never logged or returned; only ever sent to O(host).
    type: str
    required: true
  timeout:
    description:
      - Seconds each HTTP request may take. Latest checks are fetched only while the time spent stays
        under it, so a slow PostHog costs a bounded time.
      - From 0.1 to 3600.
    type: float
    default: 10
  validate_certs:
    description: Verify PostHog's TLS certificate.
    type: bool
    default: true
  fetch_checks:
    description:
      - Fetch the latest checks (calculated value) of firing or matching alerts the list returned without
        them, at most 10 requests.
    type: bool
    default: true
  include_disabled:
    description: Also return disabled alerts.
    type: bool
    default: false
  max_pages:
    description: Most pages of 100 alerts to read.
    type: int
    default: 20
  conditions:
    description:
      - The conditions to grade. Each alert whose name or insight name matches C(pattern)
        (a case-insensitive regular expression) watches that condition.
      - Defaults to the runbook's two, C(query_time) (pattern
        C(query[ _-]?time|slow quer|query (duration|latency)), threshold 5 s) and C(connection_pool)
        (pattern C(connection[ _-]?pool|pool (usage|utili[sz]ation|saturation)), threshold 90 %).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the condition; the finding's check is C(posthog_<name>).
        type: str
        required: true
      pattern:
        description: Regular expression matched against alert and insight names.
        type: str
        required: true
      threshold:
        description: The condition's threshold, reported with the finding.
        type: float
      unit:
        description: Unit of the threshold, for messages.
        type: str
        default: ''
  fail_on_unreachable:
    description: Fail the task when PostHog cannot be read.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed.
"""

EXAMPLES = r"""
- name: Check PostHog alerts (second opinion; never blocks the response)
  penguinmails.dbops.posthog_alerts:
    host: https://eu.posthog.com
    project_id: "{{ posthog_project_id }}"
    api_key: "{{ vault_posthog_personal_api_key }}"
    timeout: 5
  delegate_to: localhost
  run_once: true
  register: posthog

- name: Say which runbook conditions PostHog sees firing
  ansible.builtin.debug:
    msg: "{{ posthog.findings | selectattr('status', 'eq', 'CRITICAL') | map(attribute='message') | list }}"

- name: Watch a custom condition as well
  penguinmails.dbops.posthog_alerts:
    project_id: "12345"
    api_key: "{{ vault_posthog_personal_api_key }}"
    conditions:
      - {name: query_time, pattern: 'query[ _-]?time', threshold: 5, unit: s}
      - {name: replication_lag, pattern: 'replication lag', threshold: 30, unit: s}
"""

RETURN = r"""
reachable:
  description: Whether PostHog answered the alerts list.
  returned: always
  type: bool
  sample: true
error:
  description: Why PostHog could not be read; null when it could. Never holds the API key.
  returned: always
  type: str
  sample: "PostHog at https://us.posthog.com answered HTTP 401: ...; check the personal API key"
error_kind:
  description: Machine-readable failure (timeout, refused, dns, ssl, network, http_401, http_403, invalid_json, ...).
  returned: always
  type: str
  sample: timeout
host:
  description: The PostHog base URL asked.
  returned: always
  type: str
  sample: https://us.posthog.com
project_id:
  description: The project asked.
  returned: always
  type: str
  sample: "12345"
alerts:
  description:
    - The project's (enabled, unless O(include_disabled)) alerts, each with id, name, state, enabled,
      firing, insight_id, insight_short_id, insight_name, threshold_type, lower_bound, upper_bound,
      condition_type, calculation_interval, last_checked_at, last_notified_at, snoozed_until,
      last_value, last_check_at and last_check_state.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "0f4e...", "name": "DB query_time p95", "state": "Firing", "firing": true,
            "upper_bound": 5, "last_value": 7.2}]
firing:
  description: The alerts whose state is C(Firing).
  returned: always
  type: list
  elements: dict
findings:
  description:
    - One per condition, C(check) (C(posthog_<name>)), C(status) (OK, WARNING, CRITICAL), C(value)
      (highest last value of firing matching alerts), C(threshold), C(unit), C(subject) (the condition),
      C(message), C(condition),
      C(alerts) and C(firing_alerts) (IDs). A single C(posthog_reachable) WARNING when PostHog could not be read.
  returned: always
  type: list
  elements: dict
  sample: [{"check": "posthog_query_time", "status": "CRITICAL", "value": 7.2, "threshold": 5.0,
            "message": "PostHog alert(s) 'DB query_time p95' firing for query_time > 5s"}]
status:
  description: Worst status of the findings.
  returned: always
  type: str
  sample: CRITICAL
warnings_detail:
  description: Latest checks that could not be fetched, and why.
  returned: always
  type: list
  elements: str
elapsed_ms:
  description: Time spent talking to PostHog in milliseconds.
  returned: always
  type: float
  sample: 182.4
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible_collections.penguinmails.dbops.plugins.module_utils.findings import overall_status
from ansible_collections.penguinmails.dbops.plugins.module_utils.posthog import (
    DEFAULT_HOST,
    RUNBOOK_CONDITIONS,
    PostHogTarget,
    collect_alerts,
    validate_conditions,
)


def argument_spec() -> dict:
    return {
        "host": {"type": "str", "default": DEFAULT_HOST, "fallback": (env_fallback, ["POSTHOG_HOST"])},
        "project_id": {"type": "str", "required": True, "fallback": (env_fallback, ["POSTHOG_PROJECT_ID"])},
        "api_key": {
            "type": "str",
            "required": True,
            "no_log": True,
            "fallback": (env_fallback, ["POSTHOG_PERSONAL_API_KEY"]),
        },
        "timeout": {"type": "float", "default": 10.0},
        "validate_certs": {"type": "bool", "default": True},
        "fetch_checks": {"type": "bool", "default": True},
        "include_disabled": {"type": "bool", "default": False},
        "max_pages": {"type": "int", "default": 20},
        "conditions": {
            "type": "list",
            "elements": "dict",
            "options": {
                "name": {"type": "str", "required": True},
                "pattern": {"type": "str", "required": True},
                "threshold": {"type": "float"},
                "unit": {"type": "str", "default": ""},
            },
        },
        "fail_on_unreachable": {"type": "bool", "default": False},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    target = PostHogTarget(
        host=module.params["host"],
        project_id=module.params["project_id"],
        api_key=module.params["api_key"],
        timeout=module.params["timeout"],
        validate_certs=module.params["validate_certs"],
    )
    conditions = module.params["conditions"] or [dict(condition) for condition in RUNBOOK_CONDITIONS]
    try:
        target.validate()
        validate_conditions(conditions)
    except ValueError as error:
        module.fail_json(msg=str(error))

    result = collect_alerts(
        target,
        conditions,
        fetch_checks=module.params["fetch_checks"],
        include_disabled=module.params["include_disabled"],
        max_pages=module.params["max_pages"],
    )
    result["warnings_detail"] = result.pop("warnings")
    result["status"] = overall_status(result["findings"])
    for warning in result["warnings_detail"]:
        module.warn(warning)
    if not result["reachable"]:
        if module.params["fail_on_unreachable"]:
            module.fail_json(msg=result["error"], changed=False, **result)
        module.warn(result["error"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
