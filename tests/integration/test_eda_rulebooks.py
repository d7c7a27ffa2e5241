"""The EDA rulebooks, run by ansible-rulebook on recorded Alertmanager and PostHog payloads.

The rulebook under test is extensions/eda/rulebooks/dbops_alerts.yml with each webhook source
replaced by eda.builtin.generic replaying recorded payloads in the webhook's event shape
({"payload": body, "meta": ...}), filters, rules and actions unchanged, and `shutdown_after` so
the rulebook exits by itself. The run_playbook actions resolve penguinmails.dbops playbooks in a
collections path where the playbooks are stand-ins that record what they were started with (the
runbooks themselves are tested elsewhere); the filter plugin is the collection's own. No port is
opened. Needs Java 17 (tools/install-system-packages.sh).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lablib
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PAYLOADS = REPO / "tests" / "eda_payloads"
RULEBOOKS = REPO / "extensions" / "eda" / "rulebooks"
PLAYBOOKS = ["incident_db_outage", "incident_pool_exhaustion", "incident_performance", "triage"]
RECORDER = """---
- name: Stand-in for penguinmails.dbops.{name}, recording how it was started
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Record
      ansible.builtin.copy:
        dest: "{{{{ lookup('env', 'DBOPS_EDA_RECORD_DIR') }}}}/{{{{ lookup('pipe', 'date +%s%N') }}}}-{name}.json"
        content: "{{{{ {{'playbook': '{name}', 'incident_tier': incident_tier, 'incident_id': incident_id,
                      'incident_detected_at': incident_detected_at | default(''),
                      'hosts': dbops_alert.hosts | default([]), 'limit': ansible_limit | default('')}} | to_json }}}}"
        mode: "0600"
