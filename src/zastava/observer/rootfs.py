"""Confined access to a container's root filesystem (an unpacked image or ``/proc/<pid>/root``).

Paths are container paths. Every lookup walks the path one component at a time with
``openat(O_PATH | O_NOFOLLOW)`` from a descriptor of the root, resolving symlinks itself: absolute targets
restart at the container root, ``..`` never climbs above it, and at most ``max_symlinks`` links are followed
(ELOOP past that). The final object is re-opened through ``/proc/self/fd`` so a symlink swapped in after the
walk cannot redirect the read. Nothing outside the root is ever opened, and nothing is executed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RootFS", "RootFSError"]

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_COMPONENTS = 4096


class RootFSError(OSError):
    """A lookup inside the root failed (not found, loop, not a directory, not a regular file)."""


class RootFS:
    def __init__(self, root: str | os.PathLike[str], *, max_symlinks: int = 40) -> None:
        self.root = Path(root)
        self.max_symlinks = max_symlinks

    def __repr__(self) -> str:
        return f"RootFS({str(self.root)!r})"

    # ----------------------------------------------------------------------------------------- walking

    def _walk(self, path: str, follow_final: bool) -> tuple[int, str]:
        """Return (O_PATH fd of the object, resolved container path). The caller closes the fd."""
        if "\x00" in path:  # no file name holds a NUL (os.open would raise ValueError, not an OSError)
            raise RootFSError(errno.EINVAL, "path contains a NUL character", path.replace("\x00", "\\0"))
        try:
            root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise RootFSError(
                exc.errno, f"container root unavailable: {exc.strerror}", str(self.root)
            ) from None
        stack: list[tuple[int, str]] = [(root_fd, "")]
        pending: deque[str] = deque(p for p in path.split("/") if p not in ("", "."))
        links = 0
        steps = 0
        try:
            while pending:
                steps += 1
                if steps > _MAX_COMPONENTS:
                    raise RootFSError(errno.ENAMETOOLONG, "path has too many components", path)
                part = pending.popleft()
                if part == ".":
                    continue
                if part == "..":
                    if len(stack) > 1:
                        os.close(stack.pop()[0])
                    continue
                parent = stack[-1][0]
                try:
                    fd = os.open(part, _PATH_FLAGS, dir_fd=parent)
                except OSError as exc:
                    raise RootFSError(exc.errno, exc.strerror or "lookup failed", path) from None
                info = os.fstat(fd)
                if stat.S_ISLNK(info.st_mode) and (pending or follow_final):
                    try:
                        target = os.readlink("", dir_fd=fd)  # readlinkat(fd, "") on the O_PATH link itself
                    finally:
                        os.close(fd)
                    links += 1
                    if links > self.max_symlinks:
                        raise RootFSError(errno.ELOOP, "too many levels of symbolic links", path)
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop()[0])
                    pending.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
                    continue
                if pending and not stat.S_ISDIR(info.st_mode):
                    os.close(fd)
                    raise RootFSError(errno.ENOTDIR, "not a directory", path)
                stack.append((fd, part))
            fd = os.dup(stack[-1][0])
            resolved = "/" + "/".join(name for _, name in stack[1:])
            return fd, resolved
        finally:
            for held, _ in stack:
                os.close(held)

    @contextmanager
    def _opened(self, path: str, follow_final: bool = True) -> Iterator[tuple[int, str]]:
        fd, resolved = self._walk(path, follow_final)
        try:
            yield fd, resolved
        finally:
            os.close(fd)

    # -------------------------------------------------------------------------------------- queries

    def resolve(self, path: str) -> str:
        """The container path ``path`` resolves to (symlinks followed inside the root)."""
        with self._opened(path) as (_, resolved):
            return resolved

    def lstat(self, path: str) -> os.stat_result:
        with self._opened(path, follow_final=False) as (fd, _):
            return os.fstat(fd)

    def stat(self, path: str) -> os.stat_result:
        with self._opened(path) as (fd, _):
            return os.fstat(fd)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except RootFSError:
            return False
        return True

    def is_file(self, path: str) -> bool:
        try:
            return stat.S_ISREG(self.stat(path).st_mode)
        except RootFSError:
            return False

    def is_dir(self, path: str) -> bool:
        try:
            return stat.S_ISDIR(self.stat(path).st_mode)
        except RootFSError:
            return False

    def is_executable(self, path: str) -> bool:
        """A regular file with any execute bit (what PATH lookup in a shell accepts)."""
        try:
            info = self.stat(path)
        except RootFSError:
            return False
        return stat.S_ISREG(info.st_mode) and bool(info.st_mode & 0o111)

    def readlink(self, path: str) -> str | None:
        """The target of a symlink at ``path`` (its parent resolved inside the root), else None."""
        with self._opened(path, follow_final=False) as (fd, _):
            if not stat.S_ISLNK(os.fstat(fd).st_mode):
                return None
            return os.readlink("", dir_fd=fd)

    def listdir(self, path: str) -> list[str]:
        """Sorted entry names of a directory inside the root."""
        with self._opened(path) as (fd, resolved):
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise RootFSError(errno.ENOTDIR, "not a directory", resolved)
            dir_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                return sorted(os.listdir(dir_fd))  # noqa: PTH208 - listing by fd, not by path
            finally:
                os.close(dir_fd)

    def open_regular(self, path: str) -> tuple[int, os.stat_result, str]:
        """A read-only fd of a regular file (never a FIFO/device), its stat, and its resolved path."""
        with self._opened(path) as (fd, resolved):
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise RootFSError(errno.EINVAL, "not a regular file", resolved)
            readable = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
            return readable, info, resolved

    def read_bytes(self, path: str, limit: int) -> bytes:
        """At most ``limit`` bytes from the start of a regular file."""
        fd, _, _ = self.open_regular(path)
        try:
            chunks = []
            remaining = limit
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def which(
        self, name: str, path_env: str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ) -> str | None:
        """PATH lookup inside the root, as a shell does; names containing '/' are taken as paths."""
        if "/" in name:
            return name if self.is_executable(name) else None
        for directory in path_env.split(":"):
            candidate = f"{directory.rstrip('/') or ''}/{name}" if directory else name
            if not candidate.startswith("/"):
                continue  # relative PATH entries depend on the cwd; not resolvable statically
            if self.is_executable(candidate):
                return candidate
        return None
