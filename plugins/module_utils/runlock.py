# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lock file that serialises remediation runs for one tier.

Taken under an flock on a guard file beside it, so of two runs started at the same
moment exactly one holds it. The file says who holds it (owner, incident, host, pid, since, expiry) so a
refused run can tell the operator which run to look at. A lock past its expiry is
stale (its run died) and may be taken over; that is reported.

The lock directory must be on storage every controller that may start a run sees
(default ``/var/lib/penguinmails-dbops/locks``, absolute, so two runs started from two
working directories meet there). It is created 0700 and refused when it is a symbolic
link or owned by another user.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Dict, Optional, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils import files

DEFAULT_LOCK_DIR = "/var/lib/penguinmails-dbops/locks"


def run_owner(name: str, incident_id: str, now: float, pid: int) -> str:
    """A run-unique owner when the caller names none: incident (or lock name), UTC time to the microsecond, pid."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "%06d" % int((now % 1) * 1_000_000)
    return "%s-%s-%d" % (incident_id or name, stamp, pid)


def lock_path(lock_dir: str, name: str) -> str:
    safe = "".join(character if character.isalnum() or character in "-_." else "_" for character in name)
    return os.path.join(lock_dir, "%s.lock" % safe)


def read_holder(path: str) -> Optional[Dict[str, Any]]:
    try:
        text = files.read_text(path)
        return None if text is None else json.loads(text)
    except files.UnsafePathError:
        raise
    except (OSError, ValueError):
        return {"owner": "unreadable lock file", "expires_at": 0}


def describe_holder(holder: Dict[str, Any]) -> str:
    return "owner %s (incident %s) on %s, pid %s, since %s" % (
        holder.get("owner"),
        holder.get("incident_id"),
        holder.get("host"),
        holder.get("pid"),
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(holder.get("acquired_at", 0))),
    )


def guarded(path: str):
    """Exclusive section for reading and replacing the lock file, across processes and threads.

    Without it a contender could read a lock the winner has created but not yet written,
    take the empty record for a stale lock, and take it over.
    """
    return files.exclusive_lock(path + ".guard")


def write_record(path: str, record: Dict[str, Any]) -> None:
    """Replace the lock file in one rename, so a reader never sees half a record."""
    files.write_atomically(path, json.dumps(record))


def new_record(owner: str, incident_id: str, ttl: float) -> Dict[str, Any]:
    now = time.time()
    return {
        "owner": owner,
        "incident_id": incident_id,
        "host": socket.gethostname(),
        "pid": os.getppid(),
        "acquired_at": now,
        "expires_at": now + ttl,
    }


def verdict(holder: Optional[Dict[str, Any]], owner: str, now: float) -> str:
    """What taking the lock does, given the holder found: 'acquired' | 'held' | 'took_over' | 'busy'."""
    if holder is None:
        return "acquired"
    if holder.get("owner") == owner:
        return "held"
    if holder.get("expires_at", 0) < now:
        return "took_over"
    return "busy"


def try_acquire(path: str, owner: str, incident_id: str, ttl: float) -> Tuple[str, Optional[Dict[str, Any]]]:
    """One attempt: ('acquired' | 'held' | 'took_over' | 'busy', holder found)."""
    with guarded(path):
        holder = read_holder(path)
        outcome = verdict(holder, owner, time.time())
        if outcome in ("acquired", "took_over"):
            write_record(path, new_record(owner, incident_id, ttl))
        return outcome, holder


def preview(path: str, owner: str, state: str) -> Tuple[str, Optional[Dict[str, Any]]]:
    """Check mode: what taking (present) or releasing (absent) would do; reads the lock file, creates nothing."""
    holder = read_holder(path) if os.path.isdir(os.path.dirname(path)) else None
    if state == "absent":
        if holder is None:
            return "not_held", None
        return ("would_release" if holder.get("owner") == owner else "held_by_other"), holder
    outcome = verdict(holder, owner, time.time())
    return {"acquired": "would_acquire", "took_over": "would_take_over"}.get(outcome, outcome), holder


def acquire(
    path: str, owner: str, incident_id: str, ttl: float, wait: float, poll: float = 0.1
) -> Tuple[str, Optional[Dict[str, Any]]]:
    """('acquired' | 'held' (already ours) | 'took_over' | 'busy', previous holder)."""
    files.ensure_private_directory(os.path.dirname(path) or ".")
    deadline = time.monotonic() + wait
    while True:
        outcome, holder = try_acquire(path, owner, incident_id, ttl)
        if outcome != "busy" or time.monotonic() >= deadline:
            return outcome, holder
        time.sleep(poll)


def release(path: str, owner: str) -> Tuple[str, Optional[Dict[str, Any]]]:
    """('released' | 'not_held' | 'held_by_other', holder)."""
    if not os.path.isdir(os.path.dirname(path) or "."):
        return "not_held", None
    with guarded(path):
        holder = read_holder(path)
        if holder is None:
            return "not_held", None
        if holder.get("owner") != owner:
            return "held_by_other", holder
        os.unlink(path)
        return "released", holder
