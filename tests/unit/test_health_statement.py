"""The health statement is composed from the fragments of the checks asked for."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.health import (
    CHECKS,
    SEQUENCE_QUERY,
    fragments_for,
    health_text,
    session_settings,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams, startup_options


def test_every_check_asked_for_in_one_statement():
    text = health_text(CHECKS, 150000, include_sequences=True)
    assert text.count("SELECT\n") == 1
    for column in ("backends", "txn_idle", "txn_time", "query_time", "lockwait", "standby", "replicas"):
        assert "AS %s" % column in text
    assert "pg_blocking_pids" in text
    assert "pg_sequence_last_value" in text
    assert ";" not in text  # one statement, nothing chained


@pytest.mark.parametrize(
    ("checks", "present", "absent"),
    [
        (["backends"], ["AS backends"], ["pg_blocking_pids", "pg_replication_slots", "pg_database"]),
        (["lockwait"], ["pg_blocking_pids"], ["AS backends"]),
        (["sequence"], ["pg_database"], ["pg_stat_database"]),
        (["deadlocks", "conflicts"], ["pg_stat_database"], ["pg_blocking_pids"]),
    ],
)
def test_only_the_fragments_asked_for(checks, present, absent):
    text = health_text(checks, 150000, include_sequences=False)
    for fragment in present:
        assert fragment in text
    for fragment in absent:
        assert fragment not in text


def test_pg_stat_activity_is_read_once_for_every_session_check():
    text = health_text(["backends", "txn_idle", "txn_time", "query_time", "lockwait"], 150000, False)
    assert text.startswith("WITH activity AS MATERIALIZED")
    assert text.count("FROM pg_stat_activity") == 1
    assert "activity AS" not in health_text(["replication_slots"], 150000, False)


def test_shared_fragments_are_read_once():
    assert fragments_for(["deadlocks", "conflicts", "checksum_failures"]) == ["database_counters"]
    assert fragments_for(["txn_wraparound", "sequence"]) == ["databases"]


@pytest.mark.parametrize(("version", "waitstart"), [(130000, False), (140000, True), (170000, True)])
def test_lock_wait_start_only_where_pg_locks_has_it(version, waitstart):
    text = health_text(["lockwait"], version, include_sequences=False)
    assert ("min(waitstart)" in text) is waitstart


def test_sequence_usage_is_bounded_by_the_column_type():
    for bound in ("2147483647", "32767", "format_type(a.atttypid, NULL)", "NOT cycle", "has_sequence_privilege"):
        assert bound in SEQUENCE_QUERY


def test_session_is_read_only_with_a_server_side_deadline():
    settings = session_settings(ConnectionParams(query_timeout=2.5))
    assert settings == {"default_transaction_read_only": "on", "statement_timeout": "2500ms"}
    assert startup_options(settings) == "-c default_transaction_read_only=on -c statement_timeout=2500ms"
    assert startup_options({"application_name": "a b\\c"}) == "-c application_name=a\\ b\\\\c"


def test_figures_redact_secrets_in_other_sessions_query_texts():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.health import figures_from_row

    query = "ALTER ROLE app PASSWORD 'pw-Secret-7'"
    row = {"server_version_num": 170000, "in_recovery": False, "query_time": {"top": [{"pid": 1, "query": query}]}}
    figures = figures_from_row(row)
    assert "Secret" not in str(figures)
    assert figures["query_time"]["top"][0]["query"] == "ALTER ROLE app PASSWORD '********'"
