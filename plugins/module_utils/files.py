# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's own files: one flock, one atomic write, one locked append, one private directory.

Used by the run lock, the incident record (and its notification ledger) and the
audit trail. No call follows a symbolic link at the final path component
(``O_NOFOLLOW``); files are created ``0600`` unless a mode is given; a
replacement is written to a new temporary file (``O_EXCL``) in the same
directory and renamed over the old one, so a reader sees the old or the new
content, never half of it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from typing import BinaryIO, Iterator, Optional

PRIVATE = 0o600
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UnsafePathError(OSError):
    """A path the collection refuses to use: a symbolic link, or a directory another user owns."""


def _open(path: str, flags: int, mode: int = PRIVATE) -> int:
    try:
        return os.open(path, flags | NOFOLLOW | CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(errno.ELOOP, "is a symbolic link; not following it", path) from None
        raise


def ensure_private_directory(path: str) -> None:
    """``path`` as a directory of ours: created ``0700`` when missing; refused when it is a symbolic link
    or owned by another user (whoever owns it could swap the files in it)."""
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, mode=0o700)
    details = os.lstat(path)
    if stat.S_ISLNK(details.st_mode):
        raise UnsafePathError(errno.ELOOP, "is a symbolic link; use the directory it points to", path)
    if not stat.S_ISDIR(details.st_mode):
        raise UnsafePathError(errno.ENOTDIR, "is not a directory", path)
    if details.st_uid != os.geteuid():
        raise UnsafePathError(errno.EPERM, f"is owned by uid {details.st_uid}, not by this user", path)


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[int]:
    """Hold an exclusive flock on ``path`` (created 0600 when missing) for the block; yields the descriptor."""
    import fcntl  # POSIX only; imported here so that verifiers importing this module stay portable

    descriptor = _open(path, os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield descriptor
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def locked_append(path: str) -> Iterator[BinaryIO]:
    """``path`` opened for reading and appending (created 0600) under an exclusive flock."""
    import fcntl

    handle = os.fdopen(_open(path, os.O_CREAT | os.O_RDWR | os.O_APPEND), "a+b")
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield handle


def read_text(path: str) -> Optional[str]:
    """The file's text, or None when it does not exist; a symbolic link is refused."""
    try:
        descriptor = _open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(descriptor, encoding="utf-8") as handle:
        return handle.read()


def write_atomically(path: str, text: str, mode: int = PRIVATE, fsync: bool = False) -> None:
    """Replace ``path`` with ``text`` in one rename (the rename replaces a link, it never writes through it)."""
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fchmod(stream.fileno(), mode)
            if fsync:
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
