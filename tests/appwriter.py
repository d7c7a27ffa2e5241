"""The application, as the outage tests and benchmark see it: one commit through PgBouncer
every 50 ms, reconnecting after errors, remembering every id whose commit was acknowledged.
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
        self.last_success_before: Optional[float] = None
        self.first_success_after: Optional[float] = None
        self._stop_event = threading.Event()
        self._recovered = threading.Event()
        self._failed_once = False

    @property
    def outage_seconds(self) -> Optional[float]:
        """Last acknowledged write before the first failure to the first one after it."""
        if self.last_success_before is None or self.first_success_after is None:
            return None
        return self.first_success_after - self.last_success_before

    def run(self) -> None:
        conn = None
        while not self._stop_event.is_set():
            try:
                if conn is None:
                    conn = self.lab.connect_pgbouncer(self.database, user=self.user, connect_timeout=2)
                    conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute("INSERT INTO lab_writes (note) VALUES ('appwriter') RETURNING id")
                    self.acknowledged.append(cursor.fetchone()[0])
                self._record_success(time.monotonic())
            except psycopg2.Error:
                self.failures += 1
                self._failed_once = True
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(self.interval)
        if conn is not None:
            conn.close()

    def _record_success(self, now: float) -> None:
        if not self._failed_once:
            self.last_success_before = now
        elif self.first_success_after is None:
            self.first_success_after = now
            self._recovered.set()

    def stop_after_recovery(self, timeout: float) -> bool:
        """Wait until writes succeed again after the failure (or timeout), then stop."""
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
