# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Promoting a standby once, then giving it the tier's synchronous_standby_names.

Every statement has query_timeout as its deadline except the promote call, which
waits up to wait_seconds on the server and so gets that long plus a margin: a hung
server costs query_timeout, not the promote wait.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed, connected
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    StatementRunner,
    execute,
)

PROMOTE = "SELECT pg_promote(true, %s)"
IN_RECOVERY = "SELECT pg_is_in_recovery()"
TIMELINE = "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
SHOW_SYNC_NAMES = "SHOW synchronous_standby_names"
SET_SYNC_NAMES = "ALTER SYSTEM SET synchronous_standby_names = %s"
RELOAD = "SELECT pg_reload_conf()"
PROMOTE_MARGIN_S = 5.0


def promote_deadline(query_timeout: float, wait_seconds: int) -> float:
    """The promote call's deadline: the server-side wait plus a margin, never less than query_timeout."""
    return max(query_timeout, wait_seconds + PROMOTE_MARGIN_S)


class Promotion:
    """pg_promote of the server at `params`, idempotent; then its synchronous_standby_names if asked.

    Raises ActionFailed (with the result so far) on any failure.
    """

    def __init__(
        self,
        params: ConnectionParams,
        wait_seconds: int,
        promote_timeout: float,
        synchronous_standby_names: Optional[str],
        check_mode: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.params = params
        self.wait_seconds = wait_seconds
        self.promote_timeout = promote_timeout
        self.sync_names = synchronous_standby_names
        self.check_mode = check_mode
        self.clock = clock
        self.sleep = sleep
        self.runner = StatementRunner(check_mode)
        self.result: Dict[str, Any] = {
            "changed": False,
            "promoted": False,
            "state": "unknown",
            "executed_queries": self.runner.executed,
        }

    def in_recovery(self, conn: Any) -> bool:
        return bool(execute(conn, self.params, IN_RECOVERY).fetchone()[0])

    def poll_until_primary(self, conn: Any) -> bool:
        deadline = self.clock() + self.promote_timeout
        while self.clock() < deadline:
            if not self.in_recovery(conn):
                return True
            self.sleep(0.1)
        return not self.in_recovery(conn)

    def apply_sync_names(self, conn: Any) -> None:
        """ALTER SYSTEM and reload when the setting differs from the wanted one (None: leave it)."""
        if self.sync_names is None:
            return
        current = execute(conn, self.params, SHOW_SYNC_NAMES).fetchone()[0]
        if current == self.sync_names:
            return
        self.runner.run(conn, self.params, SET_SYNC_NAMES, (self.sync_names,))
        self.runner.run(conn, self.params, RELOAD)

    def request_promotion(self, conn: Any) -> bool:
        """The promote call, with its own deadline; whether the server says it finished."""
        previous = conn.operation_timeout
        conn.operation_timeout = promote_deadline(self.params.query_timeout, self.wait_seconds)
        try:
            cursor = self.runner.run(conn, self.params, PROMOTE, (self.wait_seconds,))
            return cursor is not None and bool(cursor.fetchone()[0])
        finally:
            conn.operation_timeout = previous

    def promote(self, conn: Any) -> None:
        started = self.clock()
        finished = self.request_promotion(conn)
        self.result["changed"] = True
        if self.check_mode:
            self.result["state"] = "would_promote"
            self.apply_sync_names(conn)
            return
        if not finished:
            finished = self.poll_until_primary(conn)
        self.result["promote_seconds"] = round(self.clock() - started, 3)
        if not finished:
            raise ActionFailed(
                "promotion of %s was requested but the server is still in recovery after %.0f s; "
                "state unknown, not rolling back: check the server log before retrying"
                % (self.params.endpoint, self.promote_timeout + self.wait_seconds),
                self.result,
            )
        self.result.update(promoted=True, state="promoted")
        self.apply_sync_names(conn)

    def run(self) -> Dict[str, Any]:
        try:
            with connected(self.params) as conn:
                self.promote_once(conn)
        except ConnectionFailure as failure:
            if self.result["promoted"]:
                message = "%s is promoted, but a statement after it failed: %s" % (self.params.endpoint, failure)
                raise ActionFailed(message, self.result) from None
            raise ActionFailed(str(failure), self.result) from None
        return self.result

    def promote_once(self, conn: Any) -> None:
        if self.in_recovery(conn):
            self.promote(conn)
        else:
            self.result.update(promoted=True, state="already_primary")
            self.apply_sync_names(conn)
            self.result["changed"] = bool(self.runner.executed)
        if self.result["promoted"]:
            self.result["timeline_id"] = execute(conn, self.params, TIMELINE).fetchone()[0]
