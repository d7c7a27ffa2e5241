# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for penguinmails.dbops.dbops_audit_verify: audit files live on the controller."""

from __future__ import annotations

from ansible_collections.penguinmails.dbops.plugins.module_utils import audit
from ansible_collections.penguinmails.dbops.plugins.plugin_utils.inprocess_action import InProcessAction


class ActionModule(InProcessAction):
    argument_spec = staticmethod(audit.argument_spec)
    runner = staticmethod(audit.run)
