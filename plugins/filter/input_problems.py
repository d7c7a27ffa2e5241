# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""input_problems: a runbook's inputs -> one line per input that is wrong."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.penguinmails.dbops.plugins.module_utils.inputs import input_problems


def input_problems_filter(minimums, values, groups=None, group_inputs=None):
    if not isinstance(minimums, dict):
        raise AnsibleFilterError("input_problems expects a dict of input name -> minimum")
    values = values if isinstance(values, list) else [values]
    if len(values) != len(minimums):
        raise AnsibleFilterError("input_problems: %d minimums but %d values" % (len(minimums), len(values)))
    return input_problems(minimums, values, groups, group_inputs)


class FilterModule:
    def filters(self):
        return {"input_problems": input_problems_filter}
