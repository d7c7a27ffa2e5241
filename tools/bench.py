"""`make bench`: run every tools/bench_*.py in name order, each in its own process.

Each benchmark prints its own figures; this exits non-zero if any of them failed.
Arguments are passed to every benchmark (they all accept --runs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in sorted(TOOLS.glob("bench_*.py")):
        print("==> %s" % script.name, flush=True)
        if subprocess.run([sys.executable, str(script), *sys.argv[1:]], check=False).returncode != 0:
            failed.append(script.name)
    if failed:
        print("failed: %s" % ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
