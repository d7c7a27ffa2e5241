"""Notifications: what is due per channel and level, the ledger that stops double pages, payloads, errors.

Deliveries go to a recording fake here; tests/integration/test_incident_lifecycle.py sends them to real
HTTP and SMTP servers.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import escalation, incident, notify

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
SECRET_URL = "https://hooks.example.com/services/T000/B000/S3CR3T-WEBHOOK"
SECRET_KEY = "R0UTING-KEY-S3CR3T"
CONTACTS = dict(
    escalation.DEFAULT_CONTACTS,
    database_lead={"name": "Database Operations Manager", "email": "dbops@penguinmails.com"},
    oncall_engineer={"name": "On-Call Engineer", "email": "oncall@penguinmails.com"},
    engineering_manager={"name": "Engineering Manager", "email": "em@penguinmails.com"},
    cto={"name": "CTO", "email": "cto@penguinmails.com"},
    security_team={"name": "Security Team", "email": "security@penguinmails.com"},
)
CHANNELS = {
    "slack": {"webhook_url": SECRET_URL, "enabled": True},
    "pagerduty": {"routing_key": SECRET_KEY, "url": notify.PAGERDUTY_URL, "enabled": True},
    "email": {"host": "127.0.0.1", "port": 25, "security": "none", "sender": "dbops@penguinmails.com", "enabled": True},
}


def minutes(value):
    return T0 + dt.timedelta(minutes=value)


def incident_params(tmp_path, **given):
    filled = {name: spec.get("default") for name, spec in incident.argument_spec().items()}
    filled.update(dir=str(tmp_path), id="INC-7", policy={"contacts": CONTACTS})
    filled.update(given)
    return filled


def notify_params(tmp_path, **given):
    filled = {"id": "INC-7", "job_id": None, "dir": str(tmp_path), "incident": None, "timeout": 3.0}
    filled.update(validate_certs=True, slack=None, pagerduty=None, email=None)
    filled.update({name: dict(config) for name, config in CHANNELS.items()})
    filled.update(given)
    return filled


class Recorder:
    """Stands in for the transports; can be told that a channel is down."""

    def __init__(self, down=()):
        self.calls = []
        self.down = set(down)

    def __call__(self, item, header, channels, timeout):
        if item["channel"] in self.down:
            raise notify.ChannelError(f"{item['channel']}: HTTP 503 Service Unavailable")
        self.calls.append((item["channel"], item["event"], tuple(item["levels"]), tuple(item["recipients"])))
        return "HTTP 202" if item["channel"] != "email" else "accepted"


@pytest.fixture
def recorder(monkeypatch):
    fake = Recorder()
    monkeypatch.setattr(notify, "deliver", fake)
    return fake


def open_at(tmp_path, at, **given):
    given.setdefault("type", "db_outage")
    return incident.run(incident_params(tmp_path, event="open", **given), False, now=at)


def close_at(tmp_path, at, outcome):
    return incident.run(incident_params(tmp_path, event="close", outcome=outcome), False, now=at)


def ledger(tmp_path):
    return json.loads((tmp_path / "INC-7" / "record.json").read_text())["notifications"]


def test_critical_outage_at_open_pages_and_tells_levels_one_and_two(tmp_path, recorder):
    open_at(tmp_path, T0)
    result = notify.run(notify_params(tmp_path), False, now=T0)
    assert recorder.calls == [
        ("pagerduty", "trigger", (), ("PagerDuty",)),
        ("slack", "escalation", (1, 2), ("Database Operations Team", "Engineering Management")),
        (
            "email",
            "escalation",
            (1,),
            ("Database Operations Manager <dbops@penguinmails.com>", "On-Call Engineer <oncall@penguinmails.com>"),
        ),
        ("email", "escalation", (2,), ("Engineering Manager <em@penguinmails.com>",)),
    ]
    assert result["changed"] is False and not result["failures"]
    assert sorted(entry["key"] for entry in ledger(tmp_path)) == [
        "email:level:1",
        "email:level:2",
        "pagerduty:trigger",
        "slack:level:1",
        "slack:level:2",
    ]


def test_a_rerun_sends_nothing_twice(tmp_path, recorder):
    open_at(tmp_path, T0)
    notify.run(notify_params(tmp_path), False, now=T0)
    sent_before = len(recorder.calls)
    open_at(tmp_path, minutes(1))
    result = notify.run(notify_params(tmp_path), False, now=minutes(1))
    assert len(recorder.calls) == sent_before and result["sent"] == []


def test_time_brings_the_next_level_and_only_it(tmp_path, recorder):
    open_at(tmp_path, T0)
    notify.run(notify_params(tmp_path), False, now=T0)
    recorder.calls.clear()
    notify.run(notify_params(tmp_path), False, now=minutes(16))  # critical: level 3 (CTO) after 15 min
    assert recorder.calls == [
        ("slack", "escalation", (3,), ("CTO",)),
        ("email", "escalation", (3,), ("CTO <cto@penguinmails.com>",)),
    ]


def test_a_level_without_addresses_is_skipped_once_not_retried(tmp_path, recorder):
    open_at(tmp_path, minutes(0), detected_at="2026-11-18T09:00:00Z")  # 60 min ago: CEO (level 4) due
    result = notify.run(notify_params(tmp_path), False, now=T0)
    assert [item["levels"] for item in result["not_sent"]] == [[4]]
    again = notify.run(notify_params(tmp_path), False, now=minutes(1))
    assert again["not_sent"] == [] and again["sent"] == []


def test_close_resolves_the_page_and_tells_everyone_told(tmp_path, recorder):
    open_at(tmp_path, T0)
    notify.run(notify_params(tmp_path), False, now=T0)
    recorder.calls.clear()
    close_at(tmp_path, minutes(3), "resolved")
    notify.run(notify_params(tmp_path), False, now=minutes(3))
    assert recorder.calls[0] == ("pagerduty", "resolve", (), ("PagerDuty",))
    assert recorder.calls[1][:2] == ("slack", "close")
    assert recorder.calls[2][:2] == ("email", "close")
    assert set(recorder.calls[2][3]) == {
        "Database Operations Manager <dbops@penguinmails.com>",
        "On-Call Engineer <oncall@penguinmails.com>",
        "Engineering Manager <em@penguinmails.com>",
    }


@pytest.mark.parametrize(("outcome", "action"), [("resolved", "resolve"), ("mitigated", "acknowledge")])
def test_pagerduty_action_follows_the_outcome(tmp_path, recorder, outcome, action):
    open_at(tmp_path, T0)
    notify.run(notify_params(tmp_path), False, now=T0)
    close_at(tmp_path, minutes(2), outcome)
    notify.run(notify_params(tmp_path), False, now=minutes(2))
    assert [call[1] for call in recorder.calls if call[0] == "pagerduty"] == ["trigger", action]


def test_refused_failover_escalates_to_level_two(tmp_path, recorder):
    open_at(tmp_path, T0, type="pool_exhaustion", severity="medium")  # medium: no page, level 1 only
    notify.run(notify_params(tmp_path), False, now=T0)
    assert [call[:3] for call in recorder.calls] == [("slack", "escalation", (1,)), ("email", "escalation", (1,))]
    recorder.calls.clear()
    close_at(tmp_path, minutes(1), "refused")
    notify.run(notify_params(tmp_path), False, now=minutes(1))
    assert [call[:3] for call in recorder.calls] == [
        ("slack", "escalation", (2,)),
        ("slack", "close", ()),
        ("email", "escalation", (2,)),
        ("email", "close", ()),
    ]


def test_low_and_medium_severities_do_not_page(tmp_path, recorder):
    open_at(tmp_path, T0, type="performance")
    notify.run(notify_params(tmp_path), False, now=T0)
    assert "pagerduty" not in [call[0] for call in recorder.calls]


def test_security_incidents_go_to_the_security_team(tmp_path, recorder):
    open_at(tmp_path, T0, type="security_breach")
    notify.run(notify_params(tmp_path), False, now=T0)
    emails = [call for call in recorder.calls if call[0] == "email"]
    assert emails == [("email", "escalation", (1,), ("Security Team <security@penguinmails.com>",))]
    # Legal is level 2, due at once (critical), but has no address in this inventory: skipped, recorded.
    assert [entry["status"] for entry in ledger(tmp_path) if entry["key"] == "email:level:2"] == ["skipped"]


def test_a_channel_down_is_recorded_retried_later_and_never_fails_the_task(tmp_path, monkeypatch):
    flaky = Recorder(down={"slack"})
    monkeypatch.setattr(notify, "deliver", flaky)
    open_at(tmp_path, T0)
    result = notify.run(notify_params(tmp_path), False, now=T0)
    assert [item["channel"] for item in result["failures"]] == ["slack"]
    assert result["warnings"] == ["notification via slack (escalation) failed: slack: HTTP 503 Service Unavailable"]
    assert [call[0] for call in flaky.calls] == ["pagerduty", "email", "email"]  # the others went out
    report = (tmp_path / "INC-7" / "report.md").read_text()
    assert "notify via slack" in report and "HTTP 503" in report

    flaky.down.clear()
    flaky.calls.clear()
    retried = notify.run(notify_params(tmp_path), False, now=minutes(1))
    assert [(item["channel"], item["levels"]) for item in retried["sent"]] == [("slack", [1, 2])]


def test_after_one_failure_a_channel_is_not_tried_again_in_the_same_call(tmp_path):
    header_source = incident.run(incident_params(tmp_path, event="open", type="db_outage"), True, now=T0)
    plans = [
        {"channel": "slack", "event": "escalation", "keys": ["a"], "levels": [1], "recipients": ["x"]},
        {"channel": "slack", "event": "close", "keys": ["b"], "levels": [], "recipients": ["x"]},
    ]
    down = Recorder(down={"slack"})
    outcomes = notify.deliver_all(plans, header_source["incident"], CHANNELS, 1.0, send=down)
    assert [outcome["error"] for outcome in outcomes] == [
        "slack: HTTP 503 Service Unavailable",
        "not attempted: slack: HTTP 503 Service Unavailable",
    ]


def test_check_mode_plans_and_sends_nothing(tmp_path, recorder):
    opened = incident.run(incident_params(tmp_path, event="open", type="db_outage"), True, now=T0)
    result = notify.run(notify_params(tmp_path, incident=opened["incident"]), True, now=T0)
    assert recorder.calls == [] and list(tmp_path.iterdir()) == []
    assert [(item["channel"], item["event"]) for item in result["planned"]] == [
        ("pagerduty", "trigger"),
        ("slack", "escalation"),
        ("email", "escalation"),
        ("email", "escalation"),
    ]


def test_unconfigured_channels_send_nothing(tmp_path, recorder):
    open_at(tmp_path, T0)
    result = notify.run(notify_params(tmp_path, slack={"webhook_url": None}, pagerduty={}, email=None), False, now=T0)
    assert result["channels"] == [] and recorder.calls == []


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ({"email": {"host": "smtp.example.com", "sender": None}}, "email channel: set sender"),
        ({"slack": {"webhook_url": "ftp://example.com/x"}}, "slack channel: the URL must be http"),
    ],
)
def test_half_configured_channels_are_one_readable_error(tmp_path, channels, message):
    with pytest.raises(incident.IncidentError, match=message):
        notify.configured_channels({"slack": None, "pagerduty": None, "email": None, **channels})


def test_pagerduty_events_carry_the_incident_as_dedup_key(tmp_path):
    header = open_at(tmp_path, T0, tier="oltp", targets=["pg-oltp-1"])["incident"]
    trigger = notify.pagerduty_event(header, "trigger", SECRET_KEY)
    assert trigger["dedup_key"] == "INC-7" and trigger["event_action"] == "trigger"
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "pg-oltp-1"
    assert trigger["payload"]["summary"] == "[CRITICAL] Database Outage on oltp: incident INC-7"
    assert notify.pagerduty_event(header, "resolve", SECRET_KEY) == {
        "routing_key": SECRET_KEY,
        "event_action": "resolve",
        "dedup_key": "INC-7",
    }


def test_messages_and_errors_never_carry_the_secrets(tmp_path, monkeypatch):
    monkeypatch.setattr(notify, "deliver", Recorder(down={"slack", "pagerduty"}))
    open_at(tmp_path, T0)
    result = notify.run(notify_params(tmp_path), False, now=T0)
    files = "".join(path.read_text() for path in (tmp_path / "INC-7").iterdir() if path.is_file())
    for secret in (SECRET_URL, "S3CR3T", SECRET_KEY):
        assert secret not in json.dumps(result) and secret not in files


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        (SECRET_URL, "https://hooks.example.com:443"),
        ("http://127.0.0.1:8080/hook?token=abc", "http://127.0.0.1:8080"),
        ("https://user:pw@events.pagerduty.com/v2/enqueue", "https://events.pagerduty.com:443"),
    ],
)
def test_errors_name_only_scheme_host_and_port(url, endpoint):
    assert notify.endpoint_of(url) == endpoint


def test_email_message_headers(tmp_path):
    message = notify.email_message("dbops@penguinmails.com", ["A <a@x.org>", "b@x.org"], "subject", "body", "INC-7")
    assert message["To"] == "A <a@x.org>, b@x.org"
    assert message["X-Dbops-Incident"] == "INC-7"
    assert message["Message-ID"].endswith("@penguinmails.com>")


def test_message_texts_go_through_the_redaction():
    item = notify.delivery("email", "close", ["k"], [], ["x"], subject="PGPASSWORD=abc", text="see https://u:pw@h/?t=1")
    assert item["subject"] == "PGPASSWORD=********" and item["text"] == "see https://u:********@h/?t=********"


def test_a_level_nobody_can_be_told_about_is_not_reported_as_a_skipped_task(tmp_path, recorder):
    open_at(tmp_path, T0, type="security_breach")
    result = notify.run(notify_params(tmp_path), False, now=T0)
    assert "skipped" not in result and result["not_sent"]
