"""AWX job templates as code, checked without a controller (playbooks/vars/controller.yml).

Every playbook a template names exists, every survey variable is declared by the argument spec the
entry names, every survey default is the spec's (the safe one) and every risky switch is off.
"""

import pathlib

import pytest
import yaml
from ansible_collections.penguinmails.dbops.plugins.filter.controller import (
    controller_dispatch,
    controller_survey,
    controller_workflow_nodes,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils import controller
from ansible_collections.penguinmails.dbops.plugins.module_utils.triage import PLAYBOOKS as TRIAGE_PLAYBOOKS

ROOT = pathlib.Path(__file__).resolve().parents[2]


class _Loader(yaml.SafeLoader):
    """YAML with Ansible's !unsafe tag (the credential injectors' templates)."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))

DATA = yaml.load((ROOT / "playbooks/vars/controller.yml").read_text(), Loader=_Loader)
ENTRIES = DATA["controller_job_templates"] + [DATA["controller_dispatch_template"]]
SPECS = {
    path.parts[-3]: yaml.safe_load(path.read_text())["argument_specs"]
    for path in ROOT.glob("roles/*/meta/argument_specs.yml")
}
PLAYBOOKS = sorted(path.stem for path in (ROOT / "playbooks").glob("*.yml"))
# The first template of each playbook (the sliced triage is a second template of triage.yml).
BY_PLAYBOOK = {}
for _entry in ENTRIES:
    BY_PLAYBOOK.setdefault(_entry["playbook"], _entry)
BY_NAME = {controller.template_name(entry): entry for entry in ENTRIES}


def test_the_entries_have_no_problem():
    assert controller.template_problems(ENTRIES, SPECS, PLAYBOOKS) == []


@pytest.mark.parametrize(
    "playbook",
    [
        "incident_db_outage",
        "incident_pool_exhaustion",
        "incident_performance",
        "triage",
        "rejoin_old_primary",
        "audit_verify",
        "dispatch",
    ],
)
def test_every_runnable_playbook_has_a_template_whose_playbook_exists(playbook):
    assert playbook in BY_PLAYBOOK
    assert (ROOT / "playbooks" / ("%s.yml" % playbook)).is_file()


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry["playbook"] for entry in ENTRIES])
def test_every_survey_question_comes_from_a_declared_variable_with_its_safe_default(entry):
    options = controller.spec_options(SPECS, entry)
    survey = controller_survey(entry, SPECS, DATA["controller_tiers"])
    assert len(survey["spec"]) == len(controller.questions(entry))
    for question, asked in zip(controller.questions(entry), survey["spec"]):
        option = options[question["variable"]]
        assert asked["variable"] == question["variable"]
        default = option.get("default")
        if option.get("type") == "bool":
            assert asked["default"] == ("true" if default else "false")
            assert asked["choices"] == ["false", "true"]
        else:
            assert asked["default"] == ("" if default is None else default)
        if question.get("risk"):
            assert default == question.get("safe", False)
            assert "Risk: " in asked["question_description"]
        if asked["type"] == "multiplechoice":
            assert asked["default"] in asked["choices"]


def test_variables_not_from_a_role_are_read_by_their_playbook():
    for entry in ENTRIES:
        for name in entry.get("extra_arguments", {}):
            assert name in (ROOT / "playbooks" / ("%s.yml" % entry["playbook"])).read_text()


@pytest.mark.parametrize(
    ("playbook", "allow_simultaneous"),
    [("incident_db_outage", False), ("incident_pool_exhaustion", False), ("incident_performance", False),
     ("rejoin_old_primary", False), ("triage", True), ("audit_verify", True)],
)  # fmt: skip
def test_runbooks_never_run_twice_at_once(playbook, allow_simultaneous):
    assert (not BY_PLAYBOOK[playbook].get("changes_servers", False)) is allow_simultaneous


def test_the_outage_survey_offers_the_tiers_and_the_two_safety_switches_off():
    survey = controller_survey(BY_PLAYBOOK["incident_db_outage"], SPECS, DATA["controller_tiers"])
    by_variable = {question["variable"]: question for question in survey["spec"]}
    assert by_variable["incident_tier"]["choices"] == ["", "oltp", "content", "queue", "olap"]
    assert by_variable["failover_allow_data_loss"]["default"] == "false"
    assert by_variable["failover_fence"]["choices"] == ["auto", "skip"]
    assert by_variable["failover_fence"]["default"] == "auto"
    assert by_variable["failover_max_lag_bytes"]["type"] == "integer"
    assert "two writable primaries" in by_variable["failover_fence"]["question_description"]


def test_the_postgresql_credential_injects_what_the_runbooks_require():
    postgres = DATA["controller_credential_types"][0]
    injected = set(postgres["injectors"]["extra_vars"])
    assert injected == {"dbops_login_user", "dbops_login_password"}
    for role in ("failover", "pool", "performance", "rejoin"):
        assert injected <= set(SPECS[role]["main"]["options"])
    assert SPECS["failover"]["main"]["options"]["dbops_login_password"]["no_log"] is True


SPEC = {"r": {"main": {"options": {
    "safe_switch": {"type": "bool", "default": False, "description": "Do a dangerous thing."},
    "on_switch": {"type": "bool", "default": True, "description": "On."},
    "mode": {"type": "str", "choices": ["auto", "skip"], "default": "auto", "description": "Mode."},
    "count": {"type": "int", "default": 5, "description": "How many."},
    "secret": {"type": "str", "no_log": True, "description": "Secret."},
    "incident_tier": {"type": "str", "required": True, "description": "Tier."},
}}}}  # fmt: skip


@pytest.mark.parametrize(
    ("survey", "problems"),
    [
        ([{"variable": "safe_switch", "risk": "x"}], []),
        ([{"variable": "on_switch", "risk": "x"}], ["t: on_switch is a risk and must default to False (got True)"]),
        ([{"variable": "mode", "risk": "x", "safe": "auto"}], []),
        ([{"variable": "mode", "risk": "x"}], ["t: mode is a risk and must default to False (got 'auto')"]),
        ([{"variable": "typo_switch"}], ["t: survey variable typo_switch is declared by no argument spec"]),
        ([[{"variable": "count"}, {"variable": "nope"}]], ["t: survey variable nope is declared by no argument spec"]),
    ],
)
def test_template_problems(survey, problems):
    entry = {"name": "t", "playbook": "triage", "arguments": ["r:main"], "survey": survey}
    assert controller.template_problems([entry], SPEC, ["triage"]) == problems


def test_a_missing_playbook_is_a_problem():
    entry = {"playbook": "incident_data_integrity", "arguments": []}
    assert controller.template_problems([entry], SPEC, ["triage"]) == [
        "dbops incident_data_integrity: playbook incident_data_integrity does not exist"
    ]


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("safe_switch", {"type": "multiplechoice", "choices": ["false", "true"], "default": "false"}),
        ("on_switch", {"type": "multiplechoice", "choices": ["false", "true"], "default": "true"}),
        ("mode", {"type": "multiplechoice", "choices": ["auto", "skip"], "default": "auto"}),
        ("count", {"type": "integer", "default": 5}),
        ("secret", {"type": "password", "default": ""}),
        ("incident_tier", {"type": "multiplechoice", "choices": ["", "a", "b"], "default": "", "required": False}),
    ],
)
def test_survey_question_types(variable, expected):
    entry = {"playbook": "p", "arguments": ["r"], "survey": [{"variable": variable}]}
    (question,) = controller.survey_spec(entry, SPEC, ["a", "b"])["spec"]
    assert {key: question[key] for key in expected} == expected


def test_the_workflow_gates_each_incident_template_on_triage():
    nodes = controller_workflow_nodes(ENTRIES, "dbops triage", "dbops dispatch", "Default")
    by_id = {node["identifier"]: node for node in nodes}
    kinds = [entry["incident_type"] for entry in ENTRIES if entry.get("incident_type")]
    assert sorted(kinds) == sorted(TRIAGE_PLAYBOOKS), "every incident type triage can name has its template"
    assert [item["identifier"] for item in by_id["triage"]["related"]["success_nodes"]] == [
        "gate-%s" % kind for kind in kinds
    ]
    for kind in kinds:
        gate = by_id["gate-%s" % kind]
        assert gate["extra_data"] == {"dbops_dispatch_type": kind}
        assert gate["related"]["success_nodes"] == [{"identifier": "run-%s" % kind}]
        assert gate["related"]["failure_nodes"] == [{"identifier": "none-%s" % kind}]
        assert by_id["none-%s" % kind]["extra_data"] == {"dbops_dispatch_type": "none"}
        template = by_id["run-%s" % kind]["unified_job_template"]["name"]
        assert template == "dbops incident_%s" % kind
    assert len(nodes) == 1 + 3 * len(kinds)


TRIAGE = {
    "check_mode": False,
    "by_type": {
        "db_outage": {"incident_tier": "oltp", "incident_id": "A1-oltp-db_outage", "incident_severity": "critical"}
    },
}


@pytest.mark.parametrize(
    ("stats", "kind", "run", "published"),
    [
        (TRIAGE, "db_outage", True, {"incident_tier": "oltp", "incident_id": "A1-oltp-db_outage",
                                     "incident_severity": "critical", "incident_type": "db_outage"}),
        (TRIAGE, "pool_exhaustion", False, {}),
        (dict(TRIAGE, check_mode=True), "db_outage", False, {}),
        ({}, "db_outage", False, {}),
        (None, "db_outage", False, {}),
        (TRIAGE, "none", False, {}),
    ],
)  # fmt: skip
def test_dispatch(stats, kind, run, published):
    verdict = controller_dispatch(stats, kind)
    assert verdict["run"] is run
    assert verdict["stats"] == published


def test_the_sliced_triage_runs_in_two_slices_and_tells_its_playbook():
    sliced = BY_NAME["dbops triage (sliced)"]
    assert sliced["playbook"] == "triage"
    assert sliced["job_slice_count"] == 2
    assert sliced["extra_vars"] == {"diagnose_sliced": True}
    assert not sliced.get("changes_servers")
    # The workflow's triage stays one job: one set_stats for the gates.
    assert BY_NAME["dbops triage"].get("job_slice_count", 1) == 1
    assert all(entry.get("job_slice_count", 1) == 1 for entry in ENTRIES if entry.get("changes_servers"))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"job_slice_count": 2, "extra_vars": {}}, "must set extra_vars diagnose_sliced: true"),
        ({"job_slice_count": 2, "changes_servers": True}, "cannot be sliced"),
        ({"job_slice_count": 0}, "at least 1"),
        ({"job_slice_count": "2"}, "at least 1"),
        ({"name": "dbops triage"}, "two templates have this name"),
        ({}, None),
    ],
)
def test_a_wrong_slicing_entry_is_a_problem(change, problem):
    entry = dict(BY_NAME["dbops triage (sliced)"], **change)
    entries = [entry if other is BY_NAME["dbops triage (sliced)"] else other for other in ENTRIES]
    problems = controller.template_problems(entries, SPECS, PLAYBOOKS)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in line for line in problems), problems
