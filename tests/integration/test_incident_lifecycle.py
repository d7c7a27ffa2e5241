"""An incident's whole life through ansible-playbook, against real receivers on 127.0.0.1.

open -> steps -> escalate -> close with the penguinmails.dbops.incident role; Slack-style webhook
and PagerDuty Events API v2 go to a recording HTTP server, e-mail to aiosmtpd. The tests assert
on what arrived, on summary.json / report.md, on the audit chain, and that no secret is written
anywhere. No database is needed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import incident_receivers
import pytest
from incident_receivers import SmtpReceiver, self_signed_certificate

# The receivers' fixtures, from the module that owns them (tests/integration/conftest.py is the lab's).
http_receiver = incident_receivers.http_receiver
smtp_receiver = incident_receivers.smtp_receiver
syslog_receiver = incident_receivers.syslog_receiver

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "incident_playbooks"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
AUDIT_CLI = REPO / "tools" / "audit_verify"

WEBHOOK_TOKEN = "XoXb-w3bh00k-t0k3n-s3cr3t"
ROUTING_KEY = "R0ut1ngK3y-s3cr3t-0123456789abcdef"
PROBE_PASSWORD = "Pr0be-Passw0rd-s3cr3t"
SMTP_PASSWORD = "Smtp-Passw0rd-s3cr3t"
SECRETS = (WEBHOOK_TOKEN, ROUTING_KEY, PROBE_PASSWORD, SMTP_PASSWORD, "hunter2-in-a-statement")

CONTACTS = {
    "database_lead": {"name": "Database Operations Manager", "email": "dbops@penguinmails.com"},
    "oncall_engineer": {"name": "On-Call Engineer", "email": "oncall@penguinmails.com"},
    "engineering_manager": {"name": "Engineering Manager", "email": "em@penguinmails.com"},
    "senior_engineer": {"name": "Senior Engineer", "email": "senior@penguinmails.com"},
    "cto": {"name": "CTO", "email": "cto@penguinmails.com"},
    "ceo": {"name": "CEO"},
}
LEVEL_1 = ["dbops@penguinmails.com", "oncall@penguinmails.com"]
LEVEL_2 = ["em@penguinmails.com", "senior@penguinmails.com"]


@pytest.fixture(autouse=True)
def collection_link():
    link = REPO / ".build" / "collections" / "ansible_collections" / "penguinmails" / "dbops"
    if not link.exists():
        pytest.fail("the collection is not linked under .build/collections: run `make link`")


def settings(tmp_path, http, smtp, **overrides):
    """Extra vars: channels pointing at the receivers, the seed's contacts with addresses, secrets."""
    values = {
        "dbops_incident_dir": str(tmp_path / "incidents"),
        "incident_contacts": CONTACTS,
        "incident_notify_slack": {"webhook_url": http.url(f"/slack/services/T0/B0/{WEBHOOK_TOKEN}")},
        "incident_notify_pagerduty": {"routing_key": ROUTING_KEY, "url": http.url("/pagerduty/v2/enqueue")},
        "incident_notify_email": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "sender": "dbops-automation@penguinmails.com",
        },
        "incident_notify_timeout": 2,
        "probe_url": http.url("/probe"),
        "probe_password": PROBE_PASSWORD,
    }
    values.update(overrides)
    return values


def run_playbook(tmp_path, playbook, extra_vars, *args, env=None, timeout=180):
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra_vars))
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("DBOPS_", "ANSIBLE_"))}
    environment.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
    )
    environment.update(env or {})
    command = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(playbook), "-e", f"@{vars_file}", *args]
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )
    done.seconds = time.monotonic() - started
    return done


def lifecycle(tmp_path, http, smtp, incident_id, *args, env=None, **overrides):
    values = settings(tmp_path, http, smtp, **overrides)
    if incident_id:
        values["incident_id"] = incident_id
    return run_playbook(tmp_path, PLAYBOOKS / "lifecycle.yml", values, *args, env=env)


def recap(done):
    found = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    return {"ok": int(found[1]), "changed": int(found[2]), "unreachable": int(found[3]), "failed": int(found[4])}


def incident_dir(tmp_path, incident_id):
    return tmp_path / "incidents" / incident_id


def read_json(path):
    return json.loads(path.read_text())


def audit_lines(tmp_path, incident_id):
    return [json.loads(line) for line in (incident_dir(tmp_path, incident_id) / "audit.jsonl").read_text().splitlines()]


