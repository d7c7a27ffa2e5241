"""Which trail each audit line of a run is filed in (the audit callback's rules, without Ansible)."""

import os

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import audit_trail
from ansible_collections.penguinmails.dbops.plugins.module_utils.audit_trail import TrailRouter

INCIDENT = "penguinmails.dbops.dbops_incident"
NOTIFY = "penguinmails.dbops.dbops_notify"


def task(name, module="ansible.builtin.debug", status="ok", **extra):
    return dict(event="task", incident_id=None, task=name, module=module, status=status, **extra)


def opened(incident_id, root="/srv/incidents", **extra):
    result = {
        "incident": {"id": incident_id},
        "paths": {"audit": f"{root}/{incident_id}/audit.jsonl"},
        "changed": False,
    }
    result.update(extra)
    return result


def where(writes):
    return [
        (os.path.basename(os.path.dirname(path)), line.get("task") or line["event"], line["incident_id"])
        for path, line in writes
    ]


@pytest.mark.parametrize(
    ("module", "canonical"),
    [
        ("debug", "ansible.builtin.debug"),
        ("ansible.legacy.set_fact", "ansible.builtin.set_fact"),
        ("ansible.builtin.assert", "ansible.builtin.assert"),
        ("penguinmails.dbops.pg_rejoin", "penguinmails.dbops.pg_rejoin"),
    ],
)
def test_module_names_are_canonical(module, canonical):
    assert audit_trail.canonical_module(module) == canonical


@pytest.mark.parametrize(
    ("line", "acting"),
    [
        (task("t", "ansible.builtin.debug"), False),
        (task("t", "assert"), False),
        (task("t", "penguinmails.dbops.pg_health"), False),
        (task("t", "penguinmails.dbops.dbops_incident"), False),
        (task("t", "penguinmails.dbops.pg_rejoin"), True),
        (task("t", "penguinmails.dbops.pg_fence", status="failed"), True),
        (task("t", "ansible.builtin.command", status="ok"), True),
        (task("t", "ansible.builtin.uri"), True),  # method unknown: it may POST
        (task("t", "ansible.builtin.uri", method="POST"), True),
        (task("t", "ansible.builtin.uri", method="GET"), False),
        (task("t", "ansible.builtin.uri", method="GET", status="changed"), True),
        (task("t", "ansible.builtin.set_fact", status="changed"), True),
        (task("t", "penguinmails.dbops.pg_indexes", status="failed", check_mode=True), False),  # check_mode: true
        (task("t", "penguinmails.dbops.pg_tune", status="changed", check_mode=True), False),  # would change
        ({"event": "playbook_start"}, False),
    ],
)
def test_which_lines_show_a_run_that_can_change_a_server(line, acting):
    assert audit_trail.can_change_servers(line) is acting


def test_only_the_incident_modules_name_incidents_and_failed_items_name_none():
    loop = {"results": [opened("INC-A"), {"failed": True, "msg": "bad"}, opened("INC-B"), opened("INC-A")]}
    assert audit_trail.incidents_named(INCIDENT, loop) == {
        "INC-A": "/srv/incidents/INC-A/audit.jsonl",
        "INC-B": "/srv/incidents/INC-B/audit.jsonl",
    }
    assert audit_trail.incidents_named("penguinmails.dbops.pg_fence", opened("INC-A")) == {}
    assert audit_trail.incidents_named(NOTIFY, {"summary": {"id": "INC-C"}, "paths": {}}) == {"INC-C": None}
    assert audit_trail.incidents_named(INCIDENT, {"failed": True, "incident": {"id": "INC-D"}}) == {}


def test_a_loop_over_incidents_is_split_one_line_per_incident_with_its_own_items():
    result = {
        "changed": True,
        "results": [
            opened("INC-A", actions=["a1"]),
            opened("INC-B", actions=["b1"], changed=True),
            opened("INC-A", actions=["a2"]),
            {"failed": True, "actions": ["x"]},
        ],
    }
    line = task("Open each incident", INCIDENT, status="changed", actions=["a1", "b1", "a2", "x"])
    split = audit_trail.split_by_incident(line, INCIDENT, result)
    assert [(incident, part["actions"], part["status"], part["items"]) for incident, part in split] == [
        ("INC-A", ["a1", "a2"], "ok", 2),
        ("INC-B", ["b1"], "changed", 1),
        (None, ["x"], "failed", 1),
    ]


def test_a_line_naming_no_incident_is_not_split():
    line = task("Fence", "penguinmails.dbops.pg_fence", actions=["stop"])
    assert audit_trail.split_by_incident(line, "penguinmails.dbops.pg_fence", {"results": [{}, {}]}) == [(None, line)]


def test_no_log_items_keep_their_statements_out():
    result = {"results": [opened("INC-A", actions=["secret"])]}
    [(incident, line)] = audit_trail.split_by_incident(task("t", INCIDENT, no_log=True), INCIDENT, result)
    assert incident == "INC-A" and "actions" not in line


