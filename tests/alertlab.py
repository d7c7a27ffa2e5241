"""The lab's alert pipeline: the path an outage takes from a dead server to a runbook, for real.

    prometheus-postgres-exporter (one per lab server) -> prometheus (alert rules)
      -> prometheus-alertmanager -> ansible-rulebook (eda.builtin.webhook, bearer token,
         extensions/eda/rulebooks/dbops_alerts.yml, run_playbook) -> the runbook

The Debian packages prometheus, prometheus-alertmanager and prometheus-postgres-exporter
(tools/install-system-packages.sh) provide the binaries; their system services are never used.
Every process listens on 127.0.0.1 only, on ports of a block the caller gives, keeps its data
under `<root>` (owned by whoever runs the lab) and is stopped by PID.

Configuration files (prometheus.yml, rules.yml, alertmanager.yml, the rulebook's variables) are
built as Python data from validated values (ports are ints in 1024-65535, the address is
127.0.0.1, timings are positive numbers) and dumped as YAML, never templated as text.

Timings are the lab's, for a rehearsal: scrape and rule evaluation every 1 s, `for: 0s` on the
outage rule, Alertmanager group_wait 0 s, exporter connect timeout 1 s. Production wants longer
ones (docs/awx.md): a 1 s `for:` on a busy network pages on every blip.

Command line (the lab's `make lab-up LAB_ALERTS=1` runs `up` after the lab is up):

    python tests/alertlab.py up|down|status --inventory inventories/lab/hosts.yml \
        --root /var/tmp/penguinmails-dbops-lab/alerts --port-base 9180
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
RULEBOOK = REPO_ROOT / "extensions" / "eda" / "rulebooks" / "dbops_alerts.yml"
ADDRESS = "127.0.0.1"
BINARIES = {
    "exporter": "/usr/bin/prometheus-postgres-exporter",
    "prometheus": "/usr/bin/prometheus",
    "alertmanager": "/usr/bin/prometheus-alertmanager",
}


def missing_binaries() -> List[str]:
    missing = [path for path in BINARIES.values() if not os.access(path, os.X_OK)]
    if shutil.which("java") is None:
        missing.append("java")
    return missing


def valid_port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= 65535:
        raise ValueError("port must be an int in 1024-65535, got %r" % (value,))
    return value


def valid_address(value: str) -> str:
    if ipaddress.ip_address(value) != ipaddress.ip_address(ADDRESS):
        raise ValueError("the alert pipeline listens on 127.0.0.1 only, got %r" % (value,))
    return ADDRESS


def valid_seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
        raise ValueError("a duration must be 0-3600 seconds, got %r" % (value,))
    return float(value)


def duration(seconds: float) -> str:
    """Prometheus/Alertmanager duration text from seconds (milliseconds resolution)."""
    return "%dms" % round(valid_seconds(seconds) * 1000)


@dataclass(frozen=True)
class Timings:
    """Lab-only rehearsal timings (production values: docs/awx.md)."""

    scrape_interval: float = 1.0
    evaluation_interval: float = 1.0
    outage_for: float = 0.0
    group_wait: float = 0.0
    group_interval: float = 1.0
    repeat_interval: float = 3600.0
    exporter_connect_timeout: int = 1

    def __post_init__(self) -> None:
        for name in (
            "scrape_interval",
            "evaluation_interval",
            "outage_for",
            "group_wait",
            "group_interval",
            "repeat_interval",
        ):
            valid_seconds(getattr(self, name))
        if self.scrape_interval <= 0 or self.evaluation_interval <= 0 or self.group_interval <= 0:
            raise ValueError("intervals must be positive")
        if not isinstance(self.exporter_connect_timeout, int) or not 1 <= self.exporter_connect_timeout <= 60:
            raise ValueError("exporter_connect_timeout must be an int in 1-60 seconds")


@dataclass(frozen=True)
class Target:
    """One lab server the exporter scrapes."""

    name: str
    tier: str
    port: int
    exporter_port: int


def load_inventory(path: Path) -> Dict[str, object]:
    """A lab inventory file, with the group_vars/<group>.yml next to it merged into its groups."""
    path = Path(path)
    data = yaml.safe_load(path.read_text())
    group_vars = path.parent / "group_vars"

    def merge(name: str, group: Dict[str, object]) -> None:
        extra = group_vars / ("%s.yml" % name)
        if extra.is_file():
            group["vars"] = dict(yaml.safe_load(extra.read_text()) or {}, **(group.get("vars") or {}))
        for child, spec in (group.get("children") or {}).items():
            if spec is None:
                group["children"][child] = spec = {}
            merge(child, spec)

    merge("all", data["all"])
    return data


def read_inventory(path: Path) -> Dict[str, object]:
    """Lab servers by name (tier, port) and the lab's credentials, from a lab inventory."""
    data = load_inventory(path)
    top = data["all"]
    servers = {}
    for tier, group in top["children"]["postgres"]["children"].items():
        for name, host in (group.get("hosts") or {}).items():
            servers[name] = {"tier": tier, "port": valid_port(int(host["pg_port"]))}
    return {"servers": servers, "vars": top.get("vars", {})}


