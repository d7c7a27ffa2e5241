"""Survey answers arrive as strings ("false", "yes", "42"): every switch and number behaves the same.

AWX writes survey answers into extravars as strings, ansible-core 2.19 keeps them strings, and a
string "false" is true to Python and an error in a `when:`. A role may therefore read a bool, int or
float of its argument spec only as a module option ("{{ var }}", which the module converts) or through
a cast (| bool, | int, | float); the rules that take such values (inputs.py) read both spellings.
"""

import pathlib
import re

import pytest
import yaml
from ansible_collections.penguinmails.dbops.plugins.filter.performance import (
    performance_input_problems,
    performance_verdict,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.inputs import as_bool, as_number

ROOT = pathlib.Path(__file__).resolve().parents[2]


def typed_variables():
    found = {}
    for path in ROOT.glob("roles/*/meta/argument_specs.yml"):
        for entry in (yaml.safe_load(path.read_text())["argument_specs"] or {}).values():
            for name, option in (entry.get("options") or {}).items():
                if option.get("type") in ("bool", "int", "float"):
                    found[name] = option["type"]
    return found


TYPED = typed_variables()
SOURCES = sorted([*ROOT.glob("roles/*/tasks/*.yml"), *ROOT.glob("roles/*/vars/*.yml"), *ROOT.glob("playbooks/*.yml")])


def uncast_reads(line):
    """Names of typed variables the line reads raw in a condition or an expression."""
    text = line.split("#", 1)[0] if not line.lstrip().startswith("- name:") else ""
    if re.match(r"\s*(- )?[\w.]+:\s*\"\{\{\s*\w+\s*\}\}\"\s*$", text):
        return []  # a module option or a var passed on whole: the module's type converts it
    reads = []
    for name in TYPED:
        for match in re.finditer(r"(?<![\w.'\"])%s\b(?!\s*:)(\s*\|\s*(\w+))?" % name, text):
            if match.group(2) not in ("bool", "int", "float", "string", "default"):
                reads.append(name)
    return reads


def test_there_are_typed_variables_and_sources_to_check():
    assert {"failover_allow_data_loss", "pool_restart_allowed", "performance_revert"} <= set(TYPED)
    assert len(SOURCES) > 20


@pytest.mark.parametrize("path", SOURCES, ids=[str(path.relative_to(ROOT)) for path in SOURCES])
def test_no_switch_or_number_is_read_raw_in_a_condition(path):
    raw = [
        "%d: %s" % (number, name)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for name in uncast_reads(line)
    ]
    allowed = ALLOWED.get(str(path.relative_to(ROOT)), set())
    assert [item for item in raw if item.split(": ")[1] not in allowed] == []


# Passed raw to a rule that reads both spellings itself (tested below), or shown in a name or message.
ALLOWED = {
    "roles/performance/tasks/validate.yml": {"performance_target_ms", "performance_revert", "performance_pool_size",
                                             "performance_pool_size_max"},
    "roles/performance/vars/main.yml": {"performance_target_ms"},
    "roles/failover/vars/main.yml": {"failover_upstream_silence_s"},
    "roles/incident/tasks/open.yml": {"incident_response_target_minutes"},
    "roles/pool/tasks/verify.yml": {"pool_verify_window_s"},
    "roles/lab/vars/main.yml": {"lab_start_timeout"},
}  # fmt: skip


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("false", False), ("False", False), ("no", False), ("yes", True),
     ("true", True), ("1", True), ("0", False), (0, False), (1, True), ("", False), (None, False)],
)  # fmt: skip
def test_as_bool(value, expected):
    assert as_bool(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"), [(42, 42), ("42", 42), ("0", 0), ("1.5", 1.5), ("x", None), (True, None)]
)
def test_as_number(value, expected):
    assert as_number(value) == expected


@pytest.mark.parametrize(("typed", "string"), [(False, "false"), (False, "no"), (True, "yes"), (True, "true")])
def test_performance_revert_reads_the_same_typed_or_as_a_string(typed, string):
    assert performance_input_problems([], revert=typed) == performance_input_problems([], revert=string)


@pytest.mark.parametrize(("typed", "string"), [(0, "0"), (0.0, "0.0"), (250, "250")])
def test_performance_target_reads_the_same_typed_or_as_a_string(typed, string):
    assert performance_input_problems([], target_ms=typed) == performance_input_problems([], target_ms=string)
    window = {"median_ms": 300, "runs": 5}
    assert performance_verdict(window, window, window, typed) == performance_verdict(window, window, window, string)
