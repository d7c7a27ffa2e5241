# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""slot_name: inventory host name -> its replication slot and application_name."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.penguinmails.dbops.plugins.module_utils.replication import slot_name_for


def slot_name(host_name):
    """[a-z0-9_] name of the member's slot (and application_name)."""
    if not isinstance(host_name, str):
        raise AnsibleFilterError("slot_name expects an inventory host name, got %r" % (host_name,))
    return slot_name_for(host_name)


class FilterModule:
    def filters(self):
        return {"slot_name": slot_name}
