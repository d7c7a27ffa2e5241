#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dbops_triage
short_description: Classify what the diagnosis modules saw into incidents per tier, with severity and playbook
version_added: 0.1.0
description:
  - Takes the raw results of a fleet-mode M(penguinmails.dbops.pg_health) sweep, of
    M(penguinmails.dbops.pgbouncer_pools) per PgBouncer host, of M(penguinmails.dbops.posthog_alerts)
    and of the admin panel status check (M(ansible.builtin.uri)), and says per tier which incident
    types they show, how severe each one is, its response target and which playbook handles it.
  - Only playbooks that exist are named. This collection ships a playbook for each of the five
    incident types. A type that O(playbooks) maps to an empty string has no playbook
    (C(runbook_status=planned)) and its next step is the seed's procedure, by hand.
  - Discovers each tier's live primary from the servers' answers, never from the inventory. A tier
    without exactly one reachable primary is a C(db_outage) (none, or split brain).
  - Findings become evidence through a fixed rule table (see docs/triage.md). PgBouncer waiting
    clients, maxwait, utilization at the critical level, client connections, paused databases, an
    unreachable PgBouncer and PostgreSQL connection slots at the critical level give
    C(pool_exhaustion). Long queries and transactions, idle in transaction, lock waits, replication
    delay, slots retaining WAL, deadlocks, recovery conflicts and transaction ID age give
    C(performance). Checksum failures, invalid indexes and sequences near exhaustion give
    C(data_integrity). Superuser sessions of roles not in O(expected_superusers), and sessions from
    addresses outside O(allowed_client_cidrs), give C(security_breach).
  - When a tier has no primary, its pool and performance findings are symptoms of the outage and are
    listed under it rather than opening incidents of their own.
  - PostHog corroborates and never opens an incident on its own, because the servers are the source of
    truth. An unreachable PostHog or a failed admin panel check is a note, never a failure.
  - Severity is the incident type's C(default_severity) in O(policy); a CRITICAL finding raises a
    C(low) or C(medium) default by one level (see O(raise_severity_on_critical)). The response
    target is the type's C(response_target_minutes).
  - Pure computation on the controller (an action plugin), never connects anywhere, never reports
    C(changed).
author:
  - PenguinMails Database Operations (@penguinmails)
options:
  tiers:
    description:
      - The tiers to classify, in the order the summary lists them.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Tier name, the inventory group (V(oltp), V(content), V(queue), V(olap)).
        type: str
        required: true
      members:
        description: Inventory hostnames of the tier's PostgreSQL servers, keys of RV(tiers) roles.
        type: list
        elements: str
        default: []
      database:
        description:
          - The tier's database (C(tier_database)), which ties PgBouncer pools to the tier.
          - When not set, the tier's entry in O(databases).
        type: str
  databases:
    description:
      - Database of each tier, a mapping of tier name to database, for entries of O(tiers) without one.
    type: dict
    default: {}
  health:
    description:
      - The registered result of M(penguinmails.dbops.pg_health) in fleet mode (with C(servers) keyed by
        inventory hostname), best run with the C(invalid_indexes) and C(logins) checks added.
    type: dict
    required: true
  pgbouncers:
    description:
      - Registered results of M(penguinmails.dbops.pgbouncer_pools), keyed by PgBouncer inventory host.
    type: dict
    default: {}
  posthog:
    description:
      - The registered result of M(penguinmails.dbops.posthog_alerts), when PostHog is configured.
    type: dict
  admin_panel:
    description:
      - The registered result of M(ansible.builtin.uri) asking the admin panel's status URL.
      - Up when it answered HTTP 2xx or 3xx. A skipped result is ignored.
    type: dict
  allowed_client_cidrs:
    description:
      - Addresses or CIDR ranges clients may log in from (IPv4 and IPv6). Empty turns the address rule off.
      - Every session counts, replication and PgBouncer's server connections included, so list the application's,
        the PgBouncer hosts' and the standbys' networks. Unix socket sessions are local and pass.
    type: list
    elements: str
    default: []
  expected_superusers:
    description:
      - Roles whose superuser sessions are expected, for example the automation login and V(postgres).
        A superuser session of any other role is a security signal.
    type: list
    elements: str
    default: [postgres]
  policy:
    description:
      - The incident policy's C(types) and C(severity_levels) tables (the incident role's
        C(incident_policy_types) and C(incident_policy_severity_levels)). A part left out is the seed's.
    type: dict
  playbooks:
    description:
      - Playbook (or AWX job template name) per incident type, over the built-in
        C(db_outage=playbooks/incident_db_outage.yml). A type named here has its runbook
        C(available); a type mapped to an empty string here has its runbook C(planned) and no playbook.
    type: dict
    default: {}
  incident_id_base:
    description:
      - When set, each incident gets the id V(<base>-<tier>-<type>), the id the diagnose role opens it
        with and the remediation playbook continues.
    type: str
  sliced:
    description:
      - This run is one AWX job slice and O(tiers) hold only the slice's members. A tier's outage is
        then judged from what those members report (a streaming standby proves a live primary
        elsewhere); see plugins/module_utils/slicing.py.
    type: bool
    default: false
  tier_members:
    description:
      - With O(sliced), the whole membership of each tier (tier name to hosts), when the inventory
        declares it. The slice holding the first member by name owns the verdict on a tier none of
        its members answers for.
    type: dict
    default: {}
  raise_severity_on_critical:
    description:
      - Raise a type's C(low) or C(medium) default severity by one level when one of its findings is CRITICAL.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Pure computation; the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed.
