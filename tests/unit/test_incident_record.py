"""The incident record: open / step / close, reruns, check mode, the files it renders."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import incident

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


def minutes(value):
    return T0 + dt.timedelta(minutes=value)


def params(tmp_path, **given):
    """Module parameters as the argument spec would fill them."""
    filled = {name: spec.get("default") for name, spec in incident.argument_spec().items()}
    filled.update(dir=str(tmp_path), id="INC-1")
    filled.update(given)
    return filled


def open_incident(tmp_path, at=T0, **given):
    return incident.run(params(tmp_path, event="open", type="db_outage", tier="oltp", **given), False, now=at)


def step(tmp_path, at, **given):
    return incident.run(params(tmp_path, event="step", **given), False, now=at)


def close(tmp_path, at, **given):
    return incident.run(params(tmp_path, event="close", **given), False, now=at)


def load(tmp_path, name):
    text = (tmp_path / "INC-1" / name).read_text()
    return json.loads(text) if name.endswith(".json") else text


# --- identity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("explicit", "job_id", "expected"),
    [("PD-Q0RIJJZL24RC6W", None, "PD-Q0RIJJZL24RC6W"), (None, "1234", "awx-1234"), ("given", "1234", "given")],
)
def test_id_comes_from_the_extra_var_then_the_awx_job(explicit, job_id, expected):
    assert incident.resolve_id(explicit, job_id, T0, may_generate=False) == expected


def test_id_is_generated_only_when_opening():
    generated = incident.resolve_id(None, None, T0, may_generate=True)
    assert generated.startswith("INC-20261118-100000-") and len(generated) == len("INC-20261118-100000-abcd")
    with pytest.raises(incident.IncidentError, match="open the incident first"):
        incident.resolve_id(None, None, T0, may_generate=False)


@pytest.mark.parametrize("bad", ["../etc", "a/b", ".hidden", "x" * 129, "with space", "a..b", "unattributed"])
def test_ids_that_are_not_safe_directory_names_are_refused(bad):
    with pytest.raises(incident.IncidentError, match="not usable as a directory name"):
        incident.validate_id(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-18T10:00:00Z", T0),
        ("2026-11-18T11:00:00+01:00", T0),
        ("2026-11-18T10:00:00", T0),
        ("1794996000", T0),
        ("1794996000.0", T0),
    ],
)
def test_times_are_iso_or_epoch(text, expected):
    assert incident.parse_time(text, "detected_at") == expected


def test_a_bad_time_is_one_readable_error():
    with pytest.raises(incident.IncidentError, match="detected_at 'yesterday' is not an ISO 8601 time"):
        incident.parse_time("yesterday", "detected_at")


def test_operator_defaults_to_the_os_user(monkeypatch):
    monkeypatch.setattr(incident.getpass, "getuser", lambda: "dba")
    assert incident.resolve_operator(None) == "dba"
    assert incident.resolve_operator("alice@awx") == "alice@awx"


# --- open / step / close -----------------------------------------------------------------


def test_open_writes_record_summary_and_report_and_reports_no_change(tmp_path):
    result = open_incident(tmp_path, operator="alice", targets=["pg1", "pg2"], detected_at="2026-11-18T09:58:00Z")
    assert result["changed"] is False and result["written"] is True and result["created"] is True
    summary = load(tmp_path, "summary.json")
    for field in (
        "id",
        "type",
        "tier",
        "severity",
        "outcome",
        "detected_at",
        "mitigated_at",
        "response_target_met",
        "changed_steps",
    ):
        assert field in summary
    assert summary["severity"] == "critical"  # the outage's default
    assert summary["detected_at"] == "2026-11-18T09:58:00.000Z"
    assert result["ansible_stats"]["data"]["dbops_incident"] == summary
    assert result["escalation"]["level"] == 2  # critical: level 2 immediately
    assert "# Incident INC-1" in load(tmp_path, "report.md")
    assert result["paths"]["audit"] == str(tmp_path / "INC-1" / "audit.jsonl")


def test_a_step_takes_what_a_registered_result_reports(tmp_path):
    open_incident(tmp_path)
    registered = {
        "changed": True,
        "msg": "All items completed",
        "results": [
            {"changed": True, "executed_queries": ["SELECT pg_promote(true, 30)"], "actions": ["promote pg2"]},
            {"changed": False, "executed_queries": ["SELECT 1"]},
        ],
        "invocation": {"module_args": {"login_password": "hunter2"}},
    }
    entry = step(tmp_path, minutes(1), name="Promote the best standby", from_result=registered, host="pg2")["entry"]
    assert entry["kind"] == "action"
    assert entry["changed"] is True and entry["failed"] is False
    assert entry["executed_queries"] == ["SELECT pg_promote(true, 30)", "SELECT 1"]
    assert entry["actions"] == ["promote pg2"]
    assert entry["result"] == "changed"
    assert "hunter2" not in json.dumps(load(tmp_path, "record.json"))


def test_explicit_step_values_win_and_secrets_are_masked(tmp_path):
    open_incident(tmp_path)
    entry = step(
        tmp_path,
        minutes(2),
        name="Lock the application role",
        kind="action",
        result="locked",
        changed=False,
        from_result={"changed": True, "failed": True, "msg": "boom"},
        executed_queries=["ALTER ROLE app WITH PASSWORD 'hunter2' NOLOGIN"],
        details={"login_password": "hunter2", "dsn": "postgresql://app:hunter2@db/x", "sessions": 3},
    )["entry"]
    assert entry["result"] == "locked" and entry["changed"] is False and entry["failed"] is True
    assert entry["executed_queries"] == ["ALTER ROLE app WITH PASSWORD '********' NOLOGIN"]
    assert entry["details"] == {"login_password": "********", "dsn": "postgresql://app:********@db/x", "sessions": 3}
    for name in ("record.json", "report.md", "summary.json"):
        assert "hunter2" not in (tmp_path / "INC-1" / name).read_text()


def test_kind_defaults_to_finding_when_nothing_changed(tmp_path):
    open_incident(tmp_path)
    entry = step(tmp_path, minutes(1), name="Verify service status", result="primary down")["entry"]
    assert entry["kind"] == "finding" and entry["changed"] is False


def test_close_resolved_within_target(tmp_path):
    open_incident(tmp_path)
    step(tmp_path, minutes(1), name="Fence old primary", changed=True, executed_queries=["SELECT 1"])
    close(tmp_path, minutes(4), outcome="resolved")
    summary = load(tmp_path, "summary.json")
    assert summary["outcome"] == "resolved" and summary["status"] == "closed"
    assert summary["mitigated_at"] == "2026-11-18T10:04:00.000Z"
    assert summary["response_target_met"] is True
    assert summary["changed_steps"] == 1
    assert summary["time_to_mitigate_seconds"] == 240


def test_close_late_misses_the_target(tmp_path):
    open_incident(tmp_path)
    close(tmp_path, minutes(6), outcome="mitigated")
    assert load(tmp_path, "summary.json")["response_target_met"] is False


@pytest.mark.parametrize("outcome", ["refused", "escalated"])
def test_refused_or_escalated_is_not_a_mitigation_and_raises_escalation(tmp_path, outcome):
    incident.run(params(tmp_path, event="open", type="pool_exhaustion", severity="medium"), False, now=T0)
    result = close(tmp_path, minutes(1), outcome=outcome, note="two primaries answer; refusing to promote")
    summary = load(tmp_path, "summary.json")
    assert summary["mitigated_at"] is None and summary["response_target_met"] is False
    assert result["escalation"]["level"] == 2  # medium would be level 1 after a minute
    assert "two primaries answer" in load(tmp_path, "report.md")


def test_the_first_mitigation_counts(tmp_path):
    open_incident(tmp_path)
    close(tmp_path, minutes(3), outcome="mitigated")
    close(tmp_path, minutes(50), outcome="resolved")
    summary = load(tmp_path, "summary.json")
    assert summary["outcome"] == "resolved"
    assert summary["mitigated_at"] == "2026-11-18T10:03:00.000Z"
    assert summary["response_target_met"] is True


def test_escalation_stops_at_mitigation_even_on_a_late_rerun(tmp_path):
    incident.run(params(tmp_path, event="open", type="pool_exhaustion"), False, now=T0)  # high
    close(tmp_path, minutes(5), outcome="resolved")
    rerun = open_incident_of_type(tmp_path, "pool_exhaustion", minutes(600))
    assert rerun["escalation"]["level"] == 1  # 600 min would be level 4 if the clock ran on


def open_incident_of_type(tmp_path, incident_type, at):
    return incident.run(params(tmp_path, event="open", type=incident_type), False, now=at)


def test_a_rerun_continues_the_same_record(tmp_path):
    open_incident(tmp_path, operator="alice", targets=["pg1"], detected_at="2026-11-18T09:59:00Z")
    step(tmp_path, minutes(1), name="Fence", changed=True)
    close(tmp_path, minutes(2), outcome="resolved")
    again = open_incident(tmp_path, at=minutes(30), operator="bob", targets=["pg2"], severity="high")
    step(tmp_path, minutes(31), name="Fence", changed=False, result="already fenced")
    close(tmp_path, minutes(32), outcome="resolved")

    assert again["created"] is False
    assert sorted(path.name for path in tmp_path.iterdir()) == ["INC-1"]
    record = load(tmp_path, "record.json")
    assert [run["operator"] for run in record["runs"]] == ["alice", "bob"]
    assert record["targets"] == ["pg1", "pg2"]
    assert record["detected_at"] == "2026-11-18T09:59:00.000Z"
    assert "run 2 by bob continues the record; severity critical -> high" in load(tmp_path, "report.md")
    summary = load(tmp_path, "summary.json")
    assert summary["runs"] == 2 and summary["changed_steps"] == 1 and summary["steps"] == 2
    assert summary["mitigated_at"] == "2026-11-18T10:02:00.000Z"


def test_a_rerun_cannot_change_the_type(tmp_path):
    open_incident(tmp_path)
    with pytest.raises(incident.IncidentError, match="is a db_outage incident; it cannot be reopened as performance"):
        open_incident_of_type(tmp_path, "performance", minutes(1))


def test_steps_need_an_open_record(tmp_path):
    with pytest.raises(incident.IncidentError, match=r"has no record .* open it first"):
        step(tmp_path, T0, name="Fence")


def test_check_mode_writes_nothing(tmp_path):
    opened = incident.run(params(tmp_path, event="open", type="db_outage", id=None), True, now=T0)
    assert opened["written"] is False and opened["incident"]["id"].startswith("INC-")
    assert opened["summary"]["severity"] == "critical"
    stepped = incident.run(params(tmp_path, event="step", id=opened["incident"]["id"], name="Fence"), True, now=T0)
    assert stepped["written"] is False and "check mode" in stepped["msg"]
    assert list(tmp_path.iterdir()) == []


def test_check_mode_on_an_existing_record_changes_nothing(tmp_path):
    open_incident(tmp_path)
    before = {path.name: path.read_bytes() for path in (tmp_path / "INC-1").iterdir()}
    result = incident.run(params(tmp_path, event="close", outcome="resolved"), True, now=minutes(1))
    assert result["summary"]["outcome"] == "resolved"
    assert {path.name: path.read_bytes() for path in (tmp_path / "INC-1").iterdir()} == before


def test_report_has_timeline_findings_actions_verification_and_sla(tmp_path):
    open_incident(tmp_path, title="oltp primary down")
    step(tmp_path, minutes(1), name="Verify service status", result="pg1 unreachable", details={"pg1": "refused"})
    step(
        tmp_path,
        minutes(2),
        name="Promote pg2",
        changed=True,
        executed_queries=["SELECT pg_promote(true, 30)"],
        actions=[{"host": "pg2", "action": "promote"}],
    )
    step(tmp_path, minutes(3), name="Write through PgBouncer", kind="verification", result="visible on 2 standbys")
    close(tmp_path, minutes(3), outcome="resolved")
    report = load(tmp_path, "report.md")
    assert report.startswith("# Incident INC-1: oltp primary down")
    for heading in (
        "## Timeline",
        "## Findings",
        "## Actions",
        "## Verification",
        "## SLA outcome",
        "## Notifications",
    ):
        assert heading in report
    assert "```sql\nSELECT pg_promote(true, 30)\n```" in report
    assert '{"action": "promote", "host": "pg2"}' in report
    assert "response target 5 min met: mitigated 3 min 0 s after detection" in report
    assert "pg1 unreachable" in report and "visible on 2 standbys" in report


def test_pipes_and_newlines_do_not_break_the_timeline_table(tmp_path):
    open_incident(tmp_path)
    step(tmp_path, minutes(1), name="a | b", result="line one\nline two")
    row = [line for line in load(tmp_path, "report.md").splitlines() if "a \\| b" in line]
    assert row and row[0].count(" | ") == 6 and "line one line two" in row[0]


def test_parallel_steps_lose_nothing(tmp_path):
    open_incident(tmp_path)
    errors = []

    def record(number):
        try:
            step(tmp_path, minutes(1), name=f"check member {number}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(number,)) for number in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timeline = load(tmp_path, "record.json")["timeline"]
    assert not errors
    assert sorted(entry["name"] for entry in timeline if entry["kind"] == "finding") == sorted(
        f"check member {number}" for number in range(12)
    )
    assert [entry["seq"] for entry in timeline] == list(range(1, 14))


def test_an_unreadable_record_is_a_clear_error(tmp_path):
    (tmp_path / "INC-1").mkdir()
    (tmp_path / "INC-1" / "record.json").write_text("{not json")
    with pytest.raises(incident.IncidentError, match="cannot read incident record"):
        step(tmp_path, T0, name="x")


def test_a_step_that_cannot_be_written_warns_instead_of_stopping_the_run(tmp_path):
    open_incident(tmp_path)
    (tmp_path / "INC-1" / "summary.json").unlink()
    (tmp_path / "INC-1" / "summary.json").mkdir()  # something in the way of the write
    result = step(tmp_path, minutes(1), name="Promote pg2", changed=True)
    assert result["written"] is False and "could not be recorded completely" in result["warnings"][0]
    assert "failed" not in result


def test_an_open_that_cannot_be_written_fails(tmp_path):
    (tmp_path / "INC-1").write_text("a file where the incident directory should be")
    with pytest.raises(incident.RecordWriteError, match="cannot create incident directory"):
        open_incident(tmp_path)


# --- issue 10: redaction on every output path, files 0600, no link followed, lost audit lines counted ----


def test_secrets_in_any_field_are_masked_in_record_summary_report_and_result(tmp_path):
    result = open_incident(tmp_path, title="panel https://admin:hunter2@panel/x?token=abc down")
    step(tmp_path, minutes(1), name="Probe", result="PGPASSWORD=hunter2 psql; Authorization: Bearer abc")
    for name in ("record.json", "summary.json", "report.md"):
        text = (tmp_path / "INC-1" / name).read_text()
        assert "hunter2" not in text and "token=abc" not in text and "Bearer abc" not in text, name
    assert "hunter2" not in json.dumps(result)


def test_the_record_files_are_0600(tmp_path):
    open_incident(tmp_path)
    for name in ("record.json", "summary.json", "report.md", ".lock"):
        assert (tmp_path / "INC-1" / name).stat().st_mode & 0o777 == 0o600, name


def test_a_planted_record_link_is_refused_and_not_followed(tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    (tmp_path / "INC-1").mkdir()
    (tmp_path / "INC-1" / "record.json").symlink_to(victim)
    with pytest.raises(incident.IncidentError, match="symbolic link"):
        open_incident(tmp_path)
    assert victim.read_text() == "{}"


def test_lost_audit_lines_are_added_to_the_summary_and_the_report(tmp_path):
    open_incident(tmp_path)
    assert load(tmp_path, "summary.json")["audit_dropped"] == 0
    paths = incident.incident_paths(str(tmp_path), "INC-1")
    incident.record_audit_dropped(paths, 3)
    incident.record_audit_dropped(paths, 2)
    assert load(tmp_path, "summary.json")["audit_dropped"] == 5
    assert "5 audit line(s) could not be written" in load(tmp_path, "report.md")
    with pytest.raises(incident.IncidentError, match="no record"):
        incident.record_audit_dropped(incident.incident_paths(str(tmp_path), "INC-NONE"), 1)
    assert not (tmp_path / "INC-NONE").exists()
