"""sha256 of mapped files, bounded, with an LRU cache keyed by file identity.

The cache key is ``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)`` of the opened file, so a repeat
sample of an unchanged file costs one ``fstat``; any rewrite (which changes ctime) misses. Files are read with
``readinto`` into a reusable buffer (never mapped: a concurrent truncation must not raise SIGBUS), and a file
whose identity changes while it is read is reported as such rather than cached.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["CacheStats", "FileChanged", "FileKey", "FileTooLarge", "HashCache", "file_key", "sha256_fd"]

#: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)
FileKey = tuple[int, int, int, int, int]

_CHUNK = 1 << 20
_local = threading.local()


def file_key(info: os.stat_result) -> FileKey:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class FileTooLarge(ValueError):
    """The file holds more bytes than the caller allowed."""


class FileChanged(OSError):
    """The file changed (size, mtime or ctime) while it was being hashed."""


def _buffer() -> memoryview:
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = memoryview(bytearray(_CHUNK))
        _local.buf = buf
    return buf


def sha256_fd(fd: int, *, limit: int, info: os.stat_result | None = None) -> tuple[str, int]:
    """(lower-case hex sha256, bytes read) of the whole regular file behind ``fd``, read from offset 0.

    Raises :class:`FileTooLarge` before reading anything when the file is larger than ``limit``, and
    :class:`FileChanged` when it grows, shrinks or is rewritten while being read.
    """
    before = info or os.fstat(fd)
    if before.st_size > limit:
        raise FileTooLarge(f"{before.st_size} bytes > limit {limit}")
    digest = hashlib.sha256()
    buf = _buffer()
    offset = 0
    size = before.st_size
    while offset < size:
        want = min(_CHUNK, size - offset)
        got = os.preadv(fd, [buf[:want]], offset)
        if got == 0:
            raise FileChanged(0, "file shrank while hashing")
        digest.update(buf[:got])
        offset += got
    after = os.fstat(fd)
    if after.st_size > size:
        raise FileChanged(0, "file grew while hashing")
    if file_key(after) != file_key(before):
        raise FileChanged(0, "file was modified while hashing")
    return digest.hexdigest(), offset


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class HashCache:
    """Bounded LRU of sha256 by :data:`FileKey`; thread-safe (the agent samples from worker threads)."""

    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[FileKey, str] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: FileKey) -> str | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return value

    def put(self, key: FileKey, sha256: str) -> None:
        with self._lock:
            self._entries[key] = sha256
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self.stats.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
