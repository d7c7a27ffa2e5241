"""The execution environment: `ansible-builder create` makes a build context from
execution-environment.yml, and the collection's own meta/execution-environment.yml and bindep.txt
give the Python and system dependencies ansible-builder's introspection finds in the installed
collection. No container runtime is needed (none runs here); the context is what `podman build`
would get.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args, cwd=REPO, env=None):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(map(str, args)), done.stdout, done.stderr)
    return done


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """The collection tarball (where `make build` puts it), then the build context."""
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    run(str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", ".build/dist")
    tarball = REPO / ".build" / "dist" / ("penguinmails-dbops-%s.tar.gz" % version)
    assert tarball.is_file()
    directory = tmp_path_factory.mktemp("ee") / "context"
    run(
        str(BIN / "ansible-builder"),
        "create",
        "-f",
        "execution-environment.yml",
        "-c",
        str(directory),
        "--output-filename",
        "Containerfile",
    )
    return directory, tarball


def test_the_context_installs_ansible_core_runner_and_the_collection_tarball(context):
    directory, tarball = context
    containerfile = (directory / "Containerfile").read_text()
    assert 'ANSIBLE_INSTALL_REFS="ansible-core>=2.17,<2.20 ansible-runner>=2.4,<3"' in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert "install-from-bindep" in containerfile
    requirements = yaml.safe_load((directory / "_build" / "requirements.yml").read_text())
    (collection,) = requirements["collections"]
    assert collection["type"] == "file"
    shipped = directory / "_build" / collection["name"]
    assert shipped.is_file(), "the requirements name %s, which is not in the context" % collection["name"]
    assert shipped.read_bytes() == tarball.read_bytes()
    assert "psycopg2-binary" in (directory / "_build" / "requirements.txt").read_text()
    assert "postgresql" in (directory / "_build" / "bindep.txt").read_text()


def test_the_installed_collection_declares_its_dependencies_to_ansible_builder(context, tmp_path):
    tarball = context[1]
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert {"meta/execution-environment.yml", "bindep.txt", "requirements.txt"} <= names
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.pop("PYTHONPATH", None)
    env["PATH"] = "%s%s%s" % (BIN, os.pathsep, env.get("PATH", ""))
    collections = tmp_path / "collections"
    run(
        str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--force", "-p", str(collections),
        str(tarball), cwd=tmp_path, env=env,
    )  # fmt: skip
    found = yaml.safe_load(
        run(str(BIN / "ansible-builder"), "introspect", "--sanitize", str(collections), cwd=tmp_path, env=env).stdout
    )
    assert any(line.startswith("psycopg2-binary") for line in found["python"])
    assert any(line.startswith("postgresql-client") for line in found["system"])
