# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Re-pointing after a promotion: standbys follow the new primary, PgBouncer sends clients there.

Two pure parts (conninfo rewriting, PgBouncer ini editing) and the statements that
apply them. Since PostgreSQL 13, primary_conninfo and primary_slot_name are reloadable:
changing them restarts the WAL receiver without restarting the server.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

try:
    from psycopg2.extensions import make_dsn, parse_dsn
except ImportError:  # pragma: no cover - reported by the modules
    make_dsn = parse_dsn = None

SECRET_KEYS = ("password",)


def follow_conninfo(current: str, host: str, port: int, application_name: str) -> str:
    """current primary_conninfo with host and port replaced; everything else kept."""
    settings = parse_dsn(current) if current else {}
    settings.update(host=host, port=str(port))
    settings.setdefault("application_name", application_name)
    return make_dsn(**settings)


def same_conninfo(left: str, right: str) -> bool:
    """Equal as settings, whatever the order or quoting of the strings."""
    return (parse_dsn(left) if left else {}) == (parse_dsn(right) if right else {})


def mask_conninfo(conninfo: str) -> str:
    """primary_conninfo fit for output: secrets replaced."""
    if not conninfo:
        return conninfo
    settings = parse_dsn(conninfo)
    for key in SECRET_KEYS:
        if key in settings:
            settings[key] = "********"
    return make_dsn(**settings)


_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")
_ENTRY = re.compile(r"^\s*(?P<name>[^=\s;#]+)\s*=\s*(?P<value>.*?)\s*$")


def parse_db_value(value: str) -> List[Tuple[str, str]]:
    """'host=a port=1 dbname=x' -> ordered pairs (PgBouncer's [databases] syntax)."""
    pairs = []
    for token in re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", value):
        pairs.append((token[0], token[1]))
    return pairs


def render_db_value(pairs: List[Tuple[str, str]]) -> str:
    return " ".join("%s=%s" % (key, value) for key, value in pairs)


def set_pairs(pairs: List[Tuple[str, str]], wanted: Dict[str, str]) -> List[Tuple[str, str]]:
    """Replace values in place, append new keys at the end; order is kept for a readable diff."""
    result = []
    seen = set()
    for key, value in pairs:
        if key in wanted:
            result.append((key, wanted[key]))
            seen.add(key)
        else:
            result.append((key, value))
    result.extend((key, value) for key, value in wanted.items() if key not in seen)
    return result


def find_database_line(lines: List[str], database: str) -> Tuple[Optional[int], Optional[int]]:
    """(index of the entry line or None, index after the [databases] section's last line or None)."""
    in_section = False
    section_end = None
    for index, line in enumerate(lines):
        section = _SECTION.match(line)
        if section:
            if in_section:
                return None, section_end
            in_section = section.group("name").strip().lower() == "databases"
            section_end = index + 1 if in_section else section_end
            continue
        if not in_section:
            continue
        section_end = index + 1 if line.strip() else section_end
        entry = _ENTRY.match(line)
        if entry and entry.group("name") == database:
            return index, section_end
    return None, section_end


def update_database_entry(text: str, database: str, wanted: Dict[str, str]) -> Tuple[str, Optional[str], str]:
    """(new ini text, old entry line or None, new entry line) for one [databases] entry."""
    lines = text.splitlines()
    index, section_end = find_database_line(lines, database)
    if section_end is None:
        raise ValueError("the PgBouncer ini file has no [databases] section")
    if index is None:
        new_line = "%s = %s" % (database, render_db_value(list(wanted.items())))
        lines.insert(section_end, new_line)
        return "\n".join(lines) + "\n", None, new_line
    old_line = lines[index]
    pairs = parse_db_value(_ENTRY.match(old_line).group("value"))
    new_line = "%s = %s" % (database, render_db_value(set_pairs(pairs, wanted)))
    lines[index] = new_line
    return "\n".join(lines) + "\n", old_line.strip(), new_line