# The exporter's extra query (--extend.query-path): which side of replication each server is on.
# pg_dbops_in_recovery 0 on a primary; wal_receivers_streaming on a standby; standbys_streaming on
# a primary. The metric names are pg_dbops_<column>.
QUERIES = {
    "pg_dbops": {
        "query": "SELECT pg_is_in_recovery()::int AS in_recovery,"
        " (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming') AS wal_receivers_streaming,"
        " (SELECT count(*) FROM pg_stat_replication) AS standbys_streaming",
        "metrics": [
            {"in_recovery": {"usage": "GAUGE", "description": "1 while the server is a standby"}},
            {"wal_receivers_streaming": {"usage": "GAUGE", "description": "streaming WAL receivers (standby)"}},
            {"standbys_streaming": {"usage": "GAUGE", "description": "standbys streaming from this server"}},
        ],
    }
}
# Down: the exporter cannot reach its server (pg_up 0) or Prometheus cannot scrape (up 0).
DOWN = "(pg_up == 0 or up == 0)"
WAS_PRIMARY = "on(instance) last_over_time(pg_dbops_in_recovery[10m]) == 0"


def rules(timings: Timings) -> Dict[str, object]:
    """The alert rules: server down (the primary, or any), replication broken, pool saturation."""
    return {
        "groups": [
            {
                "name": "penguinmails-dbops",
                "interval": duration(timings.evaluation_interval),
                "rules": [
                    {
                        # The primary stopped answering: the exporter cannot connect (pg_up 0) to a
                        # server that was, at its last good scrape, not in recovery.
                        "alert": "PostgresPrimaryDown",
                        "expr": DOWN + " and " + WAS_PRIMARY,
                        "for": duration(timings.outage_for),
                        "labels": {"severity": "critical", "dbops_incident_type": "db_outage"},
                        "annotations": {
                            "summary": "PostgreSQL primary {{ $labels.dbops_host }} of {{ $labels.tier }} is down"
                        },
                    },
                    {
                        "alert": "PostgresDown",
                        "expr": DOWN + " unless " + WAS_PRIMARY,
                        "for": "30s",
                        "labels": {"severity": "warning", "dbops_incident_type": "triage"},
                        "annotations": {"summary": "PostgreSQL {{ $labels.dbops_host }} of {{ $labels.tier }} is down"},
                    },
                    {
                        # A standby that is up but no longer receives WAL.
                        "alert": "PostgresReplicationBroken",
                        "expr": "pg_dbops_in_recovery == 1 and pg_dbops_wal_receivers_streaming == 0",
                        "for": "30s",
                        "labels": {"severity": "warning", "dbops_incident_type": "triage"},
                        "annotations": {
                            "summary": "standby {{ $labels.dbops_host }} of {{ $labels.tier }} receives no WAL"
                        },
                    },
                    {
                        "alert": "PostgresConnectionsSaturated",
                        "expr": "sum by (instance, tier, dbops_host) (pg_stat_activity_count)"
                        " / on(instance, tier, dbops_host) pg_settings_max_connections > 0.9",
                        "for": "30s",
                        "labels": {"severity": "critical", "dbops_incident_type": "pool_exhaustion"},
                        "annotations": {
                            "summary": "{{ $labels.dbops_host }} of {{ $labels.tier }} is above 90% of max_connections"
                        },
                    },
                ],
            }
        ]
    }


