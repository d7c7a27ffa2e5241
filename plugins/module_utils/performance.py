# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The performance runbook's rules: what the query check finds and what the run does about it.

Pure functions over rows already read (no I/O): blocking chains from pg_blocking_pids, waits by
type, heavy sequential scans, stale statistics, the sessions to cancel, the verification of the
slow statement's mean time and the run's outcome. The statements that read those rows are here
too, as constants, so the observing module and the tests share one text.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.penguinmails.dbops.plugins.module_utils.indexes import approved_problems
from ansible_collections.penguinmails.dbops.plugins.module_utils.inputs import as_number
from ansible_collections.penguinmails.dbops.plugins.module_utils.settings import spec_problems

STATEMENT_PREVIEW_CHARS = 200

# pg_stat_statements columns the report keeps (PostgreSQL 13 and later names).
TOP_STATEMENTS_SQL = """SELECT s.queryid::text AS queryid, left(s.query, %(preview)s) AS query,
       s.calls, s.rows, s.total_exec_time AS total_ms, s.mean_exec_time AS mean_ms,
       s.shared_blks_hit, s.shared_blks_read, s.temp_blks_read, s.temp_blks_written
FROM pg_stat_statements s
JOIN pg_database d ON d.oid = s.dbid AND d.datname = current_database()
ORDER BY {order} DESC
LIMIT %(limit)s"""
TOP_ORDERS = {"total": "s.total_exec_time", "mean": "s.mean_exec_time"}

STATEMENTS_AVAILABLE_SQL = """SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements')
   AND EXISTS (SELECT FROM pg_settings WHERE name = 'shared_preload_libraries'
               AND 'pg_stat_statements' = ANY(string_to_array(replace(setting, ' ', ''), ',')))"""

TABLE_STATS_SQL = """SELECT t.schemaname, t.relname, t.seq_scan, t.seq_tup_read,
       coalesce(t.idx_scan, 0) AS idx_scan, coalesce(t.idx_tup_fetch, 0) AS idx_tup_fetch,
       t.n_live_tup, t.n_mod_since_analyze,
       greatest(t.last_analyze, t.last_autoanalyze) AS last_analyzed,
       current_setting('autovacuum_analyze_scale_factor')::float8 AS analyze_scale_factor,
       current_setting('autovacuum_analyze_threshold')::int AS analyze_threshold
FROM pg_stat_user_tables t
ORDER BY t.schemaname, t.relname"""


