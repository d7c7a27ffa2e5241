# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""penguinmails.dbops.dbops_alert: an ansible-rulebook event filter that reads one alert, from
Prometheus Alertmanager (after eda.builtin.event_splitter on payload.alerts) or a PostHog alert
webhook, and adds `dbops` to the event: what the rulebooks' conditions and actions read.

    dbops:
      source: alertmanager | posthog
      firing: true while the alert fires (false once resolved)
      incident_type: db_outage | pool_exhaustion | performance | "" (unknown: triage)
      incident_tier: the tier the alert names ("" when none)
      incident_id: stable per alert (am-<fingerprint>, ph-<alert id>): a repeat continues it
      detected_at: when the alert started firing (ISO 8601)
      hosts: inventory hosts the alert names
      alert: the alert's name

It is self-contained (no import from the collection): a decision environment may hold the
collection's extensions without its Python path.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional

DOCUMENTATION = r"""
---
short_description: Normalise an Alertmanager or PostHog alert for the penguinmails.dbops rulebooks
description:
  - Adds C(dbops) (source, firing, incident_type, incident_tier, incident_id, detected_at, hosts, alert)
    to the event.
options:
  alert_types:
    description: Alert name to incident type; merged over the defaults.
    type: dict
    default: {}
"""

# Alert names (Prometheus rule names, PostHog alert names from the seed) -> incident type.
ALERT_TYPES = {
    "PostgresPrimaryDown": "db_outage",
    "PostgresDown": "db_outage",
    "PostgresTierWithoutPrimary": "db_outage",
    "PgBouncerPoolSaturated": "pool_exhaustion",
    "PostgresConnectionsSaturated": "pool_exhaustion",
    "PostgresSlowQueries": "performance",
    "connection_pool": "pool_exhaustion",
    "query_time": "performance",
}
IDENTIFIER = re.compile(r"[^A-Za-z0-9_.-]+")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _identifier(value: str) -> str:
    return IDENTIFIER.sub("-", value).strip("-")[:64]


def from_alertmanager(alert: Mapping[str, Any], types: Mapping[str, str]) -> Dict[str, Any]:
    labels = alert.get("labels") or {}
    name = _text(labels.get("alertname"))
    fingerprint = _text(alert.get("fingerprint"))
    host = _text(labels.get("dbops_host"))
    return {
        "source": "alertmanager",
        "alert": name,
        "firing": _text(alert.get("status")).lower() == "firing",
        "incident_type": _text(labels.get("dbops_incident_type")) or types.get(name, ""),
        "incident_tier": _text(labels.get("tier")),
        "incident_id": "am-%s" % _identifier(fingerprint) if fingerprint else "",
        "detected_at": _text(alert.get("startsAt")),
        "hosts": [host] if host else [],
    }


def from_posthog(payload: Mapping[str, Any], types: Mapping[str, str]) -> Dict[str, Any]:
    alert = payload.get("alert") or {}
    name = _text(alert.get("name"))
    tier = _text(payload.get("tier"))
    alert_id = _text(alert.get("id"))
    return {
        "source": "posthog",
        "alert": name,
        "firing": _text(alert.get("state")).lower() == "firing",
        "incident_type": types.get(name, ""),
        "incident_tier": tier,
        "incident_id": "ph-%s" % _identifier(alert_id) if alert_id else "",
        "detected_at": _text(payload.get("fired_at")),
        "hosts": [],
    }


def normalise(event: Mapping[str, Any], alert_types: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    types = dict(ALERT_TYPES, **(alert_types or {}))
    if "labels" in event and "startsAt" in event:
        return from_alertmanager(event, types)
    payload = event.get("payload")
    if isinstance(payload, Mapping) and isinstance(payload.get("alert"), Mapping):
        return from_posthog(payload, types)
    return {"source": "unknown", "alert": "", "firing": False, "incident_type": "", "incident_tier": "",
            "incident_id": "", "detected_at": "", "hosts": []}  # fmt: skip


def main(event: Dict[str, Any], alert_types: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    event["dbops"] = normalise(event, alert_types)
    return event
