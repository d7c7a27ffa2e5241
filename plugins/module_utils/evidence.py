# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence bundles: files of one run kept as they were, with a SHA-256 manifest.

A bundle is a directory (mode 0700) of files (mode 0600) and MANIFEST.sha256, one
"<sha256>  <name>" line per file (the format sha256sum -c reads). The manifest's own
hash goes into the audit trail; verify_bundle checks a bundle against its manifest.
Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from typing import Any, Dict, List, Mapping, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils.files import (
    ensure_private_directory,
    write_atomically,
)

MANIFEST = "MANIFEST.sha256"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}$")
DIR_MODE, FILE_MODE = 0o700, 0o600


def name_problem(name: str) -> str:
    """Why `name` cannot be a file of a bundle ('' when it can)."""
    if not _NAME.match(name or "") or name == MANIFEST:
        return "refusing evidence file name %r: letters, digits, '_', '.', '-', no leading dot, not %s" % (
            name,
            MANIFEST,
        )
    return ""


def content_bytes(value: Any) -> bytes:
    """A file's content: text as it is, anything else as indented JSON."""
    if isinstance(value, str):
        return value.encode()
    return (json.dumps(value, indent=1, sort_keys=True, default=str) + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_text(hashes: Mapping[str, str]) -> str:
    return "".join("%s  %s\n" % (hashes[name], name) for name in sorted(hashes))


def parse_manifest(text: str) -> Dict[str, str]:
    """{name: sha256} from a manifest; ValueError on a line that is not '<64 hex>  <name>'."""
    hashes = {}
    for number, line in enumerate(text.splitlines(), 1):
        found = re.match(r"^([0-9a-f]{64})  (\S+)$", line)
        if not found or name_problem(found.group(2)):
            raise ValueError("line %d of %s is not '<sha256>  <name>'" % (number, MANIFEST))
        hashes[found.group(2)] = found.group(1)
    return hashes


def write_bundle(path: str, files: Mapping[str, Any]) -> Tuple[Dict[str, str], str]:
    """Write the files and their manifest; ({name: sha256}, the manifest's sha256)."""
    for name in files:
        problem = name_problem(name)
        if problem:
            raise ValueError(problem)
    ensure_private_directory(os.path.dirname(path))
    ensure_private_directory(path)
    os.chmod(path, DIR_MODE)
    hashes = {}
    for name, value in files.items():
        data = content_bytes(value)
        write_atomically(os.path.join(path, name), data.decode(), mode=FILE_MODE, fsync=True)
        hashes[name] = sha256(data)
    manifest = manifest_text(hashes)
    write_atomically(os.path.join(path, MANIFEST), manifest, mode=FILE_MODE, fsync=True)
    return hashes, sha256(manifest.encode())


def verify_bundle(path: str) -> Dict[str, Any]:
    """{path, verified, problems, files, manifest_sha256} of one bundle."""
    problems: List[str] = []
    info = os.lstat(path)
    if stat.S_IMODE(info.st_mode) != DIR_MODE or not stat.S_ISDIR(info.st_mode):
        problems.append("%s is not a directory of mode 0700" % path)
    with open(os.path.join(path, MANIFEST), "rb") as handle:
        manifest = handle.read()
    try:
        hashes = parse_manifest(manifest.decode())
    except ValueError as error:
        return {"path": path, "verified": False, "problems": [str(error)], "files": 0, "manifest_sha256": None}
    present = sorted(name for name in os.listdir(path) if name != MANIFEST)
    problems += ["%s is not in the manifest" % name for name in present if name not in hashes]
    for name, expected in sorted(hashes.items()):
        file_path = os.path.join(path, name)
        if not os.path.isfile(file_path) or os.path.islink(file_path):
            problems.append("%s is missing" % name)
            continue
        if stat.S_IMODE(os.lstat(file_path).st_mode) != FILE_MODE:
            problems.append("%s is not mode 0600" % name)
        with open(file_path, "rb") as handle:
            if sha256(handle.read()) != expected:
                problems.append("%s does not match its SHA-256 in the manifest" % name)
    return {
        "path": path,
        "verified": not problems,
        "problems": problems,
        "files": len(hashes),
        "manifest_sha256": sha256(manifest),
    }


def bundles_under(root: str) -> List[str]:
    """Every bundle (a directory with a manifest) at `root` or one or two levels below it."""
    found = []
    for current, directories, names in os.walk(root):
        if MANIFEST in names:
            found.append(current)
        if current[len(root) :].count(os.sep) >= 2:
            directories[:] = []
    return sorted(found)
