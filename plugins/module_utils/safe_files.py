# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and writing files, as root, inside a directory another user controls.

The owner of a data directory (postgres) can plant a symbolic link where root is about
to write (standby.signal -> /etc/cron.d/x) or read. Everything here works on an opened
directory descriptor and follows no link: the directory itself must not be a link, a
link inside it is refused with a clear message, files are created with O_EXCL, owner
and mode are set on the opened descriptor (fchown/fchmod, never by path), and a
replacement is written to a new temporary file in the same directory and renamed over.
Links above the directory are the administrator's configuration and are followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from typing import Optional, Tuple

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class LinkRefused(OSError):
    """A path that would have been followed through a symbolic link (or is no regular file)."""


def open_directory(path: str) -> int:
    """A descriptor of the directory at path; refused when path itself is a link."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise LinkRefused(
                "refusing %s: it is a symbolic link; give the real directory, links are not followed" % path
            ) from None
        raise


def make_owned_directory(path: str, uid: int, gid: int, mode: int = 0o700) -> None:
    """mkdir, then chown the directory that was created (by descriptor, not by path)."""
    os.mkdir(path, mode)
    descriptor = open_directory(path)
    try:
        os.fchown(descriptor, uid, gid)
        os.fchmod(descriptor, mode)
    finally:
        os.close(descriptor)


class Directory:
    """An opened directory whose files are read and written without following links.

    New files get the directory's owner and group unless told otherwise. Use as a
    context manager.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = open_directory(path)
        info = os.fstat(self.fd)
        self.uid, self.gid = info.st_uid, info.st_gid

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def path_of(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _refuse(self, name: str, what: str) -> LinkRefused:
        return LinkRefused(
            "refusing %s: it is %s; files in %s are only read and written as regular files, links are not followed"
            % (self.path_of(name), what, self.path)
        )

    def kind(self, name: str) -> Optional[str]:
        """None (absent) or 'file'; a link or anything else is refused."""
        try:
            info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            raise self._refuse(name, "a symbolic link")
        if not stat.S_ISREG(info.st_mode):
            raise self._refuse(name, "not a regular file")
        return "file"

    def exists(self, name: str) -> bool:
        return self.kind(name) is not None

    def _open(self, name: str, flags: int, mode: int = 0o600) -> int:
        try:
            return os.open(name, flags | _NOFOLLOW | _CLOEXEC, mode, dir_fd=self.fd)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise self._refuse(name, "a symbolic link") from None
            raise

    def read(self, name: str) -> Optional[bytes]:
        """The file's content, or None when it does not exist."""
        try:
            descriptor = self._open(name, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        with os.fdopen(descriptor, "rb") as opened:
            if not stat.S_ISREG(os.fstat(opened.fileno()).st_mode):
                raise self._refuse(name, "not a regular file")
            return opened.read()

    def read_tail(self, name: str, max_bytes: int) -> Optional[Tuple[bytes, int]]:
        """The file's last `max_bytes` bytes and its size, or None when it does not exist."""
        try:
            descriptor = self._open(name, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        with os.fdopen(descriptor, "rb") as opened:
            info = os.fstat(opened.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise self._refuse(name, "not a regular file")
            opened.seek(max(0, info.st_size - max_bytes))
            return opened.read(max_bytes), info.st_size

    def read_text(self, name: str) -> Optional[str]:
        content = self.read(name)
        return None if content is None else content.decode("utf-8", errors="replace")

    def _own(self, descriptor: int, mode: int, uid: Optional[int], gid: Optional[int]) -> None:
        os.fchown(descriptor, self.uid if uid is None else uid, self.gid if gid is None else gid)
        os.fchmod(descriptor, mode)

    def create_empty(self, name: str, mode: int = 0o600) -> bool:
        """Create an empty file (O_EXCL); False when a regular file of that name is already there."""
        try:
            descriptor = self._open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            self.kind(name)
            return False
        try:
            self._own(descriptor, mode, None, None)
        finally:
            os.close(descriptor)
        return True

    def create_with(self, name: str, content: bytes, mode: int = 0o600) -> None:
        """Create a new file holding `content` (O_EXCL, no link followed: FileExistsError when a name is there)."""
        descriptor = self._open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(descriptor, "wb") as created:
                os.fchmod(created.fileno(), mode)
                created.write(content)
                created.flush()
                os.fsync(created.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self.fd)
            raise

    def replace(
        self, name: str, content: bytes, mode: int = 0o600, uid: Optional[int] = None, gid: Optional[int] = None
    ) -> None:
        """Atomically replace (or create) a file: new temporary file, fchown, fsync, rename."""
        self.kind(name)
        temp_name = ".dbops-%s.tmp" % secrets.token_hex(8)
        descriptor = self._open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(descriptor, "wb") as temp_file:
                self._own(temp_file.fileno(), mode, uid, gid)
                temp_file.write(content)
                temp_file.flush()
                os.fsync(temp_file.fileno())
            os.rename(temp_name, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name, dir_fd=self.fd)
            raise

    def replace_keeping_owner(self, name: str, content: bytes) -> None:
        """Replace an existing file keeping its owner, group and mode (a configuration file)."""
        descriptor = self._open(name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            info = os.fstat(descriptor)
        finally:
            os.close(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise self._refuse(name, "not a regular file")
        self.replace(name, content, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)

    def remove(self, name: str) -> bool:
        """Unlink a file (a link is removed, never followed); False when absent."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True
