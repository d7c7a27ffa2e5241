"""Benchmark: health sweeps of a lab, per host (one Ansible process per host) vs fleet mode.

Prints figures, asserts nothing. Run by `make bench` (tools/bench.py) or alone:

    .venv/bin/python tools/bench_health.py [--runs 3] [--hosts 9,45,90,180] [--forks 10,50]

What it does:

* starts its own 9-server lab like the rehearsal lab's tiers (oltp primary + 2
  standbys; content, queue, olap primary + 1 standby) on ports
  DBOPS_TEST_PORT_BASE (default 57000) + 100.., stopped by PID at the end;
* writes inventories of 9, 45, 90, 180 hosts, each host an entry pointing at
  one of the 9 servers (a large fleet as Ansible sees it);
* times, wall clock per ansible-playbook run, median and best of --runs rounds
  (each round runs every configuration once, so all see the same load):
  per-host `penguinmails.dbops.pg_health` and `community.postgresql.postgresql_info`
  at each --forks, fleet mode (`pg_health` and `pg_node_info` with servers=...,
  run_once; the module's own time read through the tree callback) and, for
  reference, Ansible's floor for the inventory (one run_once debug task) and
  `ansible.builtin.ping` per host at 90 hosts;
* SIGSTOPs one server and times the fleet sweep (it should cost one
  connect_timeout) and, for contrast, the per-host sweep;
* community.postgresql comes from Galaxy into .build/bench-collections, or when
  Galaxy is unreachable from the `ansible` package installed (--no-deps) into
  .build/bench-venv; the output says which.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / ".build"
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(BUILD / "collections"))

LAYOUT = {"oltp": 2, "content": 1, "queue": 1, "olap": 1}
PORT_OFFSET = 100
VENV_BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- community.postgresql


def find_community_postgresql() -> Optional[Tuple[Path, str]]:
    galaxy = BUILD / "bench-collections"
    if (galaxy / "ansible_collections" / "community" / "postgresql").is_dir():
        return galaxy, "Galaxy (ansible-galaxy collection install into .build/bench-collections)"
    for site in sorted((BUILD / "bench-venv").glob("lib/python*/site-packages")):
        manifest = site / "ansible_collections" / "community" / "postgresql" / "MANIFEST.json"
        if manifest.exists():
            version = json.loads(manifest.read_text())["collection_info"]["version"]
            package = _pip_version(BUILD / "bench-venv" / "bin" / "pip", "ansible")
            return site, "PyPI package ansible %s (bundled community.postgresql %s) in .build/bench-venv" % (
                package,
                version,
            )
    return None


def _pip_version(pip: Path, package: str) -> str:
    shown = subprocess.run([str(pip), "show", package], capture_output=True, text=True, check=False).stdout
    return next((line.split(":", 1)[1].strip() for line in shown.splitlines() if line.startswith("Version:")), "?")


def ensure_community_postgresql() -> Tuple[Path, str]:
    found = find_community_postgresql()
    if found:
        return found
    print("installing community.postgresql for the benchmark ...", flush=True)
    galaxy_dir = BUILD / "bench-collections"
    galaxy = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "install", "community.postgresql", "-p", str(galaxy_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if galaxy.returncode != 0:
        print("  Galaxy unreachable; installing the ansible package into .build/bench-venv", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(BUILD / "bench-venv")], check=True)
        subprocess.run(
            [str(BUILD / "bench-venv" / "bin" / "pip"), "install", "-q", "--no-deps", "ansible>=12,<13"],
            check=True,
            timeout=1200,
        )
    found = find_community_postgresql()
    if not found:
        raise SystemExit("community.postgresql could not be installed (Galaxy and PyPI both failed)")
    return found


# --------------------------------------------------------------------------- inventories and playbooks

PER_HOST_PG_HEALTH = """
- name: pg_health per host
  hosts: postgres
  gather_facts: false
  tasks:
    - name: Health of this host's server
      penguinmails.dbops.pg_health:
        login_host: "{{ ansible_host }}"
        login_port: "{{ pg_port }}"
        login_user: "{{ dbops_login_user }}"
        login_password: "{{ dbops_login_password }}"
        connect_timeout: "{{ bench_timeout }}"
