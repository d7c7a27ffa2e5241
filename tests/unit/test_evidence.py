"""Evidence bundles (module_utils/evidence.py): written private with a manifest, verified against it."""

import os
import stat

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import evidence


def append(path):
    with open(path, "a") as handle:
        handle.write("x")


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_written_private_and_verified(tmp_path):
    bundle = str(tmp_path / "INC-1" / "evidence" / "run1")
    hashes, manifest = evidence.write_bundle(bundle, {"a.json": {"x": 1}, "b.txt": "text"})
    assert mode(bundle) == 0o700 and mode(os.path.join(bundle, "a.json")) == 0o600
    assert set(hashes) == {"a.json", "b.txt"}
    found = evidence.verify_bundle(bundle)
    assert found["verified"] and found["manifest_sha256"] == manifest and found["files"] == 2
    assert evidence.bundles_under(str(tmp_path / "INC-1" / "evidence")) == [bundle]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda b: append(os.path.join(b, "a.json")), "does not match"),
        (lambda b: os.unlink(os.path.join(b, "b.txt")), "missing"),
        (lambda b: append(os.path.join(b, "extra")), "not in the manifest"),
        (lambda b: os.chmod(os.path.join(b, "a.json"), 0o644), "not mode 0600"),
        (lambda b: os.chmod(b, 0o755), "mode 0700"),
    ],
)
def test_damage_is_named(tmp_path, damage, problem):
    bundle = str(tmp_path / "run")
    evidence.write_bundle(bundle, {"a.json": [1], "b.txt": "t"})
    damage(bundle)
    found = evidence.verify_bundle(bundle)
    assert not found["verified"] and any(problem in line for line in found["problems"])


@pytest.mark.parametrize("name", [".hidden", "a/b", "MANIFEST.sha256", "", "x y"])
def test_bad_names_refused(tmp_path, name):
    with pytest.raises(ValueError):
        evidence.write_bundle(str(tmp_path / "run"), {name: "x"})
