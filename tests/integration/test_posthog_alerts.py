"""posthog_alerts as a real process against a local HTTP server answering PostHog's documented shapes."""

from __future__ import annotations

import socket
import time

import pytest
from diag_support import run_module
from fake_posthog import FakePostHog, alert

API_KEY = "phx_fake_personal_key_9d1e3b"
PROJECT = "12345"


@pytest.fixture
def posthog():
    alerts = [
        alert("0190-qt", "DB query_time p95", state="Firing", upper=5, value=7.25),
        alert("0190-pool", "Connection pool usage", state="Not firing", upper=90, value=41.0),
        alert("0190-signups", "Signups dropped", state="Firing", value=3.0),
        alert("0190-old", "query time (old)", state="Firing", enabled=False),
        alert("0190-err", "Checkout errors", state="Errored"),
    ]
    with FakePostHog(PROJECT, API_KEY, alerts, page_size=2) as server:
        yield server


def args(server, **extra):
    base = {"host": server.url, "project_id": PROJECT, "api_key": API_KEY, "timeout": 2}
    base.update(extra)
    return base


def finding(result, check):
    [item] = [item for item in result["findings"] if item["check"] == check]
    return item


def assert_no_key(result):
    assert API_KEY not in result["_stdout"]
    assert API_KEY not in result["_stderr"]


def test_reads_every_page_and_grades_the_runbook_conditions(posthog):
    result = run_module("posthog_alerts", args(posthog))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert result["reachable"] is True
    # 5 alerts on pages of 2 (3 list requests); the disabled one is left out.
    names = [item["name"] for item in result["alerts"]]
    assert names == ["DB query_time p95", "Connection pool usage", "Signups dropped", "Checkout errors"]
    assert [item["name"] for item in result["firing"]] == ["DB query_time p95", "Signups dropped"]
    query_time = finding(result, "posthog_query_time")
    assert query_time["status"] == "CRITICAL"
    assert query_time["value"] == 7.25 and query_time["threshold"] == 5.0
    assert query_time["firing_alerts"] == ["0190-qt"]
    pool = finding(result, "posthog_connection_pool")
    assert pool["status"] == "OK" and pool["alerts"] == ["0190-pool"]
    assert result["status"] == "CRITICAL"
    fired = result["alerts"][0]
    assert fired["upper_bound"] == 5 and fired["threshold_type"] == "absolute"
    assert fired["last_value"] == 7.25 and fired["insight_id"] == 42
    # Every request carried the key as a Bearer token and went to the documented paths.
    paths = [request["path"] for request in posthog.requests]
    assert paths.count("/api/projects/%s/alerts/" % PROJECT) == 3
    assert "/api/projects/%s/alerts/0190-qt/" % PROJECT in paths
    assert all(request["auth"] == "Bearer %s" % API_KEY for request in posthog.requests)
    assert_no_key(result)


def test_missing_runbook_alert_is_a_warning(posthog):
    posthog.alerts[:] = [alert("0190-qt", "DB query_time p95", state="Not firing", upper=5)]
    result = run_module("posthog_alerts", args(posthog))
    assert finding(result, "posthog_query_time")["status"] == "OK"
    missing = finding(result, "posthog_connection_pool")
    assert missing["status"] == "WARNING"
    assert "no PostHog alert watches connection_pool > 90%" in missing["message"]


def test_custom_conditions_and_disabled_alerts(posthog):
    result = run_module(
        "posthog_alerts",
        args(
            posthog,
            include_disabled=True,
            conditions=[{"name": "signups", "pattern": "signup", "threshold": 1, "unit": ""}],
        ),
    )
    assert len(result["alerts"]) == 5
    assert [item["check"] for item in result["findings"]] == ["posthog_signups"]
    assert finding(result, "posthog_signups")["status"] == "CRITICAL"


def test_wrong_key_is_reported_not_fatal(posthog):
    result = run_module("posthog_alerts", args(posthog, api_key="phx_wrong_key_000"))
    assert not result.get("failed")
    assert result["reachable"] is False
    assert result["error_kind"] == "http_401"
    assert "check the personal API key" in result["error"]
    assert finding(result, "posthog_reachable")["status"] == "WARNING"
    assert "phx_wrong_key_000" not in result["_stdout"]


def test_hung_posthog_costs_one_timeout(posthog):
    posthog.delay = 60
    started = time.monotonic()
    result = run_module("posthog_alerts", args(posthog, timeout=1))
    elapsed = time.monotonic() - started
    assert result["reachable"] is False
    assert result["error_kind"] == "timeout"
    assert len(posthog.requests) == 1, "gave up after the first request that timed out"
    assert elapsed < posthog.delay, "waited for the hung answer instead of timing out"
    assert_no_key(result)


def test_unreachable_posthog_is_reported_or_fails_when_asked():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = {"host": "http://127.0.0.1:%d" % port, "project_id": PROJECT, "api_key": API_KEY, "timeout": 2}
    result = run_module("posthog_alerts", base)
    assert not result.get("failed")
    assert result["reachable"] is False and result["error_kind"] == "refused"
    assert "127.0.0.1:%d" % port in result["error"]
    failed = run_module("posthog_alerts", dict(base, fail_on_unreachable=True))
    assert failed["failed"] is True
    assert "refused" in failed["msg"]
    assert_no_key(failed)


def test_bad_project_id_is_refused_before_any_request(posthog):
    result = run_module("posthog_alerts", args(posthog, project_id="../../admin"))
    assert result["failed"] is True
    assert "project_id" in result["msg"]
    assert posthog.requests == []
