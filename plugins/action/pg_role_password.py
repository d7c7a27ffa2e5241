# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for penguinmails.dbops.pg_role_password: in the worker when the target is the controller."""

from __future__ import annotations

from ansible_collections.penguinmails.dbops.plugins.modules import pg_role_password
from ansible_collections.penguinmails.dbops.plugins.plugin_utils.controller_module import ControllerModuleAction


class ActionModule(ControllerModuleAction):
    module_main = staticmethod(pg_role_password.main)