def test_triage_two_incidents_in_a_loop_each_get_their_own_lines_and_the_shared_ones():
    router = TrailRouter("/srv/incidents")
    writes = router.file(task("playbook start"))
    writes += router.file(task("Probe health", "penguinmails.dbops.pg_health"))
    assert writes == [] and len(router.held) == 2  # nothing named, nothing changed: held
    result = {"results": [opened("INC-A"), opened("INC-B")]}
    writes += router.learn(audit_trail.incidents_named(INCIDENT, result))
    for incident, line in audit_trail.split_by_incident(task("Open", INCIDENT), INCIDENT, result):
        writes += router.file(line, incident)
    writes += router.file(task("Step for A", INCIDENT), "INC-A")
    writes += router.finish({"event": "playbook_end", "incident_id": None})
    assert where(writes) == [
        ("INC-A", "playbook start", "INC-A"),
        ("INC-B", "playbook start", "INC-B"),
        ("INC-A", "Probe health", "INC-A"),
        ("INC-B", "Probe health", "INC-B"),
        ("INC-A", "Open", "INC-A"),
        ("INC-B", "Open", "INC-B"),
        ("INC-A", "Step for A", "INC-A"),
        ("INC-A", "playbook_end", "INC-A"),
        ("INC-B", "playbook_end", "INC-B"),
    ]


def test_a_run_that_changes_a_server_without_an_incident_has_a_run_level_trail():
    router = TrailRouter("/srv/incidents")
    assert router.file({"event": "playbook_start", "incident_id": None}) == []
    writes = router.file(task("pg_rewind", "penguinmails.dbops.pg_rejoin", status="changed"))
    writes += router.file(task("Say done"))
    writes += router.finish({"event": "playbook_end", "incident_id": None})
    assert {path for path, _line in writes} == {"/srv/incidents/unattributed/audit.jsonl"}
    assert [line.get("task") or line["event"] for _path, line in writes] == [
        "playbook_start",
        "pg_rewind",
        "Say done",
        "playbook_end",
    ]


def test_a_run_that_changes_a_server_under_an_incident_named_by_extra_vars_writes_there():
    router = TrailRouter("/srv/incidents", expected_incident="awx-42")
    assert router.file({"event": "playbook_start", "incident_id": None}) == []
    writes = router.file(task("Fence", "penguinmails.dbops.pg_fence", status="changed"))
    assert where(writes) == [("awx-42", "playbook_start", "awx-42"), ("awx-42", "Fence", "awx-42")]


def test_a_run_that_only_reads_or_refuses_its_inputs_leaves_nothing():
    router = TrailRouter("/srv/incidents", expected_incident="INC-BAD")
    writes = router.file({"event": "playbook_start", "incident_id": None})
    writes += router.file(task("Validate the inputs", "ansible.builtin.validate_argument_spec", status="failed"))
    writes += router.finish({"event": "playbook_end", "incident_id": None})
    assert writes == []


def test_record_unattributed_writes_the_read_only_run_at_its_end():
    router = TrailRouter("/srv/incidents", record_unattributed=True)
    router.file({"event": "playbook_start", "incident_id": None})
    writes = router.finish({"event": "playbook_end", "incident_id": None})
    assert [(path, line["event"]) for path, line in writes] == [
        ("/srv/incidents/unattributed/audit.jsonl", "playbook_start"),
        ("/srv/incidents/unattributed/audit.jsonl", "playbook_end"),
    ]


def test_one_file_for_everything_gets_every_line_at_once():
    router = TrailRouter("/srv/incidents", audit_file="/var/log/dbops/audit.jsonl")
    writes = router.file({"event": "playbook_start", "incident_id": None})
    router.learn({"INC-A": None, "INC-B": None})
    writes += router.file(task("shared"))
    writes += router.file(task("only A", INCIDENT), "INC-A")
    assert {path for path, _line in writes} == {"/var/log/dbops/audit.jsonl"}
    assert [(line["incident_id"], line.get("incident_ids")) for _path, line in writes] == [
        (None, None),
        (None, ["INC-A", "INC-B"]),
        ("INC-A", None),
    ]


def test_held_lines_do_not_grow_without_bound():
    router = TrailRouter("/srv/incidents")
    writes = []
    for number in range(audit_trail.MAX_HELD_LINES + 1):
        writes += router.file(task(f"read {number}"))
    assert len(writes) == audit_trail.MAX_HELD_LINES + 1 and router.held == []


def test_the_trail_is_written_before_a_task_that_can_change_a_server_starts():
    router = TrailRouter("/srv/incidents")
    router.file({"event": "playbook_start", "incident_id": None})
    assert router.task_starting("ansible.builtin.debug") == []
    assert router.task_starting("ansible.builtin.uri", "GET") == []
    writes = router.task_starting("penguinmails.dbops.pg_rejoin")
    assert [(path, line["event"]) for path, line in writes] == [
        ("/srv/incidents/unattributed/audit.jsonl", "playbook_start")
    ]
    assert router.task_starting("penguinmails.dbops.pg_fence") == []  # already writing
    assert router.file(task("Rejoin", "penguinmails.dbops.pg_rejoin", status="failed"))[0][0].endswith(
        "unattributed/audit.jsonl"
    )
