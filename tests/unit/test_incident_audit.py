"""The hash-chained audit file: writing, verifying, naming the tampered line, redaction, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import audit, redaction

CLI = Path(__file__).resolve().parents[2] / "tools" / "audit_verify"


def write_trail(path, count=6, **extra):
    for number in range(1, count + 1):
        audit.append_record(str(path), {"event": "task", "task": f"task {number}", **extra}, fsync=False)
    return path.read_bytes().splitlines(keepends=True)


def rewrite(path, lines):
    path.write_bytes(b"".join(lines))


def edit(line: bytes, old: str, new: str) -> bytes:
    assert old.encode() in line
    return line.replace(old.encode(), new.encode())


def reseal(line: bytes) -> bytes:
    """What a careful forger does: recompute the line's own hash after editing it."""
    text = line.decode().rstrip("\n")
    body = text[: text.rindex(',"hash":')] + "}"
    return (body[:-1] + ',"hash":"' + hashlib.sha256(body.encode()).hexdigest() + '"}\n').encode()


def test_an_untouched_trail_verifies_with_its_count_and_head(tmp_path):
    path = tmp_path / "audit.jsonl"
    lines = write_trail(path)
    result = audit.verify_file(str(path))
    assert result["ok"] and result["lines"] == 6
    assert result["head"] == hashlib.sha256(lines[-1].rstrip(b"\n")).hexdigest()
    first = json.loads(lines[0])
    assert first["seq"] == 1 and first["prev"] == "0" * 64 and list(first)[-1] == "hash"
    second = json.loads(lines[1])
    assert second["prev"] == hashlib.sha256(lines[0].rstrip(b"\n")).hexdigest()


def tamper_middle(lines):
    lines[2] = edit(lines[2], "task 3", "task X")
    return lines, 3, "does not match its own hash"


def tamper_last(lines):
    lines[-1] = edit(lines[-1], "task 6", "task X")
    return lines, 6, "does not match its own hash"


def tamper_and_reseal(lines):
    lines[2] = reseal(edit(lines[2], "task 3", "task X"))
    return lines, 3, "not the prev that line 4 recorded"


def delete_middle(lines):
    del lines[3]
    return lines, 4, "seq is 5, expected 4"


def delete_first(lines):
    del lines[0]
    return lines, 1, "seq is 2, expected 1"


def insert_forged(lines):
    lines.insert(2, lines[1])
    return lines, 3, "seq is 2, expected 3"


def swap(lines):
    lines[1], lines[2] = lines[2], lines[1]
    return lines, 2, "seq is 3, expected 2"


def truncate_last(lines):
    lines[-1] = lines[-1][:40]
    return lines, 6, "no newline"


def junk_line(lines):
    lines[4] = b"this is not json\n"
    return lines, 5, "not valid JSON"


@pytest.mark.parametrize(
    "tamper",
    [
        tamper_middle,
        tamper_last,
        tamper_and_reseal,
        delete_middle,
        delete_first,
        insert_forged,
        swap,
        truncate_last,
        junk_line,
    ],
)
def test_tampering_is_named_at_the_right_line(tmp_path, tamper):
    path = tmp_path / "audit.jsonl"
    lines, expected_line, reason = tamper(write_trail(path))
    rewrite(path, lines)
    result = audit.verify_file(str(path))
    assert not result["ok"]
    assert result["broken_line"] == expected_line
    assert reason in result["reason"]
    assert result["lines"] == expected_line - 1
    assert f"broken at line {expected_line}:" in audit.describe(result)


def test_an_empty_trail_is_valid_and_says_so(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    result = audit.verify_file(str(path))
    assert result["ok"] and result["lines"] == 0 and "empty" in audit.describe(result)


def test_appending_continues_the_chain_of_an_existing_file(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_trail(path, count=3, pad="x" * 40000)  # lines longer than the tail chunk
    audit.append_record(str(path), {"event": "task", "task": "a later run"})
    result = audit.verify_file(str(path))
    assert result["ok"] and result["lines"] == 4


def test_a_writer_after_a_corrupt_line_still_chains_to_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    lines = write_trail(path, count=3)
    lines[-1] = b"garbage\n"
    rewrite(path, lines)
    audit.append_record(str(path), {"event": "task"})
    result = audit.verify_file(str(path))
    assert result["broken_line"] == 3  # the corruption is reported, not hidden by the next line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD '********'"),
        ("ALTER ROLE app WITH ENCRYPTED PASSWORD 'it''s'", "ALTER ROLE app WITH ENCRYPTED PASSWORD '********'"),
        ("host=db user=app password=hunter2 dbname=x", "host=db user=app password=******** dbname=x"),
        ("postgresql://app:hunter2@db:5432/x", "postgresql://app:********@db:5432/x"),
        ("token: abc123", "token: ********"),
        ("SELECT pg_promote(true, 30)", "SELECT pg_promote(true, 30)"),
    ],
)
def test_secrets_in_text_are_masked(text, expected):
    assert redaction.redact_text(text) == expected


def test_secret_named_keys_are_masked_anywhere():
    data = {
        "login_password": "a",
        "routing_key": "b",
        "webhook_url": "c",
        "nested": [{"api_key": "d", "passed": 3}],
        "query": "SELECT 1",
    }
    assert redaction.redact_value(data) == {
        "login_password": "********",
        "routing_key": "********",
        "webhook_url": "********",
        "nested": [{"api_key": "********", "passed": 3}],
        "query": "SELECT 1",
    }


def test_module_result_fails_with_the_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    lines = write_trail(path)
    lines[1] = edit(lines[1], "task 2", "task Y")
    rewrite(path, lines)
    result = audit.run({"path": str(path)})
    assert result["failed"] and result["broken_line"] == 2 and "broken at line 2" in result["msg"]
    missing = audit.run({"path": str(tmp_path / "nope.jsonl")})
    assert missing["failed"] and missing["msg"].startswith("cannot read audit file")


def run_cli(*args):
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "ANSIBLE_CONFIG")}
    env["PYTHON"] = sys.executable
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=30, check=False)


def test_cli_exit_codes_and_messages(tmp_path):
    good = tmp_path / "good.jsonl"
    write_trail(good)
    bad = tmp_path / "bad.jsonl"
    lines = write_trail(bad)
    lines[3] = edit(lines[3], "task 4", "task Z")
    rewrite(bad, lines)

    ok = run_cli(str(good))
    assert ok.returncode == 0 and "audit chain intact, 6 lines" in ok.stdout
    broken = run_cli(str(good), str(bad))
    assert broken.returncode == 1 and "bad.jsonl: audit chain broken at line 4" in broken.stdout
    unreadable = run_cli(str(tmp_path / "missing.jsonl"))
    assert unreadable.returncode == 2 and "cannot read audit file" in unreadable.stdout
    as_json = run_cli("--json", str(bad))
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["broken_line"] == 4
