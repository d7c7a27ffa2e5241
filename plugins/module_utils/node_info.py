# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one PostgreSQL server says about itself: role, timeline, WAL positions, replication.

`NODE_INFO_QUERY` collects everything in one round trip; functions that only
work on a primary (or only on a standby) sit behind CASE so the same statement
runs on both. `collect_node_info` turns the row into the module's result.
"""

from __future__ import annotations

import datetime
import decimal
import time
from typing import Any, Dict, Optional

from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    close_quietly,
    connect,
    fetch_dicts,
)

NODE_INFO_QUERY = """
SELECT
  current_setting('server_version_num')::int AS server_version_num,
  current_setting('server_version') AS server_version,
  pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
  pg_last_wal_receive_lsn()::text AS received_lsn,
  pg_last_wal_replay_lsn()::text AS replay_lsn,
  CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS replay_paused,
  pg_last_xact_replay_timestamp() AS last_replay_timestamp,
  CASE WHEN pg_is_in_recovery() THEN NULL
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
  END AS primary_timeline_id,
  (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline_id,
  CASE WHEN pg_is_in_recovery() THEN
    (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{8}[.]history$')
  END AS history_timeline_id,
  current_setting('synchronous_standby_names') AS synchronous_standby_names,
  pg_postmaster_start_time() AS postmaster_start_time,
  now() AS server_time,
  (SELECT row_to_json(w) FROM (
     SELECT status, receive_start_lsn::text, receive_start_tli, written_lsn::text,
            flushed_lsn::text, received_tli, last_msg_send_time, last_msg_receipt_time,
            latest_end_lsn::text, latest_end_time, slot_name, sender_host, sender_port,
            EXTRACT(EPOCH FROM now() - last_msg_receipt_time)::float8 AS seconds_since_last_message
     FROM pg_stat_wal_receiver) w) AS wal_receiver,
  (SELECT coalesce(json_agg(r ORDER BY r.application_name), '[]'::json) FROM (
     SELECT pid, application_name, host(client_addr) AS client_addr, state, sync_state, sync_priority,
            sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
            CASE WHEN pg_is_in_recovery() THEN NULL
                 ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint END AS replay_lag_bytes,
            CASE WHEN pg_is_in_recovery() THEN NULL
                 ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint END AS flush_lag_bytes,
            EXTRACT(EPOCH FROM write_lag)::float8 AS write_lag_seconds,
            EXTRACT(EPOCH FROM flush_lag)::float8 AS flush_lag_seconds,
            EXTRACT(EPOCH FROM replay_lag)::float8 AS replay_lag_seconds,
            reply_time
     FROM pg_stat_replication) r) AS replicas,
  (SELECT coalesce(json_agg(s ORDER BY s.slot_name), '[]'::json) FROM (
     SELECT slot_name, slot_type, active, restart_lsn::text, wal_status,
            CASE WHEN pg_is_in_recovery() OR restart_lsn IS NULL THEN NULL
                 ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END AS retained_bytes
     FROM pg_replication_slots) s) AS replication_slots
"""

# What an unreachable server reports: every field present so playbooks can test them.
UNREACHABLE_FIELDS: Dict[str, Any] = {
    "in_recovery": None,
    "server_version_num": None,
    "server_version": None,
    "timeline_id": None,
    "current_lsn": None,
    "received_lsn": None,
    "replay_lsn": None,
    "replay_paused": None,
    "replay_delay_bytes": None,
    "last_replay_timestamp": None,
    "synchronous_standby_names": None,
    "postmaster_start_time": None,
    "server_time": None,
    "wal_receiver": None,
    "replicas": [],
    "replication_slots": [],
}


def lsn_to_int(lsn: Optional[str]) -> Optional[int]:
    """'16/B374D848' -> byte position; None stays None."""
    if not lsn:
        return None
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def json_safe(value: Any) -> Any:
    """Values Ansible can serialise: timestamps as ISO 8601, decimals as numbers."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


def role_of(in_recovery: Optional[bool]) -> str:
    if in_recovery is None:
        return "down"
    return "standby" if in_recovery else "primary"


def timeline_of(row: Dict[str, Any]) -> Optional[int]:
    """Primary: the timeline it writes; standby: the newest one it has received or replayed.

    A standby's checkpoint timeline lags until its next restartpoint, and its WAL receiver
    may not be running; the newest timeline history file it holds says it followed a switch.
    """
    if row.get("primary_timeline_id") is not None:
        return row["primary_timeline_id"]
    receiver = row.get("wal_receiver") or {}
    received = receiver.get("received_tli")
    checkpoint = row.get("checkpoint_timeline_id")
    history = row.get("history_timeline_id")
    candidates = [tli for tli in (received, checkpoint, history) if tli]
    return max(candidates) if candidates else None


def replay_delay_bytes(row: Dict[str, Any]) -> Optional[int]:
    """Standby only: WAL received but not yet replayed."""
    received, replayed = lsn_to_int(row.get("received_lsn")), lsn_to_int(row.get("replay_lsn"))
    if received is None or replayed is None:
        return None
    return max(0, received - replayed)


def node_facts_from_row(row: Dict[str, Any]) -> Dict[str, Any]:
    """The module's result fields for a server that answered NODE_INFO_QUERY."""
    return json_safe(
        {
            "in_recovery": row["in_recovery"],
            "role": role_of(row["in_recovery"]),
            "server_version_num": row["server_version_num"],
            "server_version": row["server_version"],
            "timeline_id": timeline_of(row),
            "current_lsn": row.get("current_lsn"),
            "received_lsn": row.get("received_lsn"),
            "replay_lsn": row.get("replay_lsn"),
            "replay_paused": row.get("replay_paused"),
            "replay_delay_bytes": replay_delay_bytes(row),
            "last_replay_timestamp": row.get("last_replay_timestamp"),
            "synchronous_standby_names": row.get("synchronous_standby_names"),
            "postmaster_start_time": row.get("postmaster_start_time"),
            "server_time": row.get("server_time"),
            "wal_receiver": row.get("wal_receiver"),
            "replicas": row.get("replicas") or [],
            "replication_slots": row.get("replication_slots") or [],
        }
    )


def collect_node_info(params: ConnectionParams) -> Dict[str, Any]:
    """Connect, ask, and describe one server. Unreachable is a result, never an exception."""
    started = time.monotonic()
    result: Dict[str, Any] = {"endpoint": params.endpoint, "reachable": False, "role": "down"}
    conn = None
    try:
        conn = connect(params)
        result["connect_latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        row = fetch_dicts(conn, params, NODE_INFO_QUERY)[0]
    except ConnectionFailure as failure:
        result.update(UNREACHABLE_FIELDS)
        result.update({"conn_err_msg": str(failure), "conn_err_kind": failure.kind})
        result.setdefault("connect_latency_ms", None)
        result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
        return result
    finally:
        close_quietly(conn)
    result.update(node_facts_from_row(row))
    result.update({"reachable": True, "conn_err_msg": None, "conn_err_kind": None})
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result
