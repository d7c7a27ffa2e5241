# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pool exhaustion runbook's rules: pure functions over what was observed, no I/O.

- `causes`: why a tier's pool is exhausted (more than one can hold), each with its evidence.
- `server_capacity` / `pool_raise`: how far the pool may grow, within the tier's ceiling AND what
  the server can take once every other pool pointing at it is counted.
- `next_rung`: the relief ladder (terminate -> raise -> reconnect -> restart), one rung at a time,
  each only when the one before did not relieve the pool.
- `ladder`: every rung a run would take if none relieved the pool (check mode shows it as the plan).
- `restart_method`: how a PgBouncer whose console does not answer is restarted (the lab's process or
  its service manager), or why it cannot be.
- `verification`: relieved over a window (no waiting client, maxwait under its threshold, the probe
  answered through PgBouncer in every sample).
- `run_outcome`: resolved / no_action / refused / escalated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

LEAKED = "leaked_idle_in_transaction"
RUNAWAY = "runaway_queries"
FLOOD = "client_flood"
UNDERSIZED = "pool_too_small"
SERVER_FULL = "server_out_of_slots"
CAUSES = (LEAKED, RUNAWAY, FLOOD, UNDERSIZED, SERVER_FULL)

TERMINATE = "terminate"
RAISE = "raise"
RECONNECT = "reconnect"
RESTART = "restart"
ESCALATE = "escalate"
NONE = "none"
RUNGS = (TERMINATE, RAISE, RECONNECT, RESTART)

# The seed's pool ceilings per tier (connections).
TIER_CEILINGS = {"oltp": 50, "content": 25, "queue": 40, "olap": 15}
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")
PREVIEW_CHARS = 100


@dataclass(frozen=True)
class Limits:
    """The run's thresholds (the role's pool_* variables)."""

    idle_tx_max_s: float = 60.0
    query_max_s: float = 300.0
    maxwait_max_s: float = 1.0
    utilization_pct: float = 90.0
    flood_share_pct: float = 50.0
    flood_min_clients: int = 5


def is_exhausted(pool: Dict[str, Any], limits: Limits) -> bool:
    """Clients wait for a server connection, or the oldest waited too long.

    A pool used past the alert's 90 % with nobody waiting is a pool doing its job: reported
    (`near_full`), never acted on, so a second run after relief changes nothing.
    """
    return bool(pool.get("cl_waiting", 0) > 0 or pool.get("maxwait_seconds", 0.0) >= limits.maxwait_max_s)


def near_full(pool: Dict[str, Any], limits: Limits) -> bool:
    return (pool.get("utilization_pct") or 0.0) >= limits.utilization_pct


def session_evidence(session: Dict[str, Any], age_key: str) -> Dict[str, Any]:
    """What the report says of one backend (a pg_activity session row): pid, user, application, address,
    age, query (truncated)."""
    return {
        "pid": session.get("pid"),
        "user": session.get("usename"),
        "application": session.get("application_name"),
        "client_addr": session.get("client_addr"),
        "state": session.get("state"),
        "age_s": session.get(age_key),
        "query": (session.get("query_preview") or "")[:PREVIEW_CHARS],
    }


def leaked_sessions(sessions: Sequence[Dict[str, Any]], limits: Limits) -> List[Dict[str, Any]]:
    return [
        session
        for session in sessions
        if session.get("state") in IDLE_IN_TRANSACTION
        and (session.get("xact_duration_seconds") or 0) >= limits.idle_tx_max_s
    ]


def runaway_sessions(sessions: Sequence[Dict[str, Any]], limits: Limits) -> List[Dict[str, Any]]:
    return [
        session
        for session in sessions
        if session.get("state") == "active" and (session.get("duration_seconds") or 0) >= limits.query_max_s
    ]


def flooding_client(clients: Sequence[Dict[str, Any]], limits: Limits) -> Optional[Dict[str, Any]]:
    """The one client address or application holding most of the pool's clients, past the share,
    while others are there to be crowded out."""
    total = len(clients)
    if total < limits.flood_min_clients:
        return None
    for key in ("addr", "application_name"):
        counts: Dict[Any, int] = {}
        for client in clients:
            counts[client.get(key)] = counts.get(client.get(key), 0) + 1
        if len(counts) < 2:
            continue  # one address or application is the application itself, not a client crowding others out
        value, count = max(counts.items(), key=lambda item: item[1])
        if value and count >= limits.flood_min_clients and 100.0 * count / total >= limits.flood_share_pct:
            return {"by": key, "value": value, "clients": count, "of": total}
    return None


def server_full(server: Dict[str, Any]) -> bool:
    """The server refused a login with 'too many clients', or its backends reached the usable slots."""
    if server.get("refused_too_many_clients"):
        return True
    usable = (server.get("max_connections") or 0) - (server.get("reserved") or 0)
    return usable > 0 and (server.get("backends") or 0) >= usable


