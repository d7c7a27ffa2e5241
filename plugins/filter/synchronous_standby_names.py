# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synchronous_standby_names: inventory host names and a quorum -> 'ANY n (a, b)'."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.penguinmails.dbops.plugins.module_utils.replication import (
    build_synchronous_standby_names,
    slot_name_for,
)


def synchronous_standby_names(host_names, quorum):
    """Quorum commit over the hosts' slot names; '' (asynchronous) for no host or a quorum of 0."""
    if isinstance(host_names, str):
        raise AnsibleFilterError("synchronous_standby_names expects a list of inventory host names")
    try:
        quorum = int(quorum)
    except (TypeError, ValueError):
        raise AnsibleFilterError("synchronous_standby_names: quorum %r is not a whole number" % (quorum,)) from None
    if quorum < 0:
        raise AnsibleFilterError("synchronous_standby_names: quorum %d is negative" % quorum)
    return build_synchronous_standby_names([slot_name_for(name) for name in host_names], quorum)


class FilterModule:
    def filters(self):
        return {"synchronous_standby_names": synchronous_standby_names}
