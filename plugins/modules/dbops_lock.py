#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dbops_lock
short_description: Serialise remediation runs for a tier with a lock file
version_added: 0.1.0
description:
  - O(state=present) takes the lock named O(name) in O(lock_dir), waiting up to O(wait) seconds
    for another run to release it; when it cannot, it fails and names the run that holds it.
    Taking a lock the same O(owner) already holds is a no-op (a rerun continues).
  - A lock older than O(ttl) seconds belonged to a run that died; it is taken over and the previous
    holder is reported.
  - O(state=absent) releases the lock if O(owner) holds it.
  - The lock directory must be on storage every controller that may start a run sees - the
    controller's own disk for runs started on one machine; a shared path (or C(delegate_to) one lock
    host) when runs start on several AWX nodes. The default is an absolute path, so two runs started
    from two working directories block each other.
  - The lock directory is created mode 0700 when missing. A lock directory that is a symbolic link or
    is owned by another user is refused, as is a lock file that is a symbolic link.
  - Locking is bookkeeping, not a change to the fleet. C(changed) is always false, so a rerun of a
    remediated incident stays idempotent.
  - In check mode nothing is written (no directory, lock file or guard file); the result says what a
    real run would do (V(would_acquire), V(would_take_over), V(held), V(busy), V(would_release)) and a
    lock another run holds is a warning, not a failure.
author:
  - PenguinMails Database Operations (@penguinmails)
options:
  name:
    description: Lock name, e.g. C(db_outage-oltp).
    type: str
    required: true
  lock_dir:
    description:
      - Directory holding lock files, on storage every controller sees. Created 0700 when missing.
    type: path
    default: /var/lib/penguinmails-dbops/locks
  owner:
    description:
      - Who takes the lock; a run-unique value such as the incident id plus the playbook start time.
      - When taking the lock without one, the module makes one (incident id or lock name, UTC time, pid) and
        returns it as RV(lock_owner); release with that value.
      - Required with O(state=absent).
    type: str
  incident_id:
    description: Incident the run belongs to, shown to whoever finds the lock taken.
    type: str
    default: ''
  state:
    description: V(present) to take the lock, V(absent) to release it.
    type: str
    default: present
    choices: [present, absent]
  wait:
    description: Seconds to wait for a held lock, 0 or more.
    type: float
    default: 60
  ttl:
    description: Seconds after which a lock is considered abandoned, more than 0.
    type: float
    default: 900
attributes:
  check_mode:
    support: full
    description: Plans instead of acting; reports what it would do and changes nothing.
  diff_mode:
    support: none
    description: Nothing to show as a diff.
"""

EXAMPLES = r"""
- name: One outage run per tier at a time
  penguinmails.dbops.dbops_lock:
    name: "db_outage-{{ incident_tier }}"
    owner: "{{ dbops_run_id }}"
    incident_id: "{{ incident_id }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
lock:
  description:
    - Outcome, C(acquired), C(held) (already ours), C(took_over) (stale), C(released), C(not_held).
    - In check mode C(would_acquire), C(would_take_over), C(held), C(busy), C(would_release), C(not_held).
  returned: always
  type: str
  sample: acquired
path:
  description: The lock file.
  returned: always
  type: str
  sample: /var/lib/penguinmails-dbops/locks/db_outage-oltp.lock
lock_owner:
  description:
    - The owner this call took (or would take, or released) the lock as.
    - (Not C(owner), which Ansible fills with the file owner of a result that names a C(path).)
  returned: always
  type: str
  sample: INC-1-20261202T031500123456-4242
previous_holder:
  description: The holder found in the lock file, when there was one.
  returned: always
  type: dict
  sample: {"owner": "INC-1-1795716372", "incident_id": "INC-1", "host": "awx-1", "pid": 4242}
waited_seconds:
  description: Seconds spent waiting for the lock.
  returned: always
  type: float
  sample: 0.0
"""

import os
import time
from typing import Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.runlock import (
    DEFAULT_LOCK_DIR,
    acquire,
    describe_holder,
    lock_path,
    preview,
    release,
    run_owner,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "lock_dir": {"type": "path", "default": DEFAULT_LOCK_DIR},
            "owner": {"type": "str"},
            "incident_id": {"type": "str", "default": ""},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "wait": {"type": "float", "default": 60.0},
            "ttl": {"type": "float", "default": 900.0},
        },
        required_if=[("state", "absent", ("owner",))],
        supports_check_mode=True,
    )
    params = module.params
    if not params["owner"]:
        params["owner"] = run_owner(params["name"], params["incident_id"], time.time(), os.getpid())
    if params["wait"] < 0 or params["ttl"] <= 0:
        module.fail_json(msg="wait must be 0 or more seconds and ttl more than 0 seconds")
    path = lock_path(params["lock_dir"], params["name"])
    if module.check_mode:
        check_mode_result(module, path)
    started = time.monotonic()
    try:
        if params["state"] == "present":
            outcome, holder = acquire(path, params["owner"], params["incident_id"], params["ttl"], params["wait"])
        else:
            outcome, holder = release(path, params["owner"])
    except OSError as error:
        module.fail_json(msg="lock %s at %s: %s" % (params["name"], path, error))
    result = lock_result(params, outcome, holder, path, time.monotonic() - started)
    if outcome == "busy":
        module.fail_json(
            msg="%s is locked by another run: %s; waited %.0f s. Let it finish, or remove %s if that run is gone"
            % (params["name"], describe_holder(holder), params["wait"], path),
            **result,
        )
    if outcome == "held_by_other":
        module.fail_json(msg="not releasing %s: it is held by %s" % (params["name"], describe_holder(holder)), **result)
    module.exit_json(**result)


def lock_result(params: dict, outcome: str, holder: Optional[dict], path: str, waited: float) -> dict:
    return {
        "changed": False,
        "lock": outcome,
        "lock_owner": params["owner"],
        "path": path,
        "previous_holder": holder or {},
        "waited_seconds": round(waited, 3),
    }


def check_mode_result(module: AnsibleModule, path: str) -> None:
    """Say what a real run would do; write nothing."""
    params = module.params
    try:
        outcome, holder = preview(path, params["owner"], params["state"])
    except OSError as error:
        module.fail_json(msg="lock %s at %s: %s" % (params["name"], path, error))
    result = lock_result(params, outcome, holder, path, 0.0)
    if outcome in ("busy", "held_by_other"):
        module.warn(
            "check mode: %s is held by %s; a real run would %s"
            % (
                params["name"],
                describe_holder(holder),
                "wait %.0f s for it" % params["wait"] if outcome == "busy" else "fail",
            )
        )
    module.exit_json(msg="check mode: lock %s: %s (nothing written)" % (params["name"], outcome), **result)


if __name__ == "__main__":
    main()
