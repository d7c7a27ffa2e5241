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
    assert pool_revert_from_record(record, "pgbouncer-2") == {"pool_size": "50"}  # one size stood for any host
    assert pool_revert_from_record({"timeline": [{"name": "change settings", "details": {}}]}) == {}


def test_pool_revert_keeps_each_pgbouncer_hosts_own_size():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.settings import pool_revert_from_record

    record = {
        "timeline": [
            {
                "name": "scale pgbouncer pool",
                "details": {"pools_before": {"pgbouncer-1": {"pool_size": "50"}, "pgbouncer-2": {"pool_size": "40"}}},
            },
            {
                "name": "scale pgbouncer pool",
                "details": {"pools_before": {"pgbouncer-1": {"pool_size": "60"}, "pgbouncer-2": {"pool_size": "60"}}},
            },
        ]
    }
    assert pool_revert_from_record(record, "pgbouncer-1") == {"pool_size": "50"}
    assert pool_revert_from_record(record, "pgbouncer-2") == {"pool_size": "40"}
    assert pool_revert_from_record(record, "pgbouncer-3") == {}


CHECKPOINT_TIMEOUT = {
    "name": "checkpoint_timeout",
    "vartype": "integer",
    "unit": "s",
    "min_val": "30",
    "max_val": "86400",
}
AUTOVACUUM_WORK_MEM = {
    "name": "autovacuum_work_mem",
    "vartype": "integer",
    "unit": "kB",
    "min_val": "-1",
    "max_val": "2147483647",
}
WAL_WRITER_FLUSH_AFTER = {
    "name": "wal_writer_flush_after",
    "vartype": "integer",
    "unit": "8kB",
    "min_val": "0",
    "max_val": "2147483647",
}
COMPLETION_TARGET = {
    "name": "checkpoint_completion_target",
    "vartype": "real",
    "unit": None,
    "min_val": "0",
    "max_val": "1",
}
LOG_CHECKPOINTS = {"name": "log_checkpoints", "vartype": "bool"}
WAL_COMPRESSION = {"name": "wal_compression", "vartype": "enum", "enumvals": ["pglz", "lz4", "zstd", "on", "off"]}
ARCHIVE_COMMAND = {"name": "archive_command", "vartype": "string"}


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        (CHECKPOINT_TIMEOUT, "300", None),
        (CHECKPOINT_TIMEOUT, "5min", None),
        (CHECKPOINT_TIMEOUT, "1d", None),
        (CHECKPOINT_TIMEOUT, "10", "outside the valid range for parameter checkpoint_timeout (30 .. 86400 s)"),
        (CHECKPOINT_TIMEOUT, "2d", "outside the valid range"),
        (CHECKPOINT_TIMEOUT, "29400ms", "outside the valid range"),  # rounded to 29 s
        (CHECKPOINT_TIMEOUT, "29999ms", None),  # rounded to 30 s, as the server does
        (CHECKPOINT_TIMEOUT, "5 min", None),
        (CHECKPOINT_TIMEOUT, "5MB", "valid units: us, ms, s, min, h, d"),
        (CHECKPOINT_TIMEOUT, "5 minutes", "valid units"),
        (CHECKPOINT_TIMEOUT, "soon", "is not a number"),
        (AUTOVACUUM_WORK_MEM, "64MB", None),
        (AUTOVACUUM_WORK_MEM, "-1", None),
        (AUTOVACUUM_WORK_MEM, "-2", "outside the valid range"),
        (AUTOVACUUM_WORK_MEM, "64mb", "valid units: B, kB, MB, GB, TB"),  # units are case-sensitive
        (AUTOVACUUM_WORK_MEM, "3TB", "outside the valid range"),
        (WAL_WRITER_FLUSH_AFTER, "1MB", None),
        (COMPLETION_TARGET, "0.9", None),
        (COMPLETION_TARGET, "1.5", "outside the valid range for parameter checkpoint_completion_target (0 .. 1)"),
        (COMPLETION_TARGET, "1s", "takes no unit"),
        (LOG_CHECKPOINTS, "on", None),
        (LOG_CHECKPOINTS, "FALSE", None),
        (LOG_CHECKPOINTS, "ye", None),
        (LOG_CHECKPOINTS, "o", "requires a Boolean value"),
        (LOG_CHECKPOINTS, "maybe", "requires a Boolean value"),
        (WAL_COMPRESSION, "LZ4", None),
        (WAL_COMPRESSION, "gzip", "available values: pglz, lz4, zstd, on, off"),
        (ARCHIVE_COMMAND, "anything at all", None),
    ],
)
def test_value_problem_reads_range_units_and_choices_from_pg_settings(setting, value, problem):
    from ansible_collections.penguinmails.dbops.plugins.module_utils.settings import value_problem

    found = value_problem(setting, value)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
