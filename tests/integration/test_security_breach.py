"""The security breach playbook with bad input: one clear line, nothing opened, nothing changed.

Ports: DBOPS_SECURITY_TEST_PORT_BASE (default 5980; one PostgreSQL server at base + 1, no PgBouncer),
data under DBOPS_SECURITY_TEST_ROOT. One lab serves every case. Role names are checked twice: their
spelling before anything is contacted, their existence and the refusals (the run's own login role,
the last superuser able to log in) by asking the tier's server, changing nothing. The containment
itself is rehearsed in extensions/molecule/security_breach.
"""

from __future__ import annotations

import os
from pathlib import Path

import lablib
import pytest
from test_bad_input import assert_refused

PORT_BASE = int(os.environ.get("DBOPS_SECURITY_TEST_PORT_BASE", "5980"))
LAB_ROOT = os.environ.get("DBOPS_SECURITY_TEST_ROOT", "/var/tmp/penguinmails-dbops-security-test")
PLAYBOOK = lablib.REPO_ROOT / "playbooks" / "incident_security_breach.yml"
OPERATOR = "sec_operator"
OPERATOR_PASSWORD = "sec-operator-test-password"

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    missing = lablib.missing_binaries()
    if missing:
        pytest.skip("the lab needs %s; run tools/install-system-packages.sh" % ", ".join(missing))
    lab = lablib.write_inventory(
        tmp_path_factory.mktemp("security-inventory"),
        tiers={"oltp": 0},
        port_base=PORT_BASE,
        lab_root=LAB_ROOT,
        with_pgbouncer=False,
    )
    with lablib.running(lab, LAB_ROOT + ".lock"):
        conn = lab.connect(lab.tier("oltp")[0])
        with conn.cursor() as cursor:
            # A login that is no superuser: locking out every superuser would leave nobody to undo it.
            cursor.execute("CREATE ROLE %s LOGIN CREATEROLE PASSWORD %%s" % OPERATOR, (OPERATOR_PASSWORD,))
            cursor.execute("GRANT pg_signal_backend, pg_monitor TO %s" % OPERATOR)
        conn.close()
        yield lab


def server_state(lab):
    """What a refused run must leave as it was: the roles' login flags and pg_hba.conf."""
    server = lab.tier("oltp")[0]
    conn = lab.connect(server)
    with conn.cursor() as cursor:
        cursor.execute("SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles ORDER BY 1")
        roles = cursor.fetchall()
        cursor.execute("SHOW hba_file")
        hba = Path(cursor.fetchone()[0]).read_text()
    conn.close()
    return roles, hba


@pytest.fixture
def run(lab, tmp_path):
    def run_playbook(**extra):
        extra = dict(
            {
                "incident_tier": "oltp",
                "dbops_incident_dir": str(tmp_path / "incidents"),
                "dbops_lock_dir": str(tmp_path / "locks"),
                "dbops_security_state_dir": str(tmp_path / "security"),
            },
            **extra,
        )
        before = server_state(lab)
        done = lablib.run_playbook(lab.inventory, PLAYBOOK, extra, timeout=180)
        left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))
        assert server_state(lab) == before, "a refused run changed the server"
        return done, left

    return run_playbook


def superusers_able_to_log_in(lab):
    conn = lab.connect(lab.tier("oltp")[0])
    with conn.cursor() as cursor:
        cursor.execute("SELECT rolname FROM pg_roles WHERE rolsuper AND rolcanlogin ORDER BY 1")
        names = [row[0] for row in cursor.fetchall()]
    conn.close()
    return names


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ([], "security_suspect_roles must be a non-empty list"),
        (['app"; DROP ROLE x; --'], "quotes, semicolons, backslashes and line breaks are not accepted"),
        (["it's"], "quotes, semicolons, backslashes and line breaks are not accepted"),
        (["two\nlines"], "quotes, semicolons, backslashes and line breaks are not accepted"),
        (["ghost_role"], "no role ghost_role on the server; nothing was changed"),
        (["lab_app_user", "ghost_role"], "no role ghost_role on the server"),
    ],
)
def test_bad_role_names_are_refused_before_anything_opens(run, roles, message):
    done, left = run(security_suspect_roles=roles)
    assert_refused(done, left, message)


def test_the_runs_own_login_role_is_refused(run, lab):
    done, left = run(security_suspect_roles=[lab.credentials["dbops_login_user"]])
    assert_refused(done, left, "it is the role this run logs in with (dbops_login_user); nothing was changed")


def test_the_last_superuser_able_to_log_in_is_refused(run, lab):
    superusers = superusers_able_to_log_in(lab)
    assert lab.credentials["dbops_login_user"] in superusers
    done, left = run(
        security_suspect_roles=superusers,
        dbops_login_user=OPERATOR,
        dbops_login_password=OPERATOR_PASSWORD,
    )
    assert_refused(done, left, "no other superuser could log in afterwards; nothing was changed")
    assert OPERATOR_PASSWORD not in done.stdout + done.stderr


def test_audit_verify_also_verifies_the_evidence_bundles(tmp_path):
    from ansible_collections.penguinmails.dbops.plugins.module_utils import evidence

    incident = tmp_path / "INC-EVIDENCE"
    incident.mkdir()
    trail = incident / "audit.jsonl"
    trail.write_text("")
    bundle = incident / "evidence" / "run-1"
    evidence.write_bundle(str(bundle), {"sessions_before.json": [{"pid": 1}], "statements.json": ["ALTER ROLE"]})
    playbook = lablib.REPO_ROOT / "playbooks" / "audit_verify.yml"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    intact = lablib.run_playbook(inventory, playbook, {"audit_file": str(trail)}, timeout=120)
    assert intact.rc == 0 and "1 evidence bundle(s) verified" in intact.stdout, intact.stdout[-2000:]
    (bundle / "statements.json").write_text('["nothing happened"]')
    broken = lablib.run_playbook(inventory, playbook, {"audit_file": str(trail)}, timeout=120)
    assert broken.rc != 0
    assert "statements.json does not match its SHA-256 in the manifest" in broken.stdout


def test_check_mode_plans_the_lockdown_and_changes_nothing(lab, tmp_path):
    server = lab.tier("oltp")[0]
    conn = lab.connect(server)
    with conn.cursor() as cursor:
        cursor.execute("CREATE ROLE sec_suspect LOGIN PASSWORD 'sec-suspect-test-password'")
    conn.close()
    held = lablib.connect(server.port, "sec_suspect", "sec-suspect-test-password")
    try:
        before = server_state(lab)
        extra = {
            "incident_tier": "oltp",
            "security_suspect_roles": ["sec_suspect"],
            "dbops_incident_dir": str(tmp_path / "incidents"),
            "dbops_lock_dir": str(tmp_path / "locks"),
            "dbops_security_state_dir": str(tmp_path / "security"),
        }
        done = lablib.run_playbook(lab.inventory, PLAYBOOK, extra, args=["--check"], timeout=180)
        assert done.rc == 0, done.stdout[-3000:]
        assert 'ALTER ROLE \\"sec_suspect\\" NOLOGIN CONNECTION LIMIT 0' in done.stdout
        assert "pg_terminate_backend" in done.stdout
        assert server_state(lab) == before
        with held.cursor() as cursor:
            cursor.execute("SELECT 1")  # the session was not terminated
        assert not (tmp_path / "incidents").exists() and not (tmp_path / "security").exists()
    finally:
        held.close()
