"""posthog_alerts' client and matching, with a fake opener instead of the network."""

import io
import json
import socket
from urllib.error import HTTPError, URLError

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.posthog import (
    RUNBOOK_CONDITIONS,
    PostHogError,
    PostHogTarget,
    collect_alerts,
    condition_finding,
    get_json,
    list_alerts,
    normalise,
)

KEY = "phx_unit_key_123"
TARGET = PostHogTarget(host="https://ph.example.com", project_id="7", api_key=KEY, timeout=2)


class Response:
    def __init__(self, payload):
        self.payload = payload

    def read(self):
        return json.dumps(self.payload).encode()


def opener_for(pages):
    calls = []

    def opener(url, **kwargs):
        calls.append((url, kwargs))
        answer = pages[url]
        if isinstance(answer, Exception):
            raise answer
        return Response(answer)

    opener.calls = calls
    return opener


def raw_alert(alert_id, name, state="Not firing", checks=None, insight=None, enabled=True):
    return {
        "id": alert_id,
        "name": name,
        "state": state,
        "enabled": enabled,
        "insight": insight if insight is not None else 5,
        "threshold": {"configuration": {"type": "absolute", "bounds": {"lower": None, "upper": 5}}},
        "condition": {"type": "absolute_value"},
        "checks": checks or [],
    }


def test_urls_follow_the_documented_paths():
    assert TARGET.alerts_url() == "https://ph.example.com/api/projects/7/alerts/?limit=100&offset=0"
    assert TARGET.alert_url("a-1") == "https://ph.example.com/api/projects/7/alerts/a-1/"


@pytest.mark.parametrize(
    ("host", "project_id"), [("ph.example.com", "7"), ("ftp://x", "7"), ("https://x", "../1"), ("https://x", "")]
)
def test_target_validation(host, project_id):
    with pytest.raises(ValueError):
        PostHogTarget(host=host, project_id=project_id, api_key=KEY).validate()


def test_pagination_follows_next_on_the_same_host_and_sends_the_bearer_key():
    second = "https://ph.example.com/api/projects/7/alerts/?limit=100&offset=100"
    opener = opener_for(
        {
            TARGET.alerts_url(): {"count": 2, "next": second, "results": [raw_alert("a", "one")]},
            second: {"count": 2, "next": None, "results": [raw_alert("b", "two")]},
        }
    )
    alerts = list_alerts(TARGET, opener)
    assert [alert["id"] for alert in alerts] == ["a", "b"]
    for _url, kwargs in opener.calls:
        assert kwargs["headers"]["Authorization"] == "Bearer %s" % KEY
        assert kwargs["timeout"] == 2
        assert kwargs["follow_redirects"] == "none"


def test_next_page_on_another_host_is_not_followed():
    opener = opener_for(
        {TARGET.alerts_url(): {"next": "https://evil.example.net/steal", "results": [raw_alert("a", "one")]}}
    )
    with pytest.raises(PostHogError, match="another host"):
        list_alerts(TARGET, opener)
    assert len(opener.calls) == 1


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (HTTPError("u", 401, "Unauthorized", {}, io.BytesIO(b'{"detail": "Invalid key"}')), "http_401"),
        (HTTPError("u", 403, "Forbidden", {}, io.BytesIO(b"not json")), "http_403"),
        (URLError(socket.timeout("timed out")), "timeout"),
        (socket.timeout("timed out"), "timeout"),
        (URLError(ConnectionRefusedError(111, "refused")), "refused"),
        (URLError(socket.gaierror(-2, "Name or service not known")), "dns"),
        (RuntimeError("boom with %s inside" % KEY), "error"),
    ],
)
def test_failures_become_kinds_and_never_carry_the_key(error, kind):
    opener = opener_for({TARGET.alerts_url(): error})
    with pytest.raises(PostHogError) as raised:
        get_json(TARGET, TARGET.alerts_url(), opener)
    assert raised.value.kind == kind
    assert KEY not in str(raised.value)
    assert "ph.example.com" in str(raised.value)


def test_normalise_reads_insight_as_id_or_object_and_the_newest_check():
    checks = [
        {"created_at": "2026-11-26T16:00:00Z", "calculated_value": 1.0, "state": "Not firing"},
        {"created_at": "2026-11-26T17:00:00Z", "calculated_value": 9.0, "state": "Firing"},
    ]
    flat = normalise(raw_alert("a", "q", state="Firing", checks=checks))
    assert flat["insight_id"] == 5 and flat["insight_name"] is None
    assert flat["last_value"] == 9.0 and flat["firing"] is True and flat["upper_bound"] == 5
    nested = normalise(raw_alert("a", "q", insight={"id": 9, "short_id": "x", "name": "DB query_time"}))
    assert nested["insight_id"] == 9 and nested["insight_name"] == "DB query_time"


def test_runbook_conditions_firing_quiet_and_missing():
    query_time, pool = (dict(condition) for condition in RUNBOOK_CONDITIONS)
    alerts = [
        normalise(raw_alert("1", "Slow queries p95", state="Firing")),
        normalise(raw_alert("2", "pool", insight={"id": 1, "name": "Connection pool utilisation"})),
    ]
    firing = condition_finding(query_time, alerts)
    assert firing["status"] == "CRITICAL" and firing["firing_alerts"] == ["1"]
    quiet = condition_finding(pool, alerts)
    assert quiet["status"] == "OK" and quiet["alerts"] == ["2"]
    missing = condition_finding(pool, alerts[:1])
    assert missing["status"] == "WARNING" and "connection_pool > 90%" in missing["message"]


def test_collect_fetches_checks_of_relevant_alerts_only_and_reports_unreachable():
    opener = opener_for(
        {
            TARGET.alerts_url(): {
                "next": None,
                "results": [raw_alert("qt", "query_time", state="Firing"), raw_alert("x", "Signups")],
            },
            TARGET.alert_url("qt"): raw_alert(
                "qt", "query_time", state="Firing", checks=[{"created_at": "t", "calculated_value": 6.5}]
            ),
        }
    )
    result = collect_alerts(TARGET, [dict(condition) for condition in RUNBOOK_CONDITIONS], opener=opener)
    assert result["reachable"] is True
    assert [alert["id"] for alert in result["firing"]] == ["qt"]
    assert result["findings"][0]["value"] == 6.5
    assert len(opener.calls) == 2  # the list, and the one firing alert's checks

    down = collect_alerts(TARGET, RUNBOOK_CONDITIONS, opener=opener_for({TARGET.alerts_url(): URLError("down")}))
    assert down["reachable"] is False
    assert down["findings"][0]["check"] == "posthog_reachable"
    assert down["findings"][0]["status"] == "WARNING"


def test_failure_messages_go_through_the_shared_redaction():
    """A host given with a password or a token, or an error echoing a header, never reaches the message."""
    target = PostHogTarget(
        host="https://ops:pw-Secret-1@ph.example.com/?token=tok-Secret-2", project_id="7", api_key=KEY
    )
    for error in (URLError(OSError("no route")), RuntimeError("sent Authorization: Bearer tok-Secret-3")):
        with pytest.raises(PostHogError) as raised:
            get_json(target, target.alerts_url(), opener_for({target.alerts_url(): error}))
        assert "Secret" not in str(raised.value), str(raised.value)
        assert "ph.example.com" in str(raised.value)
