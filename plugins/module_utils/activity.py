# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sessions of pg_stat_activity: find them by filters, and cancel or terminate them safely.

The seed's "check active queries" is `SESSIONS_CTE` filtered by `SessionFilter`.
Safety rules that no option can lift:

* only `backend_type = 'client backend'`: replication senders, autovacuum,
  background and parallel workers are never listed nor signalled;
* never the module's own backend;
* superuser sessions are signalled only with `allow_superuser`.

Signalling is race-safe: the statement that calls pg_cancel_backend /
pg_terminate_backend re-evaluates every filter at that instant and only
touches the (pid, backend_start) pairs that were listed, so a session that
finished (or a pid reused by a new backend) in between is left alone.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionParams,
    StatementRunner,
    fetch_dicts,
    rows_as_dicts,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import redact_value

QUERY_PREVIEW_CHARS = 100
SESSION_STATES = (
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
)
ACTIONS = ("list", "cancel", "terminate")
SIGNAL_FUNCTIONS = {"cancel": "pg_cancel_backend", "terminate": "pg_terminate_backend"}
# A filter must pick sessions out to allow a signal: a shorter min_duration matches every
# session that is running at all, so it does not count.
MIN_NARROWING_DURATION = 1.0
# At most this many sessions are signalled by one call unless max_sessions says otherwise.
DEFAULT_MAX_SESSIONS = 20

# Which timestamp a session's age is measured from; the seed measures from query_start.
DURATION_BASES = {
    "query_start": "query_start",
    "xact_start": "xact_start",
    "state_change": "state_change",
    "backend_start": "backend_start",
}

# Every session of the server once, with who blocks whom computed a single time:
# pg_blocking_pids() per session, then "blocking" as the reverse relation in memory.
SESSIONS_CTE = """WITH everyone AS (
  SELECT a.pid, a.backend_start, a.backend_type, a.usename, a.datname, a.application_name,
         a.client_addr, a.state, a.query_start, a.xact_start, a.state_change,
         a.wait_event_type, a.wait_event, a.query,
         coalesce(r.rolsuper, false) AS superuser,
         pg_blocking_pids(a.pid) AS blocked_by
  FROM pg_stat_activity a
  LEFT JOIN pg_roles r ON r.oid = a.usesysid
),
sessions AS (
  SELECT e.*,
         ARRAY(SELECT o.pid FROM everyone o WHERE e.pid = ANY(o.blocked_by) ORDER BY o.pid) AS blocking,
         EXTRACT(EPOCH FROM (now() - e.query_start))::float8 AS duration_seconds,
         EXTRACT(EPOCH FROM (now() - e.xact_start))::float8 AS xact_duration_seconds,
         EXTRACT(EPOCH FROM (now() - e.state_change))::float8 AS state_duration_seconds,
         EXTRACT(EPOCH FROM (now() - {basis}))::float8 AS age_seconds
  FROM everyone e
  WHERE e.backend_type = 'client backend' AND e.pid <> pg_backend_pid()
)"""

SESSION_COLUMNS = f"""
  s.pid, s.usename, host(s.client_addr) AS client_addr, s.state, s.query_start,
  s.duration_seconds, left(s.query, {QUERY_PREVIEW_CHARS}) AS query_preview,
  s.datname, s.application_name, s.backend_start, s.xact_start, s.state_change,
  s.xact_duration_seconds, s.state_duration_seconds, s.wait_event_type, s.wait_event,
  s.superuser, s.blocked_by, s.blocking"""


