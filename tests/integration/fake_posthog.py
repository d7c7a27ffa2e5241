"""A local stand-in for PostHog's alerts API (threaded HTTP server on 127.0.0.1).

It answers the shapes documented at https://posthog.com/docs/api/alerts:

* GET /api/projects/<project_id>/alerts/?limit=&offset=  -> {"count", "next", "previous", "results"}
  (list entries carry no "checks", as the list endpoint leaves them empty);
* GET /api/projects/<project_id>/alerts/<id>/            -> one alert with its latest "checks";
* a missing or wrong "Authorization: Bearer <key>" -> 401 {"type", "code", "detail", "attr"}.

`delay` makes every answer late (to test timeouts); `requests` records what was asked.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit


def alert(
    alert_id: str,
    name: str,
    state: str = "Not firing",
    upper: Optional[float] = None,
    value: Optional[float] = None,
    enabled: bool = True,
    insight_name: str = "",
) -> Dict[str, Any]:
    """An alert as PostHog's AlertSerializer renders it."""
    return {
        "id": alert_id,
        "created_by": {"id": 1, "uuid": "0190d0d5-0000-0000-0000-000000000001", "first_name": "Ops"},
        "created_at": "2026-11-20T10:00:00Z",
        "insight": {"id": 42, "short_id": "AbCd1234", "name": insight_name or name},
        "name": name,
        "subscribed_users": [{"id": 1, "first_name": "Ops"}],
        "threshold": {
            "id": "0190d0d5-0000-0000-0000-0000000000aa",
            "created_at": "2026-11-20T10:00:00Z",
            "name": "",
            "configuration": {"type": "absolute", "bounds": {"lower": None, "upper": upper}},
        },
        "condition": {"type": "absolute_value"},
        "state": state,
        "enabled": enabled,
        "last_notified_at": "2026-11-26T17:55:00Z" if state == "Firing" else None,
        "last_checked_at": "2026-11-26T17:59:00Z",
        "next_check_at": "2026-11-26T18:59:00Z",
        "checks": [],
        "config": {"type": "TrendsAlertConfig", "series_index": 0, "check_ongoing_interval": False},
        "calculation_interval": "hourly",
        "snoozed_until": None,
        "skip_weekend": False,
        "_value": value,
    }


def checks_for(item: Dict[str, Any]) -> List[Dict[str, Any]]:
    value = item.get("_value")
    if value is None:
        return []
    return [
        {
            "id": "c-%s-2" % item["id"],
            "created_at": "2026-11-26T17:59:00Z",
            "calculated_value": value,
            "state": item["state"],
            "targets_notified": item["state"] == "Firing",
        },
        {
            "id": "c-%s-1" % item["id"],
            "created_at": "2026-11-26T16:59:00Z",
            "calculated_value": 0.5,
            "state": "Not firing",
            "targets_notified": False,
        },
    ]


def public(item: Dict[str, Any]) -> Dict[str, Any]:
    return {key: value for key, value in item.items() if not key.startswith("_")}


class FakePostHog:
    def __init__(self, project_id: str, api_key: str, alerts: List[Dict[str, Any]], page_size: int = 2) -> None:
        self.project_id = project_id
        self.api_key = api_key
        self.alerts = alerts
        self.page_size = page_size
        self.delay = 0.0
        self.requests: List[Dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def __enter__(self) -> FakePostHog:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                fake.requests.append({"path": parts.path, "query": parts.query, "auth": self.headers["Authorization"]})
                if fake.delay:
                    time.sleep(fake.delay)
                if self.headers.get("Authorization") != "Bearer %s" % fake.api_key:
                    self.answer(
                        401,
                        {
                            "type": "authentication_error",
                            "code": "authentication_failed",
                            "detail": "Personal API key found in request Authorization header is invalid.",
                            "attr": None,
                        },
                    )
                    return
                prefix = "/api/projects/%s/alerts/" % fake.project_id
                if not parts.path.startswith(prefix):
                    self.answer(404, {"type": "invalid_request", "code": "not_found", "detail": "Not found."})
                    return
                rest = parts.path[len(prefix) :].strip("/")
                if rest:
                    self.detail(rest)
                else:
                    self.page(parse_qs(parts.query))

            def page(self, query: Dict[str, List[str]]) -> None:
                limit = min(int(query.get("limit", ["100"])[0]), fake.page_size)
                offset = int(query.get("offset", ["0"])[0])
                chunk = fake.alerts[offset : offset + limit]
                base = "%s/api/projects/%s/alerts/" % (fake.url, fake.project_id)
                after = offset + limit
                self.answer(
                    200,
                    {
                        "count": len(fake.alerts),
                        "next": "%s?limit=%d&offset=%d" % (base, limit, after) if after < len(fake.alerts) else None,
                        "previous": "%s?limit=%d&offset=%d" % (base, limit, max(0, offset - limit)) if offset else None,
                        "results": [public(item) for item in chunk],
                    },
                )

            def detail(self, alert_id: str) -> None:
                for item in fake.alerts:
                    if item["id"] == alert_id:
                        self.answer(200, dict(public(item), checks=checks_for(item)))
                        return
                self.answer(404, {"type": "invalid_request", "code": "not_found", "detail": "Not found."})

        return Handler
