"""The performance playbook with bad input: one clear line, nothing opened, nothing changed.

Inputs a server must judge (an approved index the server cannot parse, an unknown table, a value
out of a setting's range) are refused by pg_indexes and pg_tune before any change:
test_performance_modules.py runs those against a real server.
"""

from __future__ import annotations

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
