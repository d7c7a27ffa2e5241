# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a PostHog project's alerts and match them against the runbook's conditions.

PostHog's documented REST API (https://posthog.com/docs/api/alerts), what is used:

* ``GET {host}/api/projects/{project_id}/alerts/?limit=&offset=``: paginated
  ``{"count", "next", "previous", "results": [alert, ...]}``;
* ``GET {host}/api/projects/{project_id}/alerts/{id}/``: one alert whose
  ``checks`` holds its latest evaluations, newest first;
* header ``Authorization: Bearer <personal API key>``, scope ``alert:read``.

Fields read from an alert: ``id``, ``name``, ``state`` ("Firing", "Not firing",
"Errored", "Snoozed"), ``enabled``, ``insight`` (an id, or an object with
``id``/``short_id``/``name``), ``threshold.configuration`` (``type`` absolute or
percentage, ``bounds.lower``/``bounds.upper``), ``condition.type``,
``last_checked_at``, ``last_notified_at``, ``snoozed_until`` and ``checks``
(``created_at``, ``calculated_value``, ``state``).

PostHog is a second opinion: every failure becomes data (``reachable`` false,
an ``error`` and its ``error_kind``), never an exception for the caller.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit

from ansible_collections.penguinmails.dbops.plugins.module_utils.findings import CRITICAL, OK, WARNING, finding
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import checked_timeout, scrub_secret
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import redact_text

# The alert states this module acts on (PostHog also reports "Not firing" and "Snoozed").
FIRING = "Firing"
ERRORED = "Errored"
DEFAULT_HOST = "https://us.posthog.com"
PAGE_SIZE = 100
MAX_DETAIL_REQUESTS = 10
_PROJECT_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_ALERT_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

# The runbook: "Configure alerts for: query_time > 5s, connection_pool > 90%".
RUNBOOK_CONDITIONS = (
    {
        "name": "query_time",
        "pattern": r"query[ _-]?time|slow quer|query (duration|latency)",
        "threshold": 5.0,
        "unit": "s",
    },
    {
        "name": "connection_pool",
        "pattern": r"connection[ _-]?pool|pool (usage|utili[sz]ation|saturation)",
        "threshold": 90.0,
        "unit": "%",
    },
)


class PostHogError(Exception):
    """A request failed; `kind` is machine-readable, str() is for people and holds no secret."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(redact_text(message))
        self.kind = kind


@dataclass(frozen=True)
class PostHogTarget:
    host: str
    project_id: str
    api_key: str
    timeout: float = 10.0
    validate_certs: bool = True

    def validate(self) -> None:
        parts = urlsplit(self.host)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("host must be an http(s) URL such as %s, got %r" % (DEFAULT_HOST, self.host))
        if not _PROJECT_ID.match(str(self.project_id)):
            raise ValueError("project_id must be PostHog's project ID (letters, digits, '_' or '-')")
        checked_timeout("timeout", self.timeout)

    @property
    def origin(self) -> Tuple[str, str]:
        parts = urlsplit(self.host)
        return parts.scheme, parts.netloc

    def alerts_url(self, offset: int = 0, limit: int = PAGE_SIZE) -> str:
        return "%s/api/projects/%s/alerts/?%s" % (
            self.host.rstrip("/"),
            quote(str(self.project_id), safe=""),
            urlencode({"limit": limit, "offset": offset}),
        )

    def alert_url(self, alert_id: Any) -> str:
        return "%s/api/projects/%s/alerts/%s/" % (
            self.host.rstrip("/"),
            quote(str(self.project_id), safe=""),
            quote(str(alert_id), safe=""),
        )


# open_url(url, headers=..., timeout=..., validate_certs=...) -> response; injectable for tests.
Opener = Callable[..., Any]


def default_opener() -> Opener:
    from ansible.module_utils.urls import open_url

    return open_url


def get_json(target: PostHogTarget, url: str, opener: Opener) -> Any:
    """GET one URL of the API and decode it; every failure becomes a PostHogError."""
    headers = {"Authorization": "Bearer %s" % target.api_key, "Accept": "application/json"}
    where = "PostHog at %s" % target.host
    try:
        response = opener(
            url,
            method="GET",
            headers=headers,
            timeout=target.timeout,
            validate_certs=target.validate_certs,
            # Never follow a redirect: the API key must only travel to the configured host.
            follow_redirects="none",
        )
        body = response.read()
    except HTTPError as error:
        raise PostHogError(
            "http_%s" % error.code, "%s answered HTTP %s: %s" % (where, error.code, http_detail(error))
        ) from None
    except (socket.timeout, TimeoutError):
        raise PostHogError("timeout", "%s did not answer within %.1f s" % (where, target.timeout)) from None
    except URLError as error:
        reason = error.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise PostHogError("timeout", "%s did not answer within %.1f s" % (where, target.timeout)) from None
        if isinstance(reason, ConnectionRefusedError):
            raise PostHogError("refused", "%s refused the connection; is the host right?" % where) from None
        if isinstance(reason, socket.gaierror):
            raise PostHogError("dns", "%s: the host name does not resolve" % where) from None
        if isinstance(reason, ssl.SSLError):
            raise PostHogError("ssl", "%s: TLS failed (%s); check validate_certs" % (where, reason)) from None
        raise PostHogError("network", "%s could not be reached: %s" % (where, reason)) from None
    except (ConnectionError, OSError) as error:
        raise PostHogError("network", "%s could not be reached: %s" % (where, error)) from None
    except Exception as error:  # open_url's own errors (e.g. SSLValidationError) have no common base
        raise PostHogError(
            "error", "%s request failed: %s" % (where, scrub_secret(str(error), target.api_key))
        ) from None
    try:
        return json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except ValueError:
        raise PostHogError("invalid_json", "%s answered something that is not JSON" % where) from None


def http_detail(error: HTTPError) -> str:
    """PostHog's error body says why ({"type", "code", "detail"}); keep it short."""
    try:
        payload = json.loads(error.read().decode("utf-8"))
    except Exception:
        payload = {}
    detail = payload.get("detail") if isinstance(payload, dict) else None
    advice = {
        401: "check the personal API key",
        403: "the key needs the alert:read scope on this project",
        404: "check host and project_id",
        429: "rate limited; retry later",
    }.get(error.code, "")
    if 300 <= error.code < 400:
        advice = "redirects are not followed; set host to the address PostHog redirects to"
    text = "; ".join(part for part in (detail, advice) if part)
    return text[:300] or str(error.reason)


