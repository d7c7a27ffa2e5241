"""The security breach runbook's rules (module_utils/lockdown.py), one table each."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import lockdown

ADMIN = {"rolsuper": True, "rolcanlogin": True, "rolconnlimit": -1}
POSTGRES = {"rolsuper": True, "rolcanlogin": True, "rolconnlimit": -1}
APP = {"rolsuper": False, "rolcanlogin": True, "rolconnlimit": -1}
LOCKED = {"rolsuper": False, "rolcanlogin": False, "rolconnlimit": 0}
NOLOGIN_SUPER = {"rolsuper": True, "rolcanlogin": False, "rolconnlimit": -1}


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("app_reporting", None),
        ("Mixed-Case.role", None),
        ("", "non-empty"),
        (None, "non-empty"),
        ('bad"quote', "quotes, semicolons"),
        ("bad'quote", "quotes, semicolons"),
        ("x; DROP ROLE y", "quotes, semicolons"),
        ("two\nlines", "quotes, semicolons"),
        ("back\\slash", "quotes, semicolons"),
        ("a" * 64, "longer than 63"),
    ],
)
def test_role_name_problem(name, problem):
    found = lockdown.role_name_problem(name)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize(
    ("names", "count"),
    [(["a", "b"], 0), ([], 1), ("a", 1), (["a", "a"], 1), (["a;", "b'"], 2)],
)
def test_role_names_problems(names, count):
    assert len(lockdown.role_names_problems(names)) == count


@pytest.mark.parametrize(
    ("suspects", "roles", "login", "refusal"),
    [
        (["app"], {"admin": ADMIN, "app": APP}, "admin", None),
        (["ghost"], {"admin": ADMIN, "app": APP}, "admin", "no role ghost"),
        (["admin"], {"admin": ADMIN, "postgres": POSTGRES}, "admin", "logs in with"),
        (["postgres"], {"admin": ADMIN, "postgres": POSTGRES}, "admin", None),
        (["postgres"], {"admin": APP, "postgres": POSTGRES, "old": NOLOGIN_SUPER}, "admin", "no other superuser"),
        (["app"], {"admin": APP, "app": APP}, "admin", None),
    ],
)
def test_lockdown_refusal(suspects, roles, login, refusal):
    found = lockdown.lockdown_refusal(suspects, roles, login)
    assert (found is None) if refusal is None else (refusal in found)


@pytest.mark.parametrize(
    ("row", "grants", "expected"),
    [
        (APP, ["db"], {"alter": True, "revoke": ["db"]}),
        (LOCKED, [], {"alter": False, "revoke": []}),
        (dict(LOCKED, rolconnlimit=5), [], {"alter": True, "revoke": []}),
    ],
)
def test_role_changes(row, grants, expected):
    assert lockdown.role_changes(row, grants) == expected


@pytest.mark.parametrize(
    ("before", "grants_before", "now", "grants_now", "expected"),
    [
        (APP, ["db"], LOCKED, [], {"login": True, "connlimit": -1, "grant": ["db"]}),
        (APP, [], LOCKED, [], {"login": True, "connlimit": -1}),
        (dict(APP, rolconnlimit=7), [], LOCKED, [], {"login": True, "connlimit": 7}),
        (LOCKED, [], LOCKED, [], {}),
        (APP, ["db"], APP, ["db"], {}),
    ],
)
def test_role_restores(before, grants_before, now, grants_now, expected):
    remembered = lockdown.remembered_role(before, grants_before)
    assert lockdown.role_restores(remembered, now, grants_now) == expected


@pytest.mark.parametrize(
    ("live", "expected"),
    [
        ({"log_connections": "off", "log_disconnections": "on"}, {"log_connections": "off"}),
        ({"log_connections": "on", "log_disconnections": "on"}, {}),
        ({}, {"log_connections": "off", "log_disconnections": "off"}),
    ],
)
def test_settings_to_turn_on(live, expected):
    assert lockdown.settings_to_turn_on(live) == expected


HBA = "# comment\nlocal all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n"


def test_hba_rejects_go_on_top_once_and_come_off_exactly():
    locked, added = lockdown.hba_with_rejects(HBA, ["bad"])
    assert added == lockdown.hba_reject_lines("bad")
    assert locked.splitlines()[:2] == added and locked.endswith(HBA)
    again, added_again = lockdown.hba_with_rejects(locked, ["bad"])
    assert again == locked and added_again == []
    lifted, removed = lockdown.hba_without_rejects(locked, ["bad"])
    assert lifted == HBA and removed == added
    assert lockdown.hba_without_rejects(HBA, ["bad"]) == (HBA, [])


def test_hba_lift_leaves_other_roles_lines():
    locked = lockdown.hba_with_rejects(HBA, ["bad", "worse"])[0]
    lifted, removed = lockdown.hba_without_rejects(locked, ["bad"])
    assert len(removed) == 2 and lockdown.hba_reject_lines("worse")[0] in lifted


USERLIST = '"app" "SCRAM-SHA-256$4096:x"\n"bad" "secret"\n"we""ird" "s"\n'


@pytest.mark.parametrize(
    ("line", "user"),
    [('"app" "x"', "app"), ('"we""ird" "s"', 'we"ird'), ("; comment", None), ("", None)],
)
def test_auth_file_user(line, user):
    assert lockdown.auth_file_user(line) == user


def test_auth_file_lines_out_and_back():
    without, removed = lockdown.auth_file_without(USERLIST, ["bad"])
    assert removed == ['"bad" "secret"'] and '"bad"' not in without
    back, added = lockdown.auth_file_with(without, removed)
    assert added == removed and '"bad" "secret"' in back.splitlines()
    assert lockdown.auth_file_with(back, removed) == (back, [])


CLIENT = {
    "user": "bad",
    "database": "db",
    "addr": "127.0.0.1",
    "port": 40000,
    "local_addr": "127.0.0.1",
    "local_port": 6432,
}


@pytest.mark.parametrize(
    ("version", "client", "method"),
    [
        ((1, 24, 0), CLIENT, "kill_client"),
        ((1, 25, 1), dict(CLIENT, addr="unix"), "kill_client"),
        ((1, 18, 0), CLIENT, "socket_destroy"),
        ((1, 18, 0), dict(CLIENT, addr="unix", port=None), "none"),
    ],
)
def test_client_drop_method(version, client, method):
    assert lockdown.client_drop_method(version, client) == method


def test_socket_destroy_names_one_connection():
    argv = lockdown.socket_destroy_argv(CLIENT)
    assert argv[:3] == ["ss", "-K", "-t"] and ":6432" in argv and ":40000" in argv


def test_clients_of_skips_other_users_and_the_console():
    rows = [dict(CLIENT), dict(CLIENT, user="app"), dict(CLIENT, database="pgbouncer")]
    assert [row["user"] for row in lockdown.clients_of(rows, ["bad"])] == ["bad"]


@pytest.mark.parametrize(
    ("verdicts", "lift", "changed", "failure", "outcome"),
    [
        ([{"contained": True}, {"contained": True}], False, True, None, "mitigated"),
        ([{"contained": True}], False, False, None, "mitigated"),
        ([{"contained": True}, {"contained": False, "reason": "x"}], False, True, None, "escalated"),
        ([], False, False, None, "escalated"),
        ([{"contained": True}], False, True, "boom", "escalated"),
        ([{}], True, True, None, "resolved"),
        ([{}], True, False, None, "no_action"),
    ],
)
def test_run_closing(verdicts, lift, changed, failure, outcome):
    assert lockdown.run_closing(verdicts, lift, changed, failure)["outcome"] == outcome


@pytest.mark.parametrize(
    ("args", "contained"),
    [
        ((0, False, True, 0), True),
        ((1, False, True, 0), False),
        ((0, True, True), False),
        ((0, False, False), False),
        ((0, False, True, 2), False),
    ],
)
def test_contained(args, contained):
    assert lockdown.contained(*args)["contained"] is contained


@pytest.mark.parametrize(
    ("current", "data_dir", "configured", "path", "source"),
    [
        ("log/postgresql-Thu.log", "/srv/pg/data", None, "/srv/pg/data/log/postgresql-Thu.log", "pg_current_logfile"),
        ("/var/log/pg/current.log", "/srv/pg/data", None, "/var/log/pg/current.log", "pg_current_logfile"),
        # The server's answer wins over the host variable: nothing else is read.
        ("log/pg.log", "/srv/pg/data", "/etc/shadow", "/srv/pg/data/log/pg.log", "pg_current_logfile"),
        ("log/../../../etc/x", "/srv/pg/data", None, "/srv/etc/x", "pg_current_logfile"),
        ("log/pg.log", None, "/var/log/pg.log", None, "none"),
        (None, "/srv/pg/data", "/srv/pg/postgresql.log", "/srv/pg/postgresql.log", "log_file"),
        (None, None, None, None, "none"),
        ("", None, "", None, "none"),
    ],
)
def test_log_file_to_read(current, data_dir, configured, path, source):
    chosen = lockdown.log_file_to_read(current, data_dir, configured)
    assert (chosen["path"], chosen["source"]) == (path, source)
    if current and configured and path:
        assert "%s was not read" % configured in chosen["note"]


def test_suspect_lines_only_the_suspects_and_the_last_ones():
    text = "\n".join(
        [
            'FATAL:  password authentication failed for user "app"',
            "LOG:  connection authorized: user=app database=x",
            'FATAL:  password authentication failed for user "application"',
            "LOG:  user=other",
        ]
        * 3
    )
    lines = lockdown.suspect_lines(text, ["app"], keep=4)
    assert len(lines) == 4 and all('"app"' in line or "user=app " in line for line in lines)


@pytest.mark.parametrize(
    ("errors", "failure", "put_back", "left", "words"),
    [
        (
            [{"line_number": 1, "error": "invalid connection type"}],
            None,
            True,
            [],
            "put back byte for byte and not reloaded",
        ),
        ([], "writing it failed: disk full", True, [], "writing it failed: disk full"),
        ([{"line_number": 1, "error": "x"}], None, True, [{"line_number": 9, "error": "y"}], "still reports errors"),
        ([{"line_number": 1, "error": "x"}], None, False, [], "could NOT be put back; do not reload"),
    ],
)
def test_hba_put_back(errors, failure, put_back, left, words):
    report = lockdown.hba_put_back("/etc/pg_hba.conf", errors, failure, put_back, left)
    assert words in report["message"] and report["reloaded"] is False and report["put_back"] is put_back
