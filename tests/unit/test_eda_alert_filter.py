"""The EDA event filter penguinmails.dbops.dbops_alert: an Alertmanager or PostHog alert -> `dbops`."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location(
    "dbops_alert", ROOT / "extensions" / "eda" / "plugins" / "event_filter" / "dbops_alert.py"
)
dbops_alert = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(dbops_alert)
FIRING = json.loads((ROOT / "tests" / "eda_payloads" / "alertmanager_firing.json").read_text())["alerts"]
POSTHOG = json.loads((ROOT / "tests" / "eda_payloads" / "posthog_query_time.json").read_text())


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        (FIRING[0], {"incident_type": "db_outage", "incident_tier": "oltp", "incident_id": "am-6f1a2b3c4d5e6f70",
                     "detected_at": "2026-12-02T10:00:05.123Z", "hosts": ["oltp-1"], "firing": True}),
        (FIRING[1], {"incident_type": "pool_exhaustion", "incident_tier": "content", "hosts": [], "firing": True}),
        (FIRING[2], {"incident_type": "db_outage", "incident_tier": "", "incident_id": "am-1111222233334444"}),
        (dict(FIRING[0], status="resolved"), {"firing": False}),
        (dict(FIRING[0], labels=dict(FIRING[0]["labels"], dbops_incident_type="performance")),
         {"incident_type": "performance"}),
        (dict(FIRING[0], labels={"alertname": "SomethingElse", "tier": "queue"}), {"incident_type": ""}),
        (dict(FIRING[0], fingerprint="../../etc"), {"incident_id": "am-..-..-etc"}),
    ],
)  # fmt: skip
def test_alertmanager_alert(alert, expected):
    found = dbops_alert.main(dict(alert))["dbops"]
    assert found["source"] == "alertmanager"
    assert {key: found[key] for key in expected} == expected


def test_posthog_alert():
    found = dbops_alert.main({"payload": POSTHOG, "meta": {}})["dbops"]
    assert found == {"source": "posthog", "alert": "query_time", "firing": True, "incident_type": "performance",
                     "incident_tier": "olap", "incident_id": "ph-0190f3c2-17", "detected_at": "2026-12-02T10:02:00Z",
                     "hosts": []}  # fmt: skip


def test_anything_else_fires_nothing():
    assert dbops_alert.main({"payload": {"hello": 1}})["dbops"]["firing"] is False