@dataclass
class SessionFilter:
    """Which sessions an invocation is about; None / empty means "any"."""

    states: List[str] = field(default_factory=lambda: ["active"])
    min_duration: Optional[float] = None
    duration_basis: str = "query_start"
    users: List[str] = field(default_factory=list)
    databases: List[str] = field(default_factory=list)
    application_names: List[str] = field(default_factory=list)
    client_addresses: List[str] = field(default_factory=list)
    wait_event_types: List[str] = field(default_factory=list)
    wait_events: List[str] = field(default_factory=list)
    blocked: Optional[bool] = None
    blocking: Optional[bool] = None
    pids: List[int] = field(default_factory=list)

    @classmethod
    def from_module_params(cls, params: Dict[str, Any]) -> SessionFilter:
        states = params.get("states")
        return cls(
            states=list(states) if states is not None else ["active"],
            min_duration=params.get("min_duration"),
            duration_basis=params.get("duration_basis") or "query_start",
            users=list(params.get("users") or []),
            databases=list(params.get("databases") or []),
            application_names=list(params.get("application_names") or []),
            client_addresses=list(params.get("client_addresses") or []),
            wait_event_types=list(params.get("wait_event_types") or []),
            wait_events=list(params.get("wait_events") or []),
            blocked=params.get("blocked"),
            blocking=params.get("blocking"),
            pids=[int(pid) for pid in params.get("pids") or []],
        )

    def validate(self) -> None:
        unknown = [state for state in self.states if state not in SESSION_STATES]
        if unknown:
            raise ValueError("unknown session state(s) %s; expected some of %s" % (unknown, list(SESSION_STATES)))
        if self.duration_basis not in DURATION_BASES:
            raise ValueError("duration_basis must be one of %s" % sorted(DURATION_BASES))
        if self.min_duration is not None and self.min_duration < 0:
            raise ValueError("min_duration must not be negative")
        client_networks(self.client_addresses)

    def narrowing_filters(self) -> List[str]:
        """The filters, beyond the state, that really pick sessions out (one is required to signal)."""
        named = {
            "users": self.users,
            "databases": self.databases,
            "application_names": self.application_names,
            "wait_event_types": self.wait_event_types,
            "wait_events": self.wait_events,
        }
        found = [name for name, values in named.items() if any(str(value).strip() for value in values)]
        if self.min_duration is not None and self.min_duration >= MIN_NARROWING_DURATION:
            found.append("min_duration")
        if self.client_addresses and not covers_every_address(self.client_addresses):
            found.append("client_addresses")
        found.extend(name for name in ("blocked", "blocking") if getattr(self, name) is True)
        if self.pids:
            found.append("pids")
        return found

    def narrows(self) -> bool:
        """True when something beyond the state picks the sessions (required to signal)."""
        return bool(self.narrowing_filters())

    def broad_filters(self) -> List[str]:
        """The filters given that match (almost) every session, as the operator wrote them."""
        broad = []
        if self.min_duration is not None and self.min_duration < MIN_NARROWING_DURATION:
            broad.append("min_duration=%s (under %s s)" % (self.min_duration, MIN_NARROWING_DURATION))
        if self.client_addresses and covers_every_address(self.client_addresses):
            broad.append("client_addresses=%s (every address)" % ",".join(self.client_addresses))
        broad.extend("%s=false" % name for name in ("blocked", "blocking") if getattr(self, name) is False)
        for name in ("users", "databases", "application_names", "wait_event_types", "wait_events"):
            values = getattr(self, name)
            if values and not any(str(value).strip() for value in values):
                broad.append("%s with only empty names" % name)
        return broad


def client_networks(addresses: Sequence[str]) -> List[Any]:
    """The networks of client_addresses; ValueError naming the entry that is not an address or CIDR range."""
    networks = []
    for address in addresses:
        try:
            networks.append(ipaddress.ip_network(str(address).strip(), strict=False))
        except ValueError:
            raise ValueError("client_addresses: %r is not an IP address or CIDR range" % address) from None
    return networks


def covers_every_address(addresses: Sequence[str]) -> bool:
    """True when the ranges together span all of IPv4 or all of IPv6 (0.0.0.0/0, ::/0, two /1 halves, ...)."""
    networks = client_networks(addresses)
    for version in (4, 6):
        ranges = [network for network in networks if network.version == version]
        if any(network.prefixlen == 0 for network in ipaddress.collapse_addresses(ranges)):
            return True
    return False


def signal_refusal(session_filter: SessionFilter, action: str, allow_all: bool) -> Optional[str]:
    """Why `action` must not run with this filter, or None when it may."""
    if action == "list" or allow_all or session_filter.narrows():
        return None
    message = (
        "refusing to %s every session in states %s: give at least one filter that picks sessions out "
        "(min_duration of %s s or more, users, databases, application_names, client_addresses narrower than "
        "every address, wait_event_types, wait_events, blocked=true, blocking=true or pids), or allow_all=true"
        % (action, session_filter.states or "any", MIN_NARROWING_DURATION)
    )
    broad = session_filter.broad_filters()
    if broad:
        message += "; these match (almost) every session and do not count: %s" % ", ".join(broad)
    return message


