"""sha256 of mapped files, bounded, with an LRU cache keyed by file identity, and the previous sample of each
process (what a warm sample is diffed against).

The cache key is ``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)`` of the file, so a repeat sample of an
unchanged file costs one ``stat``; any rewrite (which changes ctime) misses. Files are read with ``preadv``
into one reused 128 KiB buffer per thread (never mapped: a container truncating a mapped file would SIGBUS the
agent), and a file whose identity changes while it is read is reported as such rather than cached.

A warm sample of an unchanged process does only ``stat``-level work: its maps text is compared with the one of
the previous sample (``inspect.PreviousSample``; equal bytes, or equal executable lines → the same objects,
not scanned again) and each object whose (path, inode, file key) is unchanged reuses the previous sample's
``LoadedLib``. When the caps, the program file and every object's file key are unchanged too, the whole
previous outcome (libs, build-id, evidence) is replayed after one ``stat`` per object (``inspect.Replay``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CacheStats",
    "FileChanged",
    "FileKey",
    "FileTooLarge",
    "HashCache",
    "Remembered",
    "file_key",
    "sha256_fd",
]

#: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)
FileKey = tuple[int, int, int, int, int]

# 128 KiB: the buffer stays in the L2 cache between the copy out of the page cache and the hash. A cold
# 256-object sample measured 1.74x raw sha256 with 1 MiB chunks, 1.57x with 128 KiB (docs/benchmarks.md).
_CHUNK = 128 * 1024
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


class Remembered(Protocol):
    """What one sample of a process leaves for the next one (``inspect.PreviousSample``); bounded here by the
    size of its maps text."""

    @property
    def maps(self) -> bytes: ...


class HashCache:
    """Bounded LRU of sha256 by :data:`FileKey`, and the previous sample of the last ``max_processes``
    processes (at most ``max_maps_bytes`` of maps text kept in all); thread-safe (the agent samples from
    worker threads)."""

    def __init__(
        self, max_entries: int = 4096, *, max_processes: int = 64, max_maps_bytes: int = 8 * 1024 * 1024
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if max_processes < 0 or max_maps_bytes < 0:
            raise ValueError("max_processes and max_maps_bytes must not be negative")
        self.max_entries = max_entries
        self.max_processes = max_processes
        self.max_maps_bytes = max_maps_bytes
        self._entries: OrderedDict[FileKey, str] = OrderedDict()
        self._samples: OrderedDict[int, Remembered] = OrderedDict()
        self._maps_bytes = 0
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

    def previous(self, pid: int) -> Remembered | None:
        """The previous sample of ``pid`` (any process that had this pid: a reused pid has other maps, and
        libs are matched by file identity, so a stale entry can only miss)."""
        with self._lock:
            sample = self._samples.get(pid)
            if sample is not None:
                self._samples.move_to_end(pid)
            return sample

    def remember(self, pid: int, sample: Remembered) -> None:
        with self._lock:
            old = self._samples.pop(pid, None)
            if old is not None:
                self._maps_bytes -= len(old.maps)
            if len(sample.maps) > self.max_maps_bytes or self.max_processes == 0:
                return
            self._samples[pid] = sample
            self._maps_bytes += len(sample.maps)
            while len(self._samples) > self.max_processes or self._maps_bytes > self.max_maps_bytes:
                _, dropped = self._samples.popitem(last=False)
                self._maps_bytes -= len(dropped.maps)

    @property
    def processes(self) -> int:
        return len(self._samples)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._samples.clear()
            self._maps_bytes = 0
