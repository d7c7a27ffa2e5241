"""The security breach playbook with bad input: one clear line, nothing opened, nothing changed.

Ports: DBOPS_SECURITY_TEST_PORT_BASE (default 5980; one PostgreSQL server at base + 1, no PgBouncer),
data under DBOPS_SECURITY_TEST_ROOT. One lab serves every case. Role names are checked twice: their
spelling before anything is contacted, their existence and the refusals (the run's own login role,
the last superuser able to log in) by asking the tier's server, changing nothing. The containment
itself is rehearsed in extensions/molecule/security_breach.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import lablib
import psycopg2
import pytest
import yaml
from test_bad_input import assert_refused

PORT_BASE = int(os.environ.get("DBOPS_SECURITY_TEST_PORT_BASE", "5980"))
LAB_ROOT = os.environ.get("DBOPS_SECURITY_TEST_ROOT", "/var/tmp/penguinmails-dbops-security-test")
PLAYBOOK = lablib.REPO_ROOT / "playbooks" / "incident_security_breach.yml"
OPERATOR = "sec_operator"
OPERATOR_PASSWORD = "sec-operator-test-password"

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lablib.require_binaries()
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
        cursor.execute("CREATE ROLE sec_check_app LOGIN PASSWORD 'sec-check-app-password'")
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
            "security_rotate_passwords": ["sec_check_app"],
            "security_rotate_out_file": str(tmp_path / "rotated.yml"),
        }
        done = lablib.run_playbook(lab.inventory, PLAYBOOK, extra, args=["--check"], timeout=180)
        assert done.rc == 0, done.stdout[-3000:]
        # The rotation is planned, not done: no file, the old password still logs in.
        assert "ALTER ROLE \\\"sec_check_app\\\" PASSWORD '********'" in done.stdout, done.stdout[-5000:]
        assert not (tmp_path / "rotated.yml").exists()
        lablib.connect(server.port, "sec_check_app", "sec-check-app-password").close()
        assert 'ALTER ROLE \\"sec_suspect\\" NOLOGIN CONNECTION LIMIT 0' in done.stdout
        assert "pg_terminate_backend" in done.stdout
        assert server_state(lab) == before
        with held.cursor() as cursor:
            cursor.execute("SELECT 1")  # the session was not terminated
        assert not (tmp_path / "incidents").exists() and not (tmp_path / "security").exists()
    finally:
        held.close()


def lockdown_params(lab):
    from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams

    server = lab.tier("oltp")[0]
    return ConnectionParams(
        host="127.0.0.1",
        port=server.port,
        user=lab.credentials["dbops_login_user"],
        password=lab.credentials["dbops_login_password"],
    )


def test_a_pg_hba_change_with_an_error_is_put_back_byte_for_byte_and_the_lift_still_works(lab, tmp_path, monkeypatch):
    """The reject lines are checked in pg_hba_file_rules before the reload; when the new file has an
    error (here: a line no server accepts, slipped in by a fault), the old bytes are put back, nothing is
    reloaded, the failure names the line, and the roles already locked are remembered for the lift."""

    server = lab.tier("oltp")[0]
    conn = lab.connect(server)
    with conn.cursor() as cursor:
        cursor.execute("CREATE ROLE sec_hba_suspect LOGIN PASSWORD 'sec-hba-test-password'")
        cursor.execute("SHOW hba_file")
        hba = Path(cursor.fetchone()[0])
        cursor.execute("SELECT count(*) FROM pg_hba_file_rules")
        rules_before = cursor.fetchone()[0]
    conn.close()
    pristine = hba.read_bytes()
    try:
        put_back_after_an_error(lab, server, hba, pristine, rules_before, tmp_path, monkeypatch)
    finally:
        hba.write_bytes(pristine)  # the lab's other tests read pg_hba.conf as text


def put_back_after_an_error(lab, server, hba, pristine, rules_before, tmp_path, monkeypatch):
    from ansible_collections.penguinmails.dbops.plugins.module_utils import lockdown, lockdown_run
    from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed, connected

    # Bytes that are not UTF-8 in a comment: a text round trip would change them, the put-back must not.
    original = pristine + b"# caf\xe9 kept as it was\n"
    hba.write_bytes(original)
    stat_before = hba.stat()
    real = lockdown.hba_with_rejects
    monkeypatch.setattr(
        lockdown,
        "hba_with_rejects",
        lambda text, roles: (real(text, roles)[0] + "hostbogus all all 127.0.0.1/32 reject\n", real(text, roles)[1]),
    )
    options = {"roles": ["sec_hba_suspect"], "databases": [], "state_file": str(tmp_path / "state.json")}
    params = lockdown_params(lab)
    with connected(params) as link, pytest.raises(ActionFailed) as failed:
        lockdown_run.RoleLockdown(options, params, check_mode=False).work(link, "present")
    message = str(failed.value)
    assert "hostbogus" in message or "invalid connection type" in message, message
    assert "put back byte for byte and not reloaded" in message, message
    report = failed.value.result["hba_put_back"]
    assert report["put_back"] and not report["reloaded"] and not report["errors_left"], report
    assert hba.read_bytes() == original
    assert (hba.stat().st_mode, hba.stat().st_uid) == (stat_before.st_mode, stat_before.st_uid)
    conn = lab.connect(server)
    with conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM pg_hba_file_rules")
        assert cursor.fetchone()[0] == rules_before + 0
        cursor.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'sec_hba_suspect'")
        assert cursor.fetchone()[0] is False  # the role was locked before pg_hba.conf was touched
    conn.close()
    # The server still runs the rules it had: the innocent application role logs in.
    lablib.connect(server.port, lab.credentials["lab_app_user"], lab.password_of("lab_app_user")).close()
    monkeypatch.setattr(lockdown, "hba_with_rejects", real)
    # The state was kept although the run stopped half way: the lift gives the login back.
    with connected(params) as link:
        lifted = lockdown_run.RoleLockdown(options, params, check_mode=False).work(link, "absent")
    assert lifted["changed"]
    lablib.connect(server.port, "sec_hba_suspect", "sec-hba-test-password").close()
    assert hba.read_bytes() == original


def test_the_investigation_reads_only_the_servers_current_log_tail(lab, tmp_path):
    """pg_security_facts reads the suspects' lines from one file: pg_current_logfile()'s, or (no logging
    collector, as in the lab) the host's pg_log_file; its last megabyte only; a link is not followed,
    and no other file is read whatever the lines in it."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils import lockdown_run
    from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import connected

    server = lab.tier("oltp")[0]
    conn = lab.connect(server)
    with conn.cursor() as cursor:
        cursor.execute("CREATE ROLE sec_log_suspect LOGIN PASSWORD 'sec-log-test-password'")
        cursor.execute("SELECT pg_current_logfile()")
        assert cursor.fetchone()[0] is None  # the lab writes through pg_ctl -l: no logging collector
    conn.close()
    with pytest.raises(psycopg2.OperationalError):
        lablib.connect(server.port, "sec_log_suspect", "a-wrong-password")
    params = lockdown_params(lab)

    def facts(log_file):
        options = {"roles": ["sec_log_suspect"], "log_file": log_file, "investigate": True}
        with connected(params) as link:
            return lockdown_run.SecurityFacts(options, params).read(link)

    found = facts(str(server.log_file))
    assert any("sec_log_suspect" in line and "authentication failed" in line for line in found["log_lines"]), found
    read = found["log_file_read"]
    assert read["path"] == str(server.log_file) and read["source"] == "log_file"
    assert 0 < read["bytes_read"] <= lockdown_run.LOG_TAIL_BYTES and read["bytes_read"] == min(
        read["size"], lockdown_run.LOG_TAIL_BYTES
    )
    # A link to the log is not followed, whatever it points at.
    link_path = tmp_path / "server.log"
    link_path.symlink_to(server.log_file)
    linked = facts(str(link_path))
    assert linked["log_lines"] == [] and "symbolic link" in linked["log_file_read"]["note"]
    # Past the last megabyte nothing is read: a line written before 1 MiB of other lines is not found.
    big = tmp_path / "big.log"
    big.write_bytes(
        b'FATAL:  password authentication failed for user "sec_log_suspect"\n'
        + b"x" * 80
        + b"\n"
        + b"y" * (2 * lockdown_run.LOG_TAIL_BYTES)
        + b"\n"
    )
    tail = facts(str(big))
    assert tail["log_lines"] == [] and tail["log_file_read"]["bytes_read"] == lockdown_run.LOG_TAIL_BYTES


