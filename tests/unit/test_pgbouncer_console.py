"""The admin console accepts only validated commands; nothing is interpolated blindly."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import admin_params, console_command


@pytest.mark.parametrize(
    ("verb", "database", "text"),
    [
        ("reload", None, "RELOAD"),
        ("PAUSE", "penguinmails_oltp", 'PAUSE "penguinmails_oltp"'),
        ("reconnect", "db-1", 'RECONNECT "db-1"'),
    ],
)
def test_console_command_renders(verb, database, text):
    assert console_command(verb, database) == text


@pytest.mark.parametrize("database", ['x"; SHUTDOWN; --', "a b", "", "x" * 64])
def test_console_command_refuses_odd_names(database):
    with pytest.raises(ValueError):
        console_command("PAUSE", database or "bad name")


def test_console_command_refuses_unknown_verbs():
    with pytest.raises(ValueError):
        console_command("SHUTDOWN")
    with pytest.raises(ValueError):
        console_command("RELOAD", "db")


def test_admin_params_target_the_console_database():
    params = admin_params(
        {"pgbouncer_host": "127.0.0.1", "pgbouncer_port": 6432, "pgbouncer_user": "adm", "pgbouncer_password": "pw"}
    )
    assert params.dbname == "pgbouncer"
    assert params.libpq_kwargs()["dbname"] == "pgbouncer"
