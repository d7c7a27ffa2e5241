# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection layer shared by every PostgreSQL module of penguinmails.dbops.

Plain Python, importable without Ansible. Three guarantees the modules rely on:

* every blocking step (connect, each statement, fetching) has a client-side
  deadline, so a hung server (SIGSTOPped, partitioned, wedged) costs at most
  that deadline and never hangs a playbook;
* failures become a `ConnectionFailure` carrying a kind and one readable
  message naming host:port and what to check, never a password;
* identifiers are quoted with psycopg2.sql and values are always parameters.
"""

from __future__ import annotations

import contextlib
import math
import re
import select
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

try:
    import psycopg2
    import psycopg2.extensions
    from psycopg2 import sql

    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as import_error:  # pragma: no cover - exercised by ansible-test import sanity
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = import_error
    sql = None

from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import MASK, redact_text

try:
    from ansible.module_utils.basic import env_fallback
except ImportError:  # pragma: no cover - module_utils used outside Ansible

    def env_fallback(*args, **kwargs):
        raise LookupError


APPLICATION_NAME = "penguinmails.dbops"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_QUERY_TIMEOUT = 10.0
LIBPQ_MIN_CONNECT_TIMEOUT = 2
# Every deadline an operator may set: long enough to mean something, short enough that a
# hung server cannot hold a playbook for hours (and finite, so arithmetic on it is safe).
MIN_TIMEOUT_SECONDS = 0.1
MAX_TIMEOUT_SECONDS = 3600.0
TIMEOUT_OPTIONS = ("connect_timeout", "query_timeout")


class InvalidOption(ValueError):
    """A module option outside its allowed range; str() names the option and the range."""


def checked_timeout(option: str, value: Any) -> float:
    """The deadline `option` asks for, in seconds; InvalidOption naming the option when out of range."""
    allowed = "%s must be a number of seconds from %s to %d" % (option, MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidOption("%s, got %r" % (allowed, value)) from None
    if not (math.isfinite(seconds) and MIN_TIMEOUT_SECONDS <= seconds <= MAX_TIMEOUT_SECONDS):
        raise InvalidOption("%s, got %r" % (allowed, value))
    return seconds


def checked_timeouts(params: Dict[str, Any]) -> Dict[str, float]:
    """connect_timeout and query_timeout of module params, validated; the defaults where unset."""
    defaults = {"connect_timeout": DEFAULT_CONNECT_TIMEOUT, "query_timeout": DEFAULT_QUERY_TIMEOUT}
    return {
        option: defaults[option] if params.get(option) is None else checked_timeout(option, params[option])
        for option in TIMEOUT_OPTIONS
    }


def connection_argument_spec() -> Dict[str, Dict[str, Any]]:
    """Options every PostgreSQL module accepts (documented in doc_fragments/postgres.py)."""
    return {
        "login_host": {"type": "str", "default": "", "fallback": (env_fallback, ["PGHOST"])},
        "login_port": {"type": "int", "default": 5432, "fallback": (env_fallback, ["PGPORT"])},
        "login_user": {"type": "str", "default": "postgres", "fallback": (env_fallback, ["PGUSER"])},
        "login_password": {
            "type": "str",
            "default": "",
            "no_log": True,
            "fallback": (env_fallback, ["PGPASSWORD"]),
        },
        "login_db": {"type": "str", "default": "postgres", "fallback": (env_fallback, ["PGDATABASE"])},
        "login_unix_socket": {"type": "str", "default": ""},
        "ssl_mode": {
            "type": "str",
            "default": "prefer",
            "choices": ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"],
        },
        "ca_cert": {"type": "path", "aliases": ["ssl_rootcert"]},
        "connect_timeout": {"type": "float", "default": DEFAULT_CONNECT_TIMEOUT},
        "query_timeout": {"type": "float", "default": DEFAULT_QUERY_TIMEOUT},
        "target_session_attrs": {
            "type": "str",
            "default": "any",
            "choices": ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"],
        },
    }


def connection_entry_spec() -> Dict[str, Dict[str, Any]]:
    """The connection options as suboptions of another option (a fleet entry, a second database).

    No defaults and no environment fallback: a key left out means "as the top-level
    options, or their defaults" (see fleet.server_params, pgbouncer_pools' metrics_db).
    """
    return {
        option: {key: value for key, value in spec.items() if key not in ("default", "fallback")}
        for option, spec in connection_argument_spec().items()
    }


@dataclass(frozen=True)
class ConnectionParams:
    """Where and how to connect; built from module params or from a fleet entry."""

    host: str = ""
    port: int = 5432
    user: str = "postgres"
    password: str = field(default="", repr=False)
    dbname: str = "postgres"
    unix_socket: str = ""
    ssl_mode: str = "prefer"
    ca_cert: Optional[str] = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    query_timeout: float = DEFAULT_QUERY_TIMEOUT
    target_session_attrs: str = "any"

    @classmethod
    def from_module_params(cls, params: Dict[str, Any]) -> ConnectionParams:
        """Raises InvalidOption for a timeout out of range."""
        return cls(
            host=params.get("login_host") or "",
            port=int(params.get("login_port") or 5432),
            user=params.get("login_user") or "postgres",
            password=params.get("login_password") or "",
            dbname=params.get("login_db") or "postgres",
            unix_socket=params.get("login_unix_socket") or "",
            ssl_mode=params.get("ssl_mode") or "prefer",
            ca_cert=params.get("ca_cert"),
            target_session_attrs=params.get("target_session_attrs") or "any",
            **checked_timeouts(params),
        )

    @property
    def endpoint(self) -> str:
        """host:port as an operator would type it, for messages."""
        if self.unix_socket:
            return "%s (socket, port %s)" % (self.unix_socket, self.port)
        return "%s:%s" % (self.host or "localhost", self.port)

    def libpq_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments for psycopg2.connect; libpq's own timeout is a backstop only."""
        kwargs: Dict[str, Any] = {
            "host": self.unix_socket or self.host or None,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            "sslmode": self.ssl_mode,
            "connect_timeout": max(LIBPQ_MIN_CONNECT_TIMEOUT, math.ceil(self.connect_timeout)),
            "application_name": APPLICATION_NAME,
        }
        if self.password:
            kwargs["password"] = self.password
        if self.ca_cert:
            kwargs["sslrootcert"] = self.ca_cert
        if self.target_session_attrs != "any":
            kwargs["target_session_attrs"] = self.target_session_attrs
        return {key: value for key, value in kwargs.items() if value is not None}


