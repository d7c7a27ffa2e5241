"""The runbooks under AWX's engine: ansible-runner with the private data directory AWX builds.

One lab (oltp primary + 2 standbys + PgBouncer) on its own ports: DBOPS_AWX_TEST_PORT_BASE
(default 5300; PgBouncer on base + 1000 = 6300), data under DBOPS_AWX_TEST_ROOT.

Each job gets its own private data directory, written the way AWX writes it:
  project/            the playbooks and the project's ansible.cfg (the audit callback enabled)
  inventory/hosts     an executable inventory script (--list), one secret in it vaulted
  env/extravars       survey answers as AWX writes them (!unsafe strings, "false", "1048576")
                      and the awx_* job variables
  env/credential_*    the PostgreSQL credential's injector: an extra-vars file passed with -e @
  env/envvars         the execution environment's variables and the credential's env injector
  env/passwords       the vault password, answered to --ask-vault-pass
  env/cmdline         -e @the credential file --ask-vault-pass
The first job goes through `ansible-runner transmit | ansible-runner worker | ansible-runner
process`, the path AWX's receptor uses; the others through `ansible-runner run`. Assertions are on
the artifacts (rc, status, job events, the set_stats artifact), the incident record and its audit
trail, and on what the servers say.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import lablib
import pytest
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible_collections.penguinmails.dbops.plugins.module_utils.rejoin import remove_stale_pid_file

PORT_BASE = int(os.environ.get("DBOPS_AWX_TEST_PORT_BASE", "5300"))
LAB_ROOT = os.environ.get("DBOPS_AWX_TEST_ROOT", "/var/tmp/penguinmails-dbops-awx-pytest")
VAULT_PASSWORD = "awx-test-vault-password"
BIN = Path(sys.executable).parent
RUNNER = str(BIN / "ansible-runner")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lablib.require_binaries()
    lab = lablib.write_inventory(
        tmp_path_factory.mktemp("awx-lab"), tiers={"oltp": 2}, port_base=PORT_BASE, lab_root=LAB_ROOT
    )
    with lablib.running(lab):
        yield lab


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """The storage every job reaches (an NFS mount in production): incident records and run locks."""
    root = tmp_path_factory.mktemp("shared-storage")
    return {"incidents": root / "incidents", "locks": root / "locks"}


def unsafe_yaml(values) -> str:
    """extravars the way AWX writes them: every string a survey answer, tagged !unsafe."""
    lines = []
    for name, value in values.items():
        if isinstance(value, str):
            lines.append("%s: !unsafe %s" % (name, json.dumps(value)))
        else:
            lines.append("%s: %s" % (name, json.dumps(value)))
    return "\n".join(lines) + "\n"


def vaulted(value: str) -> dict:
    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
    return {"__ansible_vault": vault.encrypt(value).decode()}


def awx_inventory(lab, storage) -> dict:
    """The lab inventory as an inventory script's --list: the admin console password vaulted, the
    PostgreSQL login left out (the credential injects it), records and locks on shared storage."""
    written = json.loads(lab.inventory.read_text().split("\n", 1)[1])
    hostvars = {}
    groups = {}

    def walk(name, group):
        groups[name] = {"hosts": sorted(group.get("hosts", {})), "children": sorted(group.get("children", {}))}
        if group.get("vars"):
            groups[name]["vars"] = group["vars"]
        for host, values in group.get("hosts", {}).items():
            hostvars[host] = values
        for child, sub in group.get("children", {}).items():
            walk(child, sub)

    walk("all", written["all"])
    variables = groups["all"]["vars"]
    variables.pop("dbops_login_user")
    variables.pop("dbops_login_password")
    variables["pgbouncer_admin_password"] = vaulted(variables["pgbouncer_admin_password"])
    variables.update(dbops_incident_dir=str(storage["incidents"]), dbops_lock_dir=str(storage["locks"]))
    groups["_meta"] = {"hostvars": hostvars}
    return groups


def private_data_dir(root: Path, lab, storage, job_id: int, survey: dict, extra: dict | None = None) -> Path:
    pdd = root / ("job-%d" % job_id)
    project = pdd / "project"
    shutil.copytree(lablib.REPO_ROOT / "playbooks", project / "playbooks")
    (project / "ansible.cfg").write_text(
        "[defaults]\ncallbacks_enabled = penguinmails.dbops.audit\ngathering = explicit\nforks = 20\n"
    )
    inventory = pdd / "inventory" / "hosts"
    inventory.parent.mkdir(parents=True)
    inventory.write_text(
        "#!%s\nimport json, sys\nif '--host' in sys.argv:\n    print('{}')\nelse:\n    print(json.dumps(%r))\n"
        % (sys.executable, awx_inventory(lab, storage))
    )
    inventory.chmod(0o700)
    env = pdd / "env"
    env.mkdir()
    job_vars = {
        "awx_job_id": job_id,
        "awx_job_launch_type": "workflow",
        "awx_job_template_name": "dbops job",
        "awx_user_name": "oncall",
        "awx_inventory_name": "penguinmails.dbops",
        "awx_project_revision": "0" * 40,
        "tower_job_id": job_id,
    }
    (env / "extravars").write_text(unsafe_yaml(dict(job_vars, **survey, **(extra or {}))))
    credentials = lab.credentials
    (env / "credential_postgres").write_text(
        unsafe_yaml(
            {
                "dbops_login_user": credentials["dbops_login_user"],
                "dbops_login_password": credentials["dbops_login_password"],
            }
        )
    )
    (env / "envvars").write_text(
        json.dumps(
            {
                "ANSIBLE_COLLECTIONS_PATH": str(lablib.COLLECTIONS_DIR),
                "ANSIBLE_NOCOLOR": "1",
                "PYTHONUNBUFFERED": "1",
                "DBOPS_SLACK_WEBHOOK_URL": "",
            }
        )
    )
    (env / "passwords").write_text(json.dumps({r"^Vault password:\s*?$": VAULT_PASSWORD}))
    (env / "cmdline").write_text("-e @../env/credential_postgres --ask-vault-pass")
    (env / "settings").write_text(json.dumps({"suppress_ansible_output": True}))
    return pdd


def runner_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = "%s:%s" % (BIN, env.get("PATH", ""))
    return env


class Job:
    def __init__(self, pdd: Path, ident: str):
        self.pdd = pdd
        self.artifacts = pdd / "artifacts" / ident

    @property
    def rc(self) -> int:
        return int((self.artifacts / "rc").read_text())

    @property
    def status(self) -> str:
        return (self.artifacts / "status").read_text()

    @property
    def stdout(self) -> str:
        return (self.artifacts / "stdout").read_text()

    def events(self):
        files = sorted((self.artifacts / "job_events").glob("*.json"), key=lambda path: int(path.name.split("-")[0]))
        return [json.loads(path.read_text()) for path in files]

    def set_stats(self) -> dict:
        (stats,) = [event for event in self.events() if event["event"] == "playbook_on_stats"]
        return stats["event_data"].get("artifact_data", {})

    def task_results(self, action: str):
        return [
            event["event_data"]
            for event in self.events()
            if event["event"] in ("runner_on_ok", "runner_on_failed")
            and event["event_data"].get("task_action") == action
        ]


def run_job(pdd: Path, playbook: str, ident: str = "1") -> Job:
    done = subprocess.run(
        [RUNNER, "run", str(pdd), "-p", "playbooks/%s.yml" % playbook, "--ident", ident],
        env=runner_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert (pdd / "artifacts" / ident / "rc").exists(), done.stdout[-2000:] + done.stderr[-2000:]
    return Job(pdd, ident)


def run_job_through_receptor_path(pdd: Path, playbook: str, work: Path, ident: str = "1") -> Job:
    """transmit | worker | process: the job travels as a stream, runs in another directory (the
    execution node's), and its events come back to the controller's private data directory."""
    env = runner_env()
    transmit = subprocess.Popen(
        [RUNNER, "transmit", str(pdd), "-p", "playbooks/%s.yml" % playbook, "--ident", ident],
        stdout=subprocess.PIPE,
        env=env,
    )
    worker = subprocess.Popen(
        [RUNNER, "worker", "--private-data-dir", str(work)], stdin=transmit.stdout, stdout=subprocess.PIPE, env=env
    )
    transmit.stdout.close()
    process = subprocess.run(
        [RUNNER, "process", str(pdd), "--ident", ident],
        stdin=worker.stdout,
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    worker.stdout.close()
    assert transmit.wait(timeout=60) == 0
    assert worker.wait(timeout=60) == 0
    assert process.returncode == 0, process.stderr[-2000:]
    return Job(pdd, ident)


def record_of(storage, incident_id: str) -> dict:
    return json.loads((storage["incidents"] / incident_id / "record.json").read_text())


def test_an_alert_goes_triage_gate_outage_under_runner_and_two_jobs_promote_once(lab, storage, tmp_path):
    old = lab.primary("oltp")
    lablib.kill_postmaster(old.data_dir)
    try:
        # 1. Triage, the way an execution node runs it: transmit | worker | process.
        triage = run_job_through_receptor_path(
            private_data_dir(tmp_path, lab, storage, 101, {"incident_tier": "oltp", "incident_id": "AM-0042"}),
            "triage",
            tmp_path / "execution-node",
        )
        assert (triage.rc, triage.status) == (0, "successful"), triage.stdout[-3000:]
        stats = triage.set_stats()
        assert stats["incident_type"] == "db_outage"
        assert stats["incident_tier"] == "oltp"
        incident_id = stats["incident_id"]
        assert incident_id == "AM-0042-oltp-db_outage"
        assert stats["dbops_triage"]["by_type"]["db_outage"]["incident_id"] == incident_id

        # 2. The workflow's gate: AWX passes triage's artifacts as extra variables.
        gate = run_job(
            private_data_dir(tmp_path, lab, storage, 102, {"dbops_dispatch_type": "db_outage"}, stats), "dispatch"
        )
        assert (gate.rc, gate.status) == (0, "successful"), gate.stdout[-3000:]
        published = gate.set_stats()
        assert published == {
            "incident_type": "db_outage",
            "incident_tier": "oltp",
            "incident_id": incident_id,
            "incident_severity": stats["dbops_triage"]["by_type"]["db_outage"]["incident_severity"],
        }
        other = run_job(
            private_data_dir(tmp_path, lab, storage, 103, {"dbops_dispatch_type": "pool_exhaustion"}, stats), "dispatch"
        )
        assert (other.rc, other.status) == (2, "failed")

        # 3. Two outage jobs at once (two AWX nodes, two throw-away containers), survey answers as
        #    AWX writes them: strings. The lock and the record are on storage both reach.
        survey = {
            "failover_allow_data_loss": "false",
            "failover_fence": "auto",
            "failover_max_lag_bytes": "1048576",
            "failover_candidate": "",
            "failover_strict_synchronous": "false",
            "incident_detected_at": "2026-01-05T10:00:00Z",
        }
        pdds = [private_data_dir(tmp_path, lab, storage, job, survey, published) for job in (201, 202)]
        jobs = {}
        threads = [
            threading.Thread(target=lambda p=p: jobs.__setitem__(p.name, run_job(p, "incident_db_outage")))
            for p in pdds
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=900)
        outcomes = {name: (job.rc, job.status) for name, job in jobs.items()}
        assert outcomes == {"job-201": (0, "successful"), "job-202": (0, "successful")}, {
            name: job.stdout[-3000:] for name, job in jobs.items()
        }
        promoted = [
            result for job in jobs.values() for result in job.task_results("penguinmails.dbops.pg_promote")
            if result["res"].get("changed")
        ]  # fmt: skip
        assert len(promoted) == 1, "expected one promotion, got %d" % len(promoted)
        new = lab.primary("oltp")
        assert new.name != old.name
        assert sorted(lab.role(server, connect_timeout=2) for server in lab.tier("oltp")) == [
            "down",
            "primary",
            "standby",
        ]

        # 4. Both records kept: one incident, continued by every job, on the shared storage.
        record = record_of(storage, incident_id)
        job_ids = [run.get("job_id") for run in record["runs"]]
        assert {"101", "201", "202"} <= set(job_ids), job_ids
        summary = json.loads((storage["incidents"] / incident_id / "summary.json").read_text())
        assert summary["status"] == "closed" or summary.get("outcome"), summary
        audit = (storage["incidents"] / incident_id / "audit.jsonl").read_text().splitlines()
        assert any("pg_promote" in line for line in audit)
        assert "lab-dbops-admin-password" not in "".join(audit)

        # 5. The audit trail verifies, through a job like any other.
        verify = run_job(
            private_data_dir(
                tmp_path, lab, storage, 301, {"audit_file": str(storage["incidents"] / incident_id / "audit.jsonl")}
            ),
            "audit_verify",
        )
        assert (verify.rc, verify.status) == (0, "successful"), verify.stdout[-3000:]
        (result,) = verify.task_results("penguinmails.dbops.dbops_audit_verify")
        assert result["res"]["broken_line"] is None, result["res"]
        assert result["res"]["lines"] == len(audit), result["res"]
    finally:
        restore(lab, old, storage, tmp_path)


def restore(lab, old, storage, tmp_path):
    """The killed primary back as a standby (through the rejoin job template's playbook)."""
    if lab.role(old, connect_timeout=2) == "primary":
        return
    if not any(lab.role(server, connect_timeout=2) == "primary" for server in lab.tier("oltp")):
        remove_stale_pid_file(str(old.data_dir))
        lablib.start_server(old)
        return
    rejoin = run_job(
        private_data_dir(tmp_path, lab, storage, 401, {"rejoin_host": old.name, "rejoin_allow_reclone": "false"}),
        "rejoin_old_primary",
    )
    assert (rejoin.rc, rejoin.status) == (0, "successful"), rejoin.stdout[-3000:]
    assert lab.role(old) == "standby"


def test_the_runner_private_data_dir_is_awx_shaped(lab, storage, tmp_path):
    pdd = private_data_dir(tmp_path, lab, storage, 7, {"incident_tier": "oltp", "failover_allow_data_loss": "false"})
    extravars = (pdd / "env" / "extravars").read_text()
    assert 'failover_allow_data_loss: !unsafe "false"' in extravars
    assert "awx_job_id: 7" in extravars
    listed = subprocess.run([str(pdd / "inventory" / "hosts"), "--list"], capture_output=True, text=True, check=True)
    inventory = json.loads(listed.stdout)
    assert "__ansible_vault" in inventory["all"]["vars"]["pgbouncer_admin_password"]
    assert "dbops_login_password" not in inventory["all"]["vars"]
    assert textwrap.dedent((pdd / "env" / "cmdline").read_text()).startswith("-e @../env/credential_postgres")
