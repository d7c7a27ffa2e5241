# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PgBouncer pool usage, exhaustion findings, and the runbook's pool metrics tables.

Reading: `read_console` takes one snapshot of SHOW POOLS / DATABASES / LISTS /
CONFIG / STATS / VERSION; `summarise_pools` turns it into per-pool figures by
column name (columns come and go between PgBouncer 1.18 and 1.25, so every
counter is optional); `pool_findings` grades them OK / WARNING / CRITICAL.

The runbook also stores pool metrics in PostgreSQL (connection_pool_metrics
joined to connection_pool_config, see roles/lab/files/pool_metrics.sql):
`read_metrics` runs its query, `sample_statements` plans one recorded sample.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils.findings import (
    CRITICAL,
    OK,
    WARNING,
    crossed,
    finding,
    level,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.pgbouncer import AdminConsole
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    StatementRunner,
    fetch_dicts,
    sql,
)

ADMIN_DATABASE = "pgbouncer"
CONSOLE_SUBJECTS = ("POOLS", "DATABASES", "LISTS", "CONFIG", "STATS")
# Settings worth reporting next to the pools (SHOW CONFIG has ~80 keys).
POOL_CONFIG_KEYS = (
    "pool_mode",
    "max_client_conn",
    "default_pool_size",
    "min_pool_size",
    "reserve_pool_size",
    "reserve_pool_timeout",
    "max_db_connections",
    "max_user_connections",
    "query_wait_timeout",
    "server_idle_timeout",
)
# Server connection states of SHOW POOLS; absent ones count as zero.
SERVER_STATES = ("sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login")
METRICS_TABLES = ("connection_pool_config", "connection_pool_metrics")


@dataclass(frozen=True)
class Thresholds:
    """Where a pool figure turns WARNING and CRITICAL (value >= threshold)."""

    waiting_warning: int = 1
    waiting_critical: int = 10
    maxwait_warning: float = 1.0
    maxwait_critical: float = 5.0
    utilization_warning: float = 80.0
    utilization_critical: float = 90.0
    client_connections_warning: float = 80.0
    client_connections_critical: float = 95.0

    @classmethod
    def from_module_params(cls, params: Dict[str, Any]) -> Thresholds:
        return cls(**{name: params[name] for name in cls.__dataclass_fields__ if params.get(name) is not None})

    def validate(self) -> None:
        pairs = (
            ("waiting", self.waiting_warning, self.waiting_critical),
            ("maxwait", self.maxwait_warning, self.maxwait_critical),
            ("utilization", self.utilization_warning, self.utilization_critical),
            ("client_connections", self.client_connections_warning, self.client_connections_critical),
        )
        for name, warning, critical in pairs:
            if warning > critical:
                raise ValueError("%s_warning (%s) must not exceed %s_critical (%s)" % (name, warning, name, critical))


def number(row: Dict[str, Any], *names: str, default: Optional[float] = 0) -> Optional[float]:
    """The first of `names` present in a SHOW row, as a number (PgBouncer may send text)."""
    for name in names:
        value = row.get(name)
        if value is None or value == "":
            continue
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            continue
        return int(as_float) if as_float.is_integer() else as_float
    return default


def read_console(params: ConnectionParams) -> Dict[str, Any]:
    """One snapshot of the admin console. Raises ConnectionFailure."""
    with AdminConsole(params) as console:
        snapshot = {subject.lower(): console.show(subject) for subject in CONSOLE_SUBJECTS}
        version_rows = console.show("VERSION")
    snapshot["version"] = next(iter(version_rows[0].values())) if version_rows else None
    return snapshot


