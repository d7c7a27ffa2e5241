# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of pgbouncer_argument_spec() in module_utils/pgbouncer.py.
    DOCUMENTATION = r"""
options:
  pgbouncer_host:
    description:
      - Host name or IP address PgBouncer listens on.
    type: str
    default: 127.0.0.1
  pgbouncer_port:
    description:
      - TCP port of PgBouncer.
    type: int
    default: 6432
  pgbouncer_user:
    description:
      - User of PgBouncer's admin console (listed in its C(admin_users), or C(stats_users) for
        read-only modules). Falls back to E(PGBOUNCER_USER).
    type: str
    default: pgbouncer
  pgbouncer_password:
    description:
      - Password of O(pgbouncer_user). Falls back to E(PGBOUNCER_PASSWORD). Never logged or returned.
    type: str
    default: ''
  connect_timeout:
    description:
      - Seconds to wait for a connection to be established, enforced on the client side
        (fractions allowed), so a hung server cannot hang the task.
      - From 0.1 to 3600; anything else (0, negative, C(inf), C(nan)) fails the task naming this option.
    type: float
    default: 5
  query_timeout:
    description:
      - Seconds each statement or admin console command may take, enforced on the client side.
      - From 0.1 to 3600; anything else fails the task naming this option.
    type: float
    default: 10
requirements:
  - psycopg2 (psycopg2-binary) >= 2.9 on the host that runs the module
notes:
  - The admin console (virtual database C(pgbouncer)) is used with autocommit and the simple query
    protocol, and is sent nothing but C(SHOW) and admin commands; results are read by column name,
    so PgBouncer 1.18 to 1.25 are all understood.
"""
