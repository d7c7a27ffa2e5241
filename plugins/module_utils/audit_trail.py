# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where each audit line of a run is filed: the rules of the penguinmails.dbops.audit callback, without Ansible.

- A task whose result names incidents (``dbops_incident`` and ``dbops_notify`` report the incident they
  worked on, per loop item in a loop) is filed under each of those incidents, with the statements and
  actions of that incident's items only.
- Any other line is filed under every incident the run has named so far, so each incident's trail is
  complete on its own.
- Until the run has named an incident, lines are held. They are written as soon as an incident is named
  (under it), or as soon as the run is about to do something that can change a server - a task whose
  module is not known to be read-only starts, or a result is reported changed: then under the incident the
  extra vars name
  (``incident_id``, ``awx_job_id``), else in the run-level trail ``<incident dir>/unattributed/audit.jsonl``.
- A run that ends having named no incident and changed nothing (it only read, or refused its inputs)
  leaves no file, unless asked to record such runs too.
- One file for everything (``audit_file``): every line goes there at once, one per incident named.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

INCIDENT_MODULES = frozenset({"penguinmails.dbops.dbops_incident", "penguinmails.dbops.dbops_notify"})
# Modules that cannot change a server: a run made only of these needs no trail of its own.
READ_ONLY_MODULES = frozenset(
    {
        "ansible.builtin." + name
        for name in (
            "add_host",
            "assert",
            "debug",
            "fail",
            "find",
            "gather_facts",
            "group_by",
            "import_role",
            "import_tasks",
            "include_role",
            "include_tasks",
            "include_vars",
            "meta",
            "pause",
            "ping",
            "set_fact",
            "set_stats",
            "setup",
            "slurp",
            "stat",
            "validate_argument_spec",
            "wait_for",
        )
    }
    | {
        "penguinmails.dbops." + name
        for name in (
            "dbops_audit_verify",
            "dbops_evidence",
            "dbops_incident",
            "dbops_lock",
            "dbops_notify",
            "dbops_triage",
            "pg_failover_plan",
            "pg_health",
            "pg_integrity",
            "pg_node_info",
            "pg_pool_plan",
            "pg_query_check",
            "pg_security_facts",
            "pgbouncer_pools",
            "posthog_alerts",
        )
    }
)
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UNATTRIBUTED = "unattributed"
AUDIT_FILE = "audit.jsonl"
MAX_HELD_LINES = 10000

Write = Tuple[str, Dict[str, Any]]


def canonical_module(name: str) -> str:
    """The fully qualified name: ``debug`` and ``ansible.legacy.debug`` are ``ansible.builtin.debug``."""
    name = str(name or "")
    if name.startswith("ansible.legacy."):
        return "ansible.builtin." + name[len("ansible.legacy.") :]
    return name if "." in name else "ansible.builtin." + name


def can_change_servers(record: Mapping[str, Any]) -> bool:
    """Whether a task line shows the run may have changed a server."""
    if record.get("event") != "task":
        return False
    if record.get("check_mode"):
        return False  # a task forced into check mode writes nothing, by every module's contract
    if record.get("status") == "changed":
        return True
    module = canonical_module(record.get("module"))
    if module == "ansible.builtin.uri":
        return record.get("method") not in READ_ONLY_METHODS
    return module not in READ_ONLY_MODULES