def config_subset(config_rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    config = {row.get("key"): row.get("value") for row in config_rows}
    return {key: config[key] for key in POOL_CONFIG_KEYS if key in config}


def database_limits(database_rows: Sequence[Dict[str, Any]], config: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Per PgBouncer database: pool_size, reserve_pool, min_pool_size, paused, disabled."""
    default_pool_size = number(config, "default_pool_size", default=0)
    default_reserve = number(config, "reserve_pool_size", default=0)
    limits = {}
    for row in database_rows:
        pool_size = number(row, "pool_size", default=None)
        reserve = number(row, "reserve_pool_size", "reserve_pool", default=None)
        limits[row["name"]] = {
            "pool_size": pool_size if pool_size is not None and pool_size > 0 else default_pool_size,
            "reserve_pool": reserve if reserve is not None and reserve > 0 else default_reserve,
            "min_pool_size": number(row, "min_pool_size"),
            "max_connections": number(row, "max_connections"),
            "current_connections": number(row, "current_connections"),
            "paused": bool(number(row, "paused")),
            "disabled": bool(number(row, "disabled")),
        }
    return limits


def percent(part: float, whole: float) -> Optional[float]:
    return round(100.0 * part / whole, 1) if whole else None


def summarise_pool(row: Dict[str, Any], limits: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The figures of one SHOW POOLS row that matter for exhaustion."""
    database = row.get("database")
    limit = limits.get(database, {})
    pool_size = limit.get("pool_size") or 0
    reserve = limit.get("reserve_pool") or 0
    servers = {state: number(row, state) for state in SERVER_STATES}
    maxwait = number(row, "maxwait") + number(row, "maxwait_us") / 1_000_000.0
    return {
        "database": database,
        "user": row.get("user"),
        "pool_mode": row.get("pool_mode"),
        "cl_active": number(row, "cl_active"),
        "cl_waiting": number(row, "cl_waiting"),
        "cl_cancel_req": number(row, "cl_active_cancel_req") + number(row, "cl_waiting_cancel_req")
        or number(row, "cl_cancel_req"),
        **servers,
        "server_connections": sum(servers.values()),
        "pool_size": pool_size,
        "reserve_pool": reserve,
        "capacity": pool_size + reserve,
        "utilization_pct": percent(servers["sv_active"], pool_size),
        "maxwait": number(row, "maxwait"),
        "maxwait_us": number(row, "maxwait_us"),
        "maxwait_seconds": round(maxwait, 6),
    }


def summarise_pools(snapshot: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], Dict[str, Dict[str, Any]]]:
    """(per-pool summaries, per-database limits) from a console snapshot."""
    config = {row.get("key"): row.get("value") for row in snapshot.get("config", [])}
    limits = database_limits(snapshot.get("databases", []), config)
    pools = [summarise_pool(row, limits) for row in snapshot.get("pools", [])]
    return pools, limits


def grade(value: Optional[float], warning: float, critical: float) -> Tuple[str, float]:
    """(status, the threshold that applies) for a value where higher is worse; no figure is OK."""
    status = OK if value is None else level(value, warning, critical)
    return status, crossed(status, warning, critical)


def pool_finding(
    check: str, status: str, value: Any, threshold: Any, message: str, unit: Optional[str] = None, **where: Any
) -> Dict[str, Any]:
    """A finding whose subject is its pool, else its database; pool and database are kept as keys."""
    return finding(check, status, value, threshold, message, unit, where.get("pool") or where.get("database"), **where)


def pool_findings(pool: Dict[str, Any], thresholds: Thresholds) -> List[Dict[str, Any]]:
    """waiting clients, maxwait and utilization of one pool."""
    where = {"pool": "%s/%s" % (pool["database"], pool["user"]), "database": pool["database"]}
    findings = []
    status, threshold = grade(pool["cl_waiting"], thresholds.waiting_warning, thresholds.waiting_critical)
    findings.append(
        pool_finding(
            "waiting_clients",
            status,
            pool["cl_waiting"],
            threshold,
            "%s clients waiting for a server connection in pool %s" % (pool["cl_waiting"], where["pool"]),
            "clients",
            **where,
        )
    )
    status, threshold = grade(pool["maxwait_seconds"], thresholds.maxwait_warning, thresholds.maxwait_critical)
    findings.append(
        pool_finding(
            "maxwait",
            status,
            pool["maxwait_seconds"],
            threshold,
            "oldest waiting client of pool %s has waited %.3f s" % (where["pool"], pool["maxwait_seconds"]),
            "s",
            **where,
        )
    )
    utilization = pool["utilization_pct"]
    status, threshold = grade(utilization, thresholds.utilization_warning, thresholds.utilization_critical)
    if utilization is None:
        message = "pool %s has no pool_size; utilization unknown" % where["pool"]
    else:
        message = "pool %s uses %s of %s server connections (%.1f%%, reserve %s)" % (
            where["pool"],
            pool["sv_active"],
            pool["pool_size"],
            utilization,
            pool["reserve_pool"],
        )
    findings.append(pool_finding("utilization", status, utilization, threshold, message, "%", **where))
    return findings


def database_state_findings(limits: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A paused or disabled database makes every client of it wait or fail."""
    findings = []
    for name, limit in sorted(limits.items()):
        if name == ADMIN_DATABASE or not (limit["paused"] or limit["disabled"]):
            continue
        state = "paused" if limit["paused"] else "disabled"
        findings.append(
            pool_finding(
                "database_state",
                CRITICAL if limit["disabled"] else WARNING,
                state,
                "active",
                "PgBouncer database %s is %s" % (name, state),
                pool=None,
                database=name,
            )
        )
    return findings


def client_connections(snapshot: Dict[str, Any], pools: Sequence[Dict[str, Any]]) -> int:
    """Client connections PgBouncer holds: SHOW LISTS used_clients, else the pools' sum."""
    lists = {row.get("list"): row.get("items") for row in snapshot.get("lists", [])}
    used = number(lists, "used_clients", default=None)
    if used is not None:
        return int(used)
    return int(sum(pool["cl_active"] + pool["cl_waiting"] for pool in pools))


def client_connection_finding(snapshot: Dict[str, Any], pools, thresholds: Thresholds) -> Dict[str, Any]:
    config = {row.get("key"): row.get("value") for row in snapshot.get("config", [])}
    max_client_conn = number(config, "max_client_conn", default=0)
    used = client_connections(snapshot, pools)
    share = percent(used, max_client_conn)
    status, threshold = grade(share, thresholds.client_connections_warning, thresholds.client_connections_critical)
    return pool_finding(
        "client_connections",
        status,
        share,
        threshold,
        "%s client connections of max_client_conn %s (%s%%)" % (used, max_client_conn, share),
        "%",
        pool=None,
        database=None,
        clients=used,
        max_client_conn=max_client_conn,
    )


def all_findings(
    snapshot: Dict[str, Any], pools: Sequence[Dict[str, Any]], limits, thresholds: Thresholds
) -> List[Dict[str, Any]]:
    findings: List[Dict[str, Any]] = []
    for pool in pools:
        if pool["database"] != ADMIN_DATABASE:
            findings.extend(pool_findings(pool, thresholds))
    findings.extend(database_state_findings(limits))
    findings.append(client_connection_finding(snapshot, pools, thresholds))
    return findings


def observe_pools(params: ConnectionParams, thresholds: Thresholds) -> Dict[str, Any]:
    """pgbouncer_pools' live side: the snapshot, per-pool figures and findings; unreachable is a
    result (a CRITICAL connection finding), never an exception. `_limits` is for the sample only."""
    result: Dict[str, Any] = {"endpoint": params.endpoint, "reachable": False, "conn_err_msg": None}
    result["conn_err_kind"] = None
    try:
        snapshot = read_console(params)
    except ConnectionFailure as failure:
        result.update(conn_err_msg=str(failure), conn_err_kind=failure.kind, pools=[], databases=[])
        result.update(lists={}, stats=[], config={}, version=None, _limits={})
        result["findings"] = [unreachable_finding(params.endpoint, str(failure))]
        return result
    pools, limits = summarise_pools(snapshot)
    result.update(
        reachable=True,
        version=snapshot["version"],
        pools=pools,
        databases=snapshot["databases"],
        lists={row.get("list"): row.get("items") for row in snapshot["lists"]},
        stats=snapshot["stats"],
        config=config_subset(snapshot["config"]),
        findings=all_findings(snapshot, pools, limits, thresholds),
        _limits=limits,
    )
    return result


def unreachable_finding(endpoint: str, message: str) -> Dict[str, Any]:
    return finding("connection", CRITICAL, False, True, message, subject=endpoint, pool=None, database=None)


# --- the runbook's metrics tables ---------------------------------------------------------


def metrics_tables_present(conn: Any, params: ConnectionParams, schema: str) -> bool:
    rows = fetch_dicts(
        conn,
        params,
        "SELECT count(*) AS present FROM information_schema.tables WHERE table_schema = %s AND table_name = ANY(%s)",
        (schema, list(METRICS_TABLES)),
    )
    return rows[0]["present"] == len(METRICS_TABLES)


def metrics_tables(schema: str) -> Dict[str, Any]:
    """The seed's pool metrics and config tables in `schema`, quoted for sql.SQL.format."""
    return {
        "metrics": sql.Identifier(schema, "connection_pool_metrics"),
        "config": sql.Identifier(schema, "connection_pool_config"),
    }


def metrics_query(schema: str) -> Any:
    """The runbook's "check connection pool metrics" query, with its window as a parameter."""
    return sql.SQL(
        "SELECT cpc.tier, cpc.pool_name, cpm.active_connections, cpm.idle_connections,\n"
        "       cpm.connection_usage_rate, cpm.pending_acquires, cpm.max_wait_seconds, cpm.collected_at\n"
        "FROM {metrics} cpm\n"
        "JOIN {config} cpc ON cpm.pool_config_id = cpc.id\n"
        "WHERE cpm.collected_at >= now() - make_interval(secs => %(window)s)\n"
        "ORDER BY cpm.collected_at DESC, cpc.pool_name\n"
        "LIMIT %(limit)s"
    ).format(**metrics_tables(schema))


def read_metrics(conn: Any, params: ConnectionParams, schema: str, window: float, limit: int) -> List[Dict[str, Any]]:
    return fetch_dicts(conn, params, metrics_query(schema), {"window": float(window), "limit": int(limit)})


def sample_rows(
    pools: Sequence[Dict[str, Any]], limits: Dict[str, Dict[str, Any]], tiers: Dict[str, str]
) -> List[Dict[str, Any]]:
    """One sample per PgBouncer database, its pools (one per user) added up; busiest pool's usage."""
    rows = []
    for database in sorted(name for name in limits if name != ADMIN_DATABASE):
        members = [pool for pool in pools if pool["database"] == database]
        usage = [pool["utilization_pct"] for pool in members if pool["utilization_pct"] is not None]
        limit = limits[database]
        rows.append(
            {
                "pool_name": database,
                "tier": tiers.get(database),
                "min_connections": int(limit.get("min_pool_size") or 0),
                "max_connections": int(limit.get("pool_size") or 0),
                "reserve_connections": int(limit.get("reserve_pool") or 0),
                "active_connections": int(sum(pool["sv_active"] for pool in members)),
                "idle_connections": int(sum(pool["sv_idle"] + pool["sv_used"] + pool["sv_tested"] for pool in members)),
                "connection_usage_rate": max(usage, default=0.0),
                "pending_acquires": int(sum(pool["cl_waiting"] for pool in members)),
                "max_wait_seconds": max((pool["maxwait_seconds"] for pool in members), default=0.0),
            }
        )
    return rows


def upsert_config_statement(schema: str) -> Any:
    """Create the pool's config row, or bring it in step with PgBouncer; an unchanged row is not touched.

    Without an explicit tier a new row is filed under its pool name and an existing row keeps its tier.
    """
    return sql.SQL(
        "INSERT INTO {config} AS c (tier, pool_name, min_connections, max_connections, reserve_connections)\n"
        "VALUES (coalesce(%(tier)s, %(pool_name)s), %(pool_name)s, %(min_connections)s, %(max_connections)s,"
        " %(reserve_connections)s)\n"
        "ON CONFLICT (pool_name) DO UPDATE SET tier = coalesce(%(tier)s, c.tier),"
        " min_connections = EXCLUDED.min_connections, max_connections = EXCLUDED.max_connections,"
        " reserve_connections = EXCLUDED.reserve_connections, updated_at = now()\n"
        "WHERE (c.tier, c.min_connections, c.max_connections, c.reserve_connections)"
        " IS DISTINCT FROM (coalesce(%(tier)s, c.tier), EXCLUDED.min_connections, EXCLUDED.max_connections,"
        " EXCLUDED.reserve_connections)"
    ).format(config=sql.Identifier(schema, "connection_pool_config"))


def insert_metrics_statement(schema: str) -> Any:
    return sql.SQL(
        "INSERT INTO {metrics} (pool_config_id, active_connections, idle_connections,"
        " connection_usage_rate, pending_acquires, max_wait_seconds)\n"
        "SELECT c.id, %(active_connections)s, %(idle_connections)s, %(connection_usage_rate)s,"
        " %(pending_acquires)s, %(max_wait_seconds)s\n"
        "FROM {config} c WHERE c.pool_name = %(pool_name)s"
    ).format(**metrics_tables(schema))


def sample_statements(schema: str, rows: Sequence[Dict[str, Any]]) -> List[Tuple[Any, Dict[str, Any]]]:
    """(statement, parameters) pairs that record one sample; run them in one transaction."""
    statements = []
    for row in rows:
        statements.append((upsert_config_statement(schema), row))
        statements.append((insert_metrics_statement(schema), row))
    return statements


def write_sample(
    conn: Any, params: ConnectionParams, schema: str, rows: Sequence[Dict[str, Any]], check_mode: bool
) -> Dict[str, Any]:
    """Write one sample in one transaction, or in check mode plan it (the same statements either way)."""
    runner = StatementRunner(check_mode)
    writing = not check_mode
    conn.autocommit = not writing
    try:
        for statement, args in sample_statements(schema, rows):
            runner.run(conn, params, statement, args)
        if writing:
            conn.commit()
    except BaseException:
        rollback_quietly(conn)
        raise
    conn.autocommit = True
    shown = "executed_queries" if writing else "planned_queries"
    return {"planned_queries": [], "executed_queries": [], shown: runner.executed, "recorded": writing}


def rollback_quietly(conn: Any) -> None:
    # The write failed; the rollback must not hide why.
    with contextlib.suppress(Exception):
        conn.rollback()
