# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base class for the action plugins of this collection's modules: run in the worker when the target is the controller.

Every module here talks to PostgreSQL or PgBouncer over the network, and most
tasks run them on the controller (``delegate_to: localhost`` or the lab's local
connection). The ordinary way to run a module costs a new interpreter, an
AnsiballZ payload and a shell per task: about 0.35 s on a quiet 2-core machine
and 1-2 s under load, which made up most of a failover's wall time. When the
task's target is this controller — local connection, no become, no async, no
task ``environment``, and the target's interpreter is the Python running Ansible
— nothing is gained by that isolation, so the plugin runs the same module code
with the same arguments Ansible would send (``_update_module_args``) in the
worker process Ansible already forked for the task, and reads the result back
through Ansible's own module-result decoder. ansible.netcommon's
``import_modules`` option does the same for network modules.

Anything else runs the module the ordinary way, and ``dbops_in_process: false``
(an inventory or play variable) forces the ordinary way everywhere. It relies on the
module-result serialization of ansible-core 2.19; older versions always ship the module.
"""

from __future__ import annotations

import io
import json
import os
import sys
import traceback
from contextlib import redirect_stdout
from typing import Any, Callable, Dict, Mapping

from ansible import constants as C
from ansible.module_utils import basic
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash
from ansible.vars.clean import remove_internal_keys

try:  # the module-result serialization profiles this relies on came with ansible-core 2.19
    from ansible.module_utils.common.json import Direction, get_module_encoder

    IN_PROCESS_SUPPORTED = True
except ImportError:  # older ansible-core: every module ships the ordinary way
    IN_PROCESS_SUPPORTED = False

SERIALIZATION_PROFILE = "legacy"  # the profile Ansible uses for a module without METADATA, as ours are
IN_PROCESS_VARIABLE = "dbops_in_process"


class ControllerModuleAction(ActionBase):
    """Run the module in this process when the task's target is this controller, else ship it.

    Subclasses set ``module_main`` to the module's ``main``. Importing the module in the action
    plugin's file also means Ansible's main process imports it (and psycopg2) once, when the
    strategy loads the plugin class, and every forked worker inherits it instead of importing it again.
    """

    _supports_check_mode = True
    _supports_async = True

    module_main: Callable[[], None]

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # no effect since ansible-core 2.x; kept for the signature
        task_vars = task_vars or {}
        if self._runs_in_this_process(task_vars):
            return merge_hash(result, self._execute_in_this_process(task_vars))
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _runs_in_this_process(self, task_vars: Mapping[str, Any]) -> bool:
        return (
            IN_PROCESS_SUPPORTED
            and boolean(self._templar.template(task_vars.get(IN_PROCESS_VARIABLE, True)), strict=False)
            and self._connection.transport == "local"
            and not self._play_context.become
            and not self._task.async_val
            and not any(self._task.environment or [])
            and self._target_interpreter(task_vars) == os.path.abspath(sys.executable)
        )

    def _target_interpreter(self, task_vars: Mapping[str, Any]) -> str:
        configured = C.config.get_config_value("INTERPRETER_PYTHON", variables=task_vars)
        interpreter = self._templar.template(configured) if configured else ""
        return os.path.abspath(interpreter) if interpreter and os.path.isabs(str(interpreter)) else ""

    def _execute_in_this_process(self, task_vars: Dict[str, Any]) -> Dict[str, Any]:
        module_name = self._task.resolved_action or self._task.action
        module_args = dict(self._task.args)
        self._update_module_args(module_name, module_args, task_vars)
        stdout = run_module_main(type(self).module_main, module_name, module_args)
        data = self._parse_returned_data({"stdout": stdout}, SERIALIZATION_PROFILE)
        data.pop("_ansible_suppress_tmpdir_delete", None)
        remove_internal_keys(data)
        return data


def run_module_main(module_main: Callable[[], None], module_name: str, module_args: Mapping[str, Any]) -> str:
    """Run the module's ``main()`` with ``module_args`` as AnsiballZ would; return what it printed.

    A module reports by printing its JSON result and exiting; SystemExit is the normal end.
    Anything else it raises is reported as a failed result, as AnsiballZ reports it.
    """
    encoder = get_module_encoder(SERIALIZATION_PROFILE, Direction.CONTROLLER_TO_MODULE)
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": module_args}, cls=encoder).encode()
    basic._ANSIBLE_PROFILE = SERIALIZATION_PROFILE
    forget_earlier_warnings()
    captured = io.StringIO()
    try:
        with redirect_stdout(captured):
            module_main()
    except SystemExit:
        return captured.getvalue()
    except Exception as exc:  # pylint: disable=broad-exception-caught  # reported as the task's failure, like AnsiballZ
        return json.dumps(
            {
                "failed": True,
                "msg": f"{module_name}: {type(exc).__name__}: {exc}",
                "exception": traceback.format_exc(),
            }
        )
    return json.dumps({"failed": True, "msg": f"{module_name} returned without reporting a result"})


def forget_earlier_warnings() -> None:
    """Warnings are module-global; a loop runs several items in one worker, each must report only its own."""
    for name in ("_global_warnings", "_global_deprecations"):
        store = getattr(module_warnings, name, None)
        if store is not None:
            store.clear()
