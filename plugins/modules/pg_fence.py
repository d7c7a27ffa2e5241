#!/usr/bin/python
# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_fence
short_description: Fence a PostgreSQL server on its own host so it can never accept writes again
version_added: 0.1.0
description:
  - Runs on the host of the server to fence (use C(delegate_to) the old primary's host).
  - Stops the server's processes, and only them - the postmaster named by C(postmaster.pid) (checked in
    C(/proc) to be a postgres process of the data directory's owner working in that directory) and its
    children, or, when that postmaster is already dead, its orphaned backends (postgres processes of the
    owner still working in the data directory). Another process in the data directory (an operator's
    shell) is never signalled; with no C(postmaster.pid) nothing is signalled and RV(msg) says so.
  - A running server gets a fast shutdown (SIGINT) and is killed after O(stop_timeout); a hung server
    (any of its processes stopped, e.g. SIGSTOP), orphaned backends or O(method=kill) are killed
    outright, because a hung postmaster never answers a shutdown request.
  - Then writes C(standby.signal) into the data directory, so a restart by anyone (an init system,
    an operator) brings the server back read-only instead of as a second primary. It is created
    without following links; a link in its place (or a data directory that is a link) is refused.
  - Judges "running" from C(/proc) process states, not from C(postmaster.pid) or C(kill -0), because a
    killed postmaster can linger as a zombie.
  - Idempotent. In check mode it reports the plan (processes, signals, files) and changes nothing.
author:
  - PenguinMails Database Operations (@penguinmails)
options:
  data_dir:
    description: Data directory of the server to fence.
    type: path
    required: true
  method:
    description:
      - V(auto) fast shutdown for a responsive server, kill for a hung one.
      - V(fast) and V(immediate) send SIGINT / SIGQUIT to the postmaster, then SIGKILL after O(stop_timeout).
      - V(kill) sends SIGKILL to every process of the server at once.
    type: str
    default: auto
    choices: [auto, fast, immediate, kill]
  stop_timeout:
    description: Seconds to wait for a shutdown before killing what remains.
    type: float
    default: 5
  standby_signal:
    description: Write C(standby.signal) so a restart comes back as a standby.
    type: bool
    default: true
notes:
  - Needs to read C(/proc/<pid>/cwd) and signal the server's processes, so run it as root
    (C(become)) or as the server's OS user.
  - With an init system that restarts PostgreSQL on exit, stop or mask that unit as well;
    C(standby.signal) keeps such a restart read-only in the meantime.
attributes:
  check_mode:
    support: full
    description: Plans instead of acting; reports what it would do and changes nothing.
  diff_mode:
    support: full
    description: Shows the state before and after.
"""

EXAMPLES = r"""
- name: Fence the old primary before anything is promoted
  penguinmails.dbops.pg_fence:
    data_dir: "{{ hostvars[old_primary].pg_data_dir }}"
    stop_timeout: 3
  delegate_to: "{{ old_primary }}"
  become: true

- name: Hard fence, no shutdown attempt
  penguinmails.dbops.pg_fence:
    data_dir: /var/lib/postgresql/15/main
    method: kill
"""

RETURN = r"""
fenced:
  description: True when no process of the server is alive and (if requested) standby.signal is in place.
  returned: always
  type: bool
  sample: true
was_running:
  description: Whether any process of the server was alive before fencing.
  returned: always
  type: bool
  sample: true
hung:
  description: Whether any process of the server was in the stopped state (SIGSTOP, ptrace).
  returned: always
  type: bool
  sample: false
method:
  description: How the server was (or would be) stopped; C(none) when nothing was running.
  returned: always
  type: str
  sample: fast
postmaster_pid:
  description: PID recorded in postmaster.pid, if any.
  returned: always
  type: int
  sample: 43121
processes:
  description: PIDs of the server's live processes found before fencing.
  returned: always
  type: list
  elements: int
  sample: [43121, 43122, 43123]
msg:
  description: Why nothing is signalled, when no process of the server is running.
  returned: when nothing is running
  type: str
  sample: "no postmaster.pid in /srv/pg/data and no server process: nothing to signal"
actions:
  description: What was done (or, in check mode, would be done).
  returned: always
  type: list
  elements: str
  sample: ["sent SIGINT to postmaster 43121", "wrote /srv/pg/data/standby.signal"]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.penguinmails.dbops.plugins.module_utils.acting import ActionFailed
from ansible_collections.penguinmails.dbops.plugins.module_utils.fence import fence


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "data_dir": {"type": "path", "required": True},
            "method": {"type": "str", "default": "auto", "choices": ["auto", "fast", "immediate", "kill"]},
            "stop_timeout": {"type": "float", "default": 5.0},
            "standby_signal": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    data_dir = module.params["data_dir"]
    if not os.path.isfile(os.path.join(data_dir, "PG_VERSION")):
        module.fail_json(
            msg="%s is not a PostgreSQL data directory (no PG_VERSION); check data_dir for this host" % data_dir
        )
    try:
        result = fence(
            data_dir,
            module.params["method"],
            module.params["standby_signal"],
            module.params["stop_timeout"],
            module.check_mode,
        )
    except ActionFailed as failure:
        module.fail_json(msg=str(failure), **failure.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
