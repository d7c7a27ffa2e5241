#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dbops_notify
short_description: Tell people about a database incident on Slack, PagerDuty and e-mail, once per escalation level
version_added: 0.1.0
description:
  - Reads the incident record kept by M(penguinmails.dbops.dbops_incident), works out which escalation
    levels are due now (severity, type and time since detection; see docs/incident-lifecycle.md) and sends
    what the record's notification ledger does not show as sent yet.
  - Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat) - one message announcing the newly due
    levels, and one when the incident closes.
  - PagerDuty Events API v2 - V(trigger) while the incident is open for severities that page, then the action
    the outcome names (V(resolve) for resolved, V(acknowledge) for mitigated). The dedup key is the incident id.
  - E-mail over SMTP (STARTTLS, implicit TLS or plain) - one message per level to that level's contacts, and a
    closing message to everyone told.
  - Idempotent per incident and level - a rerun never pages twice; a delivery that failed is retried by the
    next call. A channel that is down never fails the task - the failure is recorded in the ledger, the
    timeline and the report, a warning is shown, and the channel is not tried again in the same call.
  - Secrets never reach the output, the record or the report; errors name the endpoint as scheme://host:port.
  - Never reports C(changed) - it is bookkeeping; RV(sent) and the record say what went out.
  - Runs on the controller as an action plugin; nothing is sent to the target host.
author:
  - PenguinMails Database Operations (@penguinmails)
options:
  id:
    description:
      - The incident id. When not given, V(awx-<job_id>) from O(job_id).
    type: str
  job_id:
    description:
      - The AWX or Tower job id, used to build the id when O(id) is not given.
    type: str
  dir:
    description:
      - Directory holding one subdirectory per incident, as given to M(penguinmails.dbops.dbops_incident).
    type: path
    default: incidents
  incident:
    description:
      - The RV(penguinmails.dbops.dbops_incident#module:incident) returned by M(penguinmails.dbops.dbops_incident).
        Only used in check mode, where the record on disk does not show what the check-mode run would have written.
    type: dict
  timeout:
    description:
      - Seconds to wait for each network operation (connect, TLS, each SMTP command, each HTTP request).
    type: float
    default: 10
  validate_certs:
    description:
      - Verify TLS certificates of the HTTPS endpoints (default for each channel's own C(validate_certs)).
    type: bool
    default: true
  slack:
    description:
      - A Slack-compatible incoming webhook. Not configured when absent or without O(slack.webhook_url).
    type: dict
    suboptions:
      webhook_url:
        description:
          - The webhook URL. It holds a secret; keep it in a vault.
        type: str
      channel:
        description:
          - Channel override, for webhooks that allow it.
        type: str
      username:
        description:
          - Sender name override, for webhooks that allow it.
        type: str
      enabled:
        description:
          - Set to V(false) to switch the channel off without removing its settings.
        type: bool
        default: true
  pagerduty:
    description:
      - PagerDuty Events API v2. Not configured when absent or without O(pagerduty.routing_key).
    type: dict
    suboptions:
      routing_key:
        description:
          - The integration (routing) key of the service. A secret; keep it in a vault.
        type: str
      url:
        description:
          - The events endpoint.
        type: str
        default: https://events.pagerduty.com/v2/enqueue
      enabled:
        description:
          - Set to V(false) to switch the channel off without removing its settings.
        type: bool
        default: true
  email:
    description:
      - E-mail over SMTP. Not configured when absent or without O(email.host).
    type: dict
    suboptions:
      host:
        description:
          - SMTP server.
        type: str
      port:
        description:
          - SMTP port.
        type: int
        default: 25
      security:
        description:
          - V(starttls) upgrades the connection and fails when the server does not offer it; V(ssl) is implicit
            TLS (usually port 465); V(none) sends in clear text (only for a relay on the same host).
        type: str
        default: starttls
        choices: [none, starttls, ssl]
      username:
        description:
          - Login name, when the server requires authentication.
        type: str
      password:
        description:
          - Password for O(email.username). A secret; keep it in a vault.
        type: str
      sender:
        description:
          - The From address, required with O(email.host).
        type: str
      validate_certs:
        description:
          - Verify the server's TLS certificate.
        type: bool
        default: true
      ca_cert:
        description:
          - CA bundle to verify the server's certificate with.
        type: path
      enabled:
        description:
          - Set to V(false) to switch the channel off without removing its settings.
        type: bool
        default: true
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
    details: Plans the deliveries (RV(planned)) and sends and writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: penguinmails.dbops.dbops_incident
  - name: PagerDuty Events API v2
    description: The event format used.
    link: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
"""

EXAMPLES = r"""
- name: Notify whoever is due for the incident opened earlier in the play
  penguinmails.dbops.dbops_notify:
    id: "{{ incident.incident.id }}"
    slack:
      webhook_url: "{{ vault_dbops_slack_webhook_url }}"
    pagerduty:
      routing_key: "{{ vault_dbops_pagerduty_routing_key }}"
    email:
      host: smtp.example.com
      port: 587
      security: starttls
      username: dbops-automation
      password: "{{ vault_dbops_smtp_password }}"
      sender: dbops-automation@example.com
    timeout: 10
  run_once: true
  register: notified

- name: Show what went out
  ansible.builtin.debug:
    msg: "{{ notified.sent | map(attribute='channel') | list }}"
  run_once: true
"""

RETURN = r"""
sent:
  description: Deliveries made by this call.
  returned: always
  type: list
  elements: dict
  sample: [{"channel": "email", "event": "escalation", "levels": [1], "status": "sent", "detail": "accepted",
            "recipients": ["On-Call Engineer <oncall@penguinmails.com>"]}]
failures:
  description: Deliveries that failed (also in the record); the next call retries them.
  returned: always
  type: list
  elements: dict
  sample: [{"channel": "slack", "event": "escalation", "levels": [1, 2], "status": "failed",
            "error": "https://hooks.slack.com:443: HTTP 500"}]
not_sent:
  description:
    - Deliveries not attempted because no contact of the level has an e-mail address (recorded, not retried).
    - Named so that Ansible does not take it for the task's own C(skipped) status.
  returned: success, not in check mode
  type: list
  elements: dict
planned:
  description: In check mode, the deliveries that would be made.
  returned: check mode
  type: list
  elements: dict
escalation:
  description: The escalation due now, as M(penguinmails.dbops.dbops_incident) returns it.
  returned: when the incident is known
  type: dict
summary:
  description: The incident's C(summary.json) after this call.
  returned: success, not in check mode
  type: dict
channels:
  description: The channels configured and enabled.
  returned: always
  type: list
  elements: str
  sample: [email, pagerduty, slack]
paths:
  description: Absolute paths of the incident directory and its files.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils import incident, notify


def main():
    module = AnsibleModule(argument_spec=notify.argument_spec(), supports_check_mode=True)
    try:
        result = notify.run(module.params, module.check_mode)
    except incident.IncidentError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