"""


def webhook_event(name: str, endpoint: str) -> dict:
    return {"payload": json.loads((PAYLOADS / name).read_text()), "meta": {"endpoint": endpoint, "headers": {}}}


def replayed(rulebook: list, shutdown_after: float) -> list:
    """The rulebook with its webhook sources replaced by recorded payloads, the rest unchanged."""
    replay = {
        "Prometheus Alertmanager": [
            webhook_event("alertmanager_firing.json", "alertmanager"),
            webhook_event("alertmanager_firing.json", "alertmanager"),  # the same alerts again: throttled
            webhook_event("alertmanager_resolved.json", "alertmanager"),
        ],
        "PostHog alert webhook": [webhook_event("posthog_query_time.json", "posthog")],
    }
    rulebook = copy.deepcopy(rulebook)
    for source in rulebook[0]["sources"]:
        assert "eda.builtin.webhook" in source
        del source["eda.builtin.webhook"]
        source["eda.builtin.generic"] = {
            "payload": replay[source["name"]],
            "event_delay": 0.2,
            "shutdown_after": shutdown_after,
        }
    return rulebook


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    if shutil.which("java") is None:
        lablib.skip_unless_installed(["Java 17"], "ansible-rulebook")
    root = tmp_path_factory.mktemp("eda-collections")
    collection = root / "ansible_collections" / "penguinmails" / "dbops"
    (collection / "playbooks").mkdir(parents=True)
    shutil.copy(REPO / "galaxy.yml", collection / "galaxy.yml")
    (collection / "extensions").symlink_to(REPO / "extensions")
    for name in PLAYBOOKS:
        (collection / "playbooks" / ("%s.yml" % name)).write_text(RECORDER.format(name=name))
    return root


def run_rulebook(collections: Path, work: Path, auto_failover: bool) -> list:
    work.mkdir()
    records = work / "records"
    records.mkdir()
    rulebook = yaml.safe_load((RULEBOOKS / "dbops_alerts.yml").read_text())
    (work / "rulebook.yml").write_text(yaml.safe_dump(replayed(rulebook, shutdown_after=45)))
    (work / "inventory.yml").write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    (work / "vars.yml").write_text(yaml.safe_dump({"eda_auto_failover": auto_failover}))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.pop("PYTHONPATH", None)
    env.update(
        PATH="%s%s%s" % (BIN, os.pathsep, env.get("PATH", "")),
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        DBOPS_EDA_RECORD_DIR=str(records),
    )
    argv = [str(BIN / "ansible-rulebook"), "-r", "rulebook.yml", "-i", "inventory.yml", "--vars", "vars.yml"]
    return subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def records_of(work: Path) -> list:
    found = [json.loads(path.read_text()) for path in sorted((work / "records").glob("*.json"))]
    return sorted(found, key=lambda record: record["playbook"])


@pytest.fixture(scope="module")
def runs(collections, tmp_path_factory):
    """Both settings of eda_auto_failover, run side by side: {False: records, True: records}."""
    work = tmp_path_factory.mktemp("eda-runs")
    processes = {auto: run_rulebook(collections, work / ("auto-%s" % auto), auto) for auto in (False, True)}
    outputs = {auto: process.communicate(timeout=600)[0] for auto, process in processes.items()}
    for auto, process in processes.items():
        assert process.returncode == 0, outputs[auto][-4000:]
    return {auto: records_of(work / ("auto-%s" % auto)) for auto in processes}


POOL = {
    "playbook": "incident_pool_exhaustion",
    "incident_tier": "content",
    "incident_id": "am-0a0b0c0d0e0f1011-content-pool_exhaustion",
    "incident_detected_at": "2026-12-02T10:01:00Z",
    "hosts": [],
    "limit": "localhost",
}
PERFORMANCE = {
    "playbook": "incident_performance",
    "incident_tier": "olap",
    "incident_id": "ph-0190f3c2-17-olap-performance",
    "incident_detected_at": "2026-12-02T10:02:00Z",
    "hosts": [],
    "limit": "localhost",
}


def test_without_auto_failover_an_outage_alert_runs_triage_never_the_failover(runs):
    assert runs[False] == [
        PERFORMANCE,
        POOL,
        {
            "playbook": "triage",
            "incident_tier": "oltp",
            "incident_id": "am-6f1a2b3c4d5e6f70",  # triage names its incidents <id>-oltp-db_outage
            "incident_detected_at": "",
            "hosts": ["oltp-1"],
            "limit": "localhost",
        },
    ]


def test_with_auto_failover_the_outage_runbook_runs_once_on_the_alerted_tier(runs):
    assert runs[True] == [
        {
            "playbook": "incident_db_outage",
            "incident_tier": "oltp",
            "incident_id": "am-6f1a2b3c4d5e6f70-oltp-db_outage",
            "incident_detected_at": "2026-12-02T10:00:05.123Z",
            "hosts": ["oltp-1"],
            "limit": "localhost",
        },
        PERFORMANCE,
        POOL,
    ]


def test_the_awx_variant_launches_the_same_templates_with_the_same_variables():
    local = yaml.safe_load((RULEBOOKS / "dbops_alerts.yml").read_text())[0]
    awx = yaml.safe_load((RULEBOOKS / "dbops_alerts_awx.yml").read_text())[0]
    assert local["sources"] == awx["sources"]
    controller = yaml.safe_load((REPO / "playbooks" / "vars" / "controller.yml").read_text().replace("!unsafe ", ""))
    templates = {
        entry.get("name") or "dbops %s" % entry["playbook"] for entry in controller["controller_job_templates"]
    }
    for mine, theirs in zip(local["rules"], awx["rules"], strict=True):
        assert (mine["name"], mine["condition"], mine["throttle"]) == (
            theirs["name"],
            theirs["condition"],
            theirs["throttle"],
        )
        playbook = mine["action"]["run_playbook"]
        template = theirs["action"]["run_job_template"]
        assert template["name"] == "dbops %s" % playbook["name"].rsplit(".", 1)[1]
        assert template["name"] in templates
        assert template["job_args"]["extra_vars"] == playbook["extra_vars"]
