# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tier_members: inventory hosts -> the member list the fleet-style modules take."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.penguinmails.dbops.plugins.module_utils.inputs import as_bool


def member_of(name, host_vars):
    try:
        port = host_vars["pg_port"]
    except KeyError:
        raise AnsibleFilterError("inventory host %s has no pg_port" % name) from None
    return {
        "name": name,
        "login_host": host_vars.get("ansible_host") or name,
        "login_port": int(port),
        "failover_candidate": eligible(host_vars.get("failover_candidate", True)),
    }


def eligible(value):
    """A host's failover_candidate: a boolean (or its spelling as a string) says whether the host may
    be promoted. The run's choice of candidate has the same name (-e failover_candidate=oltp-2, or ""
    from an AWX survey left blank) and, being an extra variable, shows in every host's vars: a host
    name or an empty value (a blank answer may arrive as null) is that choice, not this host's
    eligibility."""
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip()
    return as_bool(text, otherwise=True) if text else True


def tier_members(host_names, hostvars):
    """[{name, login_host, login_port, failover_candidate}] for the given inventory hosts."""
    if isinstance(host_names, str):
        raise AnsibleFilterError("tier_members expects a list of inventory host names, e.g. groups['oltp']")
    return [member_of(name, hostvars[name]) for name in host_names]


class FilterModule:
    def filters(self):
        return {"tier_members": tier_members}
