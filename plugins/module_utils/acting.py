# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the acting module_utils (rejoin, follow, re-point, promote) share with their modules."""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Optional

from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionParams,
    close_quietly,
    connect,
)


class ActionFailed(Exception):
    """An action failed part way: str() is the one message, `result` what was done until then.

    The module reports it as `fail_json(msg=str(failure), **failure.result)`.
    """

    def __init__(self, message: str, result: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.result: Dict[str, Any] = dict(result or {})


@contextlib.contextmanager
def connected(params: ConnectionParams) -> Iterator[Any]:
    """A connection (autocommit, statements bounded by query_timeout), closed whatever happens."""
    conn = connect(params)
    try:
        yield conn
    finally:
        close_quietly(conn)
