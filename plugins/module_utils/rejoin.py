# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bringing a fenced old primary back as a standby: files and commands, no decisions.

pg_rewind and pg_basebackup copy the source's configuration files over the target's;
a server whose postgresql.conf lives in its data directory would come back with the
new primary's port and settings. The target's own files are saved first and put back.
"""

from __future__ import annotations

import os
import shutil
from typing import Dict, List, Optional, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils.fence import is_alive, read_postmaster_pid

KEPT_FILES = ("postgresql.conf", "pg_hba.conf", "pg_ident.conf", "postgresql.auto.conf")
SIGNAL_FILES = ("standby.signal", "recovery.signal")
MANAGED_SETTINGS = ("primary_conninfo", "primary_slot_name")


def save_config(data_dir: str) -> Dict[str, bytes]:
    """The target's own configuration files, to put back after a rewind or re-clone."""
    saved = {}
    for name in KEPT_FILES:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as config_file:
                saved[name] = config_file.read()
    return saved


def restore_config(data_dir: str, saved: Dict[str, bytes]) -> None:
    owner = os.stat(data_dir)
    for name, content in saved.items():
        path = os.path.join(data_dir, name)
        with open(path, "wb") as config_file:
            config_file.write(content)
        os.chown(path, owner.st_uid, owner.st_gid)
        os.chmod(path, 0o600)


def remove_signal_files(data_dir: str) -> List[str]:
    """pg_rewind's crash recovery runs a single-user server, which refuses standby mode."""
    removed = []
    for name in SIGNAL_FILES:
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            os.unlink(path)
            removed.append(name)
    return removed


def remove_stale_pid_file(data_dir: str) -> Tuple[Optional[int], List[str]]:
    """A killed postmaster can linger as a zombie; its pid file and socket lock file would block a start.

    PostgreSQL refuses to start while the socket lock file (.s.PGSQL.<port>.lock) names a
    process that answers kill(pid, 0), which a zombie does. Both files are removed only when
    they name this dead postmaster. Returns its pid (or None) and the files removed.
    """
    pid_path = os.path.join(data_dir, "postmaster.pid")
    pid = read_postmaster_pid(data_dir)
    if pid is None or is_alive(pid):
        return None, []
    with open(pid_path) as pid_file:
        lines = pid_file.read().splitlines()
    os.unlink(pid_path)
    removed = [pid_path]
    if len(lines) >= 5 and lines[3].strip().isdigit() and lines[4].strip():
        lock_path = os.path.join(lines[4].strip(), ".s.PGSQL.%s.lock" % lines[3].strip())
        if lock_names(lock_path) == pid:
            os.unlink(lock_path)
            removed.append(lock_path)
    return pid, removed


def lock_names(lock_path: str) -> Optional[int]:
    try:
        with open(lock_path) as lock_file:
            first_line = lock_file.readline().strip()
    except OSError:
        return None
    return int(first_line) if first_line.isdigit() else None


def quote_setting(value: str) -> str:
    return "'%s'" % value.replace("\\", "\\\\").replace("'", "''")


def set_auto_conf(text: str, settings: Dict[str, str]) -> str:
    """postgresql.auto.conf with the managed settings replaced (last one wins in PostgreSQL)."""
    kept = [
        line
        for line in text.splitlines()
        if not any(line.strip().startswith(name) and "=" in line for name in settings)
    ]
    kept.extend("%s = %s" % (name, quote_setting(value)) for name, value in settings.items())
    return "\n".join(kept) + "\n"


def configure_standby(data_dir: str, primary_conninfo: str, slot_name: str) -> None:
    """standby.signal plus primary_conninfo and primary_slot_name, owned like the data directory."""
    owner = os.stat(data_dir)
    auto_conf = os.path.join(data_dir, "postgresql.auto.conf")
    current = ""
    if os.path.exists(auto_conf):
        with open(auto_conf) as conf_file:
            current = conf_file.read()
    with open(auto_conf, "w") as conf_file:
        conf_file.write(set_auto_conf(current, {"primary_conninfo": primary_conninfo, "primary_slot_name": slot_name}))
    signal_path = os.path.join(data_dir, "standby.signal")
    with open(signal_path, "w"):
        pass
    for path in (auto_conf, signal_path):
        os.chown(path, owner.st_uid, owner.st_gid)
        os.chmod(path, 0o600)


def set_aside(data_dir: str, suffix: str) -> str:
    """Move a data directory out of the way before a re-clone; the caller reports where."""
    aside = "%s.discarded-%s" % (data_dir.rstrip("/"), suffix)
    shutil.move(data_dir, aside)
    return aside
