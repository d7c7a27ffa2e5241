# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  servers:
    description:
      - Fleet mode. Check every server in this list from this one task, concurrently, and
        return the results in RV(servers) keyed by each entry's O(servers[].name).
      - Meant for one task on the controller (C(run_once), C(delegate_to) localhost) instead of
        one module process per inventory host. Build the list from the inventory with the
        P(penguinmails.dbops.fleet_servers#filter) filter, for example
        C({{ groups['postgres'] | penguinmails.dbops.fleet_servers(hostvars) }}).
      - Each server is checked in its own thread with its own connection deadlines, so a dead or
        hung server costs its own O(connect_timeout) or O(query_timeout) and never delays the others.
      - Connection options an entry leaves out fall back to the module's top-level options
        (O(login_user), O(login_password), O(connect_timeout), ...).
      - When not set, the module checks the one server named by the top-level options.
      - "The task then returns, besides the fields its RETURN section marks for fleet mode:
        RV(servers), the result of each server keyed by its O(servers[].name) (normally the inventory
        hostname), each holding the keys a single-server run returns; and RV(unreachable_servers), the
        names of the servers that could not be reached or did not answer (not C(unreachable), which
        Ansible would read as the task's own host being unreachable). Both are returned even when the
        task fails."
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Key of this server's result, normally the inventory hostname.
        type: str
        required: true
      login_host:
        description: Host name or IP address of this server.
        type: str
      login_port:
        description: TCP port of this server.
        type: int
      login_user:
        description: Role to log in as on this server.
        type: str
      login_password:
        description: Password for O(servers[].login_user). Never logged or returned.
        type: str
      login_db:
        description: Database to connect to on this server.
        type: str
      login_unix_socket:
        description: Directory of this server's Unix socket.
        type: str
      ssl_mode:
        description: libpq C(sslmode) for this server.
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: CA certificate file for this server (libpq C(sslrootcert)).
        type: path
        aliases: [ssl_rootcert]
      connect_timeout:
        description: Seconds to wait for this server's connection, enforced on the client side; from 0.1 to 3600.
        type: float
      query_timeout:
        description: Seconds each statement to this server may take, enforced on the client side; from 0.1 to 3600.
        type: float
      target_session_attrs:
        description: libpq C(target_session_attrs) for this server.
        type: str
        choices: [any, read-write, read-only, primary, standby, prefer-standby]
  concurrency:
    description:
      - Fleet mode only. How many servers are checked at the same time (threads, each holding at most
        one connection at a time).
      - With at least as many workers as servers, a sweep takes about as long as the slowest server, and a
        hung server costs its own timeout once. With fewer, the servers beyond O(concurrency) wait for a free
        worker, so a hung server can delay the ones queued behind it.
    type: int
    default: 256
"""
