"""``read_exec`` over a procfs laid out in a temporary directory (the fields it reads, nothing else)."""

from __future__ import annotations

import os
from pathlib import Path

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