"""

PER_HOST_POSTGRESQL_INFO = """
- name: postgresql_info per host
  hosts: postgres
  gather_facts: false
  tasks:
    - name: Everything postgresql_info gathers by default
      community.postgresql.postgresql_info:
        login_host: "{{ ansible_host }}"
        login_port: "{{ pg_port }}"
        login_user: "{{ dbops_login_user }}"
        login_password: "{{ dbops_login_password }}"
        login_db: postgres
        connect_params:
          connect_timeout: "{{ bench_timeout | int }}"
"""

PER_HOST_PING = """
- name: ping per host
  hosts: postgres
  gather_facts: false
  tasks:
    - name: Ansible's own per-host cost
      ansible.builtin.ping:
"""

FLOOR = """
- name: Ansible's fixed cost for this inventory
  hosts: postgres
  gather_facts: false
  tasks:
    - name: One task, once, nothing to connect to
      ansible.builtin.debug:
        msg: floor
      run_once: true
"""

FLEET = """
- name: {module} fleet mode
  hosts: postgres
  gather_facts: false
  tasks:
    - name: Every server from one task on the controller
      penguinmails.dbops.{module}:
        servers: "{{{{ groups['postgres'] | penguinmails.dbops.fleet_servers(hostvars) }}}}"
        connect_timeout: "{{{{ bench_timeout }}}}"
      run_once: true
      delegate_to: localhost
