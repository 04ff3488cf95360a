"""``read_exec`` over a procfs laid out in a temporary directory (the fields it reads, nothing else)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zastava.observer.execsource import read_exec

NS = "pid:[4026532999]"


def _process(proc: Path, pid: int, *, ppid: int, exe: str, comm: str, cmdline: bytes) -> None:
    d = proc / str(pid)
    (d / "ns").mkdir(parents=True)
    os.symlink(NS, d / "ns" / "pid")
    os.symlink(exe, d / "exe")
    (d / "comm").write_text(comm + "\n")
    (d / "cmdline").write_bytes(cmdline)
    fields = ["S", str(ppid)] + ["0"] * 18 + ["1000"]  # state, ppid, …, starttime (field 22)
    (d / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields) + "\n")


def test_a_busybox_applet_named_by_its_argv(tmp_path: Path) -> None:
    _process(tmp_path, 10, ppid=1, exe="/bin/busybox", comm="busybox", cmdline=b"/bin/busybox\0sh\0")
    _process(tmp_path, 11, ppid=10, exe="/bin/busybox", comm="exe", cmdline=b"sleep\x0030\0")
    record = read_exec(str(tmp_path), 11, lambda ns: 10 if ns == NS else None)
    assert record is not None and (record.exe, record.applet) == ("/bin/busybox", "sleep")


def test_a_busybox_self_exec_whose_argv_is_gone_is_unidentified(tmp_path: Path) -> None:
    """busybox's shell execs /proc/self/exe (comm "exe"); read after it exited, the argv is empty: the record
    names no program (counted as unidentified by the drift judge), never the bare binary as applet "exe"."""
    _process(tmp_path, 10, ppid=1, exe="/bin/busybox", comm="busybox", cmdline=b"/bin/busybox\0sh\0")
    _process(tmp_path, 12, ppid=10, exe="/bin/busybox", comm="exe", cmdline=b"")
    record = read_exec(str(tmp_path), 12, lambda ns: 10 if ns == NS else None)
    assert record is not None
    assert (record.exe, record.comm, record.applet, record.exited) == (None, None, None, True)


def test_a_parent_gone_between_reads_is_followed_to_where_the_child_was_reparented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runc exits right after starting a health check's shell: the shell's ppid read first names runc (gone
    by the time its namespace is read); the kernel reparented the shell to the shim, outside the container —
    the chain says so (entered), instead of a gone parent (which made it a DRIFT in the services suite)."""
    from zastava.observer import execsource

    _process(tmp_path, 10, ppid=1, exe="/usr/sbin/nginx", comm="nginx", cmdline=b"nginx\0")
    _process(tmp_path, 30, ppid=1, exe="/usr/bin/containerd-shim-runc-v2", comm="shim", cmdline=b"shim\0")
    os.remove(tmp_path / "30" / "ns" / "pid")
    os.symlink("pid:[4026531836]", tmp_path / "30" / "ns" / "pid")  # the host's namespace
    _process(tmp_path, 40, ppid=35, exe="/usr/bin/dash", comm="sh", cmdline=b"/bin/sh\0-c\0true\0")
    reads = iter([(35, 1000), (30, 1000)])  # first runc (35, gone), then the shim after reparenting
    real = execsource.read_ppid_and_start
    monkeypatch.setattr(
        execsource,
        "read_ppid_and_start",
        lambda procfs, pid: next(reads) if pid == 40 else real(procfs, pid),
    )
    record = read_exec(str(tmp_path), 40, lambda ns: 10 if ns == NS else None)
    assert record is not None
    assert [(link.pid, link.in_container) for link in record.chain] == [(30, False)]


def test_busybox_called_by_its_own_name_whose_argv_is_gone_is_unidentified(tmp_path: Path) -> None:
    """``busybox wget …`` (comm "busybox") read after its argv was released: no applet "busybox"."""
    _process(tmp_path, 10, ppid=1, exe="/usr/sbin/nginx", comm="nginx", cmdline=b"nginx\0")
    _process(tmp_path, 13, ppid=10, exe="/usr/bin/busybox", comm="busybox", cmdline=b"")
    record = read_exec(str(tmp_path), 13, lambda ns: 10 if ns == NS else None)
    assert record is not None
    assert (record.exe, record.applet, record.exited) == (None, None, True)


def test_a_gone_process_whose_parent_is_gone_too_is_read_through_an_ancestor(tmp_path: Path) -> None:
    """``COPY … TO PROGRAM`` from a psql session: the ~1 ms program and the session backend that ran it are
    both gone when the reader gets there; the postmaster (the backend's parent in the fork table) still gives
    the container's namespace, and the exec is judged by the name it exec'd under, not lost."""
    _process(tmp_path, 10, ppid=1, exe="/usr/lib/postgresql/15/bin/postgres", comm="postgres", cmdline=b"x\0")
    forks = {60: 50, 50: 10}  # 60 (gone) forked by the backend 50 (gone), forked by the postmaster 10
    record = read_exec(
        str(tmp_path),
        60,
        lambda ns: 10 if ns == NS else None,
        parent_hint=50,
        comm_hint="kminer",
        parent_of=forks.get,
    )
    assert record is not None
    assert (record.exe, record.comm, record.exited) == (None, "kminer", True)
    assert [(link.pid, link.in_container) for link in record.chain] == [(50, None)]
    # without the fork table (or with no ancestor left) nothing can say which container it was
    assert read_exec(str(tmp_path), 60, lambda ns: 10, parent_hint=50, comm_hint="kminer") is None
