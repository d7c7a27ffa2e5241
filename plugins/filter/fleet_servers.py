# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet_servers: inventory hosts -> the `servers` list of the fleet-mode modules."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# Module option -> inventory variable it is read from (the collection's inventory convention).
DEFAULT_OPTION_VARS = {
    "login_host": "ansible_host",
    "login_port": "pg_port",
    "login_user": "dbops_login_user",
    "login_password": "dbops_login_password",
}


def fleet_servers(hosts, hostvars, option_vars=None):
    """One `servers` entry per inventory host: name is the hostname, options from its variables.

    A variable a host does not define is left out, so the module's top-level option applies
    (login_host falls back to the inventory hostname, like Ansible's own ansible_host).
    """
    if isinstance(hosts, str):
        hosts = [hosts]
    mapping = dict(DEFAULT_OPTION_VARS)
    if option_vars is not None:
        if not isinstance(option_vars, Mapping):
            raise AnsibleFilterError("fleet_servers: option_vars must be a mapping of module option to variable name")
        mapping.update(option_vars)
    servers = []
    for host in hosts:
        try:
            host_vars = hostvars[host]
        except KeyError:
            raise AnsibleFilterError("fleet_servers: %s is not an inventory host" % host) from None
        entry = {"name": str(host)}
        for option, variable in mapping.items():
            if not variable:
                continue
            value = host_vars.get(variable) if variable in host_vars else None
            if value is not None:
                entry[option] = value
        entry.setdefault("login_host", str(host))
        servers.append(entry)
    return servers


class FilterModule:
    def filters(self):
        return {"fleet_servers": fleet_servers}
