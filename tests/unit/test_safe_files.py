"""Files root writes in a directory another user controls: no link is followed, owner set on the descriptor."""

from __future__ import annotations

import os

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils.safe_files import (
    Directory,
    LinkRefused,
    make_owned_directory,
)

OWNER = (4321, 4322)


@pytest.fixture
def layout(tmp_path):
    """data/ owned by another user (when root), and a precious file outside it."""
    data_dir, target = tmp_path / "data", tmp_path / "precious"
    data_dir.mkdir()
    target.write_text("precious\n")
    os.chmod(target, 0o644)
    if os.geteuid() == 0:
        os.chown(data_dir, *OWNER)
    return data_dir, target


def untouched(target) -> bool:
    info = target.stat()
    return target.read_text() == "precious\n" and info.st_mode & 0o777 == 0o644 and info.st_uid == os.geteuid()


@pytest.mark.parametrize(
    "operation",
    [
        lambda directory: directory.read("planted"),
        lambda directory: directory.create_empty("planted"),
        lambda directory: directory.replace("planted", b"new\n"),
        lambda directory: directory.replace_keeping_owner("planted", b"new\n"),
        lambda directory: directory.exists("planted"),
    ],
    ids=["read", "create_empty", "replace", "replace_keeping_owner", "exists"],
)
def test_a_planted_link_is_refused_and_its_target_untouched(layout, operation):
    data_dir, target = layout
    (data_dir / "planted").symlink_to(target)
    with Directory(str(data_dir)) as directory, pytest.raises(LinkRefused, match="symbolic link"):
        operation(directory)
    assert untouched(target)
    assert os.path.islink(data_dir / "planted")
    assert [name for name in os.listdir(data_dir) if name.startswith(".dbops-")] == []


def test_a_link_to_a_missing_file_creates_nothing(layout, tmp_path):
    data_dir, _target = layout
    (data_dir / "planted").symlink_to(tmp_path / "would-be-created")
    with Directory(str(data_dir)) as directory:
        for operation in (directory.create_empty, lambda name: directory.replace(name, b"x")):
            with pytest.raises(LinkRefused):
                operation("planted")
    assert not (tmp_path / "would-be-created").exists()


def test_a_directory_that_is_a_link_is_refused(layout, tmp_path):
    data_dir, _target = layout
    (tmp_path / "linked").symlink_to(data_dir)
    with pytest.raises(LinkRefused, match="is a symbolic link"):
        Directory(str(tmp_path / "linked"))


def test_a_fifo_is_refused_without_blocking(layout):
    data_dir, _target = layout
    os.mkfifo(data_dir / "fifo")
    with Directory(str(data_dir)) as directory, pytest.raises(LinkRefused, match="not a regular file"):
        directory.read("fifo")


def test_new_files_belong_to_the_directory_owner(layout):
    data_dir, _target = layout
    with Directory(str(data_dir)) as directory:
        assert directory.create_empty("standby.signal") is True
        assert directory.create_empty("standby.signal") is False
        directory.replace("postgresql.auto.conf", b"a = 1\n")
        directory.replace("postgresql.auto.conf", b"a = 2\n")
        assert directory.read("postgresql.auto.conf") == b"a = 2\n"
    owner = (data_dir.stat().st_uid, data_dir.stat().st_gid)
    for name in ("standby.signal", "postgresql.auto.conf"):
        info = (data_dir / name).stat()
        assert (info.st_uid, info.st_gid) == owner
        assert info.st_mode & 0o777 == 0o600
    assert sorted(os.listdir(data_dir)) == ["postgresql.auto.conf", "standby.signal"]


def test_replace_keeping_owner_keeps_owner_and_mode(layout):
    data_dir, _target = layout
    ini = data_dir / "pgbouncer.ini"
    ini.write_text("old\n")
    os.chmod(ini, 0o640)
    with Directory(str(data_dir)) as directory:
        directory.replace_keeping_owner("pgbouncer.ini", b"new\n")
    assert ini.read_text() == "new\n"
    assert ini.stat().st_mode & 0o777 == 0o640


def test_remove_takes_the_link_away_not_its_target(layout):
    data_dir, target = layout
    (data_dir / "standby.signal").symlink_to(target)
    with Directory(str(data_dir)) as directory:
        assert directory.remove("standby.signal") is True
        assert directory.remove("standby.signal") is False
    assert untouched(target)


def test_make_owned_directory(tmp_path):
    made = tmp_path / "made"
    make_owned_directory(str(made), *OWNER if os.geteuid() == 0 else (os.getuid(), os.getgid()))
    assert made.is_dir() and made.stat().st_mode & 0o777 == 0o700
    if os.geteuid() == 0:
        assert (made.stat().st_uid, made.stat().st_gid) == OWNER