def causes(
    pool: Dict[str, Any],
    sessions: Sequence[Dict[str, Any]],
    clients: Sequence[Dict[str, Any]],
    server: Dict[str, Any],
    limits: Limits,
) -> List[Dict[str, Any]]:
    """Every cause that holds, each {cause, evidence}; empty when the pool is not exhausted.

    A pool too small is said only when nothing else explains it: a sustained, healthy load.
    """
    if not is_exhausted(pool, limits) and not server_full(server):
        return []
    found = []
    leaked = leaked_sessions(sessions, limits)
    if leaked:
        found.append({"cause": LEAKED, "evidence": [session_evidence(s, "xact_duration_seconds") for s in leaked]})
    runaway = runaway_sessions(sessions, limits)
    if runaway:
        found.append({"cause": RUNAWAY, "evidence": [session_evidence(s, "duration_seconds") for s in runaway]})
    flood = flooding_client(clients, limits)
    if flood:
        found.append({"cause": FLOOD, "evidence": [flood]})
    if server_full(server):
        evidence = {key: server.get(key) for key in ("max_connections", "reserved", "backends")}
        found.append({"cause": SERVER_FULL, "evidence": [evidence]})
    if not found:
        evidence = {key: pool.get(key) for key in ("cl_active", "cl_waiting", "sv_active", "pool_size")}
        found.append({"cause": UNDERSIZED, "evidence": [evidence]})
    return found


def server_capacity(server: Dict[str, Any], other_pools: int) -> Dict[str, Any]:
    """Connections the tier's pool may hold: max_connections - reserved - replication - other pools."""
    parts = {
        "max_connections": int(server.get("max_connections") or 0),
        "reserved": int(server.get("reserved") or 0),
        "replication": int(server.get("replication") or 0),
        "other_pools": int(other_pools),
    }
    parts["capacity"] = parts["max_connections"] - parts["reserved"] - parts["replication"] - parts["other_pools"]
    return parts


def ceiling_problem(tier: str, ceiling: int, capacity: Dict[str, Any]) -> Optional[str]:
    """A ceiling the server cannot honour, said with both numbers; None when it fits."""
    if ceiling <= capacity["capacity"]:
        return None
    return (
        "the pool ceiling of tier %s (%d) is above what its server can take (%d = max_connections %d - reserved %d"
        " - replication %d - other pools %d)"
        % (
            tier,
            ceiling,
            capacity["capacity"],
            capacity["max_connections"],
            capacity["reserved"],
            capacity["replication"],
            capacity["other_pools"],
        )
    )


def pool_raise(pool: Dict[str, Any], ceiling: int, capacity: Dict[str, Any]) -> Dict[str, Any]:
    """{allowed, pool_size, reason}: a server connection for every connected client (active or waiting),
    never past either limit."""
    current = int(pool.get("pool_size") or 0)
    limit = min(int(ceiling), int(capacity["capacity"]))
    demand = int(pool.get("cl_active") or 0) + int(pool.get("cl_waiting") or 0)
    numbers = "tier ceiling %d, server capacity %d" % (ceiling, capacity["capacity"])
    if current >= limit:
        return {
            "allowed": False,
            "pool_size": current,
            "reason": "pool_size %d is already at its limit (%s)" % (current, numbers),
        }
    wanted = min(max(demand, current + 1), limit)
    return {
        "allowed": True,
        "pool_size": wanted,
        "reason": "pool_size %d -> %d for %d clients wanting a server (%s)" % (current, wanted, demand, numbers),
    }


def next_rung(
    found: Sequence[Dict[str, Any]],
    tried: Sequence[str],
    raise_plan: Optional[Dict[str, Any]],
    console_answers: bool,
    restart_allowed: bool,
) -> Dict[str, str]:
    """{rung, reason}: the next rung not yet tried that fits the causes, or escalate / none."""
    names = {item["cause"] for item in found}
    if not console_answers:
        if restart_allowed and RESTART not in tried:
            return {"rung": RESTART, "reason": "PgBouncer's console does not answer; restarts are allowed"}
        return {"rung": ESCALATE, "reason": "PgBouncer's console does not answer and pool_restart_allowed is false"}
    if not found:
        return {"rung": NONE, "reason": "the pool is not exhausted"}
    if names & {LEAKED, RUNAWAY} and TERMINATE not in tried:
        return {"rung": TERMINATE, "reason": "sessions past their limits hold server connections"}
    if FLOOD in names:
        return {
            "rung": ESCALATE,
            "reason": "one client floods the pool (a bigger pool would feed it): %s" % flood_words(found),
        }
    if RAISE not in tried and raise_plan and raise_plan.get("allowed"):
        return {"rung": RAISE, "reason": raise_plan["reason"]}
    if names - {UNDERSIZED} and RECONNECT not in tried:
        return {"rung": RECONNECT, "reason": "the pool's server connections are replaced"}
    why = raise_plan.get("reason") if raise_plan and not raise_plan.get("allowed") else "every rung was tried"
    return {"rung": ESCALATE, "reason": "not relieved: %s" % why}