def same_origin(url: str, target: PostHogTarget) -> bool:
    parts = urlsplit(url)
    return (parts.scheme, parts.netloc) == target.origin


def list_alerts(target: PostHogTarget, opener: Opener, max_pages: int = 20) -> List[Dict[str, Any]]:
    """Every alert of the project, following `next` only on PostHog's own origin."""
    alerts: List[Dict[str, Any]] = []
    url: Optional[str] = target.alerts_url()
    for _page in range(max_pages):
        if url is None:
            break
        page = get_json(target, url, opener)
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            raise PostHogError("unexpected", "PostHog at %s answered without a results list" % target.host)
        alerts.extend(item for item in page["results"] if isinstance(item, dict))
        url = page.get("next")
        if url and not same_origin(url, target):
            # The API key must only ever travel to the host it was given for.
            raise PostHogError("unexpected", "PostHog's next page points to another host; not following it")
    return alerts


def alert_detail(target: PostHogTarget, alert_id: Any, opener: Opener) -> Dict[str, Any]:
    if not _ALERT_ID.match(str(alert_id)):
        raise PostHogError("unexpected", "PostHog returned an alert id that is not an identifier")
    detail = get_json(target, target.alert_url(alert_id), opener)
    return detail if isinstance(detail, dict) else {}


def insight_of(alert: Dict[str, Any]) -> Dict[str, Any]:
    insight = alert.get("insight")
    if isinstance(insight, dict):
        return {"id": insight.get("id"), "short_id": insight.get("short_id"), "name": insight.get("name")}
    return {"id": insight, "short_id": None, "name": None}


