# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lock file that serialises remediation runs for one tier.

Created with O_CREAT|O_EXCL, so of two runs started at the same moment exactly one
holds it. The file says who holds it (owner, incident, host, pid, since, expiry) so a
refused run can tell the operator which run to look at. A lock past its expiry is
stale (its run died) and may be taken over; that is reported.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Dict, Optional, Tuple


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


def try_create(path: str, record: Dict[str, Any]) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as lock_file:
        json.dump(record, lock_file)
    return True


def acquire(
    path: str, owner: str, incident_id: str, ttl: float, wait: float, poll: float = 0.1
) -> Tuple[str, Optional[Dict[str, Any]]]:
    """('acquired' | 'held' (already ours) | 'took_over' | 'busy', previous holder)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        now = time.time()
        record = {
            "owner": owner,
            "incident_id": incident_id,
            "host": socket.gethostname(),
            "pid": os.getppid(),
            "acquired_at": now,
            "expires_at": now + ttl,
        }
        if try_create(path, record):
            return "acquired", None
        holder = read_holder(path)
        if holder is None:
            continue
        if holder.get("owner") == owner:
            return "held", holder
        if holder.get("expires_at", 0) < now:
            os.replace(_write_temp(path, record), path)
            return "took_over", holder
        if time.monotonic() >= deadline:
            return "busy", holder
        time.sleep(poll)


def _write_temp(path: str, record: Dict[str, Any]) -> str:
    temp_path = "%s.%d.tmp" % (path, os.getpid())
    with open(temp_path, "w") as temp_file:
        json.dump(record, temp_file)
    return temp_path


def release(path: str, owner: str) -> Tuple[str, Optional[Dict[str, Any]]]:
    """('released' | 'not_held' | 'held_by_other', holder)."""
    holder = read_holder(path)
    if holder is None:
        return "not_held", None
    if holder.get("owner") != owner:
        return "held_by_other", holder
    os.unlink(path)
    return "released", holder
