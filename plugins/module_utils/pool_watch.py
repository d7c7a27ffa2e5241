# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_pool_plan's reading side: one look at PgBouncer and the tier's server, then the rules.

Reads PgBouncer's console (pools.read_console, SHOW CLIENTS), the server's limits and sessions
(activity.list_sessions, the seed's active-queries view) and the metrics tables' last minutes;
module_utils/pool_relief.py decides. With a window it also samples the pool and a probe query
through PgBouncer once a second: the verification.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from ansible_collections.penguinmails.dbops.plugins.module_utils import pool_relief as rules
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import connected
from ansible_collections.penguinmails.dbops.plugins.module_utils.activity import SessionFilter, list_sessions
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import AdminConsole
from ansible_collections.penguinmails.dbops.plugins.module_utils.pools import (
    ADMIN_DATABASE,
    metrics_tables_present,
    read_console,
    read_metrics,
    summarise_pools,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    fetch_dicts,
)

SERVER_FACTS = (
    "SELECT current_setting('max_connections')::int AS max_connections,"
    " current_setting('superuser_reserved_connections')::int"
    " + coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0) AS reserved,"
    " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS backends,"
    " (SELECT count(*) FROM pg_stat_replication)::int AS replication"
)
SESSION_STATES = ["active", "idle in transaction", "idle in transaction (aborted)"]
METRICS_WINDOW_S = 300
METRICS_ROWS = 50


def tier_pool(pools: Sequence[Dict[str, Any]], limits: Dict[str, Dict[str, Any]], database: str) -> Dict[str, Any]:
    """The database's busiest pool (PgBouncer keeps one per user, each up to pool_size): most waiting
    clients, then most server connections in use; the other users' pools are listed under `users`."""
    members = [pool for pool in pools if pool["database"] == database]
    limit = limits.get(database, {})
    pool_size = int(limit.get("pool_size") or 0)
    busiest = max(members, key=lambda pool: (pool["cl_waiting"], pool["sv_active"]), default=None) or {}
    keys = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used")
    figures = {key: int(busiest.get(key) or 0) for key in keys}
    return {
        "database": database,
        "user": busiest.get("user"),
        **figures,
        "maxwait_seconds": busiest.get("maxwait_seconds") or 0.0,
        "pool_size": pool_size,
        "reserve_pool": int(limit.get("reserve_pool") or 0),
        "utilization_pct": round(100.0 * figures["sv_active"] / pool_size, 1) if pool_size else None,
        "users": sorted(pool["user"] for pool in members),
    }


def other_pools_on_server(databases: Sequence[Dict[str, Any]], limits, database: str) -> int:
    """Server connections every other PgBouncer database pointing at the same host:port may open."""
    mine = next((row for row in databases if row.get("name") == database), None)
    if mine is None:
        return 0
    same = [
        row["name"]
        for row in databases
        if row.get("name") not in (database, ADMIN_DATABASE)
        and (row.get("host"), str(row.get("port"))) == (mine.get("host"), str(mine.get("port")))
    ]
    return sum(int(limits[name]["pool_size"] or 0) + int(limits[name]["reserve_pool"] or 0) for name in same)


def read_bouncer(console: ConnectionParams, database: str) -> Dict[str, Any]:
    """The console's pools, databases and the database's clients. Raises ConnectionFailure."""
    snapshot = read_console(console)
    with AdminConsole(console) as admin:
        clients = [row for row in admin.show("CLIENTS") if row.get("database") == database]
    pools, limits = summarise_pools(snapshot)
    entry = next((row for row in snapshot["databases"] if row.get("name") == database), None)
    if entry is None:
        raise ConnectionFailure("no_database", "PgBouncer at %s has no database %s" % (console.endpoint, database))
    return {
        "server_host": entry.get("host"),
        "server_port": int(entry.get("port") or 5432),
        "version": snapshot["version"],
        "pool": tier_pool(pools, limits, database),
        "other_pools": other_pools_on_server(snapshot["databases"], limits, database),
        "clients": [{"addr": row.get("addr"), "application_name": row.get("application_name")} for row in clients],
    }


def read_server(server: ConnectionParams, database: str, metrics_schema: str) -> Dict[str, Any]:
    """The server's limits, the database's sessions and the metrics tables' last minutes."""
    with connected(server) as conn:
        facts = fetch_dicts(conn, server, SERVER_FACTS)[0]
        sessions = list_sessions(conn, server, SessionFilter(states=SESSION_STATES, databases=[database]))
        metrics: List[Dict[str, Any]] = []
        if metrics_schema and metrics_tables_present(conn, server, metrics_schema):
            metrics = read_metrics(conn, server, metrics_schema, METRICS_WINDOW_S, METRICS_ROWS)
    return {"server": facts, "sessions": sessions, "metrics": metrics}


def read_server_or_full(server: ConnectionParams, database: str, metrics_schema: str) -> Dict[str, Any]:
    """read_server; a server refusing logins with 'too many clients' is a finding, not an error."""
    try:
        return read_server(server, database, metrics_schema)
    except ConnectionFailure as failure:
        if "too many clients" not in str(failure):
            raise
        return {"server": {"refused_too_many_clients": True}, "sessions": [], "metrics": []}


def probe(probe_params: Optional[ConnectionParams]) -> Dict[str, Any]:
    """SELECT 1 through PgBouncer: ok and milliseconds (None without a probe login)."""
    if probe_params is None:
        return {"probe_ok": True, "probe_ms": None}
    started = time.monotonic()
    try:
        with connected(probe_params) as conn:
            fetch_dicts(conn, probe_params, "SELECT 1 AS answered")
    except ConnectionFailure as failure:
        return {"probe_ok": False, "probe_ms": None, "probe_error": str(failure)}
    return {"probe_ok": True, "probe_ms": round(1000.0 * (time.monotonic() - started), 1)}


def sample_window(
    console: ConnectionParams,
    database: str,
    probe_params: Optional[ConnectionParams],
    window_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> List[Dict[str, Any]]:
    """One sample a second for window_s seconds (at least one): waiting clients, maxwait, the probe."""
    samples = []
    deadline = time.monotonic() + window_s
    while True:
        pool = read_bouncer(console, database)["pool"]
        sample = {key: pool[key] for key in ("cl_active", "cl_waiting", "sv_active", "maxwait_seconds")}
        sample.update(probe(probe_params))
        samples.append(sample)
        if time.monotonic() + 1.0 > deadline:
            return samples
        sleep(1.0)


@dataclasses.dataclass
class PlanRequest:
    """What pg_pool_plan was asked: the tier, its limits, what the run already tried."""

    tier: str
    database: str
    ceiling: int
    limits: rules.Limits
    tried: List[str]
    restart_allowed: bool
    metrics_schema: str
    window_s: float


def plan(
    server: ConnectionParams,
    console: ConnectionParams,
    request: PlanRequest,
    probe_params: Optional[ConnectionParams] = None,
) -> Dict[str, Any]:
    """The whole plan: what was seen, the causes, how far the pool may grow, the next rung, the window."""
    result: Dict[str, Any] = {"tier": request.tier, "database": request.database, "ceiling": request.ceiling}
    result["tried"] = list(request.tried)
    try:
        bouncer = read_bouncer(console, request.database)
    except ConnectionFailure as failure:
        result.update(console_answers=False, console_error=str(failure), exhausted=True, causes=[])
        result["rung"] = rules.next_rung([], request.tried, None, False, request.restart_allowed)
        result["ladder"] = rules.ladder([], None, False, request.restart_allowed)
        return result
    if not server.host:
        server = dataclasses.replace(server, host=bouncer["server_host"], port=bouncer["server_port"])
    result.update(server_endpoint=server.endpoint, server_host=server.host, server_port=server.port)
    seen = read_server_or_full(server, request.database, request.metrics_schema)
    capacity = rules.server_capacity(seen["server"], bouncer["other_pools"])
    found = rules.causes(bouncer["pool"], seen["sessions"], bouncer["clients"], seen["server"], request.limits)
    raise_plan = rules.pool_raise(bouncer["pool"], request.ceiling, capacity)
    result.update(
        console_answers=True,
        version=bouncer["version"],
        pool=bouncer["pool"],
        server=seen["server"],
        capacity=capacity,
        ceiling_problem=rules.ceiling_problem(request.tier, request.ceiling, capacity),
        sessions=seen["sessions"],
        metrics=seen["metrics"],
        exhausted=bool(found),
        near_full=rules.near_full(bouncer["pool"], request.limits),
        causes=found,
        raise_plan=raise_plan,
        rung=rules.next_rung(found, request.tried, raise_plan, True, request.restart_allowed),
        ladder=rules.ladder(found, raise_plan, True, request.restart_allowed),
    )
    if request.window_s > 0:
        result["samples"] = sample_window(console, request.database, probe_params, request.window_s)
        result["verification"] = rules.verification(result["samples"], request.limits)
        result["rung"] = rules.rung_after_window(result["verification"], found, request.tried, raise_plan)
    return result
