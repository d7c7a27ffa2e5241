# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  pgbouncer_host:
    description:
      - Address of PgBouncer's listener; the module connects to its admin console (database C(pgbouncer)).
    type: str
    default: 127.0.0.1
  pgbouncer_port:
    description: PgBouncer's listen port.
    type: int
    default: 6432
  pgbouncer_user:
    description:
      - A user listed in PgBouncer's C(admin_users) (or C(stats_users) for read-only modules).
      - Falls back to E(PGBOUNCER_USER).
    type: str
    default: pgbouncer
  pgbouncer_password:
    description: Password of O(pgbouncer_user). Falls back to E(PGBOUNCER_PASSWORD). Never logged or returned.
    type: str
    default: ''
  connect_timeout:
    description: Seconds to wait for the admin console connection, enforced on the client side.
    type: float
    default: 5
  query_timeout:
    description: Seconds each admin command may take, enforced on the client side.
    type: float
    default: 10
requirements:
  - psycopg2 (psycopg2-binary) >= 2.9 on the host that runs the module
notes:
  - The admin console speaks only the simple query protocol and has no transactions; the modules
    connect in autocommit mode and send nothing but SHOW and admin commands (no SET).
  - SHOW results are read by column name, so PgBouncer 1.18 to 1.25 are all understood.
"""
