# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups and point-in-time restore for the data integrity runbook: pure rules, no I/O.

pgBackRest configuration text (values checked against the ini grammar it reads), the restore target
(integrity_restore_target, else the incident's detected_at), which backup covers it (or why none
does), which rows of a diff are applied and in which table order. restore_run.py does the I/O; the
lab renders its pgbackrest.conf through pgbackrest_ini (plugins/filter/backups.py).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import SETTING_VALUE

# pgBackRest reads "key=value" lines in "[section]" blocks; a value runs to the end of the line.
# Keys are lower-case words joined by '-' (repo1-path, pg1-socket-path); sections are a stanza
# name or global / global:<command>. Values: the same safe set as PgBouncer's ini (no line break,
# no quote, no comment mark, no '=' or '[' games).
_OPTION_KEY = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_SECTION = re.compile(r"^(global(:[a-z-]+)?|[A-Za-z0-9_.-]{1,63})$")
_STANZA = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")


def check_stanza(stanza: str) -> str:
    if not _STANZA.match(str(stanza or "")):
        raise ValueError("refusing pgBackRest stanza %r: letters, digits, '_', '.', '-' only" % stanza)
    return str(stanza)


def check_option(section: str, key: str, value: Any) -> str:
    """One pgbackrest.conf option as the file will carry it; the value, or ValueError naming it."""
    if not _SECTION.match(str(section or "")):
        raise ValueError("refusing pgBackRest section %r: global, global:<command> or a stanza name" % section)
    if not _OPTION_KEY.match(str(key or "")):
        raise ValueError(
            "refusing pgBackRest option name %r in [%s]: lower-case letters, digits and '-'" % (key, section)
        )
    text = ("y" if value else "n") if isinstance(value, bool) else str(value)
    if not text or not SETTING_VALUE.match(text):
        raise ValueError(
            "refusing the value of pgBackRest option %s in [%s]: letters, digits, spaces and _.,:/@+%%*- only, "
            "no line break, quote or comment mark" % (key, section)
        )
    return text


def pgbackrest_config(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """{section: {option: value}} -> pgbackrest.conf text, every name and value checked (ValueError)."""
    lines = []
    for section, options in sections.items():
        rendered = ["%s=%s" % (key, check_option(section, key, value)) for key, value in options.items()]
        lines.extend(["[%s]" % section, *rendered, ""])
    return "\n".join(lines)


def archive_command(config: str, stanza: str) -> str:
    """The archive_command that pushes each WAL segment with pgBackRest (for postgresql.conf)."""
    return "pgbackrest --config=%s --stanza=%s archive-push %%p" % (
        check_option("global", "config", config),
        check_stanza(stanza),
    )


def parse_time(value: Any, what: str) -> dt.datetime:
    """An ISO time (naive means UTC) -> aware datetime; ValueError naming `what`."""
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value or "").strip().replace("Z", "+00:00")
        if re.match(r".*[+-]\d\d$", text):
            text += ":00"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("%s is not an ISO time: %r" % (what, value)) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def restore_target(explicit: Any, detected_at: Any, now: dt.datetime) -> Dict[str, Any]:
    """The point in time to restore to: integrity_restore_target when given, else the incident's
    detected_at. {target (ISO, UTC), source} or {refused: reason}: none given, not a time, or later
    than now (WAL after now does not exist yet)."""
    for source, value in (("integrity_restore_target", explicit), ("incident detected_at", detected_at)):
        if str(value or "").strip():
            try:
                target = parse_time(value, source)
            except ValueError as error:
                return {"refused": str(error)}
            if target > now:
                return {"refused": "%s %s is in the future" % (source, target.isoformat())}
            return {"target": target.astimezone(dt.timezone.utc).isoformat(), "source": source}
    return {
        "refused": "no restore target: set integrity_restore_target (a time before the damage) or incident_detected_at"
    }


def backups_from_info(info: Any, stanza: str) -> Dict[str, Any]:
    """`pgbackrest info --output=json` -> {stanza_ok, status, backups: [{label, type, start, stop}]}
    (times as epoch seconds, oldest first)."""
    entry = next((item for item in info or [] if item.get("name") == stanza), None)
    if entry is None:
        return {"stanza_ok": False, "status": "stanza %s not in the repository" % stanza, "backups": []}
    status = entry.get("status") or {}
    backups = [
        {
            "label": backup.get("label"),
            "type": backup.get("type"),
            "start": int((backup.get("timestamp") or {}).get("start") or 0),
            "stop": int((backup.get("timestamp") or {}).get("stop") or 0),
            "error": bool(backup.get("error")),
        }
        for backup in entry.get("backup") or []
    ]
    return {
        "stanza_ok": status.get("code") in (0, 2),  # 2: no valid backups (still a stanza)
        "status": status.get("message") or "",
        "backups": sorted(backups, key=lambda backup: backup["stop"]),
    }