def latest_check(alert: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    checks = [check for check in alert.get("checks") or [] if isinstance(check, dict)]
    if not checks:
        return None
    return max(checks, key=lambda check: str(check.get("created_at") or ""))


def normalise(alert: Dict[str, Any]) -> Dict[str, Any]:
    """The fields an on-call engineer needs, from PostHog's alert shape."""
    threshold = (alert.get("threshold") or {}).get("configuration") or {}
    bounds = threshold.get("bounds") or {}
    check = latest_check(alert)
    insight = insight_of(alert)
    return {
        "id": alert.get("id"),
        "name": alert.get("name") or "",
        "state": alert.get("state"),
        "enabled": alert.get("enabled", True),
        "firing": alert.get("state") == FIRING,
        "insight_id": insight["id"],
        "insight_short_id": insight["short_id"],
        "insight_name": insight["name"],
        "threshold_type": threshold.get("type"),
        "lower_bound": bounds.get("lower"),
        "upper_bound": bounds.get("upper"),
        "condition_type": (alert.get("condition") or {}).get("type"),
        "calculation_interval": alert.get("calculation_interval"),
        "last_checked_at": alert.get("last_checked_at"),
        "last_notified_at": alert.get("last_notified_at"),
        "snoozed_until": alert.get("snoozed_until"),
        "last_value": check.get("calculated_value") if check else None,
        "last_check_at": check.get("created_at") if check else None,
        "last_check_state": check.get("state") if check else None,
    }


def matches(condition: Dict[str, Any], alert: Dict[str, Any]) -> bool:
    pattern = re.compile(condition["pattern"], re.IGNORECASE)
    return any(pattern.search(text) for text in (alert["name"], alert.get("insight_name") or "") if text)


def condition_finding(condition: Dict[str, Any], alerts: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """How PostHog stands on one runbook condition: firing, quiet, or not configured at all."""
    label = "%s > %s%s" % (condition["name"], format_number(condition.get("threshold")), condition.get("unit") or "")
    matched = [alert for alert in alerts if matches(condition, alert)]
    firing = [alert for alert in matched if alert["firing"] and alert["enabled"]]
    errored = [alert for alert in matched if alert["state"] == ERRORED]
    values = [alert["last_value"] for alert in firing if isinstance(alert["last_value"], (int, float))]
    if firing:
        status = CRITICAL
        message = "PostHog alert(s) %s firing for %s" % (", ".join(repr(alert["name"]) for alert in firing), label)
    elif not matched:
        status = WARNING
        message = "no PostHog alert watches %s (the runbook asks for one)" % label
    elif errored:
        status = WARNING
        message = "PostHog alert(s) %s for %s could not be evaluated" % (
            ", ".join(repr(alert["name"]) for alert in errored),
            label,
        )
    else:
        status = OK
        message = "PostHog alert(s) for %s not firing" % label
    return finding(
        "posthog_%s" % condition["name"],
        status,
        max(values) if values else None,
        condition.get("threshold"),
        message,
        condition.get("unit") or None,
        condition["name"],
        condition=condition["name"],
        alerts=[alert["id"] for alert in matched],
        firing_alerts=[alert["id"] for alert in firing],
    )


def format_number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def validate_conditions(conditions: Sequence[Dict[str, Any]]) -> None:
    for condition in conditions:
        try:
            re.compile(condition["pattern"])
        except re.error as error:
            raise ValueError("condition %s has an invalid pattern: %s" % (condition.get("name"), error)) from None


def unreachable_finding(error: PostHogError) -> Dict[str, Any]:
    return finding("posthog_reachable", WARNING, False, True, "%s; the database itself is the source of truth" % error)


def collect_alerts(
    target: PostHogTarget,
    conditions: Sequence[Dict[str, Any]],
    opener: Optional[Opener] = None,
    fetch_checks: bool = True,
    include_disabled: bool = False,
    max_pages: int = 20,
) -> Dict[str, Any]:
    """The module's result: alerts, the firing ones, and one finding per runbook condition."""
    opener = opener or default_opener()
    started = time.monotonic()
    result: Dict[str, Any] = {"host": target.host, "project_id": str(target.project_id), "reachable": False}
    result.update(error=None, error_kind=None, alerts=[], firing=[], findings=[], warnings=[])
    try:
        raw = list_alerts(target, opener, max_pages)
    except PostHogError as error:
        result.update(error=str(error), error_kind=error.kind, findings=[unreachable_finding(error)])
        result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
        return result
    raw = [alert for alert in raw if include_disabled or alert.get("enabled", True)]
    if fetch_checks:
        deadline = started + target.timeout
        result["warnings"] = fetch_missing_checks(target, raw, conditions, opener, deadline)
    alerts = [normalise(alert) for alert in raw]
    result.update(reachable=True, alerts=alerts, firing=[alert for alert in alerts if alert["firing"]])
    result["findings"] = [condition_finding(condition, alerts) for condition in conditions]
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def fetch_missing_checks(
    target: PostHogTarget,
    alerts: List[Dict[str, Any]],
    conditions: Sequence[Dict[str, Any]],
    opener: Opener,
    deadline: float,
) -> List[str]:
    """Add the latest checks to firing or runbook-matching alerts the list gave without them.

    At most MAX_DETAIL_REQUESTS requests, none started after `deadline`; failures are warnings.
    """
    warnings = []
    wanted = []
    for alert in alerts:
        view = normalise(alert)
        relevant = view["firing"] or any(matches(condition, view) for condition in conditions)
        if relevant and not alert.get("checks") and alert.get("id") is not None:
            wanted.append(alert)
    for index, alert in enumerate(wanted):
        if index >= MAX_DETAIL_REQUESTS or time.monotonic() >= deadline:
            warnings.append("latest checks of %d alert(s) not fetched (time or request budget)" % (len(wanted) - index))
            break
        try:
            alert["checks"] = alert_detail(target, alert["id"], opener).get("checks") or []
        except PostHogError as error:
            warnings.append("checks of alert %s: %s" % (alert["id"], error))
    return warnings
