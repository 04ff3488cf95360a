"""sha256 of files by fd and the identity-keyed LRU cache."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from zastava.observer.hashing import FileChanged, FileTooLarge, HashCache, file_key, sha256_fd
from zastava.observer.inspect import PreviousSample


def _digest(path: Path) -> tuple[str, int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return sha256_fd(fd, limit=1 << 40)
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [0, 1, 4095, 128 * 1024, 128 * 1024 + 1, 1 << 20, 3 * (1 << 20) + 17])
def test_matches_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert _digest(path) == (hashlib.sha256(data).hexdigest(), size)


def test_limit_refuses_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(FileTooLarge):
            sha256_fd(fd, limit=99)
        assert sha256_fd(fd, limit=100)[1] == 100
    finally:
        os.close(fd)


def test_file_growing_or_shrinking_while_hashed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 1000)
    fd = os.open(path, os.O_RDONLY)
    try:
        stale = os.fstat(fd)
        with path.open("ab") as handle:
            handle.write(b"b" * 10)
        with pytest.raises(FileChanged, match="grew"):
            sha256_fd(fd, limit=10_000, info=stale)
        stale = os.fstat(fd)
        os.truncate(path, 10)
        with pytest.raises(FileChanged, match="shrank"):
            sha256_fd(fd, limit=10_000, info=stale)
    finally:
        os.close(fd)


def test_cache_key_changes_when_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    before = file_key(path.stat())
    time.sleep(0.01)
    path.write_bytes(b"two")  # same size, new content
    after = file_key(path.stat())
    assert before[:3] == after[:3]  # same dev, inode, size
    assert before != after  # mtime/ctime tell them apart


def test_lru_eviction_and_stats() -> None:
    cache = HashCache(max_entries=2)
    a, b, c = (1, 1, 1, 1, 1), (1, 2, 1, 1, 1), (1, 3, 1, 1, 1)
    cache.put(a, "A")
    cache.put(b, "B")
    assert cache.get(a) == "A"  # a is now most recent
    cache.put(c, "C")  # evicts b
    assert b not in cache
    assert cache.get(b) is None
    assert cache.get(c) == "C"
    assert len(cache) == 2
    assert (cache.stats.hits, cache.stats.misses, cache.stats.evictions) == (2, 1, 1)
    with pytest.raises(ValueError):
        HashCache(0)


def test_cache_is_thread_safe() -> None:
    cache = HashCache(max_entries=64)

    def work(n: int) -> None:
        for i in range(2000):
            key = (n, i % 100, 0, 0, 0)
            cache.put(key, f"{i}")
            cache.get(key)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 64


def _previous(maps: bytes) -> PreviousSample:
    return PreviousSample(maps, "/bin/app", (), 0, {})


def test_previous_samples_are_bounded_by_count_and_bytes() -> None:
    cache = HashCache(max_processes=3, max_maps_bytes=100)
    for pid in (1, 2, 3):
        cache.remember(pid, _previous(b"x" * 10))
    assert cache.previous(1) is not None  # 1 is now the most recent
    cache.remember(4, _previous(b"x" * 10))  # evicts 2, the least recently used
    assert cache.processes == 3 and cache.previous(2) is None
    cache.remember(5, _previous(b"x" * 85))  # 10 + 10 + 10 + 85 > 100: the oldest go until it fits
    assert cache.processes == 2 and cache.previous(5) is not None and cache.previous(4) is not None
    cache.remember(4, _previous(b"x" * 101))  # larger than the whole budget: not kept, nor the old one
    assert cache.previous(4) is None and cache.processes == 1
    cache.clear()
    assert cache.processes == 0 and cache.previous(5) is None
    with pytest.raises(ValueError):
        HashCache(max_processes=-1)