"""


def write_inventory(path: Path, servers: List[Any], hosts: int, password: str, timeout: float) -> None:
    entries = {}
    for index in range(hosts):
        member = servers[index % len(servers)]
        entries["h%03d-%s" % (index + 1, member.name)] = {"ansible_host": member.host, "pg_port": member.port}
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "dbops_login_user": "dbops_admin",
                "dbops_login_password": password,
                "bench_timeout": timeout,
            },
            "children": {"postgres": {"hosts": entries}},
        }
    }
    path.write_text(json.dumps(inventory))


class Runner:
    def __init__(self, workdir: Path, collections_path: str) -> None:
        self.workdir = workdir
        # The modules' cost, not the audit trail's: a configuration without extra callbacks.
        config = workdir / "ansible.cfg"
        config.write_text(
            "[defaults]\ngathering = explicit\ninterpreter_python = auto_silent\n"
            "retry_files_enabled = false\nstdout_callback = default\n"
        )
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
        self.env.update(ANSIBLE_CONFIG=str(config), ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_NOCOLOR="1")
        self.env.pop("PYTHONPATH", None)
        self.playbooks = {}
        for name, text in (
            ("pg_health", PER_HOST_PG_HEALTH),
            ("postgresql_info", PER_HOST_POSTGRESQL_INFO),
            ("ping", PER_HOST_PING),
            ("floor", FLOOR),
            ("fleet_pg_health", FLEET.format(module="pg_health")),
            ("fleet_pg_node_info", FLEET.format(module="pg_node_info")),
        ):
            path = workdir / ("%s.yml" % name)
            path.write_text(text)
            self.playbooks[name] = path

    def play(self, playbook: str, inventory: Path, forks: int) -> Dict[str, Any]:
        env = dict(self.env)
        fleet = playbook.startswith("fleet_")
        tree = self.workdir / "tree"
        if fleet:  # the module's own timing, read from the tree callback's file: no extra task
            shutil.rmtree(tree, ignore_errors=True)
            env.update(ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree", ANSIBLE_CALLBACK_TREE_DIR=str(tree))
        command = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "-f", str(forks)]
        command.append(str(self.playbooks[playbook]))
        started = time.monotonic()
        completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(REPO), check=False)
        seconds = time.monotonic() - started
        if completed.returncode != 0:
            tail = (completed.stdout + completed.stderr)[-2000:]
            raise SystemExit("%s failed (rc %d):\n%s" % (playbook, completed.returncode, tail))
        result: Dict[str, Any] = {"seconds": seconds}
        if fleet:
            [inner] = [json.loads(path.read_text()) for path in tree.iterdir()]
            result["module_seconds"] = inner["elapsed_ms"] / 1000
            result["down"] = len(inner["unreachable_servers"])
        return result


def summarize(samples: List[Dict[str, Any]]) -> Dict[str, Any]:
    summary = {
        "seconds": statistics.median(sample["seconds"] for sample in samples),
        "best_seconds": min(sample["seconds"] for sample in samples),  # least disturbed by other load
        "runs": len(samples),
    }
    if "module_seconds" in samples[0]:
        summary["module_seconds"] = statistics.median(sample["module_seconds"] for sample in samples)
        summary["down"] = samples[0]["down"]
    return summary


def interleaved(runs: int, configurations: List[Tuple[Any, ...]]) -> List[Tuple[Tuple[Any, ...], Dict[str, Any]]]:
    """Run every configuration once per round, `runs` rounds: on a shared machine each one then
    sees the same mix of quiet and busy moments. configurations: (label..., measure, *args)."""
    samples: Dict[int, List[Dict[str, Any]]] = {index: [] for index in range(len(configurations))}
    for _round in range(runs):
        for index, (_kind, _hosts, _forks, _note, measure, *args) in enumerate(configurations):
            samples[index].append(measure(*args))
    return [(configuration[:4], summarize(samples[index])) for index, configuration in enumerate(configurations)]


def in_process_sweep(servers: List[Any], hosts: int, password: str, timeout: float) -> float:
    """The fleet sweep without Ansible: module_utils only (what the module does inside)."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.fleet import run_fleet
    from ansible_collections.penguinmails.dbops.plugins.module_utils.health import collect_health
    from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionParams

    targets = [
        (
            "h%03d" % index,
            ConnectionParams(
                host=servers[index % len(servers)].host,
                port=servers[index % len(servers)].port,
                user="dbops_admin",
                password=password,
                connect_timeout=timeout,
            ),
        )
        for index in range(hosts)
    ]
    started = time.monotonic()
    run_fleet(targets, collect_health)
    return time.monotonic() - started


# --------------------------------------------------------------------------- report


