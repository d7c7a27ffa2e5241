# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident record of penguinmails.dbops: open, step, close.

One directory per incident under the incident dir::

    <dir>/<id>/record.json      the canonical record (header, runs, timeline, notification ledger)
    <dir>/<id>/summary.json     derived: what an AWX workflow or a dashboard reads
    <dir>/<id>/report.md        derived: the report for people
    <dir>/<id>/audit.jsonl      written by the penguinmails.dbops.audit callback

Every call takes the record's lock, applies one transition to the record (pure
functions below, each with one job), writes record.json atomically and
re-renders summary.json and report.md, so the record is current even when a
playbook dies half-way. A rerun with the same id continues the record: it adds
a run and its own timeline entries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
import re
import secrets
from typing import Any, Dict, Iterator, List, Mapping, Optional

from ansible_collections.penguinmails.dbops.plugins.module_utils import audit_trail, escalation, files
from ansible_collections.penguinmails.dbops.plugins.module_utils.incident_report import (
    STEP_KINDS,
    render_report,
    summarize,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import redact_text, redact_value

SCHEMA = 1
EVENTS = ("open", "step", "close")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RECORD_FILE = "record.json"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
AUDIT_FILE = "audit.jsonl"
LOCK_FILE = ".lock"

UTC = dt.timezone.utc


class IncidentError(Exception):
    """A readable, one-line reason why an incident operation cannot proceed."""


class RecordWriteError(IncidentError):
    """The record's directory or files cannot be written (disk full, permissions, a path in the way)."""


# --- time ---------------------------------------------------------------------------------


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC)


def parse_time(value: Any, what: str) -> dt.datetime:
    """An aware UTC datetime from ISO 8601 (Z or offset; naive means UTC) or epoch seconds."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    try:
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return dt.datetime.fromtimestamp(float(text), UTC)
        parsed = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except (ValueError, OverflowError, OSError) as exc:
        raise IncidentError(f"{what} {text!r} is not an ISO 8601 time or epoch seconds") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


format_time = escalation.format_utc


# --- identity -----------------------------------------------------------------------------


def validate_id(incident_id: str) -> str:
    if incident_id == audit_trail.UNATTRIBUTED:
        raise IncidentError(
            f"incident id {incident_id!r} is not usable as a directory name: it holds the audit trail of runs"
            " without an incident"
        )
    if not ID_PATTERN.match(incident_id) or ".." in incident_id:
        raise IncidentError(
            f"incident id {incident_id!r} is not usable as a directory name: use letters, digits, '.', '_' or '-'"
            " (at most 128, starting with a letter or digit)"
        )
    return incident_id


def generate_id(now: dt.datetime) -> str:
    return "INC-" + now.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def resolve_id(explicit: Optional[str], job_id: Optional[str], now: dt.datetime, may_generate: bool) -> str:
    """The incident id: given, else from the AWX/Tower job id, else generated (only when opening)."""
    if explicit:
        return validate_id(str(explicit))
    if job_id:
        return validate_id(f"awx-{job_id}")
    if may_generate:
        return generate_id(now)
    raise IncidentError("no incident id: open the incident first in this play, or pass incident_id")


def resolve_operator(explicit: Optional[str]) -> str:
    """The AWX/Tower user when given, else the OS user running the controller."""
    if explicit:
        return str(explicit)
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment or the passwd database
        return f"uid:{os.getuid()}"


# --- storage ------------------------------------------------------------------------------


def incident_paths(root: str, incident_id: str) -> Dict[str, str]:
    base = os.path.join(os.path.abspath(root), incident_id)
    return {
        "dir": base,
        "record": os.path.join(base, RECORD_FILE),
        "summary": os.path.join(base, SUMMARY_FILE),
        "report": os.path.join(base, REPORT_FILE),
        "audit": os.path.join(base, AUDIT_FILE),
    }


@contextlib.contextmanager
def locked(paths: Mapping[str, str], create: bool) -> Iterator[None]:
    """Serialise writers of one incident (forks of one run, or two runs) with an flock on <id>/.lock."""
    if not create:
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            os.makedirs(paths["dir"], exist_ok=True)
            stack.enter_context(files.exclusive_lock(os.path.join(paths["dir"], LOCK_FILE)))
        except OSError as exc:
            raise RecordWriteError(f"cannot create incident directory {paths['dir']}: {exc.strerror or exc}") from exc
        yield


def load_record(paths: Mapping[str, str]) -> Optional[Dict[str, Any]]:
    try:
        text = files.read_text(paths["record"])
        if text is None:
            return None
        record = json.loads(text)
    except (OSError, ValueError) as exc:
        raise IncidentError(f"cannot read incident record {paths['record']}: {exc}") from exc
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise IncidentError(f"{paths['record']} is not a version {SCHEMA} incident record")
    return record


def write_atomically(path: str, text: str) -> None:
    try:
        files.write_atomically(path, text)
    except OSError as exc:
        raise RecordWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc


def save_record(paths: Mapping[str, str], record: Mapping[str, Any]) -> Dict[str, Any]:
    """Write record.json, summary.json and report.md (each through the redaction); return the summary.

    Timeline and ledger entries were redacted when they were added; the header is redacted here.
    """
    record = dict(redact_value(header(record)), timeline=record["timeline"], notifications=record["notifications"])
    summary = summarize(record)
    write_atomically(paths["record"], json.dumps(record, indent=2, sort_keys=False) + "\n")
    write_atomically(paths["summary"], json.dumps(summary, indent=2) + "\n")
    write_atomically(paths["report"], redact_text(render_report(record, summary)))
    return summary


def record_audit_dropped(paths: Mapping[str, str], count: int) -> None:
    """Add ``count`` audit lines that could not be written to the record's ``audit_dropped`` (shown in the summary)."""
    if not os.path.isdir(paths["dir"]):
        raise IncidentError(f"incident {os.path.basename(paths['dir'])} has no record in {paths['dir']}")
    with locked(paths, create=True):
        record = load_record(paths)
        if record is None:
            raise IncidentError(f"incident {os.path.basename(paths['dir'])} has no record in {paths['dir']}")
        record["audit_dropped"] = int(record.get("audit_dropped") or 0) + count
        save_record(paths, record)


