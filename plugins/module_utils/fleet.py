# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet mode: check many servers from one process, concurrently.

A per-host module costs Ansible one process per host (about 17 s for 90 hosts
on the lab machine, whatever the forks). Fleet mode runs once on the controller
and checks every server in a thread pool. Each server's connection carries its
own client-side deadlines (connect_timeout, query_timeout; see postgres.py), so
a dead or SIGSTOPped server costs its own timeout in its own thread and never
delays the others: with enough workers, a sweep takes about the slowest
server's time, bounded by the largest timeout.

`servers` entries name an inventory host and may override any connection
option; what they leave out falls back to the module's top-level options.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    TIMEOUT_OPTIONS,
    ConnectionParams,
    checked_timeout,
    connection_entry_spec,
    scrub_secret,
)

DEFAULT_CONCURRENCY = 256

# Options a `servers` entry may override, and the ConnectionParams field each one sets.
SERVER_OVERRIDES = {
    "login_host": "host",
    "login_port": "port",
    "login_user": "user",
    "login_password": "password",
    "login_db": "dbname",
    "login_unix_socket": "unix_socket",
    "ssl_mode": "ssl_mode",
    "ca_cert": "ca_cert",
    "connect_timeout": "connect_timeout",
    "query_timeout": "query_timeout",
    "target_session_attrs": "target_session_attrs",
}


def servers_argument_spec() -> Dict[str, Dict[str, Any]]:
    """The `servers` and `concurrency` options (documented in doc_fragments/fleet.py).

    An entry's connection options mirror the top-level ones but have no defaults
    and no environment fallback: a missing key means "use the top-level value".
    """
    entry: Dict[str, Dict[str, Any]] = {"name": {"type": "str", "required": True}, **connection_entry_spec()}
    return {
        "servers": {"type": "list", "elements": "dict", "options": entry},
        "concurrency": {"type": "int", "default": DEFAULT_CONCURRENCY},
    }


def server_params(base: ConnectionParams, entry: Dict[str, Any]) -> ConnectionParams:
    """The entry's connection options over the top-level ones; raises InvalidOption (a ValueError)."""
    changes = {}
    for option, field_name in SERVER_OVERRIDES.items():
        value = entry.get(option)
        if value is None:
            continue
        if field_name == "port":
            value = int(value)
        elif option in TIMEOUT_OPTIONS:
            value = checked_timeout("servers[%s].%s" % (entry.get("name"), option), value)
        changes[field_name] = value
    return dataclasses.replace(base, **changes)


def fleet_targets(base: ConnectionParams, entries: Sequence[Dict[str, Any]]) -> List[Tuple[str, ConnectionParams]]:
    """(name, params) per entry; names must be unique because results are keyed by them."""
    seen, duplicates = set(), []
    targets = []
    for entry in entries:
        name = str(entry["name"])
        if name in seen:
            duplicates.append(name)
        seen.add(name)
        targets.append((name, server_params(base, entry)))
    if duplicates:
        raise ValueError("servers: each name must appear once; repeated: %s" % ", ".join(sorted(set(duplicates))))
    return targets


def run_fleet(
    targets: Sequence[Tuple[str, ConnectionParams]],
    check: Callable[[ConnectionParams], Dict[str, Any]],
    concurrency: int = DEFAULT_CONCURRENCY,
    on_error: Optional[Callable[[ConnectionParams, BaseException], Dict[str, Any]]] = None,
) -> Dict[str, Any]:
    """Run `check` for every target concurrently; results keyed by name, in input order.

    `check` must bound its own time (every connection has deadlines) and should
    report failures as results. An unexpected exception becomes a result through
    `on_error` (a message, never a traceback) so one bad server cannot sink the
    sweep.
    """
    started = time.monotonic()
    results: Dict[str, Any] = {}
    if not targets:
        return {"servers": results, "elapsed_ms": 0.0, "workers": 0}
    workers = max(1, min(int(concurrency or 1), len(targets)))
    # Every check waits for this until all are submitted: starting a thread waits for the GIL,
    # and checks already connecting would otherwise delay the start (and deadline) of later ones.
    go = threading.Event()

    def when_all_submitted(params: ConnectionParams) -> Dict[str, Any]:
        go.wait()
        return check(params)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dbops-fleet") as pool:
        futures = {pool.submit(when_all_submitted, params): (name, params) for name, params in targets}
        go.set()
        for future in concurrent.futures.as_completed(futures):
            name, params = futures[future]
            try:
                results[name] = future.result()
            except Exception as error:  # any bug in one server's check stays that server's result
                results[name] = (on_error or internal_error)(params, error)
    ordered = {name: results[name] for name, _params in targets}
    return {"servers": ordered, "elapsed_ms": round((time.monotonic() - started) * 1000, 1), "workers": workers}


def internal_error(params: ConnectionParams, error: BaseException) -> Dict[str, Any]:
    text = scrub_secret(str(error), params.password)
    return {
        "endpoint": params.endpoint,
        "reachable": False,
        "conn_err_kind": "internal",
        "conn_err_msg": "checking %s failed unexpectedly (%s: %s)" % (params.endpoint, type(error).__name__, text),
    }
