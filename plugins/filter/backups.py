# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgBackRest configuration for the lab: thin calls into module_utils/backups.py, which checks every
name and value against the ini grammar pgBackRest reads (imported when a filter is called)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def pgbackrest_ini(sections):
    """{section: {option: value}} -> pgbackrest.conf text; a bad name or value fails the task with one line."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.backups import pgbackrest_config

    try:
        return pgbackrest_config(dict(sections or {}))
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from None


def pgbackrest_archive_command(config, stanza):
    """The archive_command that pushes WAL to the stanza's repository."""
    from ansible_collections.penguinmails.dbops.plugins.module_utils.backups import archive_command

    try:
        return archive_command(str(config), str(stanza))
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self):
        return {"pgbackrest_ini": pgbackrest_ini, "pgbackrest_archive_command": pgbackrest_archive_command}