def restore_decision(stanza: str, backups: Mapping[str, Any], target: Mapping[str, Any]) -> Dict[str, Any]:
    """Which backup a restore to the target starts from: the newest one without error that ended
    before the target (WAL replays from there). {refused: reason} when there is no stanza, no backup,
    or every backup ended after the target; else {backup, backup_stop, target, source}."""
    if target.get("refused"):
        return {"refused": target["refused"]}
    if not str(stanza or "").strip():
        return {"refused": "no backup to restore from: the tier's primary has no pgBackRest stanza (pgbackrest_stanza)"}
    if not backups.get("stanza_ok"):
        return {"refused": "no backup to restore from: pgBackRest stanza %s: %s" % (stanza, backups.get("status"))}
    usable = [backup for backup in backups.get("backups") or [] if not backup.get("error")]
    if not usable:
        return {"refused": "no backup to restore from: stanza %s has no backup yet" % stanza}
    target_epoch = parse_time(target["target"], "target").timestamp()
    before = [backup for backup in usable if backup["stop"] <= target_epoch]
    if not before:
        earliest = dt.datetime.fromtimestamp(usable[0]["stop"], dt.timezone.utc).isoformat()
        return {
            "refused": "no backup to restore from: every backup of stanza %s ended after %s (the earliest at %s)"
            % (stanza, target["target"], earliest)
        }
    chosen = before[-1]
    return {
        "backup": chosen["label"],
        "backup_stop": dt.datetime.fromtimestamp(chosen["stop"], dt.timezone.utc).isoformat(),
        "target": target["target"],
        "source": target.get("source", ""),
    }


def rows_to_apply(diff: Mapping[str, Sequence[Mapping[str, Any]]]) -> Dict[str, Any]:
    """What integrity_apply_restore writes back from a table's diff: the missing rows (inserted) and
    the changed rows (set back to their restored values). Extra rows (only in the live table: written
    after the target, perhaps legitimately) are never deleted; they are listed for a person."""
    return {
        "insert": [item["key"] for item in diff.get("missing") or []],
        "update": [item["key"] for item in diff.get("changed") or []],
        "left_alone": [item["key"] for item in diff.get("extra") or []],
    }


def apply_order(tables: Sequence[str], references: Sequence[Tuple[str, str]]) -> List[str]:
    """Tables in an order that inserts parents before children: `references` are (child, parent)
    foreign keys between them. Cycles and self references keep the given order for what is left."""
    remaining = list(dict.fromkeys(tables))
    parents = {table: set() for table in remaining}
    for child, parent in references:
        if child in parents and parent in parents and child != parent:
            parents[child].add(parent)
    ordered: List[str] = []
    while remaining:
        ready = [table for table in remaining if not parents[table] - set(ordered)]
        ready = ready or remaining[:1]
        ordered.append(ready[0])
        remaining.remove(ready[0])
    return ordered


def diff_summary(table: str, diff: Mapping[str, Sequence[Mapping[str, Any]]]) -> Dict[str, Any]:
    """A table's diff as counts and keys (what the incident records; the rows themselves are evidence)."""
    return {
        "table": table,
        "missing": [item["key"] for item in diff.get("missing") or []],
        "changed": [item["key"] for item in diff.get("changed") or []],
        "extra": [item["key"] for item in diff.get("extra") or []],
    }


def restore_dir_name(stanza: str, started: dt.datetime) -> str:
    """The throw-away instance's directory under the restore root: one per run."""
    return "%s-%s" % (check_stanza(stanza), started.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f"))


def restored_server_options(port: int, socket_dir: str) -> List[str]:
    """postgres -c settings of the throw-away instance: its own port and socket directory, loopback only,
    archiving off (it must never push WAL into the tier's repository), no synchronous standbys to wait for."""
    settings: List[Optional[Tuple[str, str]]] = [
        ("port", str(int(port))),
        ("listen_addresses", "127.0.0.1"),
        ("unix_socket_directories", check_option("global", "socket", socket_dir)),
        ("archive_mode", "off"),
        ("synchronous_standby_names", ""),
        ("cluster_name", "dbops_restore"),
        ("hot_standby", "on"),
    ]
    return ["-c %s=%s" % (key, value if value else "''") for key, value in settings if key]
