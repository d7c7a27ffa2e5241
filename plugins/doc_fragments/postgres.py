# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - Empty means the default Unix socket directory, like libpq.
      - Falls back to the E(PGHOST) environment variable.
    type: str
    default: ''
  login_port:
    description:
      - TCP port (or socket file suffix) of the server. Falls back to E(PGPORT).
    type: int
    default: 5432
  login_user:
    description:
      - Role to log in as. Falls back to E(PGUSER).
      - Most checks need a superuser or a member of C(pg_monitor); changes need the
        privileges the module documents.
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user). Falls back to E(PGPASSWORD). Never logged or returned.
    type: str
    default: ''
  login_db:
    description:
      - Database to connect to. Falls back to E(PGDATABASE).
    type: str
    default: postgres
  login_unix_socket:
    description:
      - Directory of the server's Unix socket; overrides O(login_host) when set.
    type: str
    default: ''
  ssl_mode:
    description:
      - libpq C(sslmode) for the connection.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - CA certificate file that must have signed the server's certificate (libpq C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  connect_timeout:
    description:
      - Seconds to wait for the connection to be established, enforced on the client
        side (fractions allowed), so a hung or partitioned server cannot hang the task.
      - From 0.1 to 3600; anything else (0, negative, C(inf), C(nan)) fails the task naming this option.
    type: float
    default: 5
  query_timeout:
    description:
      - Seconds each statement may take, enforced on the client side. A server that
        accepts the connection and then stops answering costs at most this long.
      - From 0.1 to 3600; anything else fails the task naming this option.
    type: float
    default: 10
  target_session_attrs:
    description:
      - libpq C(target_session_attrs); V(read-write) or V(primary) refuse a standby.
    type: str
    default: any
    choices: [any, read-write, read-only, primary, standby, prefer-standby]
requirements:
  - psycopg2 (psycopg2-binary) >= 2.9 on the host that runs the module
notes:
  - Identifiers are quoted with C(psycopg2.sql) and values are always sent as parameters.
  - Errors name the server (host:port), what failed (refused, timeout, auth, missing database,
    standby where a primary was required, ...) and what to check; passwords never appear.
"""
