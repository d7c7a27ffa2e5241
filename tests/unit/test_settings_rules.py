"""pg_tune's rules, without a server: one table per rule."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.settings import (
    change_entry,
    needs_change,
    not_applied_reason,
    originals,
    revert_spec,
    role_value,
    spec_problems,
)

ALLOWED = ["work_mem", "statement_timeout"]


@pytest.mark.parametrize(
    "specs, says",
    [
        ([{"name": "work_mem", "value": "64MB"}], None),
        ([{"name": "WORK_MEM", "value": "64MB"}], None),
        ([{"name": "fsync", "value": "off"}], "fsync is not on the allow list"),
        ([{"name": "", "value": "1"}], "name is required"),
        ([{"name": "work_mem"}], "value is required"),
        ([{"name": "work_mem", "value": " "}], "value is required"),
        ("work_mem=64MB", "must be a list of dicts"),
    ],
)
def test_spec_problems(specs, says):
    problems = spec_problems(specs, ALLOWED)
    assert (says is None and problems == []) or any(says in problem for problem in problems)


def test_a_revert_may_reset():
    assert spec_problems([{"name": "work_mem", "value": None}], ALLOWED, require_value=False) == []


@pytest.mark.parametrize(
    "spec, context, says",
    [
        ({"name": "work_mem"}, "user", None),
        ({"name": "checkpoint_timeout"}, "sighup", None),
        ({"name": "shared_buffers"}, "postmaster", "needs a restart"),
        ({"name": "block_size"}, "internal", "needs a restart"),
        ({"name": "work_mem", "role": "app"}, "user", None),
        ({"name": "log_min_duration_statement", "role": "app"}, "superuser", None),
        ({"name": "checkpoint_timeout", "role": "app"}, "sighup", "cannot be set per role"),
    ],
)
def test_not_applied_reason(spec, context, says):
    reason = not_applied_reason(spec, context)
    assert (says is None and reason is None) or says in reason


@pytest.mark.parametrize(
    "configs, value",
    [
        (None, None),
        ([], None),
        (["statement_timeout=30s"], "30s"),
        (["work_mem=4MB", "Statement_Timeout=1min"], "1min"),
        (["search_path=a,b"], None),
    ],
)
def test_role_value(configs, value):
    assert role_value(configs, "statement_timeout") == value


@pytest.mark.parametrize(
    "current, wanted, change",
    [(None, "64MB", True), ("64MB", "64MB", False), ("32MB", "64MB", True), (None, None, False), ("64MB", None, True)],
)
def test_needs_change(current, wanted, change):
    assert needs_change(current, wanted) is change


def test_originals_keep_the_value_before_the_first_change():
    steps = [
        {"replaced": [change_entry({"name": "work_mem", "value": "32MB"}, None)]},
        {
            "replaced": [
                change_entry({"name": "work_mem", "value": "64MB"}, "32MB"),
                change_entry({"name": "statement_timeout", "value": "30s", "role": "app"}, "5s"),
            ]
        },
        None,
    ]
    kept = originals(steps)
    assert [(e["name"], e["role"], e["previous"]) for e in kept] == [
        ("work_mem", None, None),
        ("statement_timeout", "app", "5s"),
    ]
    assert [revert_spec(e) for e in kept] == [
        {"name": "work_mem", "role": None, "value": None},
        {"name": "statement_timeout", "role": "app", "value": "5s"},
    ]


def test_revert_from_record_reads_only_the_settings_steps():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.settings import revert_from_record

    record = {
        "timeline": [
            {"name": "check queries on oltp-1", "details": {"replaced": [{"scope": "system", "name": "x"}]}},
            {
                "name": "change settings",
                "details": {"replaced": [change_entry({"name": "work_mem", "value": "48MB"}, "2MB")]},
            },
            {
                "name": "revert settings",
                "details": {"replaced": [change_entry({"name": "work_mem", "value": "2MB"}, "48MB")]},
            },
        ]
    }
    assert revert_from_record(record) == [{"name": "work_mem", "role": None, "value": "2MB"}]
    assert revert_from_record({}) == []


def test_pool_revert_keeps_the_size_before_the_first_scaling():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.settings import pool_revert_from_record

    record = {
        "timeline": [
            {"name": "scale pgbouncer pool", "details": {"pool_before": {"pool_size": "50"}}},
            {"name": "scale pgbouncer pool", "details": {"pool_before": {"pool_size": "60"}}},
            {"name": "scale pgbouncer pool", "details": {"pool_before": {}}},
        ]
    }
    assert pool_revert_from_record(record) == {"pool_size": "50"}
    assert pool_revert_from_record({"timeline": [{"name": "change settings", "details": {}}]}) == {}