def blocking_chains(sessions: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Root blockers (block others, blocked by nobody), each with the sessions waiting behind it.

    `sessions` are pg_activity rows (pid, blocked_by, duration_seconds, ...). Each chain gives the
    root's pid, user and age, the depth of the longest wait path, and every waiter with its depth
    and how long it has waited. Cycles (a deadlock the server is about to break) have no root
    and are not reported here.
    """
    by_pid = {session["pid"]: session for session in sessions}
    waiters_of: Dict[int, List[int]] = {}
    for session in sessions:
        for blocker in session.get("blocked_by") or []:
            waiters_of.setdefault(blocker, []).append(session["pid"])
    roots = sorted(pid for pid in waiters_of if not (by_pid.get(pid, {}).get("blocked_by") or []))
    return [chain_from(root, by_pid, waiters_of) for root in roots]


def chain_from(root: int, by_pid: Dict[int, Dict[str, Any]], waiters_of: Dict[int, List[int]]) -> Dict[str, Any]:
    waiters: List[Dict[str, Any]] = []
    seen = {root}
    frontier = [(root, 0)]
    while frontier:
        pid, depth = frontier.pop(0)
        for waiter in sorted(waiters_of.get(pid, [])):
            if waiter in seen:
                continue
            seen.add(waiter)
            session = by_pid.get(waiter, {})
            waiters.append(
                {
                    "pid": waiter,
                    "depth": depth + 1,
                    "waiting_seconds": session.get("duration_seconds"),
                    "user": session.get("usename"),
                }
            )
            frontier.append((waiter, depth + 1))
    root_session = by_pid.get(root, {})
    return {
        "root_pid": root,
        "user": root_session.get("usename"),
        "state": root_session.get("state"),
        "age_seconds": root_session.get("xact_duration_seconds") or root_session.get("duration_seconds"),
        "depth": max((waiter["depth"] for waiter in waiters), default=0),
        "longest_wait_seconds": max((waiter["waiting_seconds"] or 0 for waiter in waiters), default=0),
        "waiters": waiters,
    }


def waits_by_type(sessions: Sequence[Dict[str, Any]]) -> Dict[str, int]:
    """How many sessions wait on each wait event type ("none" for running on CPU)."""
    counts: Dict[str, int] = {}
    for session in sessions:
        kind = session.get("wait_event_type") or "none"
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def heavy_seq_scans(tables: Sequence[Dict[str, Any]], min_rows_read: int, ratio: float) -> List[Dict[str, Any]]:
    """Tables whose sequential scans read at least `min_rows_read` rows and `ratio` times what index scans fetched."""
    heavy = []
    for table in tables:
        read = table.get("seq_tup_read") or 0
        fetched = table.get("idx_tup_fetch") or 0
        if read >= min_rows_read and read >= ratio * fetched:
            heavy.append(
                table_summary(table, seq_tup_read=read, idx_tup_fetch=fetched, seq_scan=table.get("seq_scan") or 0)
            )
    return sorted(heavy, key=lambda table: -table["seq_tup_read"])


def stale_statistics(tables: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Tables modified since their last ANALYZE past autovacuum's own trigger (threshold + scale_factor * live rows)."""
    stale = []
    for table in tables:
        limit = (table.get("analyze_threshold") or 0) + (table.get("analyze_scale_factor") or 0) * (
            table.get("n_live_tup") or 0
        )
        modified = table.get("n_mod_since_analyze") or 0
        if modified > limit or (modified > 0 and table.get("last_analyzed") is None):
            stale.append(table_summary(table, n_mod_since_analyze=modified, analyze_limit=round(limit, 1)))
    return stale


def table_summary(table: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    summary = {"schema": table["schemaname"], "table": table["relname"], "n_live_tup": table.get("n_live_tup")}
    summary.update(extra)
    return summary


def missing_index_candidates(
    heavy: Sequence[Dict[str, Any]], statements: Sequence[Dict[str, Any]]
) -> List[Dict[str, Any]]:
    """Heavily seq-scanned tables with the top statements that name them: a report, never an index."""
    candidates = []
    for table in heavy:
        name = table["table"].lower()
        touching = [
            statement.get("queryid") for statement in statements if name in (statement.get("query") or "").lower()
        ]
        candidates.append(dict(table, statements=sorted({queryid for queryid in touching if queryid})))
    return candidates


def sessions_over(sessions: Sequence[Dict[str, Any]], query_max_s: float) -> List[int]:
    """Pids of active statements running longer than query_max_s."""
    return sorted(
        session["pid"]
        for session in sessions
        if session.get("state") == "active" and (session.get("duration_seconds") or 0) > query_max_s
    )


def blockers_over(chains: Sequence[Dict[str, Any]], block_max_s: float) -> List[int]:
    """Root blockers that have held someone longer than block_max_s."""
    return sorted(chain["root_pid"] for chain in chains if (chain.get("longest_wait_seconds") or 0) > block_max_s)


def statement_delta(before: Dict[str, Any], after: Dict[str, Any]) -> Dict[str, Any]:
    """Calls and mean time of a statement between two pg_stat_statements readings (None when it did not run)."""
    calls = (after.get("calls") or 0) - (before.get("calls") or 0)
    total = (after.get("total_ms") or 0.0) - (before.get("total_ms") or 0.0)
    if calls <= 0:
        return {"calls": 0, "mean_ms": None}
    return {"calls": calls, "mean_ms": round(total / calls, 3)}


def verification(
    chains_after: Sequence[Dict[str, Any]], mean_ms_after: Optional[float], target_ms: Optional[float]
) -> Dict[str, Any]:
    """Better or not: no blocking chain left, and the slow statement's mean under its target when one is named."""
    if chains_after:
        roots = ", ".join(str(chain["root_pid"]) for chain in chains_after)
        return {"verified": False, "reason": "sessions still block others (root pids %s)" % roots}
    if target_ms is not None:
        if mean_ms_after is None:
            return {
                "verified": False,
                "reason": "the slow statement did not run during the observation window; no evidence it is faster",
            }
        if mean_ms_after > target_ms:
            return {
                "verified": False,
                "reason": "the slow statement's mean is %.1f ms, over its target of %.1f ms"
                % (mean_ms_after, target_ms),
            }
    return {
        "verified": True,
        "reason": "no blocking chain"
        + ("" if target_ms is None else "; mean %.1f ms under %.1f ms" % (mean_ms_after, target_ms)),
    }


def slow_statement_ms(
    check: Optional[Dict[str, Any]], window_start: Optional[Dict[str, Any]] = None
) -> Optional[float]:
    """The slow statement's time in one check: the probe's median, else the watched statement's mean
    (over the window since `window_start` when given, else since statistics were reset)."""
    check = check or {}
    if check.get("probe"):
        return check["probe"].get("median_ms")
    if not check.get("watched"):
        return None
    return statement_delta((window_start or {}).get("watched") or {}, check["watched"])["mean_ms"]


def performance_verdict(
    before: Dict[str, Any], window_start: Dict[str, Any], window_end: Dict[str, Any], target_ms: Optional[float]
) -> Dict[str, Any]:
    """Before/after evidence and whether the run made it better (pg_query_check results of the run)."""
    after_ms = slow_statement_ms(window_end, window_start)
    verdict = verification(window_end.get("blocking_chains") or [], after_ms, target_ms)
    verdict.update(
        before_ms=slow_statement_ms(before),
        after_ms=after_ms,
        target_ms=target_ms,
        blocking_chains_before=len(before.get("blocking_chains") or []),
        blocking_chains_after=len(window_end.get("blocking_chains") or []),
    )
    return verdict


def refusal_of(tier_decision: Optional[Dict[str, Any]]) -> Optional[str]:
    """Why the run must not act on this tier: no healthy primary (pg_failover_plan's decision)."""
    if not tier_decision or tier_decision.get("action") == "healthy":
        return None
    return "no healthy primary (%s: %s); run incident_db_outage.yml" % (
        tier_decision.get("action"),
        tier_decision.get("reason"),
    )


def run_outcome(
    changed: bool, verdict: Optional[Dict[str, Any]], failures: Sequence[str], refusal: Optional[str] = None
) -> Dict[str, str]:
    """The incident's outcome and note: refused when the run would not act, escalated when a step failed
    or the verification did not hold (with its evidence), else resolved or no_action."""
    if refusal:
        return {"outcome": "refused", "note": refusal}
    if failures:
        return {"outcome": "escalated", "note": "; ".join(failures)}
    if verdict and not verdict.get("verified"):
        return {"outcome": "escalated", "note": "not better after the run: %s" % verdict.get("reason")}
    reason = "; %s" % verdict["reason"] if verdict else ""
    if changed:
        return {"outcome": "resolved", "note": "mitigated" + reason}
    return {"outcome": "no_action", "note": "nothing needed changing" + reason}


def pool_problems(pool_size: Any, pool_size_max: Any) -> List[str]:
    """A PgBouncer pool size is scaled only within the inventory's ceiling (0: leave the pools alone)."""
    if pool_size and pool_size_max is not None and int(pool_size) > int(pool_size_max):
        return [
            "performance_pool_size must be at most performance_pool_size_max (%s; got %s)" % (pool_size_max, pool_size)
        ]
    return []


def input_problems(
    approved: Any,
    target_ms: Any,
    watch: Any,
    probe: Any,
    settings: Any = (),
    allowed_settings: Sequence[str] = (),
    revert_without_incident: bool = False,
    pool: Sequence[Any] = (0, None),
) -> List[str]:
    """What the argument spec cannot say: each approved index's fields, evidence for a target, settings
    on the allow list, a pool size within its ceiling, and an incident to revert."""
    problems = spec_problems(list(settings) if isinstance(settings, (list, tuple)) else settings, allowed_settings)
    problems += pool_problems(*pool)
    if revert_without_incident:
        problems.append("performance_revert needs -e incident_id=<the incident whose settings to put back>")
    return problems + index_and_target_problems(approved, target_ms, watch, probe)


def index_and_target_problems(approved: Any, target_ms: Any, watch: Any, probe: Any) -> List[str]:
    if not isinstance(approved, list) or not all(isinstance(spec, dict) for spec in approved):
        return ["performance_approved_indexes must be a list of dicts (table, columns or expression, ...)"]
    problems = [
        "performance_approved_indexes[%d]: %s" % (position, problem)
        for position, spec in enumerate(approved)
        for problem in approved_problems(spec)
    ]
    if as_number(target_ms) and not (str(watch or "").strip() or str(probe or "").strip()):
        problems.append("performance_target_ms needs performance_watch or performance_probe to measure against")
    return problems
