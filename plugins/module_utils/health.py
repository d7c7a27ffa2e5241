# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health checks of one PostgreSQL server, graded like check_postgres.

Three layers, each testable on its own:

* SQL: `health_statement` composes ONE statement from the fragments of the
  checks asked for; it reads every cluster-wide figure and the sequences of
  the login database. Sequences live per database, so each further database
  costs one connection and one statement (`SEQUENCE_QUERY`).
* figures: `figures_from_row` turns that row into plain data.
* grading: `grade` (pure functions, no I/O) turns figures and thresholds into
  findings `{check, status, value, threshold, unit, subject, message}`.

Statuses follow check_postgres/Nagios: OK, WARNING, CRITICAL and UNKNOWN
(the check could not be evaluated). A figure at or above a threshold reaches
that level; a threshold of None disables that level.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from ansible_collections.penguinmails.dbops.plugins.module_utils.findings import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    Finding,
    crossed,
    finding,
    level,
    worst,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.node_info import json_safe
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    close_quietly,
    connect,
    fetch_dicts,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import redact_value

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module through HAS_PSYCOPG2
    sql = None


CHECKS = (
    "connection",
    "backends",
    "txn_idle",
    "txn_time",
    "query_time",
    "lockwait",
    "hot_standby_delay",
    "replication_slots",
    "txn_wraparound",
    "sequence",
    "deadlocks",
    "conflicts",
    "checksum_failures",
    "invalid_indexes",
    "logins",
)

# What runs when the caller does not say. The two checks left out are for triage:
# invalid indexes of the login database, and who is logged in (by role, superuser or
# not, client address), which a security triage grades against its own allow lists.
DEFAULT_CHECKS = tuple(check for check in CHECKS if check not in ("invalid_indexes", "logins"))

# Defaults, also the module's documented defaults. Units: backends and sequence in percent,
# times in seconds, WAL in bytes, wraparound in transaction ids, counters in events.
DEFAULT_THRESHOLDS: Dict[str, Dict[str, Any]] = {
    "backends": {"warning": 80.0, "critical": 90.0},
    "txn_idle": {"warning": 60.0, "critical": 300.0},
    "txn_time": {"warning": 300.0, "critical": 1800.0},
    "query_time": {"warning": 5.0, "critical": 60.0},
    "lockwait": {"warning": 10.0, "critical": 60.0},
    "hot_standby_delay": {
        "warning": 64 * 1024**2,
        "critical": 1024**3,
        "warning_seconds": 60.0,
        "critical_seconds": 300.0,
    },
    "replication_slots": {"warning": 1024**3, "critical": 10 * 1024**3},
    "txn_wraparound": {"warning": 1_300_000_000, "critical": 1_400_000_000},
    "sequence": {"warning": 85.0, "critical": 95.0},
    "deadlocks": {"warning": 100, "critical": None},
    "conflicts": {"warning": 100, "critical": None},
    "checksum_failures": {"warning": None, "critical": 1},
    "invalid_indexes": {"warning": 1, "critical": None},
}

# The module's `thresholds` option: per check, its levels, their type and documented default.
# Byte thresholds accept Ansible's human units (binary: 1MB = 1048576 bytes).
_THRESHOLD_OPTIONS: Dict[str, Dict[str, Any]] = {
    "backends": {"warning": ("float", 80.0), "critical": ("float", 90.0)},
    "txn_idle": {"warning": ("float", 60.0), "critical": ("float", 300.0)},
    "txn_time": {"warning": ("float", 300.0), "critical": ("float", 1800.0)},
    "query_time": {"warning": ("float", 5.0), "critical": ("float", 60.0)},
    "lockwait": {"warning": ("float", 10.0), "critical": ("float", 60.0)},
    "hot_standby_delay": {
        "warning": ("bytes", "64MB"),
        "critical": ("bytes", "1GB"),
        "warning_seconds": ("float", 60.0),
        "critical_seconds": ("float", 300.0),
    },
    "replication_slots": {"warning": ("bytes", "1GB"), "critical": ("bytes", "10GB")},
    "txn_wraparound": {"warning": ("int", 1300000000), "critical": ("int", 1400000000)},
    "sequence": {"warning": ("float", 85.0), "critical": ("float", 95.0)},
    "deadlocks": {"warning": ("int", 100), "critical": ("int", None)},
    "conflicts": {"warning": ("int", 100), "critical": ("int", None)},
    "checksum_failures": {"warning": ("int", None), "critical": ("int", 1)},
    "invalid_indexes": {"warning": ("int", 1), "critical": ("int", None)},
}


def thresholds_argument_spec() -> Dict[str, Any]:
    """argument_spec of the `thresholds` option (documented in the pg_health module)."""
    options = {}
    for check, levels in _THRESHOLD_OPTIONS.items():
        level_options = {}
        for name, (kind, default) in levels.items():
            level_options[name] = {"type": kind} if default is None else {"type": kind, "default": default}
        options[check] = {"type": "dict", "apply_defaults": True, "options": level_options}
    return {"type": "dict", "apply_defaults": True, "options": options}


TOP_SESSIONS = 10
TOP_SEQUENCES = 10
QUERY_PREVIEW = 100

Figures = Dict[str, Any]


# --------------------------------------------------------------------------- grading helpers


def graded(
    check: str, value: Optional[float], limits: Dict[str, Any], message: str, unit: str, subject: Optional[str] = None
) -> Finding:
    """One finding for `value` against limits['warning'] / limits['critical']."""
    warning, critical = limits.get("warning"), limits.get("critical")
    status = level(value, warning, critical)
    return finding(check, status, value, crossed(status, warning, critical), message, unit, subject)


def human_seconds(seconds: Optional[float]) -> str:
    if seconds is None:
        return "unknown time"
    if seconds < 120:
        return "%.1f s" % seconds
    if seconds < 7200:
        return "%.1f min" % (seconds / 60)
    if seconds < 172800:
        return "%.1f h" % (seconds / 3600)
    return "%.1f days" % (seconds / 86400)