def result_parts(result: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    """The loop item results of a result, or the result itself."""
    items = [item for item in result.get("results") or [] if isinstance(item, Mapping)]
    return items or [result]


def incident_named(part: Mapping[str, Any]) -> Optional[Tuple[str, Optional[str]]]:
    """(incident id, its audit file) that an incident module's (item) result reports, or None."""
    if part.get("failed") or part.get("skipped"):
        return None
    incident = part.get("incident") or part.get("summary") or {}
    if not isinstance(incident, Mapping) or not incident.get("id"):
        return None
    paths = part.get("paths") if isinstance(part.get("paths"), Mapping) else {}
    return str(incident["id"]), paths.get("audit")


def incidents_named(module: str, result: Mapping[str, Any]) -> Dict[str, Optional[str]]:
    """Every incident a task result names (id -> audit file), in order; only the incident modules name them."""
    if canonical_module(module) not in INCIDENT_MODULES:
        return {}
    named: Dict[str, Optional[str]] = {}
    for part in result_parts(result):
        found = incident_named(part)
        if found and found[0] not in named:
            named[found[0]] = found[1]
    return named


def executed(parts: List[Mapping[str, Any]], key: str) -> List[Any]:
    """``executed_queries`` or ``actions`` of these result parts, in order."""
    collected: List[Any] = []
    for part in parts:
        value = part.get(key)
        if value:
            collected.extend(value if isinstance(value, list) else [value])
    return collected


def executed_in(result: Mapping[str, Any], key: str) -> List[Any]:
    """``executed_queries`` or ``actions`` of a result and of every loop item of it."""
    items = [item for item in result.get("results") or [] if isinstance(item, Mapping)]
    return executed([result, *items], key)


def status_of(parts: List[Mapping[str, Any]]) -> str:
    if any(part.get("failed") for part in parts):
        return "failed"
    if all(part.get("skipped") for part in parts):
        return "skipped"
    return "changed" if any(part.get("changed") for part in parts) else "ok"


def split_by_incident(
    record: Mapping[str, Any], module: str, result: Mapping[str, Any]
) -> List[Tuple[Optional[str], Dict[str, Any]]]:
    """The task line once per incident its result (or loop items) names, with that incident's items only;
    items naming no incident make one more line (None). A result naming no incident: [(None, record)]."""
    if canonical_module(module) not in INCIDENT_MODULES or not isinstance(result.get("results"), list):
        named = list(incidents_named(module, result))
        return [(incident, dict(record)) for incident in named] or [(None, dict(record))]
    groups: Dict[Optional[str], List[Mapping[str, Any]]] = {}
    for part in result_parts(result):
        found = incident_named(part)
        groups.setdefault(found[0] if found else None, []).append(part)
    lines = []
    for incident, parts in groups.items():
        line = dict(record, status=status_of(parts), items=len(parts))
        for key in ("executed_queries", "actions"):
            line.pop(key, None)
            if not record.get("no_log") and executed(parts, key):
                line[key] = executed(parts, key)
        lines.append((incident, line))
    return lines


class TrailRouter:
    """Decides which file each line of one run goes to; the callback does the writing."""

    def __init__(
        self,
        incident_dir: str,
        audit_file: Optional[str] = None,
        expected_incident: Optional[str] = None,
        record_unattributed: bool = False,
    ) -> None:
        self.incident_dir = os.path.abspath(incident_dir)
        self.audit_file = os.path.abspath(audit_file) if audit_file else None
        self.expected_incident = expected_incident
        self.record_unattributed = record_unattributed
        self.known: Dict[str, str] = {}
        self.held: List[Dict[str, Any]] = []
        self.acting = False

    def incident_file(self, incident_id: str) -> str:
        return self.known.get(incident_id) or os.path.join(self.incident_dir, incident_id, AUDIT_FILE)

    def unattributed_file(self) -> str:
        return os.path.join(self.incident_dir, UNATTRIBUTED, AUDIT_FILE)

    def learn(self, named: Mapping[str, Optional[str]]) -> List[Write]:
        """Register the incidents a result names; the lines held so far are filed under the new ones."""
        new = [incident for incident in named if incident not in self.known]
        for incident, path in named.items():
            self.known[incident] = os.path.abspath(path) if path else self.incident_file(incident)
        if not new or self.audit_file:
            return []
        held, self.held = self.held, []
        return [(self.known[incident], dict(line, incident_id=incident)) for line in held for incident in new]

    def task_starting(self, module: str, method: Optional[str] = None, check_mode: bool = False) -> List[Write]:
        """A task is about to run: when it can change a server, the held lines are written now, so the
        trail exists before the change starts (a run killed during pg_rewind still leaves one)."""
        task = {"event": "task", "module": module, "method": method, "check_mode": check_mode}
        if self.acting or not can_change_servers(task):
            return []
        self.acting = True
        if self.known or self.audit_file or not self.held:
            return []
        return self._release_to_run_target()

    def file(self, line: Mapping[str, Any], incident: Optional[str] = None) -> List[Write]:
        """Where one line goes now: [(path, line as written)]; [] while it is held."""
        self.acting = self.acting or can_change_servers(line)
        if self.audit_file:
            return [(self.audit_file, self._stamped_for_one_file(line, incident))]
        if incident:
            return [(self.incident_file(incident), dict(line, incident_id=incident))]
        if self.known:
            return [(path, dict(line, incident_id=known)) for known, path in self.known.items()]
        self.held.append(dict(line))
        if self.acting or len(self.held) > MAX_HELD_LINES:
            return self._release_to_run_target()
        return []

    def finish(self, line: Mapping[str, Any]) -> List[Write]:
        """The run's last line, then whatever is still held: to the run-level trail only when asked."""
        writes = self.file(line)
        if self.held and self.record_unattributed:
            self.acting = True
            writes.extend(self._release_to_run_target())
        self.held = []
        return writes

    def _release_to_run_target(self) -> List[Write]:
        held, self.held = self.held, []
        if self.expected_incident:
            self.known[self.expected_incident] = self.incident_file(self.expected_incident)
            return [
                (self.known[self.expected_incident], dict(line, incident_id=self.expected_incident)) for line in held
            ]
        return [(self.unattributed_file(), dict(line, incident_id=None)) for line in held]

    def _stamped_for_one_file(self, line: Mapping[str, Any], incident: Optional[str]) -> Dict[str, Any]:
        if incident:
            return dict(line, incident_id=incident)
        known = list(self.known) or ([self.expected_incident] if self.expected_incident else [])
        stamped = dict(line, incident_id=known[0] if len(known) == 1 else None)
        if len(known) > 1:
            stamped["incident_ids"] = known
        return stamped
