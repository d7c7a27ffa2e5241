# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX job templates as data: controller_survey, controller_workflow_nodes, controller_dispatch."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.penguinmails.dbops.plugins.module_utils import controller


def controller_survey(entry, specs, tiers):
    if not isinstance(entry, dict) or "playbook" not in entry:
        raise AnsibleFilterError("controller_survey expects one entry of controller_job_templates")
    return controller.survey_spec(entry, specs, tiers)


def controller_workflow_nodes(entries, triage, gate, organization=None):
    return controller.workflow_nodes(entries, triage, gate, organization)


def controller_dispatch(triage_stats, kind):
    return controller.dispatch(triage_stats, kind)


def controller_template_problems(entries, specs, playbooks):
    return controller.template_problems(entries, specs, playbooks)


class FilterModule:
    def filters(self):
        return {
            "controller_survey": controller_survey,
            "controller_workflow_nodes": controller_workflow_nodes,
            "controller_dispatch": controller_dispatch,
            "controller_template_problems": controller_template_problems,
        }