# --- transitions (pure: record in, record out) ---------------------------------------------


def new_record(incident_id: str, classification: Mapping[str, Any], now: dt.datetime) -> Dict[str, Any]:
    return {
        "schema": SCHEMA,
        "id": incident_id,
        "type": classification["type_name"],
        "status": "open",
        "outcome": None,
        "opened_at": format_time(now),
        "closed_at": None,
        "mitigated_at": None,
        "response_target_met": None,
        "operators": [],
        "targets": [],
        "runs": [],
        "timeline": [],
        "notifications": [],
    }


def build_policy(params: Mapping[str, Any], incident_type: str, severity: Optional[str]) -> Dict[str, Any]:
    """The policy snapshot kept in the record: everything escalation and notification need later."""
    policy = params.get("policy") or {}
    defaults = escalation.default_policy()

    def part(name: str) -> Any:
        return policy.get(name) if policy.get(name) is not None else defaults[name]

    try:
        chosen = escalation.classify(incident_type, severity, part("types"), part("severity_levels"))
        type_policy = chosen["type"]
        hours = part("business_hours")
        escalation.validate_business_hours(hours)
        outcomes = part("outcomes")
        escalation.validate_outcomes(outcomes)
        return {
            "type_name": incident_type,
            "type_label": str(type_policy.get("label") or incident_type),
            "severity_name": chosen["severity"],
            "response_target_minutes": type_policy["response_target_minutes"],
            "severity": chosen["severity_policy"],
            "path": type_policy.get("escalation_path") or "database",
            "levels": escalation.resolve_path(
                type_policy.get("escalation_path") or "database", part("escalation_paths"), part("contacts")
            ),
            "business_hours": dict(hours),
            "outcomes": {name: dict(outcomes[name]) for name in outcomes},
        }
    except escalation.PolicyError as exc:
        raise IncidentError(f"escalation policy: {exc}") from exc


