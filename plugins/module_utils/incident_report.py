# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Derived views of an incident record: summary.json and report.md.

Pure functions of the record; nothing here reads or writes files.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ansible_collections.penguinmails.dbops.plugins.module_utils.escalation import parse_utc

STEP_KINDS = ("finding", "decision", "action", "verification", "note")
FINDING_KINDS = ("finding", "decision")


def _parse(value: Optional[str]) -> Optional[dt.datetime]:
    return parse_utc(value) if value else None


def _seconds_between(start: Optional[str], end: Optional[str]) -> Optional[float]:
    first, last = _parse(start), _parse(end)
    if first is None or last is None:
        return None
    return round((last - first).total_seconds(), 3)


def steps(record: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    return [entry for entry in record.get("timeline", []) if entry.get("kind") in STEP_KINDS]


def notifications_by_status(record: Mapping[str, Any], status: str) -> List[Mapping[str, Any]]:
    return [entry for entry in record.get("notifications", []) if entry.get("status") == status]


def summarize(record: Mapping[str, Any]) -> Dict[str, Any]:
    """summary.json: the fields an AWX workflow branches on."""
    step_entries = steps(record)
    return {
        "id": record["id"],
        "type": record["type"],
        "tier": record.get("tier"),
        "severity": record.get("severity"),
        "status": record.get("status"),
        "outcome": record.get("outcome"),
        "detected_at": record.get("detected_at"),
        "mitigated_at": record.get("mitigated_at"),
        "closed_at": record.get("closed_at"),
        "response_target_minutes": record.get("response_target_minutes"),
        "response_target_met": record.get("response_target_met"),
        "time_to_mitigate_seconds": _seconds_between(record.get("detected_at"), record.get("mitigated_at")),
        "steps": len(step_entries),
        "changed_steps": sum(1 for entry in step_entries if entry.get("changed")),
        "failed_steps": sum(1 for entry in step_entries if entry.get("failed")),
        "runs": len(record.get("runs", [])),
        "operators": list(record.get("operators", [])),
        "targets": list(record.get("targets", [])),
        "escalation_level": record.get("escalation_level", 0),
        "notifications_sent": len(notifications_by_status(record, "sent")),
        "notifications_failed": len(notifications_by_status(record, "failed")),
        "report": "report.md",
        "audit_file": "audit.jsonl",
        "audit_dropped": int(record.get("audit_dropped") or 0),
    }


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def duration_text(seconds: Optional[float]) -> str:
    if seconds is None:
        return "n/a"
    whole = round(seconds)
    minutes, rest = divmod(abs(whole), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> List[str]:
    headers = list(headers)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows)
    return lines


def _sla_text(record: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    target = record.get("response_target_minutes")
    if record.get("mitigated_at"):
        taken = duration_text(summary["time_to_mitigate_seconds"])
        verdict = "met" if record.get("response_target_met") else "missed"
        return f"response target {target:g} min {verdict}: mitigated {taken} after detection"
    if record.get("status") == "closed":
        return f"response target {target:g} min missed: closed as {record.get('outcome')} without mitigation"
    return f"response target {target:g} min: not mitigated yet"


def render_header(record: Mapping[str, Any], summary: Mapping[str, Any]) -> List[str]:
    severity = record.get("policy", {}).get("severity", {})
    levels = record.get("policy", {}).get("levels", [])
    status = record.get("status")
    if record.get("outcome"):
        status = f"{status} ({record['outcome']})"
    rows = [
        ("Type", f"{record.get('type_label', record['type'])} (`{record['type']}`)"),
        ("Tier", record.get("tier") or "n/a"),
        ("Severity", f"{record.get('severity')} — {severity.get('description', '')}".rstrip(" —")),
        ("Status", status),
        ("Detected", record.get("detected_at")),
        ("Mitigated", record.get("mitigated_at") or "not yet"),
        ("Closed", record.get("closed_at") or "not yet"),
        ("SLA", _sla_text(record, summary)),
        ("Escalation level", f"{record.get('escalation_level', 0)} of {len(levels)}"),
        ("Operators", ", ".join(record.get("operators", []))),
        ("Targets", ", ".join(record.get("targets", [])) or "n/a"),
        ("Runs", len(record.get("runs", []))),
    ]
    title = f"# Incident {record['id']}"
    if record.get("title"):
        title += f": {record['title']}"
    return [title, "", *_table(("Field", "Value"), rows), ""]


def render_timeline(record: Mapping[str, Any]) -> List[str]:
    rows = [
        (
            entry.get("at"),
            entry.get("run"),
            entry.get("kind"),
            entry.get("name"),
            entry.get("host") or "",
            entry.get("result") or "",
            "yes" if entry.get("changed") else "no",
        )
        for entry in record.get("timeline", [])
    ]
    return ["## Timeline", "", *_table(("Time (UTC)", "Run", "Kind", "Step", "Host", "Result", "Changed"), rows), ""]


def _details_block(details: Any) -> List[str]:
    if details in (None, "", {}, []):
        return []
    if isinstance(details, str):
        return ["", "  " + details.replace("\n", "\n  ")]
    body = json.dumps(details, indent=2, default=str).splitlines()
    return ["", "  ```json", *("  " + line for line in body), "  ```"]


def render_entries(title: str, entries: List[Mapping[str, Any]], empty: str) -> List[str]:
    lines = [f"## {title}", ""]
    if not entries:
        return [*lines, empty, ""]
    for entry in entries:
        where = f" on {entry['host']}" if entry.get("host") else ""
        when = f"run {entry.get('run')}, {entry.get('at')}"
        lines.append(f"- **{entry.get('name')}**{where} ({when}): {entry.get('result')}")
        lines.extend(_details_block(entry.get("details")))
    return [*lines, ""]


def _action_text(action: Any) -> str:
    return action if isinstance(action, str) else json.dumps(action, default=str, sort_keys=True)


def render_actions(entries: List[Mapping[str, Any]]) -> List[str]:
    lines = ["## Actions", ""]
    if not entries:
        return [*lines, "No action was taken.", ""]
    for entry in entries:
        where = f" on {entry['host']}" if entry.get("host") else ""
        changed = "changed" if entry.get("changed") else "no change"
        lines.append(f"### {entry.get('name')}{where}")
        lines.extend(["", f"Run {entry.get('run')}, {entry.get('at')}: {entry.get('result')} ({changed})."])
        if entry.get("executed_queries"):
            lines.extend(["", "Statements executed:", "", "```sql", *entry["executed_queries"], "```"])
        if entry.get("actions"):
            lines.extend(["", "Actions reported:", ""])
            lines.extend(f"- {_action_text(action)}" for action in entry["actions"])
        lines.extend(_details_block(entry.get("details")))
        lines.append("")
    return lines


def render_notifications(record: Mapping[str, Any]) -> List[str]:
    entries = record.get("notifications", [])
    lines = ["## Notifications (who was told)", ""]
    if not entries:
        return [*lines, "No notification was sent (no channel configured, or none due).", ""]
    rows = [
        (
            entry.get("at"),
            entry.get("channel"),
            entry.get("event"),
            entry.get("level") or "",
            ", ".join(entry.get("recipients") or []),
            entry.get("status") + (f": {entry['error']}" if entry.get("error") else ""),
        )
        for entry in entries
    ]
    return [*lines, *_table(("Time (UTC)", "Channel", "Event", "Level", "Recipients", "Status"), rows), ""]


def render_report(record: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """report.md: timeline, findings, actions with their exact statements, verification, SLA, notifications."""
    entries = steps(record)
    lines = [
        *render_header(record, summary),
        *render_timeline(record),
        *render_entries("Findings", [e for e in entries if e.get("kind") in FINDING_KINDS], "No finding recorded."),
        *render_actions([e for e in entries if e.get("kind") == "action"]),
        *render_entries("Verification", [e for e in entries if e.get("kind") == "verification"], "Not verified yet."),
        *render_entries("Notes", [e for e in entries if e.get("kind") == "note"], "None."),
        "## SLA outcome",
        "",
        _sla_text(record, summary) + ".",
        "",
        *render_notifications(record),
        "## Audit trail",
        "",
        "Every task of every run is in `audit.jsonl` (hash-chained). Check it with",
        "`ansible-playbook penguinmails.dbops.audit_verify -e audit_file=<this directory>/audit.jsonl`.",
        "",
        *_dropped_text(summary),
    ]
    return "\n".join(lines)


def _dropped_text(summary: Mapping[str, Any]) -> List[str]:
    if not summary["audit_dropped"]:
        return []
    return [f"**{summary['audit_dropped']} audit line(s) could not be written**: the trail is incomplete.", ""]