def assert_no_secret(tmp_path, *outputs):
    for path in (tmp_path / "incidents").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            for secret in SECRETS:
                assert secret not in text, f"{secret} found in {path}"
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output


def test_open_step_escalate_notify_close(tmp_path, http_receiver, smtp_receiver):
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-LIFE-1", env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert recap(done)["changed"] == 0  # the record is bookkeeping, not a change to the fleet
    custom_stats = done.stdout[done.stdout.index("CUSTOM STATS") :]
    assert "dbops_incident" in custom_stats and '"outcome": "resolved"' in custom_stats  # set_stats, for AWX

    record_dir = incident_dir(tmp_path, "INC-LIFE-1")
    summary = read_json(record_dir / "summary.json")
    assert summary["id"] == "INC-LIFE-1" and summary["type"] == "db_outage" and summary["tier"] == "oltp"
    assert summary["severity"] == "critical" and summary["outcome"] == "resolved"
    assert summary["response_target_met"] is True and summary["mitigated_at"]
    assert summary["changed_steps"] == 1 and summary["steps"] == 3 and summary["escalation_level"] == 2
    assert summary["notifications_failed"] == 0

    report = (record_dir / "report.md").read_text()
    assert "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'" in report
    assert "ALTER ROLE app WITH PASSWORD '********' NOLOGIN" in report
    assert "stopped postmaster 4242 on pg-oltp-1" in report
    assert "pg-oltp-1 refuses connections" in report and "visible on 2 standbys" in report
    assert "response target 5 min met" in report
    assert "em@penguinmails.com" in report  # who was told

    # PagerDuty: one trigger while open, one resolve at close, the incident id as dedup key.
    events = http_receiver.received("/pagerduty")
    assert [event["event_action"] for event in events] == ["trigger", "resolve"]
    assert {event["dedup_key"] for event in events} == {"INC-LIFE-1"}
    assert {event["routing_key"] for event in events} == {ROUTING_KEY}
    assert events[0]["payload"]["severity"] == "critical" and events[0]["payload"]["component"] == "oltp"

    # Slack: levels 1 and 2 announced at open (critical escalates at once), then the close.
    slack = [message["text"] for message in http_receiver.received("/slack")]
    assert len(slack) == 2
    assert "Level 1 of 4 (Database Operations Team)" in slack[0] and "Level 2 of 4 (Engineering Management)" in slack[0]
    assert "closed: resolved" in slack[1]

    # E-mail: level 1, level 2, and the closing message to everyone told.
    assert len(smtp_receiver.messages) == 3
    level_1, level_2, closing = smtp_receiver.messages
    assert sorted(level_1["rcpt_tos"]) == LEVEL_1 and sorted(level_2["rcpt_tos"]) == LEVEL_2
    assert sorted(closing["rcpt_tos"]) == sorted(LEVEL_1 + LEVEL_2)
    assert "escalation level 2 (Engineering Management)" in level_2["message"]["Subject"]
    assert level_1["message"]["X-Dbops-Incident"] == "INC-LIFE-1"

    # Audit: one line per task result plus the run's start and end, chained, verified by the CLI.
    lines = audit_lines(tmp_path, "INC-LIFE-1")
    assert lines[0]["event"] == "playbook_start" and lines[-1]["event"] == "playbook_end"
    tasks = [line for line in lines if line["event"] == "task"]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    for line in tasks:
        for field in ("ts", "incident_id", "operator", "playbook", "play", "host", "task", "module", "status"):
            assert line[field] is not None, (field, line)
        assert line["incident_id"] == "INC-LIFE-1" and "duration" in line
    probe = next(line for line in tasks if line["task"] == "Probe an endpoint with a password")
    assert probe["module"] == "ansible.builtin.uri" and probe["status"] == "ok"
    hidden = next(line for line in tasks if line["task"] == "Handle a secret without logging it")
    assert hidden["no_log"] is True
    assert set(hidden) <= {"seq", "prev", "hash", "ts", "run_id", "incident_id", "operator", "playbook", "play"} | {
        "event",
        "host",
        "task",
        "module",
        "status",
        "duration",
        "no_log",
    }
    verified = subprocess.run(
        [str(AUDIT_CLI), str(record_dir / "audit.jsonl")], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0 and f"intact, {len(lines)} lines" in verified.stdout
    assert (record_dir / "audit.jsonl").stat().st_mode & 0o777 == 0o600  # like the records
    assert read_json(record_dir / "summary.json")["audit_dropped"] == 0

    assert_no_secret(tmp_path, done.stdout, done.stderr)


def test_awx_job_and_user_name_the_incident_and_the_operator(tmp_path, http_receiver, smtp_receiver):
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, None, awx_job_id=4242, awx_user_name="alice")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = read_json(incident_dir(tmp_path, "awx-4242") / "summary.json")
    assert summary["id"] == "awx-4242" and summary["operators"] == ["alice"]
    lines = audit_lines(tmp_path, "awx-4242")
    assert {line["operator"] for line in lines} == {"alice"} and {line["incident_id"] for line in lines} == {"awx-4242"}