def apply_open(
    record: Dict[str, Any], params: Mapping[str, Any], policy: Dict[str, Any], now: dt.datetime
) -> Dict[str, Any]:
    """Start a run: classify (first run) or re-classify (a rerun may change the severity); return the entry."""
    if record["type"] != policy["type_name"]:
        raise IncidentError(
            f"incident {record['id']} is a {record['type']} incident; it cannot be reopened as {policy['type_name']}"
        )
    first = not record["runs"]
    operator = resolve_operator(params.get("operator"))
    run = {"run": len(record["runs"]) + 1, "started_at": format_time(now), "operator": operator}
    if params.get("job_id"):
        run["job_id"] = str(params["job_id"])
    record["runs"].append(run)
    if operator not in record["operators"]:
        record["operators"].append(operator)
    for target in params.get("targets") or []:
        if target not in record["targets"]:
            record["targets"].append(str(target))
    previous_severity = record.get("severity")
    record.update(
        type_label=policy["type_label"],
        severity=policy["severity_name"],
        tier=params.get("tier") or record.get("tier"),
        title=params.get("title") or record.get("title"),
        response_target_minutes=params.get("response_target_minutes") or policy["response_target_minutes"],
        policy={key: policy[key] for key in ("severity", "path", "levels", "business_hours", "outcomes")},
        status="open",
    )
    record.setdefault("detected_at", format_time(_detected_at(params, now)))
    text = f"incident opened by {operator}" if first else f"run {run['run']} by {operator} continues the record"
    if previous_severity and previous_severity != record["severity"]:
        text += f"; severity {previous_severity} -> {record['severity']}"
    return append_entry(record, {"kind": "lifecycle", "name": "open", "result": text, "changed": False}, now)


def _detected_at(params: Mapping[str, Any], now: dt.datetime) -> dt.datetime:
    if not params.get("detected_at"):
        return now
    detected = parse_time(params["detected_at"], "detected_at")
    if detected > now + dt.timedelta(minutes=5):
        raise IncidentError(f"detected_at {format_time(detected)} is in the future")
    return detected


def append_entry(record: Dict[str, Any], entry: Mapping[str, Any], now: dt.datetime) -> Dict[str, Any]:
    """Add a timeline entry stamped with its sequence number, time and run; its content redacted."""
    stamped = {"seq": len(record["timeline"]) + 1, "at": format_time(now), "run": current_run(record)}
    stamped.update((key, value) for key, value in redact_value(entry).items() if value is not None)
    record["timeline"].append(stamped)
    return stamped


def current_run(record: Mapping[str, Any]) -> int:
    return len(record["runs"]) or 1


def step_entry(params: Mapping[str, Any]) -> Dict[str, Any]:
    """A timeline entry from the step parameters, filling gaps from a registered module result."""
    source = registered_facts(params.get("from_result"))
    queries = params.get("executed_queries") or source["executed_queries"]
    actions = params.get("actions") or source["actions"]
    changed = params["changed"] if params.get("changed") is not None else source["changed"]
    failed = params["failed"] if params.get("failed") is not None else source["failed"]
    kind = params.get("kind") or ("action" if (queries or actions or changed) else "finding")
    return {
        "kind": kind,
        "name": params["name"],
        "result": params.get("result") or source["result"],
        "changed": bool(changed),
        "failed": bool(failed),
        "host": params.get("host"),
        "details": params.get("details"),
        "executed_queries": list(queries) or None,
        "actions": list(actions) or None,
    }


