#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dbops_audit_verify
short_description: Verify the hash chain of a penguinmails.dbops audit trail
version_added: 0.1.0
description:
  - Reads an audit file written by the P(penguinmails.dbops.audit#callback) callback and checks that every
    line is JSON, carries its line number in C(seq) and the SHA-256 of the previous line in C(prev).
  - Succeeds with the number of lines and the hash of the last one (the head); fails naming the first
    broken line and why, which is where the file was edited, or lines inserted or deleted.
  - Lines cut off the end leave a valid, shorter chain; compare RV(head) with the copy the callback ships
    to syslog or HTTP to detect that.
  - Runs on the controller as an action plugin; the file is read on the controller. The
    C(tools/audit_verify) command does the same without Ansible.
author:
  - PenguinMails Database Operations (@penguinmails)
options:
  path:
    description:
      - The audit file, usually C(<incident dir>/<id>/audit.jsonl).
    type: path
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - plugin: penguinmails.dbops.audit
    plugin_type: callback
"""

EXAMPLES = r"""
- name: Verify an incident's audit trail
  penguinmails.dbops.dbops_audit_verify:
    path: incidents/INC-20261126-180102-1a2b/audit.jsonl
  register: audit

- name: Show the head hash to compare with the syslog copy
  ansible.builtin.debug:
    msg: "{{ audit.lines }} lines, head {{ audit.head }}"
"""

RETURN = r"""
path:
  description: The file checked.
  returned: always
  type: str
lines:
  description: Number of lines that verified (all of them on success).
  returned: always
  type: int
  sample: 42
head:
  description: SHA-256 of the last verified line; null for an empty file.
  returned: always
  type: str
  sample: 9f2c4e0b7d1a...
broken_line:
  description: The first line that breaks the chain (1-based), null when intact.
  returned: always
  type: int
  sample: 7
reason:
  description: Why that line breaks the chain.
  returned: always
  type: str
  sample: prev does not match the SHA-256 of line 6 (line 6 was edited or removed)
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils import audit


def main():
    module = AnsibleModule(argument_spec=audit.argument_spec(), supports_check_mode=True)
    result = audit.run(module.params)
    if result.pop("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