def table(rows: List[List[str]], header: List[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells: List[Any]) -> str:
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(header), rule, *[line(row) for row in rows]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", default="9,45,90,180")
    parser.add_argument("--forks", default="10,50")
    parser.add_argument("--timeout", type=float, default=2.0, help="connect_timeout of every module")
    parser.add_argument("--json", type=Path, default=BUILD / "bench" / "health.json")
    options = parser.parse_args()
    host_counts = [int(count) for count in options.hosts.split(",")]
    fork_counts = [int(count) for count in options.forks.split(",")]

    community_path, community_source = ensure_community_postgresql()
    subprocess.run(["make", "-s", "link"], cwd=str(REPO), check=True)
    from health_lab import ADMIN_PASSWORD, throwaway_tiers

    collections_path = "%s:%s" % (BUILD / "collections", community_path)
    results: Dict[str, Any] = {
        "community_postgresql": community_source,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "runs": options.runs,
        "timeout": options.timeout,
        "sweeps": [],
    }
    results["load_average_before"] = os.getloadavg()
    print("community.postgresql from: %s" % community_source)
    print("load average before: %.2f %.2f %.2f (on %d CPUs)" % (*os.getloadavg(), os.cpu_count()))
    print("lab: 9 PostgreSQL servers (%s), runs per figure: %d (median)" % (LAYOUT, options.runs), flush=True)
    with (
        throwaway_tiers(LAYOUT, port_offset=PORT_OFFSET, prefix="dbops-bench-") as tiers,
        tempfile.TemporaryDirectory(prefix="dbops-bench-") as scratch,
    ):
        servers = [member for lab in tiers.values() for member in lab.members]
        runner = Runner(Path(scratch), collections_path)

        def record(kind: str, hosts: int, forks: Optional[int], summary: Dict[str, Any], note: str = "") -> None:
            entry = dict(summary, kind=kind, hosts=hosts, forks=forks, note=note)
            results["sweeps"].append(entry)
            options.json.parent.mkdir(parents=True, exist_ok=True)
            options.json.write_text(json.dumps(results, indent=2))  # kept if a later sweep fails
            inner = " (module %.2f s)" % summary["module_seconds"] if "module_seconds" in summary else ""
            print(
                "  %-31s hosts %3d forks %-4s %6.2f s%s %s"
                % (kind, hosts, forks or "-", summary["seconds"], inner, note),
                flush=True,
            )

        def timed_sweep(hosts: int) -> Dict[str, Any]:
            return {"seconds": in_process_sweep(servers, hosts, ADMIN_PASSWORD, options.timeout)}

        for hosts in host_counts:
            inventory = Path(scratch) / ("inventory-%d.json" % hosts)
            write_inventory(inventory, servers, hosts, ADMIN_PASSWORD, options.timeout)
            configurations: List[Tuple[Any, ...]] = []
            for forks in fork_counts:
                for kind in ("pg_health", "postgresql_info") + (("ping",) if hosts == 90 else ()):
                    configurations.append((kind, hosts, forks, "", runner.play, kind, inventory, forks))
            configurations.append(
                ("ansible floor (run_once debug)", hosts, None, "", runner.play, "floor", inventory, 10)
            )
            for kind in ("fleet_pg_health", "fleet_pg_node_info"):
                configurations.append((kind, hosts, None, "", runner.play, kind, inventory, 10))
            configurations.append(("fleet in-process", hosts, None, "", timed_sweep, hosts))
            for (kind, _hosts, forks, note), summary in interleaved(options.runs, configurations):
                record(kind, hosts, forks, summary, note)

        frozen_lab = tiers["olap"]
        frozen = frozen_lab.standbys[0]
        for hosts in (9, 90, 180):
            if hosts not in host_counts:
                continue
            inventory = Path(scratch) / ("inventory-%d.json" % hosts)
            note = "%s SIGSTOPped" % frozen.name
            with frozen_lab.stopped(frozen):
                configurations = [("fleet_pg_health", hosts, None, note, runner.play, "fleet_pg_health", inventory, 10)]
                for (kind, _hosts, forks, label), summary in interleaved(options.runs, configurations):
                    record(kind, hosts, forks, summary, label)
                if hosts == 90:
                    configurations = [
                        ("pg_health", hosts, forks, note + " (1 run)", runner.play, "pg_health", inventory, forks)
                        for forks in fork_counts
                    ]
                    for (kind, _hosts, forks, label), summary in interleaved(1, configurations):
                        record(kind, hosts, forks, summary, label)
            frozen_lab.wait_streaming()

    results["load_average_after"] = os.getloadavg()
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(results, indent=2))
    print()
    rows = [
        [
            entry["kind"],
            entry["hosts"],
            entry["forks"] or "-",
            "%.2f" % entry["seconds"],
            "%.2f" % entry["best_seconds"],
            "%.2f" % entry["module_seconds"] if "module_seconds" in entry else "",
            entry["note"],
        ]
        for entry in results["sweeps"]
    ]
    print(table(rows, ["sweep", "hosts", "forks", "wall s (median)", "wall s (best)", "module s", "note"]))
    print("\nload average after: %.2f %.2f %.2f" % os.getloadavg())
    print("\nraw figures: %s" % options.json.relative_to(REPO) if options.json.is_relative_to(REPO) else options.json)


if __name__ == "__main__":
    main()