def test_a_generated_id_holds_for_the_whole_run(tmp_path, http_receiver, smtp_receiver):
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, None)
    assert done.returncode == 0, done.stdout + done.stderr
    [record_dir] = list((tmp_path / "incidents").iterdir())
    assert re.fullmatch(r"INC-\d{8}-\d{6}-[0-9a-f]{4}", record_dir.name)
    summary = read_json(record_dir / "summary.json")
    assert summary["steps"] == 3 and summary["outcome"] == "resolved"
    lines = audit_lines(tmp_path, record_dir.name)
    assert {line["incident_id"] for line in lines} == {record_dir.name}  # held lines were attributed too


def test_a_rerun_continues_the_record_and_pages_nobody_twice(tmp_path, http_receiver, smtp_receiver):
    first = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-RERUN")
    assert first.returncode == 0, first.stdout + first.stderr
    requests, mails = len(http_receiver.received("/")), len(smtp_receiver.messages)
    lines_after_first = len(audit_lines(tmp_path, "INC-RERUN"))

    second = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-RERUN")
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second)["changed"] == 0
    assert len(http_receiver.received("/")) == requests and len(smtp_receiver.messages) == mails

    assert sorted(path.name for path in (tmp_path / "incidents").iterdir()) == ["INC-RERUN"]
    summary = read_json(incident_dir(tmp_path, "INC-RERUN") / "summary.json")
    assert summary["runs"] == 2 and summary["steps"] == 6
    assert "run 2 by" in (incident_dir(tmp_path, "INC-RERUN") / "report.md").read_text()
    lines = audit_lines(tmp_path, "INC-RERUN")
    assert len(lines) > lines_after_first and len({line["run_id"] for line in lines}) == 2
    verified = subprocess.run([str(AUDIT_CLI), str(incident_dir(tmp_path, "INC-RERUN") / "audit.jsonl")], check=False)
    assert verified.returncode == 0


def test_a_channel_that_is_down_does_not_abort_and_is_retried(tmp_path, http_receiver, smtp_receiver):
    http_receiver.behave("/slack", "error")
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-DOWN")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "notification via slack (escalation) failed" in done.stdout + done.stderr
    assert http_receiver.received("/slack") == [] and len(http_receiver.received("/pagerduty")) == 2
    assert len(smtp_receiver.messages) == 3
    record_dir = incident_dir(tmp_path, "INC-DOWN")
    assert read_json(record_dir / "summary.json")["notifications_failed"] >= 2
    assert "HTTP 500" in (record_dir / "report.md").read_text()

    http_receiver.behave("/slack", "ok")
    again = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-DOWN")
    assert again.returncode == 0
    slack = [message["text"] for message in http_receiver.received("/slack")]
    assert len(slack) == 2 and "Level 1 of 4" in slack[0] and "closed: resolved" in slack[1]
    assert len(http_receiver.received("/pagerduty")) == 2 and len(smtp_receiver.messages) == 3
    assert_no_secret(tmp_path, done.stdout, done.stderr, again.stdout, again.stderr)


def test_a_hung_endpoint_costs_one_timeout(tmp_path, http_receiver, smtp_receiver):
    http_receiver.hang_seconds = 8
    http_receiver.behave("/slack", "hang")
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-HANG", incident_notify_timeout=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no answer within 1 s" in done.stdout + done.stderr
    # Two notify calls (open, close) and an escalate each try Slack once at most: three timeouts of 1 s,
    # not 8 s hangs.
    assert done.seconds < 30
    report = (incident_dir(tmp_path, "INC-HANG") / "report.md").read_text()
    assert "no answer within 1 s" in report


def test_smtp_down_is_recorded(tmp_path, http_receiver):
    closed = SmtpReceiver()  # never started: its port refuses connections
    done = lifecycle(tmp_path, http_receiver, closed, "INC-NOSMTP")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = read_json(incident_dir(tmp_path, "INC-NOSMTP") / "summary.json")
    assert summary["notifications_failed"] >= 2 and summary["outcome"] == "resolved"
    assert "refused" in (incident_dir(tmp_path, "INC-NOSMTP") / "report.md").read_text().lower()