def test_the_runs_own_login_role_gets_no_new_password(run, lab, tmp_path):
    done, left = run(
        security_suspect_roles=["lab_app_user"],
        security_rotate_passwords=[lab.credentials["dbops_login_user"]],
        security_rotate_out_file=str(tmp_path / "rotated.yml"),
    )
    assert_refused(done, left, "it is the role this run logs in with (dbops_login_user); no password was changed")


def test_rotation_new_password_only_in_the_vault_file_and_the_lift_keeps_it(lab, tmp_path):
    """The suspect is locked out and an application role gets a new password: the old one no longer logs
    in, the one from the vault-encrypted file does, and the secret is nowhere else - playbook output,
    timeline, report, audit trail, evidence bundle, server log. The lift gives the suspect its login back
    and leaves the new password in place."""
    server = lab.tier("oltp")[0]
    conn = lab.connect(server)
    with conn.cursor() as cursor:
        cursor.execute("CREATE ROLE sec_rot_suspect LOGIN PASSWORD 'sec-rot-suspect-password'")
        cursor.execute("CREATE ROLE sec_rot_app LOGIN PASSWORD 'sec-rot-app-old-password'")
        cursor.execute("ALTER SYSTEM SET log_statement = 'ddl'")  # the ALTER ROLE goes to the server log
        cursor.execute("SELECT pg_reload_conf()")
    conn.close()
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("operator-vault-passphrase\n")
    vault_pass.chmod(0o600)
    out_file = tmp_path / "rotated.vault.yml"
    extra = {
        "incident_tier": "oltp",
        "security_suspect_roles": ["sec_rot_suspect"],
        "security_rotate_passwords": ["sec_rot_app"],
        "security_rotate_out_file": str(out_file),
        "security_rotate_vault_password_file": str(vault_pass),
        "dbops_incident_dir": str(tmp_path / "incidents"),
        "dbops_lock_dir": str(tmp_path / "locks"),
        "dbops_security_state_dir": str(tmp_path / "security"),
    }
    try:
        done = lablib.run_playbook(lab.inventory, PLAYBOOK, extra, args=["-v"], timeout=240)
        assert done.rc == 0, done.stdout[-4000:]
        assert out_file.stat().st_mode & 0o777 == 0o600
        assert out_file.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
        view = subprocess.run(
            [
                str(Path(lablib.ansible_playbook()).with_name("ansible-vault")),
                "view",
                "--vault-password-file",
                str(vault_pass),
                str(out_file),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        secret = yaml.safe_load(view.stdout)["sec_rot_app"]
        assert len(secret) >= 40 and secret not in out_file.read_text()
        with pytest.raises(psycopg2.OperationalError):
            lablib.connect(server.port, "sec_rot_app", "sec-rot-app-old-password")
        lablib.connect(server.port, "sec_rot_app", secret).close()
        with pytest.raises(psycopg2.OperationalError):
            lablib.connect(server.port, "sec_rot_suspect", "sec-rot-suspect-password")
        written = [path for path in (tmp_path / "incidents").rglob("*") if path.is_file()]
        assert any(path.parent.name == "evidence" or "evidence" in path.parts for path in written)
        assert any(path.name == "rotation.json" for path in written)
        for path in written:
            assert secret not in path.read_text(errors="replace"), path
        assert secret not in done.stdout + done.stderr
        assert secret not in Path(server.log_file).read_text(errors="replace")
        assert "SCRAM-SHA-256$" in Path(server.log_file).read_text(errors="replace")  # only the verifier went there

        lifted = lablib.run_playbook(lab.inventory, PLAYBOOK, dict(extra, security_lift=True), timeout=240)
        assert lifted.rc == 0, lifted.stdout[-4000:]
        lablib.connect(server.port, "sec_rot_suspect", "sec-rot-suspect-password").close()
        lablib.connect(server.port, "sec_rot_app", secret).close()  # the lift does not put the old password back
        with pytest.raises(psycopg2.OperationalError):
            lablib.connect(server.port, "sec_rot_app", "sec-rot-app-old-password")
        assert secret not in lifted.stdout + lifted.stderr
    finally:
        conn = lab.connect(server)
        with conn.cursor() as cursor:
            cursor.execute("ALTER SYSTEM RESET log_statement")
            cursor.execute("SELECT pg_reload_conf()")
        conn.close()
