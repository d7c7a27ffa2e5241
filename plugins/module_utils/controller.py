# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX/Tower job templates as data: surveys from the roles' argument specs, the triage workflow.

playbooks/vars/controller.yml lists one entry per playbook; playbooks/controller_setup.yml turns
each entry into a job template through these functions (filters in plugins/filter/controller.py),
and tests/unit/test_controller_templates.py checks the entries against the playbooks and specs.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

# Argument spec type -> AWX survey question type. A bool is a choice of the strings "false" and
# "true": AWX writes the answer as that string, and every switch reads it with `| bool` or as a
# module option of type bool.
SURVEY_TYPES = {"bool": "multiplechoice", "int": "integer", "float": "float", "str": "text", "path": "text"}
TIER_VARIABLE = "incident_tier"


def template_name(entry: Mapping[str, Any]) -> str:
    return entry.get("name") or "dbops %s" % entry["playbook"]


def questions(entry: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    """The entry's survey questions; a nested list (a YAML alias of shared questions) is flattened."""
    flat: List[Mapping[str, Any]] = []
    for item in entry.get("survey", []):
        flat.extend(item if isinstance(item, list) else [item])
    return flat


def _default_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def spec_options(specs: Mapping[str, Mapping[str, Any]], entry: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The options the argument specs the entry names declare ("role:entry_point"); the first spec
    that declares a variable wins (the runbook's role before the incident role)."""
    options: Dict[str, Dict[str, Any]] = {}
    for name in entry.get("arguments", []):
        role, separator, entry_point = name.partition(":")
        declared = specs.get(role, {}).get(entry_point if separator else "main", {}).get("options", {})
        for variable, option in declared.items():
            options.setdefault(variable, option)
    for variable, option in entry.get("extra_arguments", {}).items():
        options.setdefault(variable, option)
    return options


def survey_question(
    question: Mapping[str, Any], option: Mapping[str, Any], tiers: Sequence[str], tier_required: bool
) -> Dict[str, Any]:
    """One AWX survey question for one declared variable; its default is the spec's default."""
    variable = question["variable"]
    kind = option.get("type", "str")
    description = " ".join(str(option.get("description", "")).split())
    if question.get("risk"):
        description = "%s Risk: %s" % (description, " ".join(question["risk"].split()))
    spec: Dict[str, Any] = {
        "variable": variable,
        "question_name": question.get("question") or variable,
        "question_description": description.strip(),
        "required": bool(question.get("required", option.get("required", False))),
        "type": SURVEY_TYPES.get(kind, "text"),
        "default": _default_text(option.get("default")),
    }
    if variable == TIER_VARIABLE and tier_required:
        # Not required in the survey: a workflow launches the template with triage's incident_tier
        # and AWX refuses to start a job whose required question has no answer. The role's spec
        # still requires it: a launch without a tier stops with one line before anything happens.
        spec.update(type="multiplechoice", choices=list(tiers), required=False)
    elif kind == "bool":
        spec["choices"] = ["false", "true"]
    elif option.get("choices"):
        spec.update(type="multiplechoice", choices=[str(choice) for choice in option["choices"]])
    if spec["type"] == "multiplechoice" and spec["default"] == "" and not spec["required"]:
        spec["choices"] = [""] + spec["choices"]
    if option.get("no_log"):
        spec["type"] = "password"
    return spec


def survey_spec(
    entry: Mapping[str, Any], specs: Mapping[str, Mapping[str, Any]], tiers: Sequence[str]
) -> Dict[str, Any]:
    options = spec_options(specs, entry)
    tier_required = bool(options.get(TIER_VARIABLE, {}).get("required"))
    return {
        "name": template_name(entry),
        "description": entry.get("description", ""),
        "spec": [
            survey_question(question, options.get(question["variable"], {}), tiers, tier_required)
            for question in questions(entry)
        ],
    }


def template_problems(
    entries: Sequence[Mapping[str, Any]],
    specs: Mapping[str, Mapping[str, Any]],
    playbooks: Sequence[str],
) -> List[str]:
    """What is wrong with the template entries: a playbook that does not exist, a survey variable
    no argument spec declares, a risky switch (one with a risk text) whose default is not its safe
    value (`safe`, default false), two entries with one name, a sliced template (job_slice_count
    over 1) that changes servers or does not tell its playbook it is a slice (diagnose_sliced)."""
    problems = []
    names = [template_name(entry) for entry in entries]
    problems += ["%s: two templates have this name" % name for name in sorted(set(names)) if names.count(name) > 1]
    for entry in entries:
        name = template_name(entry)
        slices = entry.get("job_slice_count", 1)
        if isinstance(slices, bool) or not isinstance(slices, int) or slices < 1:
            problems.append("%s: job_slice_count must be a whole number of at least 1 (got %r)" % (name, slices))
        elif slices > 1:
            if entry.get("changes_servers"):
                problems.append("%s: a runbook that changes servers cannot be sliced (AWX runs slices at once)" % name)
            if (entry.get("extra_vars") or {}).get("diagnose_sliced") is not True:
                problems.append("%s: a sliced template must set extra_vars diagnose_sliced: true" % name)
        if entry["playbook"] not in playbooks:
            problems.append("%s: playbook %s does not exist" % (name, entry["playbook"]))
        options = spec_options(specs, entry)
        for question in questions(entry):
            option = options.get(question["variable"])
            if option is None:
                problems.append("%s: survey variable %s is declared by no argument spec" % (name, question["variable"]))
            elif question.get("risk") and option.get("default") != question.get("safe", False):
                problems.append(
                    "%s: %s is a risk and must default to %r (got %r)"
                    % (name, question["variable"], question.get("safe", False), option.get("default"))
                )
    return problems


def workflow_nodes(
    entries: Sequence[Mapping[str, Any]], triage: str, gate: str, organization: Optional[str] = None
) -> List[Dict[str, Any]]:
    """Nodes of the workflow triage -> the matching incident template (awx.awx.workflow_job_template).

    AWX cannot branch on data, only on success or failure: per incident type a gate job (the
    dispatch playbook, told its type in extra_data) succeeds only when triage's set_stats found
    that type and publishes that type's tier, id and severity; its success runs the incident
    template. A gate's failure path runs the same gate in `none` mode, which always succeeds, so a
    type that was not found does not mark the workflow failed.
    """

    def node(identifier, template, extra=None, success=(), failure=()):
        result: Dict[str, Any] = {
            "identifier": identifier,
            "unified_job_template": {"name": template, "type": "job_template"},
            "related": {
                "success_nodes": [{"identifier": item} for item in success],
                "failure_nodes": [{"identifier": item} for item in failure],
            },
        }
        if organization:
            result["unified_job_template"]["organization"] = {"name": organization}
        if extra is not None:
            result["extra_data"] = extra
        return result

    typed = [entry for entry in entries if entry.get("incident_type")]
    nodes = [node("triage", triage, success=["gate-%s" % entry["incident_type"] for entry in typed])]
    for entry in typed:
        kind = entry["incident_type"]
        nodes.append(
            node(
                "gate-%s" % kind,
                gate,
                {"dbops_dispatch_type": kind},
                success=["run-%s" % kind],
                failure=["none-%s" % kind],
            )
        )
        nodes.append(node("none-%s" % kind, gate, {"dbops_dispatch_type": "none"}))
        nodes.append(node("run-%s" % kind, template_name(entry)))
    return nodes


def dispatch(triage_stats: Optional[Mapping[str, Any]], kind: str) -> Dict[str, Any]:
    """The gate's verdict: run the incident template of `kind` or not, and with which extra vars.

    triage_stats is triage's `dbops_triage` set_stats key (by_type: type -> extra vars).
    """
    if kind == "none":
        return {"run": False, "reason": "nothing to dispatch", "stats": {}}
    if not triage_stats or not isinstance(triage_stats, Mapping):
        return {"run": False, "reason": "no triage result (dbops_triage) reached this job", "stats": {}}
    if triage_stats.get("check_mode"):
        return {"run": False, "reason": "triage ran in check mode", "stats": {}}
    found = (triage_stats.get("by_type") or {}).get(kind)
    if not found:
        return {"run": False, "reason": "triage found no %s incident" % kind, "stats": {}}
    stats = dict(found, incident_type=kind)
    return {"run": True, "reason": "triage found %s on %s" % (kind, found.get("incident_tier")), "stats": stats}