def within_limit(
    targets: Sequence[Dict[str, Any]], max_sessions: int
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(the first max_sessions targets, oldest first as listed; the ones beyond the limit, left alone)."""
    return list(targets[:max_sessions]), list(targets[max_sessions:])


def filter_conditions(session_filter: SessionFilter) -> Tuple[List[str], Dict[str, Any]]:
    """SQL conditions on the `sessions` CTE (alias s) and their named parameters."""
    conditions: List[str] = []
    params: Dict[str, Any] = {}

    def any_of(column: str, name: str, values: Sequence[Any], cast: str = "text[]") -> None:
        if values:
            conditions.append("%s = ANY(%%(%s)s::%s)" % (column, name, cast))
            params[name] = list(values)

    any_of("s.state", "states", session_filter.states)
    any_of("s.usename", "users", session_filter.users)
    any_of("s.datname", "databases", session_filter.databases)
    any_of("s.application_name", "application_names", session_filter.application_names)
    any_of("s.wait_event_type", "wait_event_types", session_filter.wait_event_types)
    any_of("s.wait_event", "wait_events", session_filter.wait_events)
    any_of("s.pid", "pids", session_filter.pids, "int[]")
    if session_filter.client_addresses:
        conditions.append("s.client_addr <<= ANY(%(client_addresses)s::inet[])")
        params["client_addresses"] = list(session_filter.client_addresses)
    if session_filter.min_duration is not None:
        conditions.append("s.age_seconds >= %(min_duration)s")
        params["min_duration"] = float(session_filter.min_duration)
    if session_filter.blocked is not None:
        conditions.append("%scardinality(s.blocked_by) > 0" % ("" if session_filter.blocked else "NOT "))
    if session_filter.blocking is not None:
        conditions.append("%scardinality(s.blocking) > 0" % ("" if session_filter.blocking else "NOT "))
    return conditions, params


def sessions_cte(session_filter: SessionFilter) -> str:
    return SESSIONS_CTE.format(basis="e.%s" % DURATION_BASES[session_filter.duration_basis])


def where_clause(conditions: Sequence[str]) -> str:
    return "WHERE " + "\n  AND ".join(conditions) if conditions else ""


def list_statement(session_filter: SessionFilter) -> Tuple[str, Dict[str, Any]]:
    """The seed's "check active queries", filtered; oldest first like the seed's ORDER BY."""
    conditions, params = filter_conditions(session_filter)
    text = "%s\nSELECT %s\nFROM sessions s\n%s\nORDER BY s.query_start NULLS LAST, s.pid" % (
        sessions_cte(session_filter),
        SESSION_COLUMNS,
        where_clause(conditions),
    )
    return text, params


def signal_statement(
    session_filter: SessionFilter, action: str, targets: Sequence[Dict[str, Any]], allow_superuser: bool
) -> Tuple[str, Dict[str, Any]]:
    """Signal only listed (pid, backend_start) pairs that still match every filter right now."""
    function = SIGNAL_FUNCTIONS[action]
    conditions, params = filter_conditions(session_filter)
    conditions.append(
        "(s.pid, s.backend_start) IN (SELECT * FROM unnest(%(target_pids)s::int[], %(target_starts)s::timestamptz[]))"
    )
    if not allow_superuser:
        conditions.append("NOT s.superuser")
    params["target_pids"] = [target["pid"] for target in targets]
    params["target_starts"] = [target["backend_start"] for target in targets]
    text = "%s\nSELECT s.pid, %s(s.pid) AS signalled\nFROM sessions s\n%s\nORDER BY s.pid" % (
        sessions_cte(session_filter),
        function,
        where_clause(conditions),
    )
    return text, params


def preview(session: Dict[str, Any]) -> Dict[str, Any]:
    """The fields reported for a session that was (or would be) acted on."""
    return {
        "pid": session["pid"],
        "user": session.get("usename"),
        "database": session.get("datname"),
        "application_name": session.get("application_name"),
        "client_addr": session.get("client_addr"),
        "state": session.get("state"),
        "duration_seconds": round_or_none(session.get("duration_seconds")),
        "query_preview": (session.get("query_preview") or "")[:QUERY_PREVIEW_CHARS],
    }


def round_or_none(value: Optional[float], digits: int = 3) -> Optional[float]:
    return None if value is None else round(float(value), digits)


def split_targets(
    sessions: Sequence[Dict[str, Any]], allow_superuser: bool
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(sessions that may be signalled, sessions skipped with a reason)."""
    targets, skipped = [], []
    for session in sessions:
        if session.get("superuser") and not allow_superuser:
            entry = preview(session)
            entry["reason"] = "superuser session; set allow_superuser to include it"
            skipped.append(entry)
        else:
            targets.append(session)
    return targets, skipped


def list_sessions(conn: Any, params: ConnectionParams, session_filter: SessionFilter) -> List[Dict[str, Any]]:
    """The matching sessions, their query previews redacted (ALTER ROLE ... PASSWORD '...', password=...)."""
    text, args = list_statement(session_filter)
    return [redact_value(row) for row in fetch_dicts(conn, params, text, args)]


def signal_sessions(
    runner: StatementRunner,
    conn: Any,
    params: ConnectionParams,
    session_filter: SessionFilter,
    action: str,
    targets: Sequence[Dict[str, Any]],
    allow_superuser: bool,
) -> Optional[List[int]]:
    """Signal the targets (the statement goes to runner.executed); the pids the server accepted
    the signal for, or None when the runner only planned it (check mode)."""
    text, args = signal_statement(session_filter, action, targets, allow_superuser)
    cursor = runner.run(conn, params, text, args)
    if cursor is None:
        return None
    return [row["pid"] for row in rows_as_dicts(cursor) if row["signalled"]]


def wait_until_gone(
    conn: Any,
    params: ConnectionParams,
    sessions: Sequence[Dict[str, Any]],
    timeout: float,
    interval: float = 0.1,
) -> List[int]:
    """Poll until the (pid, backend_start) pairs left pg_stat_activity; return those still there."""
    if not sessions:
        return []
    args = {
        "pids": [session["pid"] for session in sessions],
        "starts": [session["backend_start"] for session in sessions],
    }
    text = (
        "SELECT pid FROM pg_stat_activity "
        "WHERE (pid, backend_start) IN (SELECT * FROM unnest(%(pids)s::int[], %(starts)s::timestamptz[])) "
        "ORDER BY pid"
    )
    deadline = time.monotonic() + timeout
    while True:
        remaining = [row["pid"] for row in fetch_dicts(conn, params, text, args)]
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(interval)


@dataclass(frozen=True)
class SignalRequest:
    """What to do with the matching sessions, and within which limits."""

    action: str = "list"
    allow_superuser: bool = False
    max_sessions: int = DEFAULT_MAX_SESSIONS
    wait: bool = True
    wait_timeout: float = 10.0

    @classmethod
    def from_module_params(cls, params: Dict[str, Any]) -> SignalRequest:
        return cls(**{option.name: params[option.name] for option in fields(cls)})


def empty_result(endpoint: str) -> Dict[str, Any]:
    return {
        "changed": False,
        "endpoint": endpoint,
        "sessions": [],
        "acted_on": [],
        "skipped": [],
        "over_limit": [],
        "limit_reached": False,
        "vanished": [],
        "still_present": [],
        "executed_queries": [],
        "planned_queries": [],
    }


def act_on_sessions(
    conn: Any,
    params: ConnectionParams,
    session_filter: SessionFilter,
    request: SignalRequest,
    check_mode: bool,
    warn: Callable[[str], None],
) -> Dict[str, Any]:
    """List the matching sessions and, for cancel or terminate, signal (or in check mode plan) at most
    max_sessions of them; pg_activity's result. Raises ConnectionFailure."""
    result = empty_result(params.endpoint)
    result["sessions"] = list_sessions(conn, params, session_filter)
    if request.action == "list" or not result["sessions"]:
        return result
    targets, result["skipped"] = split_targets(result["sessions"], request.allow_superuser)
    if not targets:
        return result
    targets, over_limit = within_limit(targets, request.max_sessions)
    if over_limit:
        result.update(over_limit=[preview(session) for session in over_limit], limit_reached=True)
        warn(
            "%d sessions matched; max_sessions=%d: the %d beyond it were left alone (see over_limit)"
            % (len(targets) + len(over_limit), request.max_sessions, len(over_limit))
        )
    runner = StatementRunner(check_mode)
    signalled = signal_sessions(runner, conn, params, session_filter, request.action, targets, request.allow_superuser)
    if signalled is None:
        result.update(planned_queries=runner.executed, acted_on=[preview(session) for session in targets], changed=True)
        return result
    by_pid = {session["pid"]: session for session in targets}
    result.update(
        executed_queries=runner.executed,
        acted_on=[preview(by_pid[pid]) for pid in signalled],
        vanished=sorted(set(by_pid) - set(signalled)),
        changed=bool(signalled),
    )
    if request.action == "terminate" and request.wait and signalled:
        result["still_present"] = wait_until_gone(
            conn, params, [by_pid[pid] for pid in signalled], request.wait_timeout
        )
        if result["still_present"]:
            warn(
                "terminated sessions %s were still present after %.1f s"
                % (result["still_present"], request.wait_timeout)
            )
    return result