class ConnectionFailure(Exception):
    """A connection or statement failed; `kind` is machine-readable, str() is for people."""

    def __init__(self, kind: str, message: str, endpoint: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.endpoint = endpoint


class OperationTimeout(Exception):
    """Raised from the wait callback when an operation passes its deadline."""


# (kind, pattern in libpq's message, advice for the operator). First match wins.
_FAILURE_RULES = (
    ("refused", r"connection refused", "is PostgreSQL running and listening on that address?"),
    (
        "auth",
        r"password authentication failed|authentication failed|no password supplied",
        "check the login user and password",
    ),
    (
        "auth",
        r"no pg_hba\.conf entry|pg_hba\.conf rejects",
        "check pg_hba.conf on the server for this client address and user",
    ),
    ("missing_database", r"database \"[^\"]*\" does not exist", "check login_db"),
    ("missing_role", r"role \"[^\"]*\" does not exist", "check login_user"),
    (
        "starting_up",
        r"the database system is starting up|in recovery mode",
        "the server is starting or recovering; retry shortly",
    ),
    ("shutting_down", r"the database system is shutting down", "the server is shutting down"),
    (
        "too_many_connections",
        r"too many clients|remaining connection slots are reserved",
        "the server is out of connection slots",
    ),
    (
        "dns",
        r"could not translate host name|name or service not known",
        "check login_host resolves from the controller",
    ),
    ("ssl", r"ssl|certificate", "check ssl_mode and ca_cert"),
    (
        "session_attrs",
        r"session is read-only|server is in hot standby mode|not a primary|is a standby",
        "target_session_attrs did not match this server's role",
    ),
    (
        "timeout",
        r"timeout expired|timed out|statement timeout",
        "the server did not answer in time: hung, overloaded or unreachable",
    ),
    (
        "network",
        r"no route to host|network is unreachable|connection reset|server closed the connection",
        "check the network path to the server",
    ),
)


def classify_failure(message: str) -> tuple:
    """Map a libpq error message to (kind, advice)."""
    lowered = message.lower()
    for kind, pattern, advice in _FAILURE_RULES:
        if re.search(pattern, lowered):
            return kind, advice
    return "error", "see the PostgreSQL server log"


def first_line(message: str) -> str:
    """libpq messages span lines with hints; keep the first meaningful one."""
    for line in str(message).splitlines():
        if line.strip():
            return line.strip()
    return str(message).strip() or "unknown error"


def scrub_secret(text: str, secret: str) -> str:
    """Text about to leave the module, without this known secret and without any secret
    redaction.redact_text recognises (password=, URL passwords and tokens, Bearer ...)."""
    if secret and secret in text:
        text = text.replace(secret, MASK)
    return redact_text(text)


def describe_failure(params: ConnectionParams, what: str, error: BaseException) -> ConnectionFailure:
    """Build the one readable failure for `what` (e.g. 'connect') against params' server."""
    if isinstance(error, OperationTimeout):
        kind, advice = "timeout", "the server did not answer in time: hung, overloaded or unreachable"
        detail = str(error)
    else:
        detail = first_line(str(error))
        kind, advice = classify_failure(detail)
    detail = scrub_secret(detail, params.password)
    message = "%s to PostgreSQL at %s as %s failed (%s): %s; %s" % (
        what,
        params.endpoint,
        params.user,
        kind,
        detail,
        advice,
    )
    return ConnectionFailure(kind, message, params.endpoint)


def _wait_for_socket(fileno: int, state: int, remaining: float) -> None:
    if state == psycopg2.extensions.POLL_READ:
        select.select([fileno], [], [], remaining)
    elif state == psycopg2.extensions.POLL_WRITE:
        select.select([], [fileno], [], remaining)
    else:  # pragma: no cover - libpq only reports the states above
        raise psycopg2.OperationalError("unexpected poll state %r" % state)


def wait_with_deadline(conn: Any) -> None:
    """psycopg2 wait callback: drive libpq without blocking, up to conn.operation_timeout."""
    timeout = getattr(conn, "operation_timeout", None) or DEFAULT_QUERY_TIMEOUT
    deadline = time.monotonic() + timeout
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OperationTimeout("no answer within %.1f s" % timeout)
        _wait_for_socket(conn.fileno(), state, remaining)


if HAS_PSYCOPG2:

    class DeadlineConnection(psycopg2.extensions.connection):
        """A connection whose every blocking step is bounded by `operation_timeout`."""

        def __init__(self, dsn: str, async_: int = 0, *, operation_timeout: float) -> None:
            self.operation_timeout = operation_timeout
            super().__init__(dsn, async_)


def _install_wait_callback() -> None:
    if psycopg2.extensions.get_wait_callback() is not wait_with_deadline:
        psycopg2.extensions.set_wait_callback(wait_with_deadline)


def startup_options(settings: Optional[Dict[str, Any]]) -> str:
    """libpq `options` that apply session settings at connection start, at no extra round trip."""
    words = []
    for name, value in (settings or {}).items():
        escaped = str(value).replace("\\", "\\\\").replace(" ", "\\ ")
        words.append("-c %s=%s" % (name, escaped))
    return " ".join(words)


def connect(params: ConnectionParams, autocommit: bool = True, settings: Optional[Dict[str, Any]] = None) -> Any:
    """Open a connection or raise ConnectionFailure. Statements then get query_timeout each.

    `settings` (e.g. statement_timeout, default_transaction_read_only) are sent in the
    startup packet; PostgreSQL only: PgBouncer's console refuses startup options.
    """
    if not HAS_PSYCOPG2:
        raise ConnectionFailure(
            "missing_library", "the psycopg2 Python library is required on the host running the module"
        )
    _install_wait_callback()

    def factory(dsn: str, async_: int = 0) -> Any:
        return DeadlineConnection(dsn, async_, operation_timeout=params.connect_timeout)

    try:
        kwargs = params.libpq_kwargs()
        if settings:
            kwargs["options"] = startup_options(settings)
        conn = psycopg2.connect(connection_factory=factory, **kwargs)
    except (psycopg2.Error, OperationTimeout) as error:
        raise describe_failure(params, "connect", error) from None
    conn.operation_timeout = params.query_timeout
    conn.autocommit = autocommit
    return conn


def ensure_psycopg2(module: Any) -> None:
    """Fail an AnsibleModule with Ansible's standard message when psycopg2 is missing."""
    if HAS_PSYCOPG2:
        return
    from ansible.module_utils.basic import missing_required_lib

    module.fail_json(msg=missing_required_lib("psycopg2-binary"), exception=str(PSYCOPG2_IMPORT_ERROR))


def connection_params(module: Any, build: Any = None, options: Optional[Dict[str, Any]] = None) -> ConnectionParams:
    """ConnectionParams built by `build` (default from_module_params) from `options` (default
    module.params), or fail_json with the one-line InvalidOption message naming the bad option."""
    try:
        return (build or ConnectionParams.from_module_params)(module.params if options is None else options)
    except InvalidOption as error:
        module.fail_json(msg=str(error))


def check_module_timeouts(module: Any, options: Sequence[str]) -> None:
    """fail_json naming the option when one of a module's own timeouts (wait_timeout, ...) is out of range."""
    for option in options:
        try:
            checked_timeout(option, module.params[option])
        except InvalidOption as error:
            module.fail_json(msg=str(error))


def close_quietly(conn: Any) -> None:
    if conn is None:
        return
    # Closing a broken connection must never mask the error being reported.
    with contextlib.suppress(Exception):
        conn.close()


def execute(conn: Any, params: ConnectionParams, statement: Any, args: Optional[Sequence[Any]] = None) -> Any:
    """Run one statement with a deadline; return the cursor. Raises ConnectionFailure."""
    cursor = conn.cursor()
    try:
        cursor.execute(statement, args)
    except (psycopg2.Error, OperationTimeout) as error:
        raise describe_failure(params, "query", error) from None
    return cursor


def rows_as_dicts(cursor: Any) -> List[Dict[str, Any]]:
    """All rows of a cursor keyed by column name (works for SHOW on PgBouncer too)."""
    if cursor.description is None:
        return []
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def fetch_dicts(
    conn: Any, params: ConnectionParams, statement: Any, args: Optional[Sequence[Any]] = None
) -> List[Dict[str, Any]]:
    return rows_as_dicts(execute(conn, params, statement, args))


def require_primary(conn: Any, params: ConnectionParams) -> None:
    """Fail clearly when a change must go to a primary and this server is a standby."""
    in_recovery = execute(conn, params, "SELECT pg_is_in_recovery()").fetchone()[0]
    if in_recovery:
        raise ConnectionFailure(
            "standby",
            "PostgreSQL at %s is a standby (in recovery) but a primary was required; "
            "point the task at the tier's current primary" % params.endpoint,
            params.endpoint,
        )


def quote_ident(name: str) -> Any:
    """A safely quoted identifier for psycopg2.sql composition."""
    return sql.Identifier(name)


def statement_text(conn: Any, statement: Any, args: Optional[Sequence[Any]] = None) -> str:
    """The exact text psycopg2 would send, for executed_queries and check-mode plans."""
    text = statement.as_string(conn) if hasattr(statement, "as_string") else statement
    if args:
        cursor = conn.cursor()
        rendered = cursor.mogrify(text, args)
        return rendered.decode() if isinstance(rendered, bytes) else rendered
    return text


class StatementRunner:
    """Execute or plan: the one place where check mode decides whether a statement runs.

    A normal run executes each statement with its deadline; check mode executes
    nothing. Both append the same text to `executed` (masked where `shown_args`
    replaces secret values), prefixed with the server when `label` is set, so a
    plan reads exactly like the run it stands for.
    """

    def __init__(self, check_mode: bool) -> None:
        self.check_mode = check_mode
        self.executed: List[str] = []

    def run(
        self,
        conn: Any,
        params: ConnectionParams,
        statement: Any,
        args: Optional[Sequence[Any]] = None,
        shown_args: Optional[Sequence[Any]] = None,
        label: bool = False,
    ) -> Any:
        """Record the statement; execute it unless in check mode. Returns the cursor, or None when planned."""
        text = statement_text(conn, statement, shown_args if shown_args is not None else args)
        self.executed.append("%s: %s" % (params.endpoint, text) if label else text)
        if self.check_mode:
            return None
        return execute(conn, params, statement, args)
