"""The collection builds with ansible-galaxy, installs from the tarball, and works from there.

Everything runs against a temporary collections path, away from the checkout's
.build/collections link, so a file missing from the tarball (build_ignore too
broad, a module_utils import that only resolves in the checkout) shows up here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Build the tarball and install it into an empty collections path; return that path and an env using it."""
    work = tmp_path_factory.mktemp("galaxy")
    collections = work / "collections"
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.pop("PYTHONPATH", None)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )

    run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(work), str(REPO), cwd=work, env=env)
    (tarball,) = work.glob("penguinmails-dbops-*.tar.gz")
    run(str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(collections), str(tarball),
        cwd=work, env=env)  # fmt: skip
    return collections, env


def test_tarball_leaves_out_build_and_dev_state(installed: tuple[Path, dict[str, str]]) -> None:
    collections, _env = installed
    root = collections / "ansible_collections" / "penguinmails" / "dbops"
    assert (root / "plugins" / "modules" / "pg_node_info.py").is_file()
    for unwanted in (".build", ".venv", ".git", "tests/output"):
        assert not (root / unwanted).exists(), f"{unwanted} ended up in the collection tarball"


def test_ansible_doc_reads_the_installed_module(installed: tuple[Path, dict[str, str]]) -> None:
    collections, env = installed
    result = run(str(BIN / "ansible-doc"), "--json", "penguinmails.dbops.pg_node_info", cwd=collections, env=env)
    doc = json.loads(result.stdout)["penguinmails.dbops.pg_node_info"]["doc"]
    assert doc["filename"].startswith(str(collections)), "ansible-doc read the module from outside the install"
    assert "login_host" in doc["options"], "the postgres doc fragment did not resolve"


def test_installed_module_runs(installed: tuple[Path, dict[str, str]]) -> None:
    """Nothing listens on port 1: the module answers reachable=false instead of failing."""
    collections, env = installed
    result = run(
        str(BIN / "ansible"), "localhost", "-c", "local", "-o",
        "-m", "penguinmails.dbops.pg_node_info",
        "-a", "login_host=127.0.0.1 login_port=1 login_user=nobody connect_timeout=2",
        cwd=collections, env=env,
    )  # fmt: skip
    assert "SUCCESS" in result.stdout, result.stdout
    assert '"reachable": false' in result.stdout, result.stdout