def test_check_mode_sends_nothing_and_writes_no_record(tmp_path, http_receiver, smtp_receiver):
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-CHECK", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert http_receiver.received("/slack") == [] and http_receiver.received("/pagerduty") == []
    assert smtp_receiver.messages == []
    record_dir = incident_dir(tmp_path, "INC-CHECK")
    assert not (record_dir / "record.json").exists() and not (record_dir / "summary.json").exists()
    assert "Check mode, nothing recorded" in done.stdout
    # Check mode writes nothing at all: no record, no audit trail, not even the directory (issue 10).
    assert not (tmp_path / "incidents").exists()


def test_elapsed_time_escalates_to_the_levels_due(tmp_path, http_receiver, smtp_receiver):
    detected = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = lifecycle(
        tmp_path,
        http_receiver,
        smtp_receiver,
        "INC-LATE",
        incident_type="pool_exhaustion",  # high: level 2 after 30 min
        incident_detected_at=detected,
        lifecycle_outcome="mitigated",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    recipients = [sorted(message["rcpt_tos"]) for message in smtp_receiver.messages]
    assert recipients[:2] == [LEVEL_1, LEVEL_2]
    summary = read_json(incident_dir(tmp_path, "INC-LATE") / "summary.json")
    assert summary["response_target_met"] is False  # 40 min against a 10 min target
    events = http_receiver.received("/pagerduty")
    assert [event["event_action"] for event in events] == ["trigger", "acknowledge"]
    assert events[0]["payload"]["severity"] == "error"


def test_the_audit_trail_is_copied_to_http_and_syslog(tmp_path, http_receiver, smtp_receiver, syslog_receiver):
    env = {
        "DBOPS_AUDIT_HTTP_URL": http_receiver.url("/audit"),
        "DBOPS_AUDIT_HTTP_TOKEN": "audit-token-s3cr3t",
        "DBOPS_AUDIT_SYSLOG_ADDRESS": syslog_receiver.address,
    }
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-COPY", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    written = (incident_dir(tmp_path, "INC-COPY") / "audit.jsonl").read_text().splitlines()
    posted = [request for request in http_receiver.requests if request["path"] == "/audit"]
    assert [request["body"].decode() for request in posted] == written
    assert {request["headers"].get("Authorization") for request in posted} == {"Bearer audit-token-s3cr3t"}
    time.sleep(0.3)
    syslogged = [datagram.decode() for datagram in syslog_receiver.datagrams]
    assert len(syslogged) == len(written) and all("dbops-audit: {" in message for message in syslogged)
    assert "audit-token-s3cr3t" not in done.stdout + done.stderr


def test_the_audit_file_can_be_one_file_for_every_run(tmp_path, http_receiver, smtp_receiver):
    trail = tmp_path / "all-runs.jsonl"
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-ONEFILE", env={"DBOPS_AUDIT_FILE": str(trail)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (incident_dir(tmp_path, "INC-ONEFILE") / "audit.jsonl").exists()
    verify = run_playbook(
        tmp_path,
        REPO / "playbooks" / "audit_verify.yml",
        {"audit_file": str(trail)},
        env={"DBOPS_AUDIT_FILE": str(trail)},
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    lines = [json.loads(line) for line in trail.read_text().splitlines()]
    assert {line["playbook"] for line in lines} == {
        str(PLAYBOOKS / "lifecycle.yml"),
        str(REPO / "playbooks" / "audit_verify.yml"),
    }
    assert subprocess.run([str(AUDIT_CLI), str(trail)], check=False).returncode == 0


def test_runs_without_an_incident_are_recorded_only_when_asked(tmp_path):
    trail = tmp_path / "audit.jsonl"
    trail.write_text("")
    quiet = run_playbook(tmp_path, REPO / "playbooks" / "audit_verify.yml", {"audit_file": str(trail)})
    assert quiet.returncode == 0 and not (tmp_path / "incidents").exists()
    env = {"DBOPS_AUDIT_RECORD_UNATTRIBUTED": "true"}
    recorded = run_playbook(tmp_path, REPO / "playbooks" / "audit_verify.yml", {"audit_file": str(trail)}, env=env)
    assert recorded.returncode == 0
    lines = (tmp_path / "incidents" / "unattributed" / "audit.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["incident_id"] is None and json.loads(lines[-1])["event"] == "playbook_end"


def test_a_dead_audit_copy_warns_once_and_the_run_goes_on(tmp_path, http_receiver, smtp_receiver):
    env = {"DBOPS_AUDIT_HTTP_URL": http_receiver.url("/audit-down")}
    http_receiver.behave("/audit-down", "error")
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-NOCOPY", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (done.stdout + done.stderr).count("audit copy to") == 1
    assert len([request for request in http_receiver.requests if request["path"] == "/audit-down"]) == 1
    verified = subprocess.run([str(AUDIT_CLI), str(incident_dir(tmp_path, "INC-NOCOPY") / "audit.jsonl")], check=False)
    assert verified.returncode == 0


def test_audit_verify_playbook_names_the_tampered_line(tmp_path, http_receiver, smtp_receiver):
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-AUDIT")
    assert done.returncode == 0, done.stdout + done.stderr
    trail = incident_dir(tmp_path, "INC-AUDIT") / "audit.jsonl"
    count = len(trail.read_text().splitlines())

    verified = run_playbook(tmp_path, REPO / "playbooks" / "audit_verify.yml", {"audit_file": str(trail)})
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"audit chain intact, {count} lines" in verified.stdout

    lines = trail.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace('"status":"ok"', '"status":"failed"', 1)
    assert '"status":"failed"' in lines[4]
    trail.write_text("".join(lines))
    broken = run_playbook(tmp_path, REPO / "playbooks" / "audit_verify.yml", {"audit_file": str(trail)})
    assert broken.returncode != 0
    assert "audit chain broken at line 5: the line was edited" in broken.stdout
    assert "Traceback" not in broken.stdout + broken.stderr


def test_smtp_with_starttls_and_a_password(tmp_path, http_receiver):
    import ssl

    certificate, key = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    with SmtpReceiver(credentials=("dbops-automation", SMTP_PASSWORD), tls_context=context) as smtp:
        email = {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "starttls",
            "ca_cert": str(certificate),
            "username": "dbops-automation",
            "password": SMTP_PASSWORD,
            "sender": "dbops-automation@penguinmails.com",
        }
        done = lifecycle(tmp_path, http_receiver, smtp, "INC-TLS", "-v", incident_notify_email=email)
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(smtp.messages) == 3
        assert all(message["tls"] and message["login"] == "dbops-automation" for message in smtp.messages)
    assert_no_secret(tmp_path, done.stdout, done.stderr)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_wrong_smtp_password_is_a_recorded_failure_without_the_password(tmp_path, http_receiver):
    with SmtpReceiver(credentials=("dbops-automation", "the-right-one")) as smtp:
        email = {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "username": "dbops-automation",
            "password": SMTP_PASSWORD,
            "sender": "dbops-automation@penguinmails.com",
        }
        done = lifecycle(tmp_path, http_receiver, smtp, "INC-AUTH", "-vv", incident_notify_email=email)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "authentication failed (535)" in done.stdout + done.stderr
    assert_no_secret(tmp_path, done.stdout, done.stderr)


# --- issue 10: every run that can change a server has a trail, filed under the right incident ------------


def task_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if '"event":"task"' in line]


def test_two_incidents_opened_in_a_loop_each_get_their_own_audit_lines(tmp_path):
    done = run_playbook(tmp_path, PLAYBOOKS / "two_incidents.yml", {"dbops_incident_dir": str(tmp_path / "incidents")})
    assert done.returncode == 0, done.stdout + done.stderr
    trails = {name: incident_dir(tmp_path, name) / "audit.jsonl" for name in ("INC-LOOP-A", "INC-LOOP-B")}
    lines = {name: task_lines(path) for name, path in trails.items()}
    for name, own in lines.items():
        assert {line["incident_id"] for line in own} == {name}
        findings = [line for line in own if line["task"] == "Record a finding in each incident"]
        assert len(findings) == 1 and findings[0]["items"] == 1  # only its own loop item
        opened = [line for line in own if line["task"] == "Open one incident per tier"]
        assert len(opened) == 1 and opened[0]["items"] == 1
        assert own[0]["task"] == "Look before any incident exists"  # the shared history
    assert [line["task"] for line in lines["INC-LOOP-A"]].count("Record a step in the first incident only") == 1
    assert "Record a step in the first incident only" not in [line["task"] for line in lines["INC-LOOP-B"]]
    assert "audit chain intact" in done.stdout  # dbops_audit_verify inside the run, on both trails
    for path in trails.values():
        assert path.stat().st_mode & 0o777 == 0o600
        assert json.loads(path.read_text().splitlines()[-1])["event"] == "playbook_end"
        assert subprocess.run([str(AUDIT_CLI), str(path)], check=False).returncode == 0
    assert not (tmp_path / "incidents" / "unattributed").exists()


def test_a_run_that_changes_something_without_an_incident_has_a_run_level_trail(tmp_path):
    done = run_playbook(tmp_path, PLAYBOOKS / "change_without_incident.yml", {})
    assert done.returncode == 0, done.stdout + done.stderr
    trail = tmp_path / "incidents" / "unattributed" / "audit.jsonl"
    lines = [json.loads(line) for line in trail.read_text().splitlines()]
    assert [line.get("task") or line["event"] for line in lines] == [
        "playbook_start",
        "Read first",
        "Run a command that could change a server",
        "playbook_end",
    ]
    assert len({line["run_id"] for line in lines}) == 1 and {line["incident_id"] for line in lines} == {None}
    assert subprocess.run([str(AUDIT_CLI), str(trail)], check=False).returncode == 0


def test_a_line_that_cannot_be_written_is_a_warning_and_counted_in_the_summary(tmp_path, http_receiver, smtp_receiver):
    record_dir = incident_dir(tmp_path, "INC-DROP")
    record_dir.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (record_dir / "audit.jsonl").symlink_to(victim)  # a planted link: never written through
    done = lifecycle(tmp_path, http_receiver, smtp_receiver, "INC-DROP")
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "cannot write" in output and "symbolic link" in output
    assert re.search(r"\d+ audit line\(s\) of this run could not be written", output)
    assert victim.read_text() == "untouched\n"
    summary = read_json(record_dir / "summary.json")
    assert summary["audit_dropped"] > 0
    assert "audit line(s) could not be written" in (record_dir / "report.md").read_text()


def test_a_run_that_refuses_before_acting_leaves_no_audit_file(tmp_path):
    env = {"DBOPS_AUDIT_FSYNC": "false"}
    done = run_playbook(tmp_path, REPO / "playbooks" / "audit_verify.yml", {"incident_id": "INC-NOTHING"}, env=env)
    assert done.returncode != 0  # audit_file missing: the playbook refuses
    assert not (tmp_path / "incidents").exists()


# --- issue 10: the run lock: absolute default directory, nothing written in check mode -------------------


def lock_run(cwd, name, owner, *args, **extra):
    cwd.mkdir(exist_ok=True)
    return run_playbook(cwd, PLAYBOOKS / "run_lock.yml", dict(lock_name=name, lock_owner=owner, **extra), *args)


def test_two_runs_from_two_directories_meet_at_the_default_lock(tmp_path):
    name = f"test-{os.getpid()}-{time.time_ns()}"
    first = lock_run(tmp_path / "one", name, "run-1")
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        assert "lock outcome acquired at /var/lib/penguinmails-dbops/locks/" in first.stdout
        second = lock_run(tmp_path / "two", name, "run-2")
        assert second.returncode != 0 and "is locked by another run: owner run-1" in second.stdout
        assert not (tmp_path / "one" / "incidents").exists() and not (tmp_path / "two" / "incidents").exists()
    finally:
        released = lock_run(tmp_path / "one", name, "run-1", lock_state="absent")
    assert released.returncode == 0 and "lock outcome released" in released.stdout


def test_the_lock_in_check_mode_says_what_it_would_do_and_writes_nothing(tmp_path):
    lock_dir = tmp_path / "locks"
    done = lock_run(tmp_path / "cwd", "check-me", "run-1", "--check", lock_dir=str(lock_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lock outcome would_acquire" in done.stdout
    assert not lock_dir.exists() and not (tmp_path / "cwd" / "incidents").exists()
    taken = lock_run(tmp_path / "cwd", "check-me", "run-1", lock_dir=str(lock_dir))
    assert taken.returncode == 0 and oct(lock_dir.stat().st_mode & 0o777) == "0o700"
    files_before = sorted(path.name for path in lock_dir.iterdir())
    busy = lock_run(tmp_path / "cwd", "check-me", "run-2", "--check", lock_dir=str(lock_dir))
    assert (
        busy.returncode == 0
        and "lock outcome busy" in busy.stdout
        and "a real run would wait" in busy.stdout + busy.stderr
    )
    assert sorted(path.name for path in lock_dir.iterdir()) == files_before