def ladder(
    found: Sequence[Dict[str, Any]],
    raise_plan: Optional[Dict[str, Any]],
    console_answers: bool,
    restart_allowed: bool,
) -> List[Dict[str, str]]:
    """Every rung the run would take, in order, if none relieved the pool, ending with escalate or none.

    This is check mode's plan: a real run stops at the first rung after which the window is relieved.
    After a restart the next look decides, so the plan ends there.
    """
    tried: List[str] = []
    steps = []
    while True:
        step = next_rung(found, tried, raise_plan, console_answers, restart_allowed)
        steps.append(step)
        if step["rung"] in (ESCALATE, NONE):
            return steps
        if step["rung"] == RESTART:
            steps.append({"rung": ESCALATE, "reason": "not relieved: the restart was the last rung"})
            return steps
        tried.append(step["rung"])


# What ansible_service_mgr says on a host whose services ansible.builtin.service can restart.
SERVICE_MANAGERS = ("systemd", "sysvinit", "upstart", "openrc", "bsdinit", "launchd", "smf", "src")
LAB = "lab"
SERVICE = "service"


def restart_method(service_manager: Optional[str], lab_managed: bool, service: str) -> Dict[str, str]:
    """{method, reason}: how to restart a PgBouncer whose console does not answer.

    A PgBouncer the lab started (its host has a lab_root) is the lab's own process, which no service
    manager knows even where there is one: the lab restarts it by its PID file. Any other PgBouncer goes
    through its host's service manager; a host without one cannot restart it (method none: escalate).
    """
    if lab_managed:
        return {"method": LAB, "reason": "the lab's PgBouncer: its process is restarted by the lab (by PID)"}
    if service_manager in SERVICE_MANAGERS:
        return {"method": SERVICE, "reason": "service %s through %s" % (service, service_manager)}
    return {
        "method": NONE,
        "reason": "no service manager on the PgBouncer host (%s) and not a lab PgBouncer: restart it by hand"
        % (service_manager or "unknown"),
    }


def flood_words(found: Sequence[Dict[str, Any]]) -> str:
    flood = next(item["evidence"][0] for item in found if item["cause"] == FLOOD)
    return "%s %s holds %s of %s clients" % (flood["by"], flood["value"], flood["clients"], flood["of"])


def verification(samples: Sequence[Dict[str, Any]], limits: Limits) -> Dict[str, Any]:
    """Relieved when every sample of the window has no waiting client, maxwait under the limit, probe answered."""
    if not samples:
        return {"verified": False, "reason": "no sample was taken"}
    for index, sample in enumerate(samples):
        if sample.get("cl_waiting", 0) > 0:
            return {"verified": False, "reason": "sample %d: %s clients waiting" % (index + 1, sample["cl_waiting"])}
        if sample.get("maxwait_seconds", 0.0) >= limits.maxwait_max_s:
            return {
                "verified": False,
                "reason": "sample %d: maxwait %.3f s (limit %s s)"
                % (index + 1, sample["maxwait_seconds"], limits.maxwait_max_s),
            }
        if not sample.get("probe_ok"):
            return {"verified": False, "reason": "sample %d: the probe query through PgBouncer failed" % (index + 1)}
    return {"verified": True, "reason": "%d samples: no waiting client, probe answered" % len(samples)}


def rung_after_window(
    verified: Dict[str, Any],
    found: Sequence[Dict[str, Any]],
    tried: Sequence[str],
    raise_plan: Optional[Dict[str, Any]],
) -> Dict[str, str]:
    """The next rung once the window is seen: none when relieved, else the ladder goes on (clients
    still waiting count as a cause even when the first look found none)."""
    if verified["verified"]:
        return {"rung": NONE, "reason": "relieved: %s" % verified["reason"]}
    still = list(found) or [{"cause": "still_waiting", "evidence": [verified["reason"]]}]
    return next_rung(still, tried, raise_plan, True, False)


def run_closing(
    first: Dict[str, Any], latest: Dict[str, Any], acted: bool, failure: Optional[str] = None
) -> Dict[str, str]:
    """{outcome, note} for the incident's close, from the first and the latest plan of the run."""
    refused = bool(first.get("ceiling_problem"))
    exhausted = bool(first.get("exhausted"))
    relieved = not failure and (not exhausted or bool((latest.get("verification") or {}).get("verified")))
    outcome = "escalated" if failure and not refused else run_outcome(exhausted, acted, relieved, refused)
    causes_said = ", ".join(item["cause"] for item in first.get("causes") or []) or "none"
    before, after = first.get("pool") or {}, latest.get("pool") or {}
    note = "causes: %s; pool %s: waiting %s -> %s, pool_size %s -> %s" % (
        causes_said,
        first.get("database"),
        before.get("cl_waiting"),
        after.get("cl_waiting"),
        before.get("pool_size"),
        after.get("pool_size"),
    )
    reason = failure or first.get("ceiling_problem") or (latest.get("verification") or {}).get("reason")
    if reason and outcome != "no_action":
        note += "; " + reason
    return {"outcome": outcome, "note": note}


def run_outcome(exhausted: bool, acted: bool, relieved: bool, refused: bool) -> str:
    """resolved / no_action / refused / escalated (the incident's outcome)."""
    if refused:
        return "refused"
    if not exhausted:
        return "resolved" if acted else "no_action"  # acted: an earlier run of the same incident did
    if relieved:
        return "resolved" if acted else "no_action"
    return "escalated"
