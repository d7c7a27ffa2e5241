# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client for the PgBouncer admin console (the virtual database `pgbouncer`).

The console speaks only the simple query protocol, has no transactions and
rejects `SET`, so connections are autocommit and send nothing but SHOW and
admin commands. Results are parsed by column name because the columns of
SHOW POOLS and friends differ between PgBouncer releases (1.18 .. 1.25).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import (
    TIMEOUT_OPTIONS,
    ConnectionFailure,
    ConnectionParams,
    checked_timeouts,
    close_quietly,
    connect,
    connection_argument_spec,
    execute,
    rows_as_dicts,
)

try:
    from ansible.module_utils.basic import env_fallback
except ImportError:  # pragma: no cover

    def env_fallback(*args, **kwargs):
        raise LookupError


ADMIN_DATABASE = "pgbouncer"
SHOW_SUBJECTS = ("POOLS", "DATABASES", "LISTS", "CONFIG", "STATS", "SERVERS", "CLIENTS", "USERS", "VERSION", "MEM")
COMMANDS_WITH_DATABASE = ("PAUSE", "RESUME", "RECONNECT", "KILL", "ENABLE", "DISABLE", "WAIT_CLOSE")
COMMANDS_WITHOUT_DATABASE = ("RELOAD", "PAUSE", "RESUME", "RECONNECT", "WAIT_CLOSE")
# PgBouncer's console accepts bare words or double-quoted names; refuse anything else
# rather than trying to escape it.
_CONSOLE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,63}$")
_SETTING_KEY = re.compile(r"^[a-z_]{1,63}$")
# A setting value the console's SET and the ini file both take as written (no quote, no comment mark).
SETTING_VALUE = re.compile(r"^[A-Za-z0-9_.,:/@+%* -]{0,1024}$")
_CLIENT_ID = re.compile(r"^(0x)?[0-9a-fA-F]{1,16}$")
KILL_CLIENT_SINCE = (1, 24)
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def pgbouncer_argument_spec() -> Dict[str, Dict[str, Any]]:
    """Options of modules that talk to the admin console (doc_fragments/pgbouncer.py)."""
    timeouts = {option: spec for option, spec in connection_argument_spec().items() if option in TIMEOUT_OPTIONS}
    return {
        "pgbouncer_host": {"type": "str", "default": "127.0.0.1"},
        "pgbouncer_port": {"type": "int", "default": 6432},
        "pgbouncer_user": {"type": "str", "default": "pgbouncer", "fallback": (env_fallback, ["PGBOUNCER_USER"])},
        "pgbouncer_password": {
            "type": "str",
            "default": "",
            "no_log": True,
            "fallback": (env_fallback, ["PGBOUNCER_PASSWORD"]),
        },
        **timeouts,
    }


def admin_params(params: Dict[str, Any]) -> ConnectionParams:
    """The admin console's ConnectionParams; raises InvalidOption for a timeout out of range."""
    return ConnectionParams(
        host=params.get("pgbouncer_host") or "127.0.0.1",
        port=int(params.get("pgbouncer_port") or 6432),
        user=params.get("pgbouncer_user") or "pgbouncer",
        password=params.get("pgbouncer_password") or "",
        dbname=ADMIN_DATABASE,
        ssl_mode="prefer",
        **checked_timeouts(params),
    )


class AdminConsole:
    """One open admin-console session. Use as a context manager."""

    def __init__(self, params: ConnectionParams) -> None:
        self.params = params
        self.conn: Optional[Any] = None

    def __enter__(self) -> AdminConsole:
        try:
            self.conn = connect(self.params, autocommit=True)
        except ConnectionFailure as failure:
            raise ConnectionFailure(
                failure.kind, str(failure).replace("PostgreSQL", "PgBouncer", 1), failure.endpoint
            ) from None
        return self

    def __exit__(self, *exc_info: Any) -> None:
        close_quietly(self.conn)

    def show(self, subject: str) -> List[Dict[str, Any]]:
        """SHOW <subject> as a list of dicts keyed by column name."""
        subject = subject.upper()
        if subject not in SHOW_SUBJECTS:
            raise ValueError("unsupported SHOW subject %r" % subject)
        return rows_as_dicts(execute(self.conn, self.params, "SHOW %s" % subject))

    def command(self, verb: str, database: Optional[str] = None) -> str:
        """Run an admin command (RELOAD, PAUSE db, RECONNECT db, ...); return its text."""
        text = console_command(verb, database)
        execute(self.conn, self.params, text)
        return text

    def set(self, key: str, value: str) -> str:
        """SET key = 'value' (checked by set_command); return its text."""
        text = set_command(key, value)
        execute(self.conn, self.params, text)
        return text

    def kill_client(self, client_id: str, version: tuple) -> str:
        """KILL_CLIENT id where the version has it (kill_client_command); return its text."""
        text = kill_client_command(client_id, version)
        execute(self.conn, self.params, text)
        return text

    def config(self) -> Dict[str, str]:
        """SHOW CONFIG as {key: value}."""
        return {row["key"]: row["value"] for row in self.show("CONFIG")}


def console_command(verb: str, database: Optional[str] = None) -> str:
    """Validate and render one admin command; names must be plain (no quoting games)."""
    verb = verb.upper()
    allowed = COMMANDS_WITH_DATABASE if database else COMMANDS_WITHOUT_DATABASE
    if verb not in allowed:
        raise ValueError("unsupported PgBouncer admin command %r%s" % (verb, " with a database" if database else ""))
    if database is None:
        return verb
    if not _CONSOLE_NAME.match(database):
        raise ValueError(
            "refusing PgBouncer database name %r: only letters, digits, '_', '.', '-' are accepted" % database
        )
    return '%s "%s"' % (verb, database)


def check_setting(key: str, value: str) -> str:
    """A [pgbouncer] setting the console's SET and the ini both read back as written; the value, or ValueError."""
    if not _SETTING_KEY.match(key or ""):
        raise ValueError("refusing PgBouncer setting name %r: lower-case letters and '_' only" % key)
    if not SETTING_VALUE.match(value):
        raise ValueError(
            "refusing the value of PgBouncer setting %s: letters, digits, spaces and _.,:/@+%%*- only, "
            "no line break, quote or comment mark" % key
        )
    return value


def set_command(key: str, value: str) -> str:
    """SET key = 'value' for the admin console, checked first."""
    return "SET %s = '%s'" % (key, check_setting(key, value))


def parse_version(text: str) -> tuple:
    """'PgBouncer 1.18.0' -> (1, 18, 0); ValueError when no version is in the text."""
    found = _VERSION.search(text or "")
    if not found:
        raise ValueError("no PgBouncer version in %r" % text)
    return tuple(int(part or 0) for part in found.groups())


def kill_client_command(client_id: str, version: tuple) -> str:
    """KILL_CLIENT <id> (PgBouncer 1.24 and later); ValueError naming the version otherwise."""
    if tuple(version[:2]) < KILL_CLIENT_SINCE:
        raise ValueError(
            "KILL_CLIENT needs PgBouncer %d.%d or later; this PgBouncer is %s (terminate the client's backend "
            "or KILL the database instead)" % (*KILL_CLIENT_SINCE, ".".join(str(part) for part in version))
        )
    if not _CLIENT_ID.match(client_id or ""):
        raise ValueError("refusing PgBouncer client id %r: the id column of SHOW CLIENTS (hexadecimal)" % client_id)
    return "KILL_CLIENT %s" % client_id
