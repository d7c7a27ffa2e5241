"""The application, as the outage tests and benchmark see it: one commit through PgBouncer
every 50 ms, reconnecting after errors, remembering every id whose commit was acknowledged.

The write outage is measured around the injected fault (`fault_injected(at)`), not around
errors: while PgBouncer holds the tier (PAUSE) a commit issued after the kill simply waits
and succeeds on the new primary, so the application may see a stall and never an error.
"""

from __future__ import annotations

import threading
import time
from typing import List, Optional

import psycopg2


class AppWriter(threading.Thread):
    """Writes `lab_writes` rows through PgBouncer until stopped; measures the write outage."""

    def __init__(self, lab, database: str = "penguinmails_oltp", user: str = "lab_app_user", interval: float = 0.05):
        super().__init__(daemon=True)
        self.lab = lab
        self.database = database
        self.user = user
        self.interval = interval
        self.acknowledged: List[int] = []
        self.failures = 0
        self.fault_at: Optional[float] = None
        self.last_success_before: Optional[float] = None
        self.first_success_after: Optional[float] = None
        self._stop_event = threading.Event()
        self._recovered = threading.Event()

    def fault_injected(self, at: float) -> None:
        """The moment (time.monotonic) the primary was broken."""
        self.fault_at = at

    @property
    def outage_seconds(self) -> Optional[float]:
        """Last acknowledged commit before the fault to the first one issued after it."""
        if self.last_success_before is None or self.first_success_after is None:
            return None
        return self.first_success_after - self.last_success_before

    def run(self) -> None:
        conn = None
        while not self._stop_event.is_set():
            try:
                issued = time.monotonic()
                if conn is None:
                    conn = self.lab.connect_pgbouncer(self.database, user=self.user, connect_timeout=2)
                    conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute("INSERT INTO lab_writes (note) VALUES ('appwriter') RETURNING id")
                    self.acknowledged.append(cursor.fetchone()[0])
                self._record_success(issued, time.monotonic())
            except psycopg2.Error:
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(self.interval)
        if conn is not None:
            conn.close()

    def _record_success(self, issued: float, acknowledged: float) -> None:
        fault_at = self.fault_at
        if fault_at is None or acknowledged <= fault_at:
            self.last_success_before = acknowledged
        elif issued > fault_at and self.first_success_after is None:
            self.first_success_after = acknowledged
            self._recovered.set()

    def stop_after_recovery(self, timeout: float) -> bool:
        """Wait until a commit issued after the fault succeeds (or timeout), then stop."""
        recovered = self._recovered.wait(timeout)
        self._stop_event.set()
        self.join(5)
        return recovered

    def missing_on(self, conn) -> List[int]:
        """Acknowledged ids that `conn` (the new primary) does not have."""
        with conn.cursor() as cursor:
            cursor.execute("SELECT id FROM lab_writes WHERE id = ANY(%s)", (self.acknowledged,))
            present = {row[0] for row in cursor.fetchall()}
        return sorted(set(self.acknowledged) - present)
