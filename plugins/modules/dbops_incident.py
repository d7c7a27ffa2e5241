#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dbops_incident
short_description: Open, record the steps of, and close a database incident record
version_added: 0.1.0
description:
  - Keeps the record of one incident in O(dir)/<id>/ on the controller, for the incident playbooks of
    this collection; the P(penguinmails.dbops.incident#role) role wraps it and is the usual way to call it.
  - O(event=open) starts a run of the incident (a rerun with the same id continues the same record),
    O(event=step) appends a timeline entry, O(event=close) sets the outcome and the response-target verdict.
  - Each call rewrites C(record.json) atomically and re-renders C(summary.json) and C(report.md), so the
    record is current even when a playbook stops half-way. The P(penguinmails.dbops.audit#callback)
    callback writes C(audit.jsonl) beside them.
  - The record is bookkeeping, not a change to the fleet, so the task never reports C(changed). The
    summary is published like M(ansible.builtin.set_stats) does (not aggregated), for AWX workflows.
  - Runs on the controller as an action plugin, in the worker process; nothing is sent to the target host.
author:
  - PenguinMails Database Operations (@penguinmails)
options:
  event:
    description:
      - What to record.
    type: str
    required: true
    choices: [open, step, close]
  id:
    description:
      - The incident id, for example an alert id. Letters, digits, V(.), V(_) and V(-).
      - When not given, V(awx-<job_id>) from O(job_id) is used; failing that O(event=open) generates
        one (V(INC-<UTC date>-<time>-<random>)) and the other events fail.
    type: str
  job_id:
    description:
      - The AWX or Tower job id (C(awx_job_id) or C(tower_job_id)), used to build the id when O(id) is not given.
    type: str
  dir:
    description:
      - Directory holding one subdirectory per incident; relative paths are relative to the
        controller's working directory.
    type: path
    default: incidents
  type:
    description:
      - The incident type. Required for O(event=open); a rerun cannot change it.
    type: str
    choices: [db_outage, pool_exhaustion, data_integrity, performance, security_breach]
  tier:
    description:
      - The database tier concerned, for example V(oltp), V(content), V(queue) or V(olap).
    type: str
  severity:
    description:
      - The severity. Defaults to the type's C(default_severity) in O(policy). A rerun may change it; the
        timeline shows the change.
    type: str
    choices: [critical, high, medium, low]
  title:
    description:
      - One line describing the incident, shown in the report and the notifications.
    type: str
  detected_at:
    description:
      - When the incident was detected (the alert's time), as ISO 8601 or epoch seconds. Defaults to now.
      - Kept from the first run; the response target and escalation clocks start here.
    type: str
  response_target_minutes:
    description:
      - Overrides the type's response target from O(policy).
    type: float
  operator:
    description:
      - Who runs the remediation (C(awx_user_name) or C(tower_user_name)); defaults to the OS user of the controller.
    type: str
  targets:
    description:
      - Hosts concerned; merged into the record's list.
    type: list
    elements: str
    default: []
  policy:
    description:
      - The escalation policy, with the keys C(types), C(severity_levels), C(escalation_paths), C(contacts),
        C(outcomes) and C(business_hours). A missing key uses the seed's defaults, which the
        P(penguinmails.dbops.incident#role) role's defaults repeat. See docs/incident-lifecycle.md.
      - Only used by O(event=open); the record keeps a snapshot for later events and notifications.
    type: dict
  name:
    description:
      - For O(event=step), what was checked or done. Required for that event.
    type: str
  kind:
    description:
      - For O(event=step), where the entry goes in the report. Defaults to V(action) when the step changed
        something or reports statements or actions, else V(finding).
    type: str
    choices: [finding, decision, action, verification, note]
  result:
    description:
      - For O(event=step), the outcome in a few words. Defaults to the status and C(msg) of O(from_result).
    type: str
  changed:
    description:
      - For O(event=step), whether the step changed the fleet. Defaults to C(changed) of O(from_result), else false.
    type: bool
  failed:
    description:
      - For O(event=step), whether the step failed. Defaults to C(failed) of O(from_result), else false.
    type: bool
  host:
    description:
      - For O(event=step), the host the step concerns.
    type: str
  details:
    description:
      - For O(event=step), findings as free-form data; keys that name secrets are masked.
    type: raw
  executed_queries:
    description:
      - For O(event=step), the exact statements executed. Defaults to C(executed_queries) of O(from_result).
      - Password literals are masked.
    type: list
    elements: str
    default: []
  actions:
    description:
      - For O(event=step), the actions taken. Defaults to C(actions) of O(from_result).
    type: list
    elements: raw
    default: []
  from_result:
    description:
      - For O(event=step), a registered module result to take C(changed), C(failed), C(msg),
        C(executed_queries) and C(actions) from (loop results are aggregated). Nothing else is kept.
    type: dict
  outcome:
    description:
      - For O(event=close), how the incident ended. Required for that event.
      - V(resolved) and V(mitigated) stamp C(mitigated_at) (the first mitigation counts); V(escalated) and
        V(refused) (for example a failover refused for safety) do not, and by default raise the escalation
        to level 2.
      - V(no_action) closes an incident whose checks found nothing to fix (for example the primary answered);
        it counts as mitigated at close.
    type: str
    choices: [resolved, mitigated, escalated, refused, no_action]
  mitigated_at:
    description:
      - For O(event=close), when service was restored, as ISO 8601 or epoch seconds. Defaults to now.
    type: str
  note:
    description:
      - For O(event=close), one line for the timeline, for example why a failover was refused.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Computes the record, summary and escalation it would write and writes nothing (RV(written=false)).
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - A record that cannot be written fails O(event=open), before anything has been done. After that, a
    step or close that cannot be written is a warning, not a failure, so a full disk cannot stop a
    failover half-way; the audit trail still has the task.
  - Writers of one incident are serialised with an C(flock) on C(<dir>/<id>/.lock), so parallel forks
    and concurrent runs cannot lose an entry.
  - The record's files are created mode 0600 and never opened through a symbolic link. Everything written
    and returned goes through the collection's one redaction (passwords, tokens, keys, URL passwords and
    query values, webhook paths, C(Bearer) tokens); see C(docs/security.md).
seealso:
  - module: penguinmails.dbops.dbops_notify
  - module: penguinmails.dbops.dbops_audit_verify
  - plugin: penguinmails.dbops.audit
    plugin_type: callback
"""

EXAMPLES = r"""
- name: Open the incident (the id comes from -e incident_id, else the AWX job, else it is generated)
  penguinmails.dbops.dbops_incident:
    event: open
    id: "{{ incident_id | default(omit) }}"
    job_id: "{{ awx_job_id | default(tower_job_id) | default(omit) }}"
    type: db_outage
    tier: oltp
    detected_at: "{{ alert_time | default(omit) }}"
    operator: "{{ awx_user_name | default(tower_user_name) | default(omit) }}"
    targets: "{{ groups['oltp'] }}"
  run_once: true
  register: incident

- name: Record what the fence step did, straight from its registered result
  penguinmails.dbops.dbops_incident:
    event: step
    id: "{{ incident.incident.id }}"
    name: Fence the old primary
    from_result: "{{ fence }}"
    host: pg-oltp-1
  run_once: true

- name: Close it
  penguinmails.dbops.dbops_incident:
    event: close
    id: "{{ incident.incident.id }}"
    outcome: resolved
  run_once: true
"""

RETURN = r"""
written:
  description: Whether the record was written (false in check mode).
  returned: always
  type: bool
  sample: true
created:
  description: Whether this call created the record (a first open).
  returned: always
  type: bool
  sample: false
incident:
  description:
    - The record without its timeline and notification ledger, including the policy snapshot
      (C(policy.levels) with each level's contacts).
    - M(penguinmails.dbops.dbops_notify) accepts it as O(penguinmails.dbops.dbops_notify#module:incident).
  returned: always
  type: dict
  sample: {"id": "INC-20261126-180102-1a2b", "type": "db_outage", "tier": "oltp", "severity": "critical",
           "status": "open"}
summary:
  description: The content of C(summary.json).
  returned: always
  type: dict
  contains:
    id:
      description: Incident id.
      type: str
      returned: always
    type:
      description: Incident type.
      type: str
      returned: always
    tier:
      description: Tier.
      type: str
      returned: always
    severity:
      description: Severity.
      type: str
      returned: always
    outcome:
      description: Outcome of the last close, or null while never closed.
      type: str
      returned: always
    detected_at:
      description: Detection time, ISO 8601 UTC.
      type: str
      returned: always
    mitigated_at:
      description: Time of the first mitigation, or null.
      type: str
      returned: always
    response_target_met:
      description: Whether mitigation came within the type's response target (null until closed).
      type: bool
      returned: always
    changed_steps:
      description: Number of steps, over all runs, that changed something.
      type: int
      returned: always
  sample: {"id": "INC-1", "type": "db_outage", "tier": "oltp", "severity": "critical", "outcome": "resolved",
           "detected_at": "2026-11-26T18:01:02.000Z", "mitigated_at": "2026-11-26T18:03:40.512Z",
           "response_target_met": true, "changed_steps": 3, "runs": 1}
entry:
  description: The timeline entry this call added.
  returned: always
  type: dict
  sample: {"seq": 4, "at": "2026-11-26T18:02:11.020Z", "run": 1, "kind": "action", "name": "Fence the old primary",
           "result": "changed", "changed": true, "failed": false, "executed_queries": ["ALTER SYSTEM ..."]}
escalation:
  description: The escalation due now (the clock stops at mitigation).
  returned: always
  type: dict
  sample: {"level": 2, "max_level": 4, "level_name": "Engineering Management",
           "next_level_at": "2026-11-26T18:16:02.000Z", "response_deadline": "2026-11-26T18:06:02.000Z",
           "response_overdue": false}
paths:
  description:
    - Absolute paths of the incident directory and its files (C(dir), C(record), C(summary), C(report), C(audit)).
  returned: always
  type: dict
  sample: {"dir": "/srv/awx/incidents/INC-1", "report": "/srv/awx/incidents/INC-1/report.md"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils import incident


def main():
    module = AnsibleModule(
        argument_spec=incident.argument_spec(),
        required_if=incident.REQUIRED_IF,
        supports_check_mode=True,
    )
    try:
        result = incident.run(module.params, module.check_mode)
    except incident.IncidentError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
