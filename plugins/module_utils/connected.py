# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One connection for one module run: connect, optionally require a primary, do the work, close.

A ValueError from the work (an input the server judged wrong) and a ConnectionFailure each end the
module with one line and changed=false, naming the endpoint.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible_collections.penguinmails.dbops.plugins.module_utils.node_info import json_safe
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    ConnectionFailure,
    ConnectionParams,
    close_quietly,
    connect,
    connection_params,
    require_primary,
)


def run_connected(
    module: Any, work: Callable[[Any, ConnectionParams], Dict[str, Any]], primary: bool
) -> Dict[str, Any]:
    """work(conn, params)'s result made JSON-safe, or fail_json with the reason."""
    params = connection_params(module)
    conn = None
    try:
        conn = connect(params)
        if primary:
            require_primary(conn, params)
        return json_safe(work(conn, params))
    except ValueError as error:
        module.fail_json(msg=str(error), changed=False, endpoint=params.endpoint)
    except ConnectionFailure as failure:
        module.fail_json(msg=str(failure), conn_err_kind=failure.kind, changed=False, endpoint=params.endpoint)
    finally:
        close_quietly(conn)
    return {}
