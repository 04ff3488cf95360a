"""Confined container-root access: hostile symlinks never reach host files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zastava.observer.rootfs import RootFS, RootFSError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "shadow").write_text("container shadow")
    (r / "usr" / "bin").mkdir(parents=True)
    (r / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")
    (r / "usr" / "bin" / "tool").chmod(0o755)
    (r / "usr" / "bin" / "data").write_text("x")
    (r / "bin").symlink_to("usr/bin")
    (r / "opt").mkdir()
    (r / "opt" / "evil").symlink_to("/etc/shadow")
    (r / "opt" / "dotdot").symlink_to("../../../../../../../../etc/shadow")
    (r / "opt" / "hostabs").symlink_to(str(tmp_path / "outside"))
    (r / "opt" / "loop1").symlink_to("loop2")
    (r / "opt" / "loop2").symlink_to("loop1")
    (r / "opt" / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(r / "opt" / "fifo")
    (tmp_path / "outside").write_text("HOST SECRET")
    return r


def test_absolute_symlink_stays_inside(root: Path) -> None:
    fs = RootFS(root)
    assert fs.resolve("/opt/evil") == "/etc/shadow"
    assert fs.read_bytes("/opt/evil", 100) == b"container shadow"


def test_dotdot_chain_is_clamped_at_root(root: Path) -> None:
    fs = RootFS(root)
    assert fs.read_bytes("/opt/dotdot", 100) == b"container shadow"
    assert fs.read_bytes("/../../../etc/shadow", 100) == b"container shadow"


def test_symlink_to_a_host_path_does_not_leave_the_root(root: Path) -> None:
    fs = RootFS(root)
    with pytest.raises(RootFSError):
        fs.read_bytes("/opt/hostabs", 100)  # resolves to <root>/<tmp>/outside, which does not exist


def test_loops_and_special_files(root: Path) -> None:
    fs = RootFS(root)
    with pytest.raises(RootFSError, match="symbolic links"):
        fs.stat("/opt/loop1")
    with pytest.raises(RootFSError, match="not a regular file"):
        fs.read_bytes("/opt/fifo", 10)  # never blocks on a FIFO
    with pytest.raises(RootFSError, match="not a directory"):
        fs.stat("/etc/shadow/x")


def test_path_lookup_and_directory_symlinks(root: Path) -> None:
    fs = RootFS(root)
    assert fs.which("tool", "/usr/local/bin:/bin") == "/bin/tool"
    assert fs.resolve("/bin/tool") == "/usr/bin/tool"
    assert fs.which("data", "/bin") is None  # not executable
    assert fs.which("missing") is None
    assert fs.is_dir("/bin") and not fs.is_file("/bin")
    assert fs.listdir("/opt") == sorted(["evil", "dotdot", "hostabs", "loop1", "loop2", "fifo"])
    assert fs.readlink("/opt/evil") == "/etc/shadow"
    assert fs.readlink("/etc/shadow") is None


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RootFSError, match="container root unavailable"):
        RootFS(tmp_path / "nope").stat("/x")


names = st.sampled_from(["a", "b", "c", "..", ".", "etc", "shadow"])
targets = st.lists(names, min_size=0, max_size=6).map("/".join) | st.sampled_from(["/", "/..", "/etc/shadow"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    links=st.dictionaries(st.sampled_from(["a", "b", "c", "d/e", "d/f"]), targets, max_size=5),
    lookup=st.lists(names, max_size=8).map("/".join),
)
def test_no_lookup_ever_opens_outside_the_root(tmp_path: Path, links: dict[str, str], lookup: str) -> None:
    base = tmp_path / f"case{abs(hash((tuple(links.items()), lookup)))}"
    root = base / "root"
    (root / "d").mkdir(parents=True, exist_ok=True)
    (base / "etc").mkdir(exist_ok=True)
    (base / "etc" / "shadow").write_text("HOST")
    (base / "shadow").write_text("HOST")
    for name, target in links.items():
        link = root / name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(target or ".")
    fs = RootFS(root)
    real_root = os.path.realpath(root)
    try:
        fd, _, resolved = fs.open_regular(lookup)
    except RootFSError:
        return
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
        assert opened.startswith(real_root + "/"), (opened, links, lookup)
        assert os.read(fd, 10) != b"HOST"
        assert resolved.startswith("/")
    finally:
        os.close(fd)
