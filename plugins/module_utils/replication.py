# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication names: the one home for slot names and synchronous_standby_names.

A member's replication slot and its application_name are the same word, derived
from its inventory name. synchronous_standby_names is read with PostgreSQL's own
grammar (src/backend/replication/syncrep_gram.y):

    [FIRST | ANY] num (name [, ...])   or   name [, ...]   (which means FIRST 1)

where a name is an identifier, a number, '*' or a double-quoted string ("" for a
quote). Pure functions, no I/O; used by the modules, the filter plugins and so the roles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

FIRST = "FIRST"
ANY = "ANY"

_IDENTIFIER = re.compile(r"[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*")
_NUMBER = re.compile(r"[0-9]+")
_PLAIN_NAME = re.compile(r"^(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*|[0-9]+|\*)$")


def slot_name_for(member_name: str) -> str:
    """Replication slot / application_name for an inventory host: [a-z0-9_] only."""
    return re.sub(r"[^a-z0-9_]", "_", member_name.lower())


@dataclass(frozen=True)
class SyncStandbyNames:
    """A parsed synchronous_standby_names: how many of which standbys must acknowledge."""

    method: str
    num_sync: int
    names: Tuple[str, ...]


def _tokens(setting: str) -> List[Tuple[str, str]]:
    """(kind, text) tokens: name, number, keyword, quoted, or one of '(' ')' ','."""
    tokens: List[Tuple[str, str]] = []
    position = 0
    while position < len(setting):
        char = setting[position]
        if char.isspace():
            position += 1
        elif char in "(),*":
            tokens.append(("name" if char == "*" else char, char))
            position += 1
        elif char == '"':
            position = _quoted_token(setting, position, tokens)
        else:
            match = _IDENTIFIER.match(setting, position) or _NUMBER.match(setting, position)
            if not match:
                raise ValueError("synchronous_standby_names %r: unexpected %r" % (setting, char))
            word = match.group(0)
            if word.isdigit():
                kind = "number"
            elif word.upper() in (FIRST, ANY):
                kind = "keyword"
            else:
                kind = "name"
            tokens.append((kind, word))
            position = match.end()
    return tokens


def _quoted_token(setting: str, start: int, tokens: List[Tuple[str, str]]) -> int:
    text = []
    position = start + 1
    while True:
        end = setting.find('"', position)
        if end < 0:
            raise ValueError("synchronous_standby_names %r: unterminated quoted name" % setting)
        text.append(setting[position:end])
        if setting.startswith('""', end):
            text.append('"')
            position = end + 2
            continue
        tokens.append(("quoted", "".join(text)))
        return end + 1


def _name_list(setting: str, tokens: List[Tuple[str, str]]) -> Tuple[str, ...]:
    """name [, name ...]: numbers count as names, as in PostgreSQL."""
    names = []
    expect_name = True
    for kind, text in tokens:
        if expect_name and kind in ("name", "quoted", "number"):
            names.append(text)
        elif not expect_name and kind == ",":
            pass
        else:
            raise ValueError("synchronous_standby_names %r: unexpected %r" % (setting, text))
        expect_name = not expect_name
    if expect_name:
        raise ValueError("synchronous_standby_names %r: a standby name is missing" % setting)
    return tuple(names)


def parse_synchronous_standby_names(setting: Optional[str]) -> Optional[SyncStandbyNames]:
    """The parsed setting, or None when it is empty (asynchronous). Raises ValueError."""
    if not setting or not setting.strip():
        return None
    tokens = _tokens(setting)
    method = None
    if tokens[0][0] == "keyword":
        method = tokens.pop(0)[1].upper()
    kinds = [kind for kind, _text in tokens]
    if kinds[:2] == ["number", "("]:
        if kinds[-1] != ")":
            raise ValueError("synchronous_standby_names %r: missing ')'" % setting)
        num_sync = int(tokens[0][1])
        if num_sync < 1:
            raise ValueError("synchronous_standby_names %r: the number of standbys must be at least 1" % setting)
        return SyncStandbyNames(method or FIRST, num_sync, _name_list(setting, tokens[2:-1]))
    if method:
        raise ValueError("synchronous_standby_names %r: %s needs a number and a parenthesised list" % (setting, method))
    return SyncStandbyNames(FIRST, 1, _name_list(setting, tokens))


def quote_standby_name(name: str) -> str:
    """A name as synchronous_standby_names reads it back unchanged."""
    if _PLAIN_NAME.match(name) and name.upper() not in (FIRST, ANY):
        return name
    return '"%s"' % name.replace('"', '""')


def build_synchronous_standby_names(names: Iterable[str], num_sync: int, method: str = ANY) -> str:
    """'ANY 1 (a, b)' for the given standby names; '' (asynchronous) when there is none to wait for."""
    names = list(names)
    method = method.upper()
    if method not in (FIRST, ANY):
        raise ValueError("synchronous commit method must be FIRST or ANY, not %r" % method)
    if not names or num_sync < 1:
        return ""
    return "%s %d (%s)" % (method, num_sync, ", ".join(quote_standby_name(name) for name in names))


def synchronous_names(setting: Optional[str]) -> List[str]:
    """Standby names listed in synchronous_standby_names, lower case ('*' is not a name).

    PostgreSQL compares them with application_name case-insensitively.
    """
    parsed = parse_synchronous_standby_names(setting)
    if parsed is None:
        return []
    return [name.lower() for name in parsed.names if name != "*"]


def synchronous_after_promotion(
    current: Optional[str], remaining: List[str], strict: bool
) -> Tuple[Optional[str], bool]:
    """(synchronous_standby_names for the promoted server, durability reduced?).

    The promoted server inherits a list naming members that are now fenced; commits
    would wait for acknowledgements that cannot come. The list becomes the standbys
    that remain, with the same method and at most as many required as remain. With
    none left, commits go asynchronous (like Patroni's non-strict synchronous mode)
    unless strict, where they keep waiting for a standby to return.
    """
    parsed = parse_synchronous_standby_names(current)
    if parsed is None:
        return None, False
    if not remaining:
        return (None, False) if strict else ("", True)
    required = min(parsed.num_sync, len(remaining))
    names = [slot_name_for(name) for name in remaining]
    return build_synchronous_standby_names(names, required, parsed.method), required < parsed.num_sync
