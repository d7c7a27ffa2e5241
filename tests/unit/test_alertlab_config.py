"""The lab alert pipeline's generated configuration (tests/alertlab.py): validated values, YAML data.

Pure logic: no process is started (the live path is tests/integration/test_alert_pipeline.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import alertlab

INVENTORY = {
    "all": {
        "vars": {"dbops_login_user": "dbops_admin", "dbops_login_password": "pw"},
        "children": {
            "postgres": {
                "children": {
                    "oltp": {"hosts": {"oltp-1": {"pg_port": 5401}, "oltp-2": {"pg_port": 5402}}},
                }
            }
        },
    }
}


@pytest.mark.parametrize(
    "value, ok",
    [
        (1024, True),
        (65535, True),
        (26000, True),
        (80, False),
        (65536, False),
        ("26000", False),
        (True, False),
        (1.5, False),
    ],
)
def test_ports_are_ints_in_range(value, ok):
    if ok:
        assert alertlab.valid_port(value) == value
    else:
        with pytest.raises(ValueError):
            alertlab.valid_port(value)


@pytest.mark.parametrize("value, ok", [("127.0.0.1", True), ("0.0.0.0", False), ("198.18.0.99", False), ("::1", False)])
def test_address_is_loopback_only(value, ok):
    if ok:
        assert alertlab.valid_address(value) == "127.0.0.1"
    else:
        with pytest.raises(ValueError):
            alertlab.valid_address(value)


@pytest.mark.parametrize("seconds, text", [(0, "0ms"), (1, "1000ms"), (0.5, "500ms"), (3600, "3600000ms")])
def test_durations(seconds, text):
    assert alertlab.duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1, 3601, "1s", True])
def test_bad_durations(seconds):
    with pytest.raises(ValueError):
        alertlab.duration(seconds)


def test_bad_timings_are_refused():
    with pytest.raises(ValueError):
        alertlab.Timings(scrape_interval=0)
    with pytest.raises(ValueError):
        alertlab.Timings(exporter_connect_timeout=0)


def test_configs_are_data_on_loopback(tmp_path):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(INVENTORY))
    pipeline = alertlab.AlertPipeline(tmp_path / "hosts.yml", tmp_path / "root", 26000, token="t0ken")
    pipeline.write_configs()
    prometheus = yaml.safe_load((tmp_path / "root" / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"]
    assert [t["targets"] for t in targets] == [["127.0.0.1:26000"], ["127.0.0.1:26001"]]
    assert [t["labels"] for t in targets] == [
        {"tier": "oltp", "dbops_host": "oltp-1"},
        {"tier": "oltp", "dbops_host": "oltp-2"},
    ]
    assert prometheus["global"]["scrape_interval"] == "1000ms"
    alertmanager = yaml.safe_load((tmp_path / "root" / "alertmanager" / "alertmanager.yml").read_text())
    hook = alertmanager["receivers"][0]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:26102/alertmanager"
    assert "t0ken" not in (tmp_path / "root" / "alertmanager" / "alertmanager.yml").read_text()
    assert ((tmp_path / "root" / "alertmanager" / "eda-token").stat().st_mode & 0o777) == 0o600
    rules = yaml.safe_load((tmp_path / "root" / "prometheus" / "rules.yml").read_text())
    names = [rule["alert"] for rule in rules["groups"][0]["rules"]]
    assert names == ["PostgresPrimaryDown", "PostgresDown", "PostgresReplicationBroken", "PostgresConnectionsSaturated"]
    variables = yaml.safe_load((tmp_path / "root" / "rulebook" / "vars.yml").read_text())
    assert variables["eda_webhook_host"] == "127.0.0.1" and variables["eda_auto_failover"] is False
    inventory = yaml.safe_load((tmp_path / "root" / "rulebook" / "inventory.yml").read_text())
    assert inventory["all"]["hosts"]["localhost"] == {"ansible_connection": "local"}


def test_port_block_must_fit():
    with pytest.raises(ValueError):
        alertlab.AlertPipeline("unused.yml", "/nonexistent", 65500)
