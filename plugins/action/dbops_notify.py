# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for penguinmails.dbops.dbops_notify: notifications leave from the controller."""

from __future__ import annotations

from ansible_collections.penguinmails.dbops.plugins.module_utils import incident, notify
from ansible_collections.penguinmails.dbops.plugins.plugin_utils.inprocess_action import InProcessAction


class ActionModule(InProcessAction):
    argument_spec = staticmethod(notify.argument_spec)
    runner = staticmethod(notify.run)
    expected_errors = (incident.IncidentError,)
