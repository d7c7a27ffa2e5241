# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""out_of_range: {input: minimum} and the inputs' values -> one line per input out of range."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.penguinmails.dbops.plugins.module_utils.inputs import out_of_range


def out_of_range_filter(minimums, values):
    if not isinstance(minimums, dict):
        raise AnsibleFilterError("out_of_range expects a dict of input name -> minimum")
    values = values if isinstance(values, list) else [values]
    if len(values) != len(minimums):
        raise AnsibleFilterError("out_of_range: %d minimums but %d values" % (len(minimums), len(values)))
    return out_of_range(minimums, values)


class FilterModule:
    def filters(self):
        return {"out_of_range": out_of_range_filter}
