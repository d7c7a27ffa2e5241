"""pg_health's two triage checks: invalid_indexes and logins (graders and SQL fragments)."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.health import (
    CHECKS,
    CRITICAL,
    DEFAULT_CHECKS,
    OK,
    WARNING,
    figures_from_row,
    grade,
    health_text,
    merged_thresholds,
)


def index(name, unique=False, ready=True, being_built=False):
    return {
        "schema": "public",
        "index": name,
        "table": "orders",
        "is_unique": unique,
        "is_ready": ready,
        "being_built": being_built,
    }


def login(user, addr="127.0.0.1", superuser=False, sessions=1, backend_type="client backend"):
    return {
        "user": user,
        "superuser": superuser,
        "client_addr": addr,
        "backend_type": backend_type,
        "sessions": sessions,
        "pids": list(range(100, 100 + sessions)),
    }


def findings_of(check, figures, thresholds=None):
    figures = dict(figures, current_database="penguinmails_oltp")
    return grade(figures, merged_thresholds(thresholds), [check])


def test_triage_checks_are_choices_but_not_defaults():
    assert set(CHECKS) - set(DEFAULT_CHECKS) == {"invalid_indexes", "logins"}
    assert len(DEFAULT_CHECKS) == 13


@pytest.mark.parametrize(
    ("indexes", "thresholds", "status", "value"),
    [
        ([], None, OK, 0),
        ([index("orders_email_key", unique=True)], None, WARNING, 1),
        ([index("a"), index("b")], {"invalid_indexes": {"warning": 1, "critical": 2}}, CRITICAL, 2),
        ([index("a", being_built=True)], None, OK, 0),
        ([index("a", being_built=True), index("b")], None, WARNING, 1),
        ([index("a")], {"invalid_indexes": {"warning": None}}, OK, 1),
    ],
)
def test_invalid_indexes_are_counted_and_graded(indexes, thresholds, status, value):
    [found] = findings_of("invalid_indexes", {"invalid_indexes": indexes}, thresholds)
    assert (found["check"], found["status"], found["value"]) == ("invalid_indexes", status, value)


def test_invalid_index_message_names_index_table_and_traits():
    [found] = findings_of("invalid_indexes", {"invalid_indexes": [index("orders_email_key", unique=True, ready=False)]})
    assert "database penguinmails_oltp" in found["message"]
    assert "public.orders_email_key on orders (unique, not maintained by writes)" in found["message"]
    assert found["subject"] == "database penguinmails_oltp"


def test_many_invalid_indexes_are_listed_up_to_ten():
    [found] = findings_of("invalid_indexes", {"invalid_indexes": [index("i%02d" % n) for n in range(13)]})
    assert found["value"] == 13
    assert "i09" in found["message"] and "i10" not in found["message"]
    assert "and 3 more" in found["message"]


@pytest.mark.parametrize(
    ("logins", "value", "text"),
    [
        ([], 0, "0 session(s) of 0 role(s) from 0 address(es); 0 superuser session(s)"),
        (
            [login("dbops_admin", superuser=True, sessions=2), login("app", "10.0.0.5", sessions=3)],
            5,
            "5 session(s) of 2 role(s) from 2 address(es); 2 superuser session(s) (dbops_admin)",
        ),
        ([login("app", None)], 1, "1 session(s) of 1 role(s) from 1 address(es)"),
    ],
)
def test_logins_are_summarised_and_always_ok(logins, value, text):
    [found] = findings_of("logins", {"logins": logins})
    assert (found["status"], found["value"]) == (OK, value)
    assert found["message"].startswith(text)


def test_fragments_join_the_one_statement():
    text = health_text(["invalid_indexes", "logins"], 150000, include_sequences=False)
    assert text.count("SELECT\n") == 1
    assert text.startswith("WITH activity AS MATERIALIZED")  # logins reads the activity CTE
    assert "NOT x.indisvalid" in text and "pg_stat_progress_create_index" in text
    assert "rolsuper" in text and "pg_backend_pid()" in text
    assert "AS logins" not in health_text(list(DEFAULT_CHECKS), 150000, include_sequences=True)


def test_figures_keep_the_database_they_were_read_in():
    row = {
        "server_version_num": 150000,
        "in_recovery": False,
        "current_database": "penguinmails_oltp",
        "invalid_indexes": [index("a")],
        "logins": [login("app")],
    }
    figures = figures_from_row(row)
    assert figures["current_database"] == "penguinmails_oltp"
    assert figures["invalid_indexes"][0]["index"] == "a"
    assert figures["logins"][0]["user"] == "app"