def registered_facts(result: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """changed / failed / result text / executed statements of a registered result (loops aggregated)."""
    facts: Dict[str, Any] = {"changed": False, "failed": False, "result": "ok", "executed_queries": [], "actions": []}
    if not result:
        return facts
    parts = [item for item in result.get("results") or [] if isinstance(item, Mapping)] or [result]
    for part in parts:
        facts["executed_queries"].extend(_as_list(part.get("executed_queries")))
        facts["actions"].extend(_as_list(part.get("actions")))
    facts["changed"] = bool(result.get("changed")) or any(part.get("changed") for part in parts)
    facts["failed"] = bool(result.get("failed")) or any(part.get("failed") for part in parts)
    facts["result"] = _result_text(result, facts)
    return facts


def _as_list(value: Any) -> List[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _result_text(result: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    if result.get("skipped"):
        return "skipped"
    status = "failed" if facts["failed"] else "changed" if facts["changed"] else "ok"
    message = result.get("msg")
    if isinstance(message, str) and message and message != "All items completed":
        return f"{status}: {message}"
    return status


def apply_step(record: Dict[str, Any], params: Mapping[str, Any], now: dt.datetime) -> Dict[str, Any]:
    if not params.get("name"):
        raise IncidentError("a step needs a name (incident_step_name)")
    if params.get("kind") and params["kind"] not in STEP_KINDS:
        raise IncidentError(f"step kind must be one of {', '.join(STEP_KINDS)}")
    return append_entry(record, step_entry(params), now)


def apply_close(record: Dict[str, Any], params: Mapping[str, Any], now: dt.datetime) -> Dict[str, Any]:
    """Set the outcome; a mitigating outcome stamps mitigated_at (the first mitigation counts)."""
    outcome = params.get("outcome")
    outcomes = record["policy"]["outcomes"]
    if outcome not in outcomes:
        raise IncidentError(f"close needs an outcome, one of {', '.join(outcomes)} (incident_outcome)")
    if outcomes[outcome].get("mitigated"):
        given = params.get("mitigated_at")
        mitigated = parse_time(given, "mitigated_at") if given else None
        if mitigated is None and record.get("mitigated_at"):
            mitigated = parse_time(record["mitigated_at"], "mitigated_at")
        record["mitigated_at"] = format_time(mitigated or now)
    detected = parse_time(record["detected_at"], "detected_at")
    mitigated_at = parse_time(record["mitigated_at"], "mitigated_at") if record.get("mitigated_at") else None
    record.update(
        status="closed",
        outcome=outcome,
        closed_at=format_time(now),
        response_target_met=escalation.response_target_met(detected, mitigated_at, record["response_target_minutes"]),
    )
    text = outcome + (f": {params['note']}" if params.get("note") else "")
    return append_entry(record, {"kind": "lifecycle", "name": "close", "result": text, "changed": False}, now)


def escalation_now(record: Mapping[str, Any], now: dt.datetime) -> Dict[str, Any]:
    """The escalation due for a record: the clock stops at mitigation; some outcomes force a level."""
    detected = parse_time(record["detected_at"], "detected_at")
    at = parse_time(record["mitigated_at"], "mitigated_at") if record.get("mitigated_at") else now
    minimum = 0
    if record.get("outcome"):
        minimum = int(record["policy"]["outcomes"].get(record["outcome"], {}).get("escalate_to_level") or 0)
    state = escalation.escalation_state(record["policy"], detected, max(at, detected), minimum)
    deadline = escalation.response_deadline(detected, record["response_target_minutes"])
    state["response_deadline"] = format_time(deadline)
    state["response_overdue"] = record.get("mitigated_at") is None and now > deadline
    return state


def note_escalation(record: Dict[str, Any], now: dt.datetime) -> Dict[str, Any]:
    """Compute the escalation due now and keep the highest level ever due in the record."""
    state = escalation_now(record, now)
    record["escalation_level"] = max(int(record.get("escalation_level") or 0), state["level"])
    return state


def header(record: Mapping[str, Any]) -> Dict[str, Any]:
    """The record without its timeline and ledger: what notifications and AWX need to know."""
    return {key: value for key, value in record.items() if key not in ("timeline", "notifications")}


# --- the module entry point ------------------------------------------------------------------


def argument_spec() -> Dict[str, Any]:
    return {
        "event": {"type": "str", "required": True, "choices": list(EVENTS)},
        "id": {"type": "str"},
        "job_id": {"type": "str"},
        "dir": {"type": "path", "default": "incidents"},
        "type": {"type": "str", "choices": list(escalation.INCIDENT_TYPES)},
        "tier": {"type": "str"},
        "severity": {"type": "str", "choices": list(escalation.SEVERITIES)},
        "title": {"type": "str"},
        "detected_at": {"type": "str"},
        "response_target_minutes": {"type": "float"},
        "operator": {"type": "str"},
        "targets": {"type": "list", "elements": "str", "default": []},
        "policy": {"type": "dict"},
        "name": {"type": "str"},
        "kind": {"type": "str", "choices": list(STEP_KINDS)},
        "result": {"type": "str"},
        "changed": {"type": "bool"},
        "failed": {"type": "bool"},
        "host": {"type": "str"},
        "details": {"type": "raw"},
        "executed_queries": {"type": "list", "elements": "str", "default": []},
        "actions": {"type": "list", "elements": "raw", "default": []},
        "from_result": {"type": "dict"},
        "outcome": {"type": "str", "choices": list(escalation.OUTCOMES)},
        "mitigated_at": {"type": "str"},
        "note": {"type": "str"},
    }


REQUIRED_IF = [
    ("event", "open", ("type",)),
    ("event", "step", ("name",)),
    ("event", "close", ("outcome",)),
]


def run(params: Mapping[str, Any], check_mode: bool, now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """Apply one event to the record; in check mode compute everything and write nothing.

    A record that cannot be written fails the open (nothing has been done yet). Once the incident is
    open, a step or close that cannot be written is a warning: losing a timeline entry must not stop
    a failover half-way; the audit trail still has the task.
    """
    now = now or now_utc()
    event = params["event"]
    incident_id = resolve_id(params.get("id"), params.get("job_id"), now, may_generate=event == "open")
    paths = incident_paths(params.get("dir") or "incidents", incident_id)
    try:
        return redact_value(apply_event(params, check_mode, now, incident_id, paths))
    except RecordWriteError as exc:
        if event == "open":
            raise
        return {
            "changed": False,
            "written": False,
            "incident": {"id": incident_id},
            "paths": dict(paths),
            "warnings": [f"incident {incident_id}: the {event} could not be recorded completely: {exc}"],
        }


def apply_event(
    params: Mapping[str, Any], check_mode: bool, now: dt.datetime, incident_id: str, paths: Mapping[str, str]
) -> Dict[str, Any]:
    event = params["event"]
    with locked(paths, create=not check_mode):
        record = load_record(paths)
        created = record is None
        if record is None and event != "open":
            if not check_mode:
                raise IncidentError(f"incident {incident_id} has no record in {paths['dir']}: open it first")
            return _unrecorded_result(incident_id, event, paths, check_mode)
        if event == "open":
            policy = build_policy(params, params["type"], params.get("severity"))
            record = record or new_record(incident_id, policy, now)
            entry = apply_open(record, params, policy, now)
        elif event == "step":
            entry = apply_step(record, params, now)
        else:
            entry = apply_close(record, params, now)
        state = note_escalation(record, now)
        summary = summarize(record) if check_mode else save_record(paths, record)
    return {
        "changed": False,
        "written": not check_mode,
        "created": created,
        "incident": header(record),
        "summary": summary,
        "entry": entry,
        "escalation": state,
        "paths": paths,
        "ansible_stats": {"data": {"dbops_incident": summary}, "per_host": False, "aggregate": False},
    }


def _unrecorded_result(incident_id: str, event: str, paths: Mapping[str, str], check_mode: bool) -> Dict[str, Any]:
    """Check mode after a check-mode open: there is no record to change, say so plainly."""
    return {
        "changed": False,
        "written": False,
        "created": False,
        "incident": {"id": incident_id},
        "summary": {"id": incident_id},
        "entry": None,
        "escalation": None,
        "paths": dict(paths),
        "msg": f"check mode: incident {incident_id} has no record yet; the {event} would be recorded once it exists",
    }