def human_bytes(count: Optional[float]) -> str:
    if count is None:
        return "unknown"
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "bytes" else ("%.1f %s" % (value, unit))
        value /= 1024
    return "%d bytes" % count  # pragma: no cover


def thousands(number: int) -> str:
    return f"{number:,}"


def describe_session(session: Dict[str, Any]) -> str:
    """'pid 4242 (app_user@penguinmails_oltp, app "api", 10.0.0.5)'."""
    who = "%s@%s" % (session.get("user") or "?", session.get("database") or "?")
    extras = [who]
    if session.get("application_name"):
        extras.append('app "%s"' % session["application_name"])
    if session.get("client_addr"):
        extras.append(session["client_addr"])
    return "pid %s (%s)" % (session.get("pid"), ", ".join(extras))


def query_preview(session: Dict[str, Any]) -> str:
    query = " ".join(str(session.get("query") or "").split())
    return (": %s" % query) if query else ""


# --------------------------------------------------------------------------- graders, one per check


def grade_connection(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    connect_ms = figures.get("connect_ms")
    return [
        finding(
            "connection",
            OK,
            connect_ms,
            None,
            "accepted a connection in %.1f ms and answered" % (connect_ms or 0),
            "ms",
        )
    ]


def grade_backends(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    backends = figures["backends"]
    usable = backends["usable_connections"]
    used = backends["client_backends"]
    percent = backends["percent_used"]
    message = "%d of %d usable connection slots in use (%.1f%%; max_connections %d minus %d reserved)" % (
        used,
        usable,
        percent if percent is not None else 0.0,
        backends["max_connections"],
        backends["max_connections"] - usable,
    )
    return [graded("backends", percent, limits, message, "%")]


def _grade_sessions(check: str, what: str, block: Dict[str, Any], limits: Dict[str, Any]) -> List[Finding]:
    """Findings for the longest sessions of a kind: one per session past a threshold, else one OK."""
    sessions = block.get("top") or []
    findings = []
    for session in sessions:
        found = graded(
            check,
            session["seconds"],
            limits,
            "%s %s for %s%s"
            % (describe_session(session), what, human_seconds(session["seconds"]), query_preview(session)),
            "s",
            "pid %s" % session["pid"],
        )
        if found["status"] != OK:
            findings.append(found)
    if findings:
        beyond = block.get("count", 0) - len(sessions)
        if beyond > 0:
            findings[-1]["message"] += " (and %d shorter sessions not listed)" % beyond
        return findings
    longest = sessions[0]["seconds"] if sessions else 0.0
    if sessions:
        message = "longest %s: %s, %s" % (what, human_seconds(longest), describe_session(sessions[0]))
    else:
        message = "no session %s" % what
    return [graded(check, longest, limits, message, "s")]


def grade_txn_idle(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    return _grade_sessions("txn_idle", "idle in transaction", figures["txn_idle"], limits)


def grade_txn_time(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    return _grade_sessions("txn_time", "in an open transaction", figures["txn_time"], limits)


def grade_query_time(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    return _grade_sessions("query_time", "running one query", figures["query_time"], limits)


def blocking_chains(waits: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Group lock waits into trees under the sessions at their roots.

    `waits` are sessions waiting for a lock, each with `pid`, `blocked_by` (from
    pg_blocking_pids) and `seconds` waited. A root is a blocker that is not itself
    waiting. Returns one chain per root, most sessions blocked first:
    {root, blocked (pids, sorted), depth, longest_wait_seconds}. Cycles (a deadlock
    the server has not broken yet) are reported under their lowest pid.
    """
    waiting = {wait["pid"]: wait for wait in waits}
    children: Dict[int, List[int]] = {}
    for wait in waits:
        for blocker in wait.get("blocked_by") or []:
            children.setdefault(blocker, []).append(wait["pid"])
    roots = sorted(pid for pid in children if pid not in waiting)
    covered: set = set()
    chains = []

    def walk(root: int) -> Dict[str, Any]:
        blocked, depth, frontier = set(), 0, [root]
        seen = {root}
        while frontier:
            following = []
            for pid in frontier:
                for child in children.get(pid, []):
                    if child not in seen:
                        seen.add(child)
                        blocked.add(child)
                        following.append(child)
            if following:
                depth += 1
            frontier = following
        covered.update(seen)
        longest = max((waiting[pid].get("seconds") or 0.0 for pid in blocked), default=0.0)
        return {"root": root, "blocked": sorted(blocked), "depth": depth, "longest_wait_seconds": longest}

    for root in roots:
        chains.append(walk(root))
    for pid in sorted(waiting):  # waits left over belong to cycles
        if pid not in covered:
            chains.append(walk(pid))
    chains.sort(key=lambda chain: (-len(chain["blocked"]), chain["root"]))
    return chains


def grade_lockwait(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    locks = figures["lockwait"]
    chains = locks.get("chains") or []
    if not chains:
        return [graded("lockwait", 0.0, limits, "no session is waiting for a lock", "s")]
    blockers = {blocker["pid"]: blocker for blocker in locks.get("blockers") or []}
    waits = {wait["pid"]: wait for wait in locks.get("waits") or []}
    findings = []
    for chain in chains:
        root = blockers.get(chain["root"]) or waits.get(chain["root"]) or {"pid": chain["root"]}
        state = root.get("state") or "unknown state"
        if root.get("xact_seconds") is not None:
            state += ", transaction open %s" % human_seconds(root["xact_seconds"])
        message = "%s [%s] blocks %d session(s) %s, chain depth %d; longest wait %s%s" % (
            describe_session(root),
            state,
            len(chain["blocked"]),
            "(pids %s)" % ", ".join(str(pid) for pid in chain["blocked"]),
            chain["depth"],
            human_seconds(chain["longest_wait_seconds"]),
            query_preview(root),
        )
        findings.append(
            graded("lockwait", chain["longest_wait_seconds"], limits, message, "s", "pid %s" % chain["root"])
        )
    return findings


def grade_hot_standby_delay(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    """Standby: its own replay backlog. Primary (or cascading standby): each replica's lag."""
    delay = figures["hot_standby_delay"]
    bytes_limits = {"warning": limits.get("warning"), "critical": limits.get("critical")}
    seconds_limits = {"warning": limits.get("warning_seconds"), "critical": limits.get("critical_seconds")}
    findings: List[Finding] = []
    standby = delay.get("standby")
    if standby:
        backlog = standby.get("replay_backlog_bytes")
        paused = " (replay is paused)" if standby.get("replay_paused") else ""
        findings.append(
            graded(
                "hot_standby_delay",
                backlog,
                bytes_limits,
                "this standby has %s of received WAL not yet replayed%s" % (human_bytes(backlog), paused),
                "bytes",
                "replay backlog",
            )
        )
        seconds = standby.get("replay_delay_seconds")
        if seconds is not None and (backlog is None or backlog > 0):
            findings.append(
                graded(
                    "hot_standby_delay",
                    seconds,
                    seconds_limits,
                    "this standby last replayed a transaction %s ago while WAL is waiting%s"
                    % (human_seconds(seconds), paused),
                    "s",
                    "replay delay",
                )
            )
        receiver = standby.get("receiver_status")
        if receiver != "streaming":
            findings.append(
                finding(
                    "hot_standby_delay",
                    WARNING,
                    receiver,
                    "streaming",
                    "WAL receiver is %s, not streaming: this standby is not receiving WAL from its upstream"
                    % (receiver or "not running"),
                    None,
                    "wal receiver",
                )
            )
    for replica in delay.get("replicas") or []:
        name = replica.get("application_name") or replica.get("client_addr") or "?"
        lag_bytes = replica.get("replay_lag_bytes")
        findings.append(
            graded(
                "hot_standby_delay",
                lag_bytes,
                bytes_limits,
                "replica %s (%s, %s) is %s behind in replay"
                % (name, replica.get("state"), replica.get("sync_state"), human_bytes(lag_bytes)),
                "bytes",
                "replica %s" % name,
            )
        )
        lag_seconds = replica.get("replay_lag_seconds")
        # A replica that has replayed everything keeps showing the lag of its last record for a
        # while (until two idle status replies): history, not a current delay.
        if lag_seconds is not None and (lag_bytes is None or lag_bytes > 0):
            findings.append(
                graded(
                    "hot_standby_delay",
                    lag_seconds,
                    seconds_limits,
                    "replica %s replays %s behind" % (name, human_seconds(lag_seconds)),
                    "s",
                    "replica %s" % name,
                )
            )
    if not findings:
        return [finding("hot_standby_delay", OK, 0, bytes_limits["warning"], "primary without replicas", "bytes")]
    problems = [found for found in findings if found["status"] != OK]
    if problems:
        return problems
    largest = max(findings, key=lambda found: (found["unit"] == "bytes", found["value"] or 0))
    summary = "; ".join(found["message"] for found in findings)
    return [dict(largest, message=summary)]


def grade_replication_slots(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    slots = figures["replication_slots"]
    findings = []
    for slot in slots:
        retained = slot.get("retained_bytes")
        activity = "active" if slot.get("active") else "inactive"
        message = "%s %s slot %s retains %s of WAL (wal_status %s)" % (
            activity,
            slot.get("slot_type"),
            slot["slot_name"],
            human_bytes(retained),
            slot.get("wal_status"),
        )
        found = graded("replication_slots", retained, limits, message, "bytes", "slot %s" % slot["slot_name"])
        if slot.get("wal_status") == "lost":
            found.update(status=CRITICAL, message=message + ": the WAL it needs is gone, its consumer must be rebuilt")
        elif slot.get("wal_status") == "unreserved" and found["status"] == OK:
            found.update(status=WARNING, message=message + ": WAL beyond max_wal_size, about to be lost")
        elif retained is None and found["status"] == UNKNOWN:
            found.update(status=OK, message=message)
        findings.append(found)
    problems = [found for found in findings if found["status"] != OK]
    if problems:
        return problems
    if not slots:
        return [graded("replication_slots", 0, limits, "no replication slots", "bytes")]
    largest = max(findings, key=lambda found: found["value"] or 0)
    return [dict(largest, message="%d slot(s); largest: %s" % (len(slots), largest["message"]))]


def grade_txn_wraparound(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    databases = figures["databases"]
    findings = []
    for database in databases:
        for column, what in (("xid_age", "transaction ID"), ("mxid_age", "multixact ID")):
            age = database.get(column)
            message = "database %s: oldest unfrozen %s is %s transactions old (%.1f%% of the way to wraparound)" % (
                database["database"],
                what,
                thousands(age or 0),
                100.0 * (age or 0) / 2**31,
            )
            found = graded("txn_wraparound", age, limits, message, "xids", "database %s" % database["database"])
            if found["status"] != OK:
                findings.append(found)
    if findings:
        return findings
    oldest = max(databases, key=lambda database: database.get("xid_age") or 0, default=None)
    if oldest is None:
        return [graded("txn_wraparound", 0, limits, "no databases", "xids")]
    return [
        graded(
            "txn_wraparound",
            oldest["xid_age"],
            limits,
            "oldest: database %s at %s transactions" % (oldest["database"], thousands(oldest["xid_age"])),
            "xids",
            "database %s" % oldest["database"],
        )
    ]


def describe_sequence(database: str, sequence: Dict[str, Any]) -> str:
    name = "%s.%s.%s" % (database, sequence["schema"], sequence["sequence"])
    owner = ""
    if sequence.get("owner_table"):
        owner = ", feeds %s.%s (%s)" % (sequence["owner_table"], sequence["owner_column"], sequence["column_type"])
    return "sequence %s is %.1f%% used, %s values left%s" % (
        name,
        sequence["percent_used"],
        thousands(sequence["remaining"]) if sequence.get("remaining") is not None else "unknown",
        owner,
    )


def grade_sequence(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    per_database = figures["sequences"]
    findings: List[Finding] = []
    fullest = None
    for database, block in per_database.items():
        if block.get("error"):
            findings.append(
                finding("sequence", UNKNOWN, None, None, "database %s: %s" % (database, block["error"]), "%")
            )
            continue
        for sequence in block.get("top") or []:
            found = graded(
                "sequence",
                sequence["percent_used"],
                limits,
                describe_sequence(database, sequence),
                "%",
                "sequence %s.%s.%s" % (database, sequence["schema"], sequence["sequence"]),
            )
            if found["status"] != OK:
                findings.append(found)
            elif fullest is None or found["value"] > fullest["value"]:
                fullest = found
    if findings:
        return findings
    if fullest is not None:
        return [fullest]
    checked = ", ".join(sorted(per_database)) or "none"
    return [graded("sequence", 0.0, limits, "no used sequences in database(s) %s" % checked, "%")]


def _grade_counter(check: str, column: str, what: str) -> Callable[[Figures, Dict[str, Any]], List[Finding]]:
    def grade_counter(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
        rows = figures["database_counters"]
        findings = []
        total = 0
        for row in rows:
            count = row.get(column)
            if count is None:
                continue
            total += count
            database = row.get("database") or "(shared catalogs)"
            since = row.get("stats_reset") or "statistics began"
            message = "database %s: %d %s since %s" % (database, count, what, since)
            if column == "checksum_failures" and row.get("checksum_last_failure"):
                message += ", last at %s" % row["checksum_last_failure"]
            found = graded(check, count, limits, message, "count", "database %s" % database)
            if found["status"] != OK:
                findings.append(found)
        if findings:
            return findings
        if column == "checksum_failures" and all(row.get(column) is None for row in rows):
            return [finding(check, OK, None, None, "data checksums are disabled on this cluster", "count")]
        return [graded(check, total, limits, "%d %s in all databases" % (total, what), "count")]

    return grade_counter


def grade_invalid_indexes(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    """Indexes of the login database left invalid (a failed CREATE or REINDEX CONCURRENTLY).

    An index being built right now is invalid until the build ends: it is not counted.
    """
    rows = figures["invalid_indexes"]
    database = figures.get("current_database") or "?"
    invalid = [row for row in rows if not row.get("being_built")]
    if not invalid:
        return [graded("invalid_indexes", 0, limits, "database %s: no invalid index" % database, "count")]
    names = []
    for row in invalid[:TOP_SESSIONS]:
        traits = ["unique"] if row.get("is_unique") else []
        if not row.get("is_ready"):
            traits.append("not maintained by writes")
        names.append(
            "%s.%s on %s%s" % (row["schema"], row["index"], row["table"], " (%s)" % ", ".join(traits) if traits else "")
        )
    if len(invalid) > len(names):
        names.append("and %d more" % (len(invalid) - len(names)))
    message = "database %s: %d invalid index(es), not used by queries: %s" % (database, len(invalid), "; ".join(names))
    message += "; rebuild with REINDEX INDEX CONCURRENTLY, or drop"
    return [graded("invalid_indexes", len(invalid), limits, message, "count", "database %s" % database)]


def grade_logins(figures: Figures, limits: Dict[str, Any]) -> List[Finding]:
    """Who is logged in. Always OK: whether a login is expected is the caller's policy (triage)."""
    groups = figures["logins"]
    sessions = sum(group.get("sessions") or 0 for group in groups)
    roles = sorted({group.get("user") or "?" for group in groups})
    addresses = {group.get("client_addr") or "local" for group in groups}
    superusers = sorted({group.get("user") or "?" for group in groups if group.get("superuser")})
    superuser_sessions = sum(group.get("sessions") or 0 for group in groups if group.get("superuser"))
    message = "%d session(s) of %d role(s) from %d address(es); %d superuser session(s)%s" % (
        sessions,
        len(roles),
        len(addresses),
        superuser_sessions,
        " (%s)" % ", ".join(superusers) if superusers else "",
    )
    return [finding("logins", OK, sessions, None, message, "count")]


GRADERS: Dict[str, Callable[[Figures, Dict[str, Any]], List[Finding]]] = {
    "connection": grade_connection,
    "backends": grade_backends,
    "txn_idle": grade_txn_idle,
    "txn_time": grade_txn_time,
    "query_time": grade_query_time,
    "lockwait": grade_lockwait,
    "hot_standby_delay": grade_hot_standby_delay,
    "replication_slots": grade_replication_slots,
    "txn_wraparound": grade_txn_wraparound,
    "sequence": grade_sequence,
    "deadlocks": _grade_counter("deadlocks", "deadlocks", "deadlocks"),
    "conflicts": _grade_counter("conflicts", "conflicts", "queries cancelled by recovery conflicts"),
    "checksum_failures": _grade_counter("checksum_failures", "checksum_failures", "data page checksum failures"),
    "invalid_indexes": grade_invalid_indexes,
    "logins": grade_logins,
}


def merged_thresholds(overrides: Optional[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Defaults with the caller's values on top (a None inside overrides disables that level)."""
    merged = {check: dict(limits) for check, limits in DEFAULT_THRESHOLDS.items()}
    for check, limits in (overrides or {}).items():
        if limits:
            merged.setdefault(check, {}).update(limits)
    return merged


def grade(figures: Figures, thresholds: Dict[str, Dict[str, Any]], checks: Sequence[str]) -> List[Finding]:
    """All findings for the checks asked for, in CHECKS order. Pure."""
    findings: List[Finding] = []
    for check in CHECKS:
        if check in checks:
            findings.extend(GRADERS[check](figures, thresholds.get(check, {})))
    return findings


def summarize(findings: Sequence[Finding]) -> Dict[str, Any]:
    """Overall status, the status of each check, and the findings that are not OK."""
    per_check: Dict[str, str] = {}
    for found in findings:
        per_check[found["check"]] = worst([per_check.get(found["check"], OK), found["status"]])
    return {
        "status": worst(per_check.values()),
        "checks": per_check,
        "problems": [found for found in findings if found["status"] != OK],
    }


# --------------------------------------------------------------------------- SQL

# pg_stat_activity is read once per statement: every view reference costs planning time,
# which is most of the statement's cost on a quiet server.
_ACTIVITY_CTE = """activity AS MATERIALIZED (
    SELECT pid, usename AS "user", datname AS database, application_name, host(client_addr) AS client_addr,
           state, wait_event_type, wait_event, backend_type, xact_start, query_start, state_change,
           left(query, {preview}) AS query
    FROM pg_stat_activity)"""

_SESSION_COLUMNS = """pid, "user", database, application_name, client_addr, state, wait_event_type, wait_event, query"""

_SESSIONS_TEMPLATE = """(SELECT json_build_object(
      'count', count(*),
      'top', coalesce(json_agg(s ORDER BY s.seconds DESC) FILTER (WHERE s.rank <= {top}), '[]'))
    FROM (SELECT {columns},
             round(EXTRACT(EPOCH FROM now() - {since})::numeric, 1)::float8 AS seconds,
             row_number() OVER (ORDER BY {since}) AS rank
          FROM activity
          WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND {where}) s) AS {name}"""


def _sessions_fragment(name: str, since: str, where: str) -> str:
    return _SESSIONS_TEMPLATE.format(name=name, since=since, where=where, columns=_SESSION_COLUMNS, top=TOP_SESSIONS)


# On a standby the newest WAL it has is what it received (or replayed, if streaming never started).
_LOCAL_LSN = (
    "CASE WHEN pg_is_in_recovery() "
    "THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) ELSE pg_current_wal_lsn() END"
)

_BACKENDS = """(SELECT json_build_object(
      'max_connections', current_setting('max_connections')::int,
      'superuser_reserved_connections', current_setting('superuser_reserved_connections')::int,
      'reserved_connections', coalesce(nullif(current_setting('reserved_connections', true), ''), '0')::int,
      'client_backends', count(*),
      'active', count(*) FILTER (WHERE state = 'active'),
      'idle', count(*) FILTER (WHERE state = 'idle'),
      'idle_in_transaction', count(*) FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')),
      'waiting_on_lock', count(*) FILTER (WHERE wait_event_type = 'Lock'))
    FROM activity WHERE backend_type = 'client backend') AS backends"""

_LOCKWAIT = """(WITH waits AS MATERIALIZED (
        SELECT a.pid, a."user", a.database, a.application_name, a.client_addr, a.state, a.wait_event,
               pg_blocking_pids(a.pid) AS blocked_by,
               round(EXTRACT(EPOCH FROM now() - coalesce(l.wait_start, a.query_start))::numeric, 1)::float8 AS seconds,
               a.query
        FROM activity a
        LEFT JOIN (SELECT pid, min({waitstart}) AS wait_start FROM pg_locks WHERE NOT granted GROUP BY pid) l
               ON l.pid = a.pid
        WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid())
    SELECT json_build_object(
      'waits', (SELECT coalesce(json_agg(w ORDER BY w.seconds DESC), '[]') FROM waits w),
      'blockers', (SELECT coalesce(json_agg(b ORDER BY b.pid), '[]') FROM (
          SELECT pid, "user", database, application_name, client_addr, state, wait_event_type, backend_type,
                 round(EXTRACT(EPOCH FROM now() - xact_start)::numeric, 1)::float8 AS xact_seconds,
                 round(EXTRACT(EPOCH FROM now() - state_change)::numeric, 1)::float8 AS state_seconds,
                 query
          FROM activity
          WHERE pid IN (SELECT unnest(blocked_by) FROM waits)) b))) AS lockwait"""

_HOT_STANDBY_DELAY = """CASE WHEN pg_is_in_recovery() THEN json_build_object(
      'receive_lsn', pg_last_wal_receive_lsn()::text,
      'replay_lsn', pg_last_wal_replay_lsn()::text,
      'replay_backlog_bytes', pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,
      'last_replay_timestamp', pg_last_xact_replay_timestamp(),
      'seconds_since_last_replay',
          round(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::numeric, 1)::float8,
      'replay_paused', pg_is_wal_replay_paused(),
      'receiver_status', (SELECT status FROM pg_stat_wal_receiver)) END AS standby,
  (SELECT coalesce(json_agg(r ORDER BY r.application_name), '[]') FROM (
      SELECT application_name, host(client_addr) AS client_addr, state, sync_state,
             pg_wal_lsn_diff({local_lsn}, replay_lsn)::bigint AS replay_lag_bytes,
             round(EXTRACT(EPOCH FROM replay_lag)::numeric, 1)::float8 AS replay_lag_seconds
      FROM pg_stat_replication) r) AS replicas"""

_REPLICATION_SLOTS = """(SELECT coalesce(json_agg(s ORDER BY s.slot_name), '[]') FROM (
      SELECT slot_name, slot_type, database, active, wal_status, safe_wal_size,
             pg_wal_lsn_diff({local_lsn}, restart_lsn)::bigint AS retained_bytes,
             age(coalesce(xmin, catalog_xmin)) AS xmin_age
      FROM pg_replication_slots) s) AS replication_slots"""

_DATABASES = """(SELECT coalesce(json_agg(d ORDER BY d.xid_age DESC, d.database), '[]') FROM (
      SELECT datname AS database, age(datfrozenxid) AS xid_age, mxid_age(datminmxid) AS mxid_age,
             datallowconn AS allows_connections, datistemplate AS is_template
      FROM pg_database) d) AS databases"""

_DATABASE_COUNTERS = """(SELECT coalesce(json_agg(c ORDER BY c.database NULLS FIRST), '[]') FROM (
      SELECT datname AS database, deadlocks, conflicts, checksum_failures, checksum_last_failure, stats_reset
      FROM pg_stat_database) c) AS database_counters"""

# Invalid indexes of the login database (pg_index is per database). No size: reading it
# would lock the index, and a DROP INDEX waiting there would make this statement wait.
_INVALID_INDEXES = """(SELECT coalesce(json_agg(i ORDER BY i.schema, i.index), '[]') FROM (
      SELECT n.nspname AS schema, c.relname AS index, t.relname AS "table", x.indisunique AS is_unique,
             x.indisready AS is_ready,
             EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid) AS being_built
      FROM pg_index x
      JOIN pg_class c ON c.oid = x.indexrelid
      JOIN pg_class t ON t.oid = x.indrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT x.indisvalid AND NOT pg_is_other_temp_schema(n.oid)) i) AS invalid_indexes"""

# Client and replication sessions by role, superuser or not, client address and kind.
_LOGINS = """(SELECT coalesce(json_agg(l ORDER BY l.superuser DESC, l."user", l.client_addr NULLS FIRST), '[]') FROM (
      SELECT a."user", coalesce(r.rolsuper, false) AS superuser, a.client_addr, a.backend_type,
             count(*) AS sessions, (array_agg(a.pid ORDER BY a.pid))[1:10] AS pids,
             array_remove(array_agg(DISTINCT a.database), NULL) AS databases,
             (array_agg(DISTINCT a.application_name))[1:5] AS applications
      FROM activity a LEFT JOIN pg_roles r ON r.rolname = a."user"
      WHERE a.backend_type IN ('client backend', 'walsender') AND a.pid <> pg_backend_pid()
      GROUP BY a."user", coalesce(r.rolsuper, false), a.client_addr, a.backend_type) l) AS logins"""

# Usage of every sequence this login can read, limited by the type of the column it feeds
# (a bigint sequence behind an integer column runs out at 2^31-1), fullest first.
SEQUENCE_SELECT = """WITH seq AS (
      SELECT n.nspname AS schema, c.relname AS sequence, s.seqincrement AS increment_by,
             s.seqmin AS min_value, s.seqmax AS max_value, s.seqcycle AS cycle,
             CASE WHEN has_sequence_privilege(c.oid, 'SELECT') OR has_sequence_privilege(c.oid, 'USAGE')
                  THEN pg_sequence_last_value(c.oid) END AS last_value,
             d.refobjid::regclass::text AS owner_table, a.attname AS owner_column,
             format_type(a.atttypid, NULL) AS column_type,
             CASE a.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647
                  WHEN 'int8'::regtype THEN 9223372036854775807 END AS column_max,
             CASE a.atttypid WHEN 'int2'::regtype THEN -32768 WHEN 'int4'::regtype THEN -2147483648
                  WHEN 'int8'::regtype THEN -9223372036854775808 END AS column_min
      FROM pg_sequence s
      JOIN pg_class c ON c.oid = s.seqrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
            AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
      LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      WHERE NOT pg_is_other_temp_schema(n.oid)),
    bounded AS (
      SELECT *, least(max_value, coalesce(column_max, max_value))::numeric AS upper_limit,
                greatest(min_value, coalesce(column_min, min_value))::numeric AS lower_limit
      FROM seq WHERE last_value IS NOT NULL AND NOT cycle),
    used AS (
      SELECT schema, sequence, increment_by, min_value, max_value, last_value, owner_table, owner_column,
             column_type,
             round(100 * CASE WHEN increment_by > 0
                   THEN (last_value - min_value::numeric) / nullif(upper_limit - min_value, 0)
                   ELSE (max_value - last_value::numeric) / nullif(max_value - lower_limit, 0) END, 2)::float8
               AS percent_used,
             floor(CASE WHEN increment_by > 0 THEN (upper_limit - last_value) / increment_by
                        ELSE (last_value - lower_limit) / -increment_by END)::numeric AS remaining
      FROM bounded)
    SELECT (SELECT count(*) FROM seq) AS sequences,
           (SELECT coalesce(json_agg(u), '[]') FROM (
               SELECT * FROM used ORDER BY percent_used DESC NULLS LAST, schema, sequence LIMIT {top}) u) AS top"""

SEQUENCE_QUERY = SEQUENCE_SELECT.format(top=TOP_SEQUENCES)

_FRAGMENTS_BY_CHECK = {
    "backends": ("backends",),
    "txn_idle": ("txn_idle",),
    "txn_time": ("txn_time",),
    "query_time": ("query_time",),
    "lockwait": ("lockwait",),
    "hot_standby_delay": ("hot_standby_delay",),
    "replication_slots": ("replication_slots",),
    "txn_wraparound": ("databases",),
    "sequence": ("databases",),
    "deadlocks": ("database_counters",),
    "conflicts": ("database_counters",),
    "checksum_failures": ("database_counters",),
    "invalid_indexes": ("invalid_indexes",),
    "logins": ("logins",),
}


def _fragment(name: str, server_version_num: int) -> str:
    if name == "backends":
        return _BACKENDS
    if name == "txn_idle":
        return _sessions_fragment(
            "txn_idle", "state_change", "state IN ('idle in transaction', 'idle in transaction (aborted)')"
        )
    if name == "txn_time":
        return _sessions_fragment("txn_time", "xact_start", "xact_start IS NOT NULL")
    if name == "query_time":
        return _sessions_fragment("query_time", "query_start", "state = 'active'")
    if name == "lockwait":
        # pg_locks.waitstart exists from PostgreSQL 14; before, the query start is the best bound.
        waitstart = "waitstart" if server_version_num >= 140000 else "NULL::timestamptz"
        return _LOCKWAIT.format(waitstart=waitstart)
    if name == "hot_standby_delay":
        return _HOT_STANDBY_DELAY.format(local_lsn=_LOCAL_LSN)
    if name == "replication_slots":
        return _REPLICATION_SLOTS.format(local_lsn=_LOCAL_LSN)
    if name == "databases":
        return _DATABASES
    if name == "database_counters":
        return _DATABASE_COUNTERS
    if name == "invalid_indexes":
        return _INVALID_INDEXES
    if name == "logins":
        return _LOGINS
    raise ValueError("unknown fragment %s" % name)


_NEEDS_ACTIVITY = ("backends", "txn_idle", "txn_time", "query_time", "lockwait", "logins")


def fragments_for(checks: Sequence[str]) -> List[str]:
    names: List[str] = []
    for check in CHECKS:
        for name in _FRAGMENTS_BY_CHECK.get(check, ()) if check in checks else ():
            if name not in names:
                names.append(name)
    return names


def health_text(checks: Sequence[str], server_version_num: int, include_sequences: bool) -> str:
    """The one statement for the cluster-wide checks (and the login database's sequences)."""
    columns = [
        "current_setting('server_version_num')::int AS server_version_num",
        "pg_is_in_recovery() AS in_recovery",
        "current_database() AS current_database",
    ]
    names = fragments_for(checks)
    columns.extend(_fragment(name, server_version_num) for name in names)
    if include_sequences:
        columns.append("(SELECT row_to_json(q) FROM (%s) q) AS sequences" % SEQUENCE_QUERY)
    select = "SELECT\n  " + ",\n  ".join(columns)
    if any(name in _NEEDS_ACTIVITY for name in names):
        return "WITH " + _ACTIVITY_CTE.format(preview=QUERY_PREVIEW) + "\n" + select
    return select


def health_statement(checks: Sequence[str], server_version_num: int, include_sequences: bool) -> Any:
    """health_text as a psycopg2.sql object; it holds no identifier or value from the caller."""
    return sql.SQL(health_text(checks, server_version_num, include_sequences))


# --------------------------------------------------------------------------- figures


def backends_figures(raw: Dict[str, Any]) -> Dict[str, Any]:
    """Slots that ordinary clients can use: max_connections minus the reserved ones."""
    reserved = raw["superuser_reserved_connections"] + raw.get("reserved_connections", 0)
    usable = max(raw["max_connections"] - reserved, 1)
    figures = dict(raw)
    figures["usable_connections"] = usable
    figures["free_slots"] = usable - raw["client_backends"]
    figures["percent_used"] = round(100.0 * raw["client_backends"] / usable, 1)
    return figures


def standby_figures(raw: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The replay delay in seconds counts only while WAL waits to be replayed.

    An idle primary sends no transactions, so 'time since the last replayed
    transaction' alone grows forever on a healthy standby (check_postgres's
    known false positive); with nothing to replay the delay is 0. WAL that was
    only in flight (received an instant before the read, replayed by the re-read:
    `backlog_after_recheck`, see backlog_worth_rechecking) is not waiting either.
    """
    if raw is None:
        return None
    figures = dict(raw)
    backlog = raw.get("replay_backlog_bytes")
    drained = raw.get("backlog_after_recheck") is not None and raw["backlog_after_recheck"] <= 0
    if backlog is not None and (backlog <= 0 or drained):
        figures["replay_delay_seconds"] = 0.0
    else:
        figures["replay_delay_seconds"] = raw.get("seconds_since_last_replay")
    return figures


RECHECK_BACKLOG_SQL = "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())::bigint AS waiting"
RECHECK_BACKLOG_WAIT_S = 1.0


def backlog_worth_rechecking(raw: Optional[Dict[str, Any]]) -> bool:
    """A standby whose read found WAL received but not replayed, replay running, the last replay long ago.

    On an idle tier that is usually a record the primary sends every 15 s (a running-xacts
    snapshot) caught between its receipt and its replay: a re-read tells in-flight from waiting.
    """
    return bool(
        raw
        and (raw.get("replay_backlog_bytes") or 0) > 0
        and not raw.get("replay_paused")
        and raw.get("receive_lsn")
        and raw.get("seconds_since_last_replay") is not None
    )


def recheck_backlog(
    conn: Any,
    params: ConnectionParams,
    receive_lsn: str,
    wait_s: float = RECHECK_BACKLOG_WAIT_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Bytes of the WAL received by the first read still not replayed, re-read until 0 or wait_s."""
    deadline = clock() + wait_s
    while True:
        waiting = fetch_dicts(conn, params, RECHECK_BACKLOG_SQL, [receive_lsn])[0]["waiting"]
        if waiting <= 0 or clock() >= deadline:
            return int(waiting)
        sleep(0.05)


def figures_from_row(row: Dict[str, Any]) -> Figures:
    """Plain data from the health statement's row; only the parts that were asked for."""
    figures: Figures = {
        "server_version_num": row["server_version_num"],
        "in_recovery": row["in_recovery"],
        "role": "standby" if row["in_recovery"] else "primary",
    }
    if row.get("backends") is not None:
        figures["backends"] = backends_figures(row["backends"])
    for name in ("txn_idle", "txn_time", "query_time", "replication_slots", "databases", "database_counters"):
        if name in row:
            figures[name] = row[name]
    for name in ("invalid_indexes", "logins"):
        if name in row:
            figures[name] = row[name]
            figures["current_database"] = row.get("current_database")
    if "lockwait" in row:
        locks = dict(row["lockwait"])
        locks["chains"] = blocking_chains(locks.get("waits") or [])
        figures["lockwait"] = locks
    if "replicas" in row:
        figures["hot_standby_delay"] = {"standby": standby_figures(row.get("standby")), "replicas": row["replicas"]}
    # Other sessions' query texts can carry secrets (ALTER ROLE ... PASSWORD '...', password=...).
    return redact_value(json_safe(figures))


def sequence_targets(
    databases: Sequence[Dict[str, Any]], requested: Optional[Sequence[str]]
) -> Dict[str, Optional[str]]:
    """Which databases the sequence check reads: {name: None} or {name: why it cannot be read}.

    Default: every database that accepts connections and is not a template.
    """
    known = {database["database"]: database for database in databases}
    if requested is None:
        return {
            name: None
            for name, database in sorted(known.items())
            if database.get("allows_connections") and not database.get("is_template")
        }
    targets: Dict[str, Optional[str]] = {}
    for name in requested:
        if name not in known:
            targets[name] = "no such database"
        elif not known[name].get("allows_connections"):
            targets[name] = "database does not accept connections (datallowconn is false)"
        else:
            targets[name] = None
    return targets


# --------------------------------------------------------------------------- collection (I/O)

UNREACHABLE_STATUS = CRITICAL


def session_settings(params: ConnectionParams) -> Dict[str, Any]:
    """Sent at connection start: read-only, and the server abandons what the client gave up on."""
    return {
        "default_transaction_read_only": "on",
        "statement_timeout": "%dms" % max(1, int(params.query_timeout * 1000)),
    }


class _Counter:
    def __init__(self) -> None:
        self.connections = 0
        self.statements = 0


def _sequences_of(params: ConnectionParams, database: str, counter: _Counter) -> Dict[str, Any]:
    """One connection and one statement to a further database. Never raises."""
    target = dataclasses.replace(params, dbname=database)
    conn = None
    try:
        counter.connections += 1
        conn = connect(target, settings=session_settings(target))
        counter.statements += 1
        return fetch_dicts(conn, target, SEQUENCE_QUERY)[0]
    except ConnectionFailure as failure:
        return {"error": str(failure), "error_kind": failure.kind}
    finally:
        close_quietly(conn)


def unreachable_result(params: ConnectionParams, failure: ConnectionFailure, started: float) -> Dict[str, Any]:
    message = str(failure)
    connection = finding("connection", UNREACHABLE_STATUS, None, None, message, "ms")
    return {
        "endpoint": params.endpoint,
        "reachable": False,
        "role": "down",
        "in_recovery": None,
        "server_version_num": None,
        "status": UNREACHABLE_STATUS,
        "checks": {"connection": UNREACHABLE_STATUS},
        "findings": [connection],
        "problems": [connection],
        "figures": {},
        "conn_err_msg": message,
        "conn_err_kind": failure.kind,
        "databases_checked": [],
        "timing": {"elapsed_ms": round((time.monotonic() - started) * 1000, 1)},
    }


def collect_health(
    params: ConnectionParams,
    checks: Sequence[str] = DEFAULT_CHECKS,
    thresholds: Optional[Dict[str, Dict[str, Any]]] = None,
    databases: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """Check one server. Unreachable is a CRITICAL result, never an exception.

    Round trips: one connection and one statement for everything on the login
    database; with the sequence check, one more connection and statement per
    further database it reads; on a standby whose read found WAL not yet replayed,
    one more statement (re-read for up to a second) to tell in-flight from waiting.
    """
    checks = ["connection"] + [check for check in CHECKS if check in checks and check != "connection"]
    limits = merged_thresholds(thresholds)
    counter = _Counter()
    started = time.monotonic()
    wants_sequences = "sequence" in checks
    login_db_wanted = wants_sequences and (databases is None or params.dbname in databases)
    conn = None
    try:
        counter.connections += 1
        conn = connect(params, settings=session_settings(params))
        connect_ms = round((time.monotonic() - started) * 1000, 1)
        statement = health_statement(checks, conn.server_version, login_db_wanted)
        counter.statements += 1
        row = fetch_dicts(conn, params, statement)[0]
        if backlog_worth_rechecking(row.get("standby")):
            counter.statements += 1
            row["standby"]["backlog_after_recheck"] = recheck_backlog(conn, params, row["standby"]["receive_lsn"])
    except ConnectionFailure as failure:
        result = unreachable_result(params, failure, started)
        result["timing"].update(connections=counter.connections, statements=counter.statements)
        return result
    finally:
        close_quietly(conn)
    query_ms = round((time.monotonic() - started) * 1000 - connect_ms, 1)

    figures = figures_from_row(row)
    figures["connect_ms"] = connect_ms
    checked: List[str] = []
    if wants_sequences:
        sequences: Dict[str, Any] = {}
        gave_up = False
        for name, problem in sequence_targets(row["databases"], databases).items():
            if problem:
                block: Dict[str, Any] = {"error": problem}
            elif gave_up:
                block = {"error": "skipped: the server stopped answering while other databases were checked"}
            elif name == row["current_database"] and login_db_wanted:
                block = row["sequences"]
            else:
                block = _sequences_of(params, name, counter)
                # A server that stopped answering costs one timeout, not one per database.
                gave_up = block.get("error_kind") == "timeout"
            sequences[name] = json_safe(block)
            if not block.get("error"):
                checked.append(name)
        figures["sequences"] = sequences
    findings = grade(figures, limits, checks)
    result = {
        "endpoint": params.endpoint,
        "reachable": True,
        "role": figures["role"],
        "in_recovery": figures["in_recovery"],
        "server_version_num": figures["server_version_num"],
        "findings": findings,
        "figures": figures,
        "conn_err_msg": None,
        "conn_err_kind": None,
        "databases_checked": checked,
        "timing": {
            "connect_ms": connect_ms,
            "query_ms": query_ms,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
            "connections": counter.connections,
            "statements": counter.statements,
        },
    }
    result.update(summarize(findings))
    return result


def failure_message(name: str, result: Dict[str, Any]) -> str:
    """One line for fail_json: where, how bad, and the findings that made it so."""
    problems = result.get("problems") or []
    details = "; ".join("%s %s: %s" % (found["status"], found["check"], found["message"]) for found in problems[:5])
    if len(problems) > 5:
        details += "; and %d more" % (len(problems) - 5)
    endpoint = result.get("endpoint")
    where = name if name == endpoint or not endpoint else "%s (%s)" % (name, endpoint)
    return "health of %s is %s: %s" % (where, result.get("status"), details)
