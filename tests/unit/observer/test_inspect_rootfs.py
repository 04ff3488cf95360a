"""Reading mapped objects through a container root never leaves it.

The kernel always prints the resolved path in ``maps``, so a symlink only matters when the path went stale
between reading ``maps`` and opening the file (the container swapped a component for a symlink), or on kernels
without ``map_files``. That race cannot be timed reliably with a real process, so these tests use a procfs
*copy*: a directory laid out like ``/proc/<pid>`` (stat, cgroup, cmdline, exe, maps, root) with no
``map_files``, whose ``maps`` names the hostile paths and whose ``root`` is a real directory tree holding the
hostile symlinks. The code under test is exactly the production path (RootFS + inode check).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from zastava.observer.inspect import inspect_process

PID = 4242
HOST_SECRET = b"HOST SECRET - must never be hashed"


def _maps_line(start: int, inode: int, path: str) -> str:
    return f"{start:x}-{start + 0x1000:x} r-xp 00000000 08:02 {inode:<10d}             {path}\n"


@pytest.fixture
def procfs(tmp_path: Path) -> tuple[Path, Path, Path]:
    proc = tmp_path / "proc"
    base = proc / str(PID)
    root = tmp_path / "rootfs"
    outside = tmp_path / "outside"
    outside.write_bytes(HOST_SECRET)
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "shadow").write_bytes(b"container shadow")
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "libok.so").write_bytes(b"\x7fELF container lib")
    (root / "opt").mkdir()
    (root / "opt" / "evil").symlink_to("/etc/shadow")
    (root / "opt" / "chain").symlink_to("../../../../../../../../etc/shadow")
    (root / "opt" / "hostabs").symlink_to(str(outside))
    (root / "opt" / "dir").symlink_to("../../../../../../..")  # a directory link climbing out
    (root / "opt" / "loop").symlink_to("loop")
    os.mkfifo(root / "opt" / "fifo")
    base.mkdir(parents=True)
    (base / "root").symlink_to(root)
    (base / "exe").symlink_to(os.path.realpath(sys.executable))
    (base / "stat").write_text(f"{PID} (victim) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 123456 0 0\n")
    (base / "cgroup").write_text("0::/docker/" + "ab" * 32 + "\n")
    (base / "cmdline").write_bytes(b"/usr/bin/victim\0--secret-flag\0")
    return proc, root, outside


def _write_maps(proc: Path, lines: list[tuple[int, str]]) -> None:
    text = "".join(
        _maps_line(0x7F0000000000 + i * 0x10000, inode, path) for i, (inode, path) in enumerate(lines)
    )
    (proc / str(PID) / "maps").write_text(text)


def test_hostile_symlinks_never_reach_host_files(procfs: tuple[Path, Path, Path]) -> None:
    proc, root, outside = procfs
    host_inode = outside.stat().st_ino
    shadow_inode = (root / "etc" / "shadow").stat().st_ino
    ok_inode = (root / "usr" / "lib" / "libok.so").stat().st_ino
    _write_maps(
        proc,
        [
            (ok_inode, "/usr/lib/libok.so"),
            (host_inode, "/opt/evil"),  # claims the host file's inode
            (10**9 + 1, "/opt/chain"),  # distinct inodes: maps objects are deduplicated by inode
            (10**9 + 2, "/opt/hostabs"),
            (10**9 + 3, "/opt/dir" + str(outside)),
            (shadow_inode, "/opt/dir/etc/shadow"),  # clamps to the container's own /etc/shadow
            (1, "/opt/loop"),
            (2, "/opt/fifo"),
        ],
    )
    result = inspect_process(PID, procfs=str(proc))
    secret = hashlib.sha256(HOST_SECRET).hexdigest()
    by_path = {lib.path: lib for lib in result.loaded_libs}
    assert all(lib.sha256 != secret for lib in result.loaded_libs)
    assert by_path["/usr/lib/libok.so"].sha256 == hashlib.sha256(b"\x7fELF container lib").hexdigest()
    assert by_path["/opt/dir/etc/shadow"].sha256 == hashlib.sha256(b"container shadow").hexdigest()
    for path in (
        "/opt/evil",
        "/opt/chain",
        "/opt/hostabs",
        "/opt/dir" + str(outside),
        "/opt/loop",
        "/opt/fifo",
    ):
        assert by_path[path].sha256 is None, path
    evidence = {e.signal: e.value for e in result.evidence}
    assert "6 objects not hashed" in evidence["hash.unreadable"]
    assert "/opt/evil: path now names another file" in evidence["hash.unreadable"]
    assert "/opt/loop: not found in the container root" in evidence["hash.unreadable"]
    assert "no map_files directory" in evidence["procfs.map_files"]
    # identity and data minimisation from the same procfs copy
    assert result.identity is not None and result.identity.uri == "docker://" + "ab" * 32
    assert result.process.entrypoint == ["/usr/bin/victim"]
    assert result.process.start_time == 123456


def test_deleted_and_memfd_objects_are_not_read_by_path(procfs: tuple[Path, Path, Path]) -> None:
    proc, root, _ = procfs
    ok_inode = (root / "usr" / "lib" / "libok.so").stat().st_ino
    _write_maps(proc, [(ok_inode, "/usr/lib/libok.so (deleted)"), (77, "/memfd:x (deleted)")])
    result = inspect_process(PID, procfs=str(proc))
    assert [(lib.path, lib.sha256) for lib in result.loaded_libs] == [
        ("/usr/lib/libok.so", None),  # the path may name a new file now: not trusted
        ("memfd:x", None),
    ]
    value = {e.signal: e.value for e in result.evidence}["hash.unreadable"]
    assert "deleted object is reachable only through map_files" in value
    assert "memfd object is reachable only through map_files" in value


def test_unreadable_maps_is_reported(procfs: tuple[Path, Path, Path]) -> None:
    proc, _, _ = procfs
    (proc / str(PID) / "maps").mkdir()  # reading it fails with EISDIR
    result = inspect_process(PID, procfs=str(proc))
    assert result.partial
    assert any(e.signal == "procfs.unreadable" for e in result.evidence)


def test_listing_and_evidence_are_bounded(procfs: tuple[Path, Path, Path]) -> None:
    """5000 mapped objects: 4096 listed, 256 (maxLibs) looked at, evidence values within the contract."""
    proc, _, _ = procfs
    _write_maps(proc, [(10**6 + i, f"/usr/lib/lib{i:05d}-{'x' * 100}.so") for i in range(5000)])
    result = inspect_process(PID, procfs=str(proc))
    assert len(result.loaded_libs) == 4096
    assert all(lib.sha256 is None for lib in result.loaded_libs)  # none exist in the root
    evidence = {e.signal: e.value for e in result.evidence}
    assert evidence["procfs.maps.cap"] == "5000 mapped objects; the first 4096 are listed"
    assert evidence["hash.cap.maxLibs"].startswith("maxLibs=256: 3840 of 4096 objects not hashed: ")
    assert evidence["hash.cap.maxLibs"].endswith(", … and 3776 more")
    assert evidence["hash.unreadable"].startswith("256 objects not hashed: ")
    assert all(len(e.value) <= 8192 for e in result.evidence)