@dataclass
class AlertPipeline:
    """The pipeline for one lab inventory; `up()` starts it, `down()` stops it (by PID)."""

    inventory: Path
    root: Path
    port_base: int
    timings: Timings = field(default_factory=Timings)
    rulebook_vars: Mapping[str, object] = field(default_factory=dict)
    # Variables for the runbooks the rulebook starts (run_playbook does not pass --vars on): they
    # go in the rulebook's inventory (all.vars), as a controller keeps them in group_vars/all.
    inventory_vars: Mapping[str, object] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    procs: Dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.inventory = Path(self.inventory)
        self.root = Path(self.root)
        valid_port(self.port_base)
        valid_port(self.port_base + 103)
        lab = read_inventory(self.inventory)
        self.lab_vars = lab["vars"]
        if len(lab["servers"]) > 100:
            raise ValueError("the pipeline scrapes at most 100 lab servers (one exporter port each)")
        self.targets = [
            Target(name, spec["tier"], spec["port"], valid_port(self.port_base + number))
            for number, (name, spec) in enumerate(sorted(lab["servers"].items()))
        ]

    @property
    def prometheus_port(self) -> int:
        return valid_port(self.port_base + 100)

    @property
    def alertmanager_port(self) -> int:
        return valid_port(self.port_base + 101)

    @property
    def webhook_port(self) -> int:
        return valid_port(self.port_base + 102)

    @property
    def posthog_port(self) -> int:
        return valid_port(self.port_base + 103)

    # ------------------------------------------------------------------ configuration
    def prometheus_config(self) -> Dict[str, object]:
        timings = self.timings
        return {
            "global": {
                "scrape_interval": duration(timings.scrape_interval),
                "scrape_timeout": duration(min(timings.scrape_interval, 10.0)),
                "evaluation_interval": duration(timings.evaluation_interval),
            },
            "rule_files": [str(self.root / "prometheus" / "rules.yml")],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": ["%s:%d" % (valid_address(ADDRESS), self.alertmanager_port)]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "postgres",
                    "static_configs": [
                        {
                            "targets": ["%s:%d" % (ADDRESS, target.exporter_port)],
                            "labels": {"tier": target.tier, "dbops_host": target.name},
                        }
                        for target in self.targets
                    ],
                }
            ],
        }

    def alertmanager_config(self) -> Dict[str, object]:
        timings = self.timings
        return {
            "route": {
                "receiver": "eda",
                "group_by": ["alertname", "tier", "dbops_host"],
                "group_wait": duration(timings.group_wait),
                "group_interval": duration(timings.group_interval),
                "repeat_interval": duration(timings.repeat_interval),
            },
            "receivers": [
                {
                    "name": "eda",
                    "webhook_configs": [
                        {
                            "url": "http://%s:%d/alertmanager" % (ADDRESS, self.webhook_port),
                            "send_resolved": True,
                            "http_config": {
                                "authorization": {"type": "Bearer", "credentials_file": str(self.token_file)}
                            },
                        }
                    ],
                }
            ],
        }

    @property
    def rulebook_inventory(self) -> Path:
        return self.root / "rulebook" / "inventory.yml"

    def inventory_with_localhost(self) -> Dict[str, object]:
        """The lab inventory with `localhost` listed: run_playbook limits a run to the ruleset's
        hosts (localhost), and an implicit localhost does not match a --limit."""
        data = load_inventory(self.inventory)
        hosts = data["all"].setdefault("hosts", {}) or {}
        hosts["localhost"] = {"ansible_connection": "local"}
        data["all"]["hosts"] = hosts
        data["all"].setdefault("vars", {}).update(self.inventory_vars)
        return data

    @property
    def token_file(self) -> Path:
        return self.root / "alertmanager" / "eda-token"

    def rulebook_variables(self) -> Dict[str, object]:
        variables = {
            "eda_webhook_host": ADDRESS,
            "eda_alertmanager_port": self.webhook_port,
            "eda_posthog_port": self.posthog_port,
            "eda_webhook_token": self.token,
            "eda_auto_failover": False,
        }
        variables.update(self.rulebook_vars)
        return variables

    def write_configs(self) -> None:
        for sub in ("prometheus/data", "alertmanager/data", "rulebook"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dump(self.root / "prometheus" / "prometheus.yml", self.prometheus_config())
        self._dump(self.root / "prometheus" / "rules.yml", rules(self.timings))
        self._dump(self.root / "exporter-queries.yml", QUERIES)
        self._dump(self.root / "alertmanager" / "alertmanager.yml", self.alertmanager_config())
        self._write(self.token_file, self.token)
        self._dump(self.root / "rulebook" / "vars.yml", self.rulebook_variables())
        self._dump(self.rulebook_inventory, self.inventory_with_localhost())

    @staticmethod
    def _write(path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)

    def _dump(self, path: Path, data: object) -> None:
        self._write(path, yaml.safe_dump(data, default_flow_style=False, sort_keys=False))

    # ------------------------------------------------------------------ processes
    def _start(self, name: str, argv: List[str], env: Optional[Dict[str, str]] = None) -> None:
        with open(self.root / ("%s.log" % name), "ab") as log:
            self.procs[name] = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.root,
                start_new_session=True,
            )
        self._write(self.root / ("%s.pid" % name), "%d\n" % self.procs[name].pid)

    def exporter_env(self, target: Target) -> Dict[str, str]:
        user = self.lab_vars["dbops_login_user"]
        password = self.lab_vars["dbops_login_password"]
        dsn = "host=%s port=%d user=%s password=%s dbname=postgres sslmode=disable connect_timeout=%d" % (
            ADDRESS, target.port, user, password, self.timings.exporter_connect_timeout,
        )  # fmt: skip
        return {"PATH": "/usr/bin:/bin", "DATA_SOURCE_NAME": dsn}

    def start_monitoring(self) -> None:
        for target in self.targets:
            self._start(
                "exporter-%s" % target.name,
                [
                    BINARIES["exporter"],
                    "--web.listen-address=%s:%d" % (ADDRESS, target.exporter_port),
                    "--log.level=warn",
                    "--extend.query-path=%s" % (self.root / "exporter-queries.yml"),
                ],
                env=self.exporter_env(target),
            )
        self._start(
            "alertmanager",
            [
                BINARIES["alertmanager"],
                "--config.file=%s" % (self.root / "alertmanager" / "alertmanager.yml"),
                "--storage.path=%s" % (self.root / "alertmanager" / "data"),
                "--web.listen-address=%s:%d" % (ADDRESS, self.alertmanager_port),
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
        )
        self._start(
            "prometheus",
            [
                BINARIES["prometheus"],
                "--config.file=%s" % (self.root / "prometheus" / "prometheus.yml"),
                "--storage.tsdb.path=%s" % (self.root / "prometheus" / "data"),
                "--storage.tsdb.retention.time=1h",
                "--web.listen-address=%s:%d" % (ADDRESS, self.prometheus_port),
                "--log.level=warn",
            ],
        )

    def start_rulebook(self, env: Optional[Mapping[str, str]] = None) -> None:
        bin_dir = Path(sys.executable).parent
        run_env = dict(os.environ)
        run_env.update(
            {
                "PATH": "%s:%s" % (bin_dir, os.environ.get("PATH", "/usr/bin:/bin")),
                "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
                "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / ".build" / "collections"),
            }
        )
        run_env.update(env or {})
        self._start(
            "rulebook",
            [
                str(bin_dir / "ansible-rulebook"),
                "--rulebook", str(RULEBOOK),
                "--inventory", str(self.rulebook_inventory),
                "--vars", str(self.root / "rulebook" / "vars.yml"),
                "--verbose",
            ],
            env=run_env,
        )  # fmt: skip

    def stop(self, name: str, timeout: float = 15) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        (self.root / ("%s.pid" % name)).unlink(missing_ok=True)

    def up(self, rulebook: bool = True) -> AlertPipeline:
        missing = missing_binaries()
        if missing:
            raise RuntimeError("the alert pipeline needs %s (tools/install-system-packages.sh)" % ", ".join(missing))
        self.write_configs()
        self.start_monitoring()
        if rulebook:
            self.start_rulebook()
        if not self.wait_ready(60):
            raise RuntimeError("the alert pipeline did not come up; logs in %s" % self.root)
        return self

    def down(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        "%s exited (%s); see %s" % (name, proc.returncode, self.root / ("%s.log" % name))
                    )
            try:
                targets = self.api_prometheus("targets")["data"]["activeTargets"]
                scraped = len(targets) == len(self.targets) and all(t["health"] == "up" for t in targets)
                rulebook = "rulebook" not in self.procs or self.webhook_listening()
                if scraped and rulebook:
                    return True
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.3)
        return False

    def webhook_listening(self) -> bool:
        import socket

        try:
            with socket.create_connection((ADDRESS, self.webhook_port), timeout=0.5):
                return True
        except OSError:
            return False

    # ------------------------------------------------------------------ queries
    def api_prometheus(self, path: str) -> Dict[str, object]:
        with urllib.request.urlopen(
            "http://%s:%d/api/v1/%s" % (ADDRESS, self.prometheus_port, path), timeout=3
        ) as reply:
            return json.load(reply)

    def prometheus_alerts(self) -> List[Dict[str, object]]:
        return self.api_prometheus("alerts")["data"]["alerts"]

    def alertmanager_alerts(self) -> List[Dict[str, object]]:
        url = "http://%s:%d/api/v2/alerts" % (ADDRESS, self.alertmanager_port)
        with urllib.request.urlopen(url, timeout=3) as reply:
            return json.load(reply)

    def rulebook_log(self) -> str:
        path = self.root / "rulebook.log"
        return path.read_text(errors="replace") if path.exists() else ""


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--port-base", type=int, default=9180)
    parser.add_argument("--auto-failover", action="store_true")
    args = parser.parse_args(argv)
    pipeline = AlertPipeline(
        args.inventory,
        args.root,
        args.port_base,
        rulebook_vars={"eda_auto_failover": args.auto_failover},
        inventory_vars={"dbops_incident_dir": str(Path(args.root) / "incidents")},
    )
    if args.action == "up":
        pipeline.up()
        ports = (pipeline.prometheus_port, pipeline.alertmanager_port, pipeline.webhook_port)
        print("alert pipeline up: prometheus %d, alertmanager %d, rulebook webhook %d" % ports)
        return 0
    for pid_file in sorted(Path(args.root).glob("*.pid")):
        pid = int(pid_file.read_text().strip() or 0)
        if pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        pid_file.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
