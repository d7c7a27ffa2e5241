"""The performance playbook with bad input: one clear line, nothing opened, nothing changed.

Inputs a server must judge (an approved index the server cannot parse, an unknown table or column,
a value out of a setting's range) are refused by pg_indexes (validate_only) and pg_tune in check
mode on the tier's primary, read-only, still before the incident opens: the session lab's primary
here, test_performance_modules.py for the modules' own cases.
"""

from __future__ import annotations

import lablib
import pytest
import test_bad_input
from test_bad_input import assert_refused

# The bad-input fixtures (an inventory whose servers need not run; a run that reports files left).
inventory = test_bad_input.inventory
run = test_bad_input.run

pytestmark = pytest.mark.lab

INDEX = {"table": "perf_orders", "columns": ["customer_email"]}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "missing required arguments: incident_tier"),
        ({"incident_tier": "nope"}, "incident_tier must name an inventory group with hosts"),
        ({"incident_tier": "oltp", "performance_query_max_s": 0}, "performance_query_max_s must be at least 1"),
        ({"incident_tier": "oltp", "performance_block_max_s": -1}, "performance_block_max_s must be at least 0"),
        (
            {"incident_tier": "oltp", "performance_approved_indexes": [{"table": "perf_orders"}]},
            "performance_approved_indexes[0]: give exactly one of columns (a list of column names) or expression",
        ),
        (
            {
                "incident_tier": "oltp",
                "performance_approved_indexes": [INDEX, {"table": "t", "expression": "a); DROP x"}],
            },
            "performance_approved_indexes[1]: expression must be one SQL expression, without ';'",
        ),
        (
            {"incident_tier": "oltp", "performance_settings": [{"name": "fsync", "value": "off"}]},
            "performance_settings[0]: fsync is not on the allow list",
        ),
        ({"incident_tier": "oltp", "performance_revert": True}, "performance_revert needs -e incident_id"),
        (
            {"incident_tier": "oltp", "performance_target_ms": 50},
            "performance_target_ms needs performance_watch or performance_probe",
        ),
    ],
)
def test_performance_refuses_bad_input_before_opening_anything(run, extra, message):
    done, left = run("incident_performance.yml", **extra)
    assert_refused(done, left, message)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"performance_approved_indexes": [{"table": "lab_writes", "expression": "lower(note) +* 1"}]},
            "approved index 0 (lab_writes): the server refuses it",
        ),
        (
            {"performance_approved_indexes": [{"table": "lab_writes", "columns": ["written_at", "nope"]}]},
            "approved index 0 (lab_writes): unknown column nope of public.lab_writes",
        ),
        (
            {"performance_approved_indexes": [{"table": "no_such_table", "columns": ["id"]}]},
            "unknown table public.no_such_table",
        ),
        (
            {
                "performance_settings": [{"name": "checkpoint_timeout", "value": "10"}],
                "performance_allowed_settings": ["checkpoint_timeout"],
            },
            "outside the valid range for parameter checkpoint_timeout",
        ),
    ],
)
def test_what_only_the_server_can_judge_is_refused_before_opening_anything(lab, tmp_path, extra, message):
    extra = dict(extra, incident_tier="oltp", dbops_incident_dir=str(tmp_path / "incidents"))
    extra["performance_lock_dir"] = str(tmp_path / "locks")
    done = lablib.run_playbook(lab.inventory, lablib.REPO_ROOT / "playbooks" / "incident_performance.yml", extra)
    left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))
    assert_refused(done, left, message)
