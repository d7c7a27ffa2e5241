"""The controller's file helper: no link followed, files 0600, atomic replacement, private directories."""

import os
import stat
import threading

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import files


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_replacement_is_0600_and_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    planted = tmp_path / "record.json"
    planted.symlink_to(victim)
    files.write_atomically(str(planted), "new")
    assert victim.read_text() == "untouched"
    assert not planted.is_symlink() and planted.read_text() == "new" and mode_of(planted) == 0o600
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".tmp-")] == []


def test_a_mode_can_be_asked_for(tmp_path):
    files.write_atomically(str(tmp_path / "f"), "x", mode=0o644)
    assert mode_of(tmp_path / "f") == 0o644


@pytest.mark.parametrize("use", ["lock", "append", "read"])
def test_a_link_is_never_followed(tmp_path, use):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    planted = tmp_path / "planted"
    planted.symlink_to(victim)
    with pytest.raises(files.UnsafePathError, match="symbolic link"):
        if use == "lock":
            with files.exclusive_lock(str(planted)):
                pass
        elif use == "append":
            with files.locked_append(str(planted)) as handle:
                handle.write(b"appended")
        else:
            files.read_text(str(planted))
    assert victim.read_text() == "untouched"


def test_appended_files_are_created_0600(tmp_path):
    path = tmp_path / "audit.jsonl"
    with files.locked_append(str(path)) as handle:
        handle.write(b"one\n")
    with files.locked_append(str(path)) as handle:
        handle.seek(0)
        assert handle.read() == b"one\n"
        handle.write(b"two\n")
    assert path.read_bytes() == b"one\ntwo\n" and mode_of(path) == 0o600


def test_read_text_of_a_missing_file_is_none(tmp_path):
    assert files.read_text(str(tmp_path / "nope")) is None


def test_the_lock_is_exclusive(tmp_path):
    path = str(tmp_path / ".lock")
    inside = []
    with files.exclusive_lock(path):
        thread = threading.Thread(target=lambda: _take(path, inside))
        thread.start()
        thread.join(0.3)
        assert inside == []  # blocked while held
    thread.join(5)
    assert inside == ["taken"]


def _take(path, inside):
    with files.exclusive_lock(path):
        inside.append("taken")


def test_a_private_directory_is_created_0700(tmp_path):
    path = tmp_path / "var" / "locks"
    files.ensure_private_directory(str(path))
    assert path.is_dir() and mode_of(path) == 0o700
    files.ensure_private_directory(str(path))  # existing and ours: fine


def test_a_private_directory_that_is_a_link_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "locks").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(files.UnsafePathError, match="symbolic link"):
        files.ensure_private_directory(str(tmp_path / "locks"))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_a_private_directory_another_user_owns_is_refused(tmp_path):
    path = tmp_path / "locks"
    path.mkdir()
    os.chown(path, 65534, 65534)
    with pytest.raises(files.UnsafePathError, match="owned by uid 65534"):
        files.ensure_private_directory(str(path))
