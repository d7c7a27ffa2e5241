# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hash-chained audit lines for penguinmails.dbops.

An audit file is JSON Lines. Every line is one JSON object whose ``seq`` is its
1-based line number, whose ``prev`` is the SHA-256 (hex) of the exact bytes of
the previous line (without its newline; 64 zeros for the first line) and whose
last key, ``hash``, is the SHA-256 of the line's own text without that key.
An edit to any line, the last one included, no longer matches its own hash; an
edit that also recomputes ``hash`` no longer matches the next line's ``prev``;
an inserted or deleted line breaks ``seq``. The verifier names the line.
Rewriting the whole tail, or cutting lines off the end, leaves a valid shorter
chain: compare the head hash with the copy shipped to syslog or HTTP.

The verifier is standard library only: the audit callback, the dbops_audit_verify
module and the tools/audit_verify CLI all use this file, the CLI without Ansible
(only ``append_record`` imports the collection's file helper). Redaction is
``redaction.py``; the callback applies it before a line is rendered.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, BinaryIO, Dict, Iterable, List, Mapping, Optional, Tuple

GENESIS = "0" * 64
SELF_HASH = re.compile(r',"hash":"([0-9a-f]{64})"\}$')
TAIL_CHUNK = 65536


class AuditFormatError(ValueError):
    """An audit line or file cannot be used."""


def line_hash(line: str) -> str:
    """SHA-256 of one audit line as written (without its newline)."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def render_line(record: Mapping[str, Any], seq: int, prev: str) -> str:
    """Serialise one record as a chained line: seq and prev first, its own hash last; compact, ASCII-only."""
    body = {"seq": seq, "prev": prev}
    body.update((key, value) for key, value in record.items() if key not in ("seq", "prev", "hash"))
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True, default=str)
    return text[:-1] + ',"hash":"' + line_hash(text) + '"}'


def own_hash_matches(line: str) -> bool:
    """Whether the line's ``hash`` is the SHA-256 of the line without it."""
    found = SELF_HASH.search(line)
    return bool(found) and line_hash(line[: found.start()] + "}") == found.group(1)


def tail_line(handle: BinaryIO) -> Optional[bytes]:
    """The last complete line (without newline) of a file opened in binary mode, read from the end."""
    handle.seek(0, os.SEEK_END)
    end = handle.tell()
    chunk = b""
    position = end
    while position > 0:
        step = min(TAIL_CHUNK, position)
        position -= step
        handle.seek(position)
        chunk = handle.read(step) + chunk
        complete = chunk[: chunk.rfind(b"\n") + 1] if b"\n" in chunk else b""
        if complete.count(b"\n") >= 2 or (position == 0 and complete):
            return complete[:-1].rsplit(b"\n", 1)[-1]
    return None


def count_lines(handle: BinaryIO) -> int:
    handle.seek(0)
    return sum(1 for raw in handle if raw.endswith(b"\n"))


def next_position(handle: BinaryIO) -> Tuple[int, str]:
    """(seq, prev) for the line to append: from the last line's seq, or by counting when it is unreadable."""
    last = tail_line(handle)
    if last is None:
        return 1, GENESIS
    try:
        seq = int(json.loads(last.decode("utf-8"))["seq"]) + 1
    except (ValueError, KeyError, TypeError):
        seq = count_lines(handle) + 1
    return seq, hashlib.sha256(last).hexdigest()


def append_record(path: str, record: Mapping[str, Any], fsync: bool = True) -> str:
    """Append ``record`` to the chained file at ``path`` (created 0600, never through a link) under an
    exclusive lock; return the line written."""
    # Imported here so that the CLI, which loads this file alone, only needs the verifier.
    from ansible_collections.penguinmails.dbops.plugins.module_utils import files

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with files.locked_append(path) as handle:
        seq, prev = next_position(handle)
        line = render_line(record, seq, prev)
        handle.write(line.encode("utf-8") + b"\n")
        handle.flush()
        if fsync:
            os.fsync(handle.fileno())
        return line


def check_line(number: int, line: str, expected_prev: str) -> Optional[Tuple[int, str]]:
    """(line to blame, why) when line ``number`` breaks the chain, or None when it is intact."""
    try:
        body = json.loads(line)
    except ValueError:
        return number, "not valid JSON (edited or truncated)"
    if not isinstance(body, dict):
        return number, "not a JSON object"
    if body.get("seq") != number:
        return number, f"seq is {body.get('seq')!r}, expected {number} (a line was inserted, deleted or moved)"
    if not own_hash_matches(line):
        return number, "the line was edited: its content does not match its own hash"
    if body.get("prev") != expected_prev:
        if number == 1:
            return 1, "prev is not the genesis hash (lines before it were removed)"
        return number - 1, (
            f"the line was rewritten: its SHA-256 is not the prev that line {number} recorded for it"
            f" (or line {number}'s prev was changed)"
        )
    return None


def verify_lines(lines: Iterable[bytes]) -> Dict[str, Any]:
    """Walk a chain. Returns ok, lines (count checked), head (hash of the last good line) and the first break."""
    expected_prev = previous_head = GENESIS
    count = 0
    for count, raw in enumerate(lines, start=1):
        if not raw.endswith(b"\n"):
            return _broken(count, "the line has no newline (the file was truncated)", head=expected_prev)
        try:
            line = raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            return _broken(count, "not valid UTF-8", head=expected_prev)
        problem = check_line(count, line, expected_prev)
        if problem:
            return _broken(*problem, head=expected_prev if problem[0] == count else previous_head)
        previous_head, expected_prev = expected_prev, line_hash(line)
    return {"ok": True, "lines": count, "head": expected_prev if count else None, "broken_line": None, "reason": None}


def _broken(number: int, reason: str, head: str) -> Dict[str, Any]:
    """A failed verification: ``lines`` intact lines before ``number``, ``head`` the hash of the last of them."""
    return {
        "ok": False,
        "lines": number - 1,
        "head": head if number > 1 else None,
        "broken_line": number,
        "reason": reason,
    }


def verify_file(path: str) -> Dict[str, Any]:
    """Verify the chain in ``path``; raises AuditFormatError when the file cannot be read."""
    try:
        with open(path, "rb") as handle:
            result = verify_lines(handle)
    except OSError as exc:
        raise AuditFormatError(f"cannot read audit file {path}: {exc.strerror or exc}") from exc
    result["path"] = path
    return result


def describe(result: Mapping[str, Any]) -> str:
    """One line for people: the verdict on a verify_file result."""
    if result["ok"]:
        if not result["lines"]:
            return f"{result['path']}: audit trail is empty (0 lines)"
        return f"{result['path']}: audit chain intact, {result['lines']} lines, head {result['head']}"
    return f"{result['path']}: audit chain broken at line {result['broken_line']}: {result['reason']}"


def verify_paths(paths: List[str]) -> Tuple[int, List[str]]:
    """CLI core: (exit status, messages). 0 when every file verifies, 1 when one is broken, 2 when unreadable."""
    status = 0
    messages = []
    for path in paths:
        try:
            result = verify_file(path)
        except AuditFormatError as exc:
            messages.append(str(exc))
            status = max(status, 2)
            continue
        messages.append(describe(result))
        if not result["ok"]:
            status = max(status, 1)
    return status, messages


def argument_spec() -> Dict[str, Any]:
    return {"path": {"type": "path", "required": True}}


def run(params: Mapping[str, Any], check_mode: bool = False) -> Dict[str, Any]:
    """dbops_audit_verify's result: failed with one line naming the first broken line, or the line count."""
    try:
        result = verify_file(params["path"])
    except AuditFormatError as exc:
        return {"changed": False, "failed": True, "msg": str(exc), "path": params["path"]}
    verdict = dict(result, changed=False, msg=describe(result))
    verdict["failed"] = not verdict.pop("ok")
    return verdict
