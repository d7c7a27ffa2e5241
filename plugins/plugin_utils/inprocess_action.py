# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base class for action plugins that run a collection module's logic on the controller.

The incident record, the notifications and the audit verifier work on the
controller's files and network, never on the target host. Running them in the
worker process instead of shipping an AnsiballZ payload makes each call cost a
few milliseconds instead of a few hundred (docs/incident-lifecycle.md has the
measurements), which matters for playbooks that record every step of a
failover. The module file beside each plugin carries the documentation and the
same argument spec, and runs the same code when executed as a module.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, Iterable, List, Mapping, Set, Tuple, Type

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase


class InProcessAction(ActionBase):
    """Validate the task's arguments against the module's spec, run ``runner`` and mask no_log values."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    argument_spec: Callable[[], Dict[str, Any]]
    runner: Callable[..., Dict[str, Any]]
    required_if: ClassVar[List[Tuple[Any, ...]]] = []
    expected_errors: Tuple[Type[Exception], ...] = ()

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # no remote temporary directory is ever used
        spec = type(self).argument_spec()
        args = own_arguments(self._task.args, spec, group_default_keys(self._task.module_defaults))
        validation = ArgumentSpecValidator(spec, required_if=self.required_if).validate(args)
        if validation.error_messages:
            raise AnsibleActionFail(f"{self._task.resolved_action}: {validation.error_messages[0]}")
        try:
            result.update(type(self).runner(validation.validated_parameters, self._task.check_mode))
        except self.expected_errors as exc:
            result.update(failed=True, msg=str(exc))
        return mask(result, validation._no_log_values)


def group_default_keys(module_defaults: Iterable[Mapping[str, Any]]) -> Set[str]:
    """Names set through ``module_defaults: group/...`` (for example the connection options of the dbops group)."""
    keys: Set[str] = set()
    for defaults in module_defaults or []:
        for name, values in defaults.items():
            if str(name).startswith("group/") and isinstance(values, Mapping):
                keys.update(values)
    return keys


def own_arguments(args: Mapping[str, Any], spec: Mapping[str, Any], from_groups: Set[str]) -> Dict[str, Any]:
    """The task's arguments without group defaults this module does not take; any other unknown name still fails."""
    return {name: value for name, value in args.items() if name in spec or name not in from_groups}


def mask(result: Mapping[str, Any], secrets) -> Dict[str, Any]:
    """The result with every no_log value replaced, as AnsibleModule does for module results."""
    return remove_values(dict(result), secrets) if secrets else dict(result)