notes:
  - The P(penguinmails.dbops.diagnose#role) role collects the inputs and calls this module; docs/triage.md
    has the rule table and the reasons behind it.
seealso:
  - module: penguinmails.dbops.pg_health
  - module: penguinmails.dbops.pgbouncer_pools
  - module: penguinmails.dbops.posthog_alerts
  - module: penguinmails.dbops.dbops_incident
"""

EXAMPLES = r"""
- name: Check every server of the oltp tier in one sweep
  penguinmails.dbops.pg_health:
    servers: "{{ groups['oltp'] | penguinmails.dbops.fleet_servers(hostvars, {'login_db': 'tier_database'}) }}"
    checks: [connection, backends, txn_idle, txn_time, query_time, lockwait, hot_standby_delay,
             replication_slots, checksum_failures, invalid_indexes, logins]
  run_once: true
  delegate_to: localhost
  register: health

- name: Classify
  penguinmails.dbops.dbops_triage:
    tiers:
      - name: oltp
        members: "{{ groups['oltp'] }}"
        database: penguinmails_oltp
    health: "{{ health }}"
    allowed_client_cidrs: [10.0.0.0/8]
    expected_superusers: [postgres, dbops_admin]
    incident_id_base: "{{ incident_id | default('triage') }}"
  register: triage

- name: Say what is wrong, per tier
  ansible.builtin.debug:
    msg: "{{ item.value.summary }}"
  loop: "{{ triage.tiers | dict2items }}"
  loop_control:
    label: "{{ item.key }}"
"""

RETURN = r"""
tiers:
  description:
    - Per tier, C(name), C(database), C(members), C(roles) (primary, standby or down per member, as the
      servers said), C(primary) (the one reachable primary, or null), C(primaries), C(status)
      (C(ok), C(notes) or C(incident)), C(types) (most urgent first), C(incidents) (as in RV(incidents)),
      C(notes) (what is not OK but opens no incident) and C(summary) (readable lines). With O(sliced),
      C(slice_view) too (C(verdict) and C(reason) of the slice's outage rule).
  returned: always
  type: dict
  sample: {"oltp": {"primary": null, "status": "incident", "types": ["db_outage"],
           "summary": ["oltp: 1 incident(s) (no reachable primary).", "DB_OUTAGE, severity critical, ..."]}}
incidents:
  description:
    - Every incident found, most urgent first (severity, then response target). Each has C(tier),
      C(type), C(label), C(severity), C(response_target_minutes), C(severity_response_minutes),
      C(playbook) (null while the type's runbook is planned), C(runbook_status) (C(available) or
      C(planned)), C(next_step) (the command to run, or the steps to take by hand),
      C(extra_vars) (C(incident_tier) and C(incident_id) for the playbook), C(incident_id),
      C(headline) and C(evidence) (C(type), C(source), C(host), C(check), C(status), C(severity),
      C(message), and the finding's C(value), C(threshold), C(subject) when it came from one).
  returned: always
  type: list
  elements: dict
  sample: [{"tier": "oltp", "type": "db_outage", "severity": "critical", "response_target_minutes": 5,
            "playbook": "playbooks/incident_db_outage.yml", "runbook_status": "available",
            "incident_id": "INC-1-oltp-db_outage",
            "headline": "no reachable primary: oltp-1 does not answer (refused); oltp-2 is a standby"}]
types_found:
  description: The incident types found on any tier, in the order db_outage, security_breach, pool_exhaustion,
    data_integrity, performance.
  returned: always
  type: list
  elements: str
  sample: [db_outage]
most_urgent:
  description: The first of RV(incidents), or null when there is none.
  returned: always
  type: dict
notes:
  description: Fleet-wide notes (PostHog unreachable or naming no tier, the admin panel status).
  returned: always
  type: list
  elements: dict
stats:
  description:
    - What to publish with M(ansible.builtin.set_stats) for AWX. C(dbops_triage) holds C(incident_id_base),
      C(check_mode), C(types_found), C(tiers) (status, primary, types, incident_ids), C(incidents) (tier,
      type, severity, response_target_minutes, playbook, runbook_status, incident_id, extra_vars, headline;
      no evidence) and C(by_type) (the extra vars of the most urgent incident of each type).
    - The most urgent incident's C(incident_tier), C(incident_type), C(incident_severity) and C(incident_id)
      are at the top level, so the next job template of a workflow continues its record.
  returned: always
  type: dict
  sample: {"dbops_triage": {"types_found": ["db_outage"]}, "incident_tier": "oltp", "incident_type": "db_outage",
           "incident_id": "INC-1-oltp-db_outage", "incident_severity": "critical"}
summary:
  description: The fleet's lines, the most urgent incident first, then the fleet-wide notes.
  returned: always
  type: list
  elements: str
  sample: ["triage: 1 incident(s); most urgent db_outage on oltp (severity critical, respond within 5 min)."]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils import triage


def main():
    module = AnsibleModule(argument_spec=triage.argument_spec(), supports_check_mode=True)
    try:
        result = triage.run(module.params, module.check_mode)
    except triage.TriageError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
