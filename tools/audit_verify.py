# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command-line verifier of penguinmails.dbops audit trails (run through tools/audit_verify).

Loads plugins/module_utils/audit.py from this checkout by path, so it works without Ansible
installed and without PYTHONPATH; the dbops_audit_verify module uses the same code.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

AUDIT_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", "module_utils", "audit.py")


def load_audit():
    spec = importlib.util.spec_from_file_location("dbops_audit", AUDIT_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="audit_verify",
        description="Verify the hash chain of penguinmails.dbops audit files (audit.jsonl).",
    )
    parser.add_argument("paths", nargs="+", metavar="AUDIT_FILE")
    parser.add_argument("--json", action="store_true", help="print one JSON result per file instead of a sentence")
    options = parser.parse_args(argv)
    audit = load_audit()
    if not options.json:
        status, messages = audit.verify_paths(options.paths)
        for message in messages:
            print(message)
        return status
    status = 0
    for path in options.paths:
        result = audit.run({"path": path})
        status = max(status, 0 if not result["failed"] else (1 if "broken_line" in result else 2))
        print(json.dumps(result, sort_keys=True))
    return status


if __name__ == "__main__":
    sys.exit(main())
