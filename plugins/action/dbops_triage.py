# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for penguinmails.dbops.dbops_triage: classification is pure, it runs in the worker process."""

from __future__ import annotations

from ansible_collections.penguinmails.dbops.plugins.module_utils import triage
from ansible_collections.penguinmails.dbops.plugins.plugin_utils.inprocess_action import InProcessAction


class ActionModule(InProcessAction):
    argument_spec = staticmethod(triage.argument_spec)
    runner = staticmethod(triage.run)
    expected_errors = (triage.TriageError,)
