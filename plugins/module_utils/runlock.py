# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lock file that serialises remediation runs for one tier.

Taken under an flock on a guard file beside it, so of two runs started at the same
moment exactly one holds it. The file says who holds it (owner, incident, host, pid, since, expiry) so a
refused run can tell the operator which run to look at. A lock past its expiry is
stale (its run died) and may be taken over; that is reported.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import time
from typing import Any, Dict, Iterator, Optional, Tuple


def lock_path(lock_dir: str, name: str) -> str:
    safe = "".join(character if character.isalnum() or character in "-_." else "_" for character in name)
    return os.path.join(lock_dir, "%s.lock" % safe)


def read_holder(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as lock_file:
            return json.load(lock_file)
    except FileNotFoundError:
        return None
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


@contextlib.contextmanager
def guarded(path: str) -> Iterator[None]:
    """Exclusive section for reading and replacing the lock file, across processes and threads.

    Without it a contender could read a lock the winner has created but not yet written,
    take the empty record for a stale lock, and take it over.
    """
    fd = os.open(path + ".guard", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_record(path: str, record: Dict[str, Any]) -> None:
    """Replace the lock file in one rename, so a reader never sees half a record."""
    fd, temp_path = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".lock-")
    with os.fdopen(fd, "w") as temp_file:
        json.dump(record, temp_file)
    os.chmod(temp_path, 0o644)
    os.replace(temp_path, path)


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


def try_acquire(path: str, owner: str, incident_id: str, ttl: float) -> Tuple[str, Optional[Dict[str, Any]]]:
    """One attempt: ('acquired' | 'held' | 'took_over' | 'busy', holder found)."""
    with guarded(path):
        holder = read_holder(path)
        if holder is None:
            write_record(path, new_record(owner, incident_id, ttl))
            return "acquired", None
        if holder.get("owner") == owner:
            return "held", holder
        if holder.get("expires_at", 0) < time.time():
            write_record(path, new_record(owner, incident_id, ttl))
            return "took_over", holder
        return "busy", holder


def acquire(
    path: str, owner: str, incident_id: str, ttl: float, wait: float, poll: float = 0.1
) -> Tuple[str, Optional[Dict[str, Any]]]:
    """('acquired' | 'held' (already ours) | 'took_over' | 'busy', previous holder)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        outcome, holder = try_acquire(path, owner, incident_id, ttl)
        if outcome != "busy" or time.monotonic() >= deadline:
            return outcome, holder
        time.sleep(poll)


def release(path: str, owner: str) -> Tuple[str, Optional[Dict[str, Any]]]:
    """('released' | 'not_held' | 'held_by_other', holder)."""
    with guarded(path):
        holder = read_holder(path)
        if holder is None:
            return "not_held", None
        if holder.get("owner") != owner:
            return "held_by_other", holder
        os.unlink(path)
        return "released", holder
