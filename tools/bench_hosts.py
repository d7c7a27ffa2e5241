"""Benchmark: the outage playbook on the `hosts` topology next to the loopback lab, in one run.

Prints figures, asserts nothing. Run by `make bench` (tools/bench.py) or alone, as root (the
hosts lab creates network namespaces):

    .venv/bin/python tools/bench_hosts.py [--runs 5]

1. The hosts lab (tests/labhosts.py): `up` from nothing, timed, and its memory (RSS and PSS of
   every process in its namespaces: 3 PostgreSQL servers, PgBouncer, 4 sshd).
2. --runs failovers on it, exactly as tools/bench_outage.py measures them on loopback (the oltp
   primary's postmaster SIGKILLed with a client writing through PgBouncer, the playbook's wall
   time, the client's write outage, acknowledged writes lost, per-task durations from the audit
   trail; the old primary rejoins over SSH, not timed). Fencing (pg_fence) and the PgBouncer entry
   run over SSH here, so the per-task table shows what a fence over SSH costs.
3. The same runs on a loopback lab of the same shape (ports DBOPS_BENCH_HOSTS_PORT_BASE, default
   5870: PostgreSQL 5871-5873, PgBouncer 6870; lab root DBOPS_BENCH_HOSTS_ROOT), then both labs
   are removed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tools"))

import bench_outage  # noqa: E402
import labhosts  # noqa: E402
import lablib  # noqa: E402


class HostsLab:
    """The hosts lab with the face bench_outage.one_run expects of a lablib.Lab."""

    inventory = labhosts.INVENTORY

    def primary(self, _tier: str):
        return labhosts.primary()

    def connect(self, host, dbname: str = "postgres", **kwargs):
        return labhosts.connect(host, dbname=dbname, **kwargs)

    def connect_pgbouncer(self, dbname: str, user=None, **kwargs):
        return labhosts.LabView().connect_pgbouncer(dbname, user=user, **kwargs)


def fence_seconds(results: list) -> str:
    values = [
        seconds
        for result in results
        for name, seconds in result["tasks"].items()
        if name.startswith("Fence every member")
    ]
    return "%.2f s" % statistics.median(values) if values else "-"


def summary(name: str, results: list) -> str:
    return "%-9s playbook %6.2f s   write outage %6.2f s   lost %d   fence task %s" % (
        name,
        statistics.median(result["playbook_s"] for result in results),
        statistics.median(result["write_outage_s"] for result in results),
        sum(result["lost"] for result in results),
        fence_seconds(results),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_hosts: the hosts lab needs root (network namespaces)", file=sys.stderr)
        return 1
    missing = lablib.missing_binaries()
    if missing:
        print("bench_hosts: needs %s (tools/install-system-packages.sh)" % ", ".join(missing), file=sys.stderr)
        return 1
    print("load average at start: %s" % " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    with tempfile.TemporaryDirectory(prefix="dbops-bench-hosts-") as scratch:
        scratch_path = Path(scratch)
        with lablib.exclusive_lock(labhosts.LOCK_PATH):
            try:
                up_seconds = labhosts.up()
                memory = labhosts.memory_kb()
                processes = len(labhosts.lab_pids())
                hosts = HostsLab()
                hosts_results = [
                    bench_outage.one_run(hosts, scratch_path / "hosts-incidents", number)
                    for number in range(1, args.runs + 1)
                ]
            finally:
                labhosts.down()
        port_base = int(os.environ.get("DBOPS_BENCH_HOSTS_PORT_BASE", "5870"))
        loopback = lablib.write_inventory(
            scratch_path / "inventory",
            tiers={"oltp": 2},
            port_base=port_base,
            lab_root=os.environ.get("DBOPS_BENCH_HOSTS_ROOT", "/var/tmp/penguinmails-dbops-bench-hosts-loopback"),
        )
        with lablib.running(loopback):
            loopback_results = [
                bench_outage.one_run(loopback, scratch_path / "loopback-incidents", number)
                for number in range(1, args.runs + 1)
            ]
    print("\n== hosts topology (SSH, own addresses) ==")
    bench_outage.report(hosts_results)
    print("\n== loopback lab ==")
    bench_outage.report(loopback_results)
    print(
        "\nhosts lab up: %.1f s; %d processes; memory RSS %d MB, PSS %d MB"
        % (up_seconds, processes, memory["rss_kb"] // 1024, memory["pss_kb"] // 1024)
    )
    print("medians over %d runs each, same invocation:" % args.runs)
    print(summary("hosts", hosts_results))
    print(summary("loopback", loopback_results))
    print("load average at end: %s" % " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
