"""Drift functions over fixed procfs/rootfs fixtures (parsers, caps, upper-layer confirmation)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zastava.contracts import EventKind, RuntimeInfo, Workload
from zastava.observer import drift
from zastava.observer.events import EventContext
from zastava.observer.rootfs import RootFS

_TAIL = "00000000:00000000 00:00000000 00000000     0        0"
TCP = "\n".join(
    [
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
        f"   0: 0100007F:1F90 00000000:0000 0A {_TAIL} 1111 1 0000000000000000 100 0 0 10 0",
        f"   1: 00000000:1F91 00000000:0000 0A {_TAIL} 2222 1 0000000000000000 100 0 0 10 0",
        f"   2: 0100007F:1F90 0100007F:C350 01 {_TAIL} 3333 1 0000000000000000 20 4 30 10 -1",
        "   garbage line",
        "",
    ]
)
TCP6 = "\n".join(
    [
        "  sl  local_address                         remote_address                        st tx_queue",
        "   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A "
        f"{_TAIL} 4444 1 0000000000000000 100 0 0 10 0",
        "",
    ]
)

CTX = EventContext(
    tenant="t",
    node="n",
    runtime=RuntimeInfo(engine="docker", version="20.10"),
    workload=Workload(platform="docker", container_id="docker://abc", image_ref="r@sha256:" + "1" * 64),
    image_digest="sha256:" + "1" * 64,
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def fake_proc(tmp: Path) -> str:
    net = tmp / "proc" / "42" / "net"
    net.mkdir(parents=True)
    (net / "tcp").write_text(TCP)
    (net / "tcp6").write_text(TCP6)
    return str(tmp / "proc")


def test_listening_sockets_parse_ipv4_and_ipv6(tmp_path: Path) -> None:
    procfs = fake_proc(tmp_path)
    listeners = drift.listening_sockets(procfs, 42)
    assert [(x.proto, x.address, x.port, x.inode) for x in listeners] == [
        ("tcp", "127.0.0.1", 8080, 1111),
        ("tcp", "0.0.0.0", 8081, 2222),
        ("tcp6", "::1", 80, 4444),
    ]
    found = drift.detect_network_drift(listeners, allowed_ports={8080})
    assert [x.port for x in found] == [8081, 80]
    event = drift.network_drift_event(CTX, found, when=NOW, pid=42)
    assert event.kind is EventKind.DRIFT and event.event_id == event.compute_id()
    assert [e.signal for e in event.evidence] == ["drift.network", "drift.network"]
    assert drift.listening_sockets(procfs, 43) == []


@given(st.binary(max_size=2000))
@settings(max_examples=60, deadline=None)
def test_hostile_net_tcp_never_raises(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        net = Path(tmp) / "7" / "net"
        net.mkdir(parents=True)
        (net / "tcp").write_bytes(b"header\n" + data)
        for listener in drift.listening_sockets(tmp, 7):
            assert 0 <= listener.port <= 0xFFFF


def test_overlay_upper_dir_from_mountinfo(tmp_path: Path) -> None:
    proc = tmp_path / "9"
    proc.mkdir()
    (proc / "mountinfo").write_text(
        "1 0 0:1 / /proc rw - proc proc rw\n"
        "72 48 0:39 / / rw,relatime master:2 - overlay overlay rw,lowerdir=/l1:/l2,"
        "upperdir=/var/lib/x\\040y/diff,workdir=/var/lib/w\n"
    )
    assert drift.overlay_upper_dir(str(tmp_path), 9) == "/var/lib/x y/diff"
    (proc / "mountinfo").write_text("72 48 0:39 / / rw - ext4 /dev/sda1 rw\n")
    assert drift.overlay_upper_dir(str(tmp_path), 9) is None
    assert drift.overlay_upper_dir(str(tmp_path), 10) is None


def _exe(path: Path, data: bytes = b"\x7fELF...", mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o755)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_filesystem_drift_mtime_executable_upper_layer_and_caps(tmp_path: Path) -> None:
    root, upper = tmp_path / "root", tmp_path / "host" / "upper"
    image_created = datetime.now(UTC) - timedelta(hours=1)
    old = (image_created - timedelta(days=1)).timestamp()
    _exe(root / "usr/local/bin/shipped", mtime=old)  # from the image
    _exe(root / "usr/local/bin/new-tool", b"new")  # written in the container
    _exe(root / "opt/deep/a/b/c/tool", b"deep")  # nested
    _exe(root / "app/lower-only", b"x")  # new mtime but not on the upper layer (e.g. clock skew)
    (root / "app/data.txt").write_text("not executable")
    (root / "app/link").symlink_to("/etc/shadow")  # symlinks are not followed
    (root / "opt/escape").symlink_to("/")  # nor symlinked directories (the host's / would be walked)
    (root / "opt/up").symlink_to("../../..")
    _exe(upper / "usr/local/bin/new-tool", b"new")
    _exe(upper / "opt/deep/a/b/c/tool", b"deep")
    rootfs, host = RootFS(root), RootFS(tmp_path / "host")

    found = drift.detect_filesystem_drift(rootfs, image_created, upper=host, upper_dir="/upper")
    assert sorted(f.path for f in found) == ["/opt/deep/a/b/c/tool", "/usr/local/bin/new-tool"]
    assert all(f.on_upper_layer is True for f in found)
    by_path = {f.path: f for f in found}
    import hashlib

    assert by_path["/usr/local/bin/new-tool"].sha256 == hashlib.sha256(b"new").hexdigest()

    # no upper layer known: unconfirmed candidates are kept, marked unknown
    unconfirmed = drift.detect_filesystem_drift(rootfs, image_created)
    assert "/app/lower-only" in {f.path for f in unconfirmed}
    assert {f.on_upper_layer for f in unconfirmed} == {None}
    # an unreachable upper dir is "unknown", not "absent"
    unreachable = drift.detect_filesystem_drift(rootfs, image_created, upper=host, upper_dir="/nope")
    assert {f.path for f in unreachable} == {f.path for f in unconfirmed}

    # caps: depth, file count, hash budget
    shallow = drift.detect_filesystem_drift(rootfs, image_created, max_depth=2)
    assert "/opt/deep/a/b/c/tool" not in {f.path for f in shallow}
    assert len(drift.detect_filesystem_drift(rootfs, image_created, max_files=1)) <= 1
    no_hash = drift.detect_filesystem_drift(rootfs, image_created, max_hash_bytes=0)
    assert {f.sha256 for f in no_hash} == {None}
    event = drift.filesystem_drift_event(
        CTX, no_hash, when=NOW, since=image_created, since_source="imageCreated"
    )
    assert any(e.signal == "drift.filesystem.hash-skipped" for e in event.evidence)
    # already reported (path, mtime) pairs are not reported again
    assert drift.detect_filesystem_drift(rootfs, image_created, reported={f.key for f in unconfirmed}) == []


def test_library_drift() -> None:
    usage = {"/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/libssl.so.3"}
    loaded = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/libssl.so.3", "/tmp//evil.so", "/tmp/evil.so"]
    assert drift.detect_library_drift(loaded, usage) == ["/tmp/evil.so"]
    assert drift.detect_library_drift(loaded, None) == []
    assert drift.detect_library_drift(loaded, usage, reported={"/tmp/evil.so"}) == []
    event = drift.library_drift_event(CTX, ["/tmp/evil.so"], when=NOW, pid=3)
    assert event.delta is not None and event.delta.changed_files == ["/tmp/evil.so"]


def test_allowed_programs_resolve_path_symlinks_and_sh_c(tmp_path: Path) -> None:
    _exe(tmp_path / "bin/busybox")
    (tmp_path / "bin/sh").symlink_to("busybox")
    (tmp_path / "bin/sleep").symlink_to("busybox")
    _exe(tmp_path / "usr/bin/health")
    _exe(tmp_path / "usr/bin/checker")
    allowed = drift.allowed_programs(
        RootFS(tmp_path),
        terminals=["/bin/sleep"],
        declared_commands=[
            ["health", "--live"],
            ["/bin/sh", "-c", "checker --quiet && exit 0"],
            [],
            ["missing"],
        ],
        extra=["/opt/allowed"],
    )
    assert {
        "/bin/sleep",
        "/bin/busybox\0sleep",
        "/usr/bin/health",
        "/usr/bin/checker",
        "/bin/sh",
        "/bin/busybox\0sh",
        "/opt/allowed",
    } <= allowed
    assert "missing" not in allowed
    assert "/bin/busybox" not in allowed  # busybox's sleep and sh, not every applet


def test_multi_call_programs_are_compared_by_applet(tmp_path: Path) -> None:
    _exe(tmp_path / "bin/busybox")
    for applet in ("sh", "sleep", "nc"):
        (tmp_path / "bin" / applet).symlink_to("busybox")
    root = RootFS(tmp_path)
    # EntryTrace lists the terminal as found and resolved: /bin/sleep and /bin/busybox
    allowed = drift.allowed_programs(root, terminals=["/bin/sleep", "/bin/busybox"])
    assert allowed == {"/bin/sleep", "/bin/busybox\0sleep"}

    def proc(pid: int, applet: str | None, exe: str = "/bin/busybox") -> drift.ContainerProcess:
        return drift.ContainerProcess(pid, 100 + pid, 1, exe, applet=applet)

    sleep, shell, nc = proc(1, "sleep"), proc(2, "sh"), proc(3, "nc")
    assert drift.detect_process_drift([sleep, shell, nc], allowed) == [shell, nc]
    # a multi-call binary named by its own path: every applet (configured, or a terminal naming no applet)
    assert drift.detect_process_drift([shell, nc], drift.allowed_programs(root, extra=["/bin/busybox"])) == []
    assert drift.detect_process_drift([shell], drift.allowed_programs(root, terminals=["/bin/busybox"])) == []
    # a configured applet path allows that applet only
    assert drift.detect_process_drift([shell, nc], drift.allowed_programs(root, extra=["/bin/nc"])) == [shell]
    event = drift.process_drift_event(CTX, [shell], when=NOW)
    assert event.evidence[0].value.endswith("exe=/bin/busybox applet=sh")


def test_applet_of_a_real_busybox_process(tmp_path: Path) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("no busybox on this host")
    (tmp_path / "sleep").symlink_to(busybox)
    child = subprocess.Popen([str(tmp_path / "sleep"), "30"])
    try:
        deadline = time.monotonic() + 10
        while True:
            mine = drift.container_processes("/proc", os.getpid(), max_processes=100_000)
            entry = next((p for p in mine if p.pid == child.pid), None)
            if (entry is not None and entry.exe == os.path.realpath(busybox)) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert entry is not None and entry.applet == "sleep"
        assert entry.program == os.path.realpath(busybox) + "\0sleep"
    finally:
        child.kill()
        child.wait()


def test_processes_keyed_by_pid_and_start_time_on_the_real_procfs() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        mine = drift.container_processes("/proc", os.getpid(), max_processes=100_000)
        entry = next(p for p in mine if p.pid == child.pid)
        assert entry.exe == os.path.realpath(sys.executable)
        assert entry.ppid == os.getpid()
        assert entry.start_time == drift.process_start_time("/proc", child.pid) > 0
        allowed = {p.exe for p in mine if p.pid != child.pid and p.exe}
        found = drift.detect_process_drift([entry], allowed - {entry.exe})
        assert found == [entry]
        assert drift.detect_process_drift([entry], allowed - {entry.exe}, {entry.key}) == []
        # a reused pid with another start time is a new process
        reused = drift.ContainerProcess(entry.pid, entry.start_time + 1, entry.ppid, entry.exe)
        assert drift.detect_process_drift([reused], set(), {entry.key}) == [reused]
        assert len(drift.container_processes("/proc", os.getpid(), max_processes=1)) == 1
    finally:
        child.kill()
        child.wait()
    assert drift.container_processes("/proc", 2**22 + 7) == []


def _elf(path: Path, e_type: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 9 + e_type.to_bytes(2, "little") + b"\0" * 46)


def test_library_drift_compares_as_the_catalog_and_counts_only_shared_objects(tmp_path: Path) -> None:
    """usr-merge aliases (the backend catalog's own function), a symlinked library directory inside the root,
    and only ELF shared objects: a data file a program maps is not a library."""
    _elf(tmp_path / "usr/lib/x86_64-linux-gnu/libc.so.6", 3)
    (tmp_path / "lib").symlink_to("usr/lib")  # usr-merged
    _elf(tmp_path / "opt/vendor/lib/libvendor.so.1.2", 3)
    (tmp_path / "opt/app").mkdir(parents=True)
    (tmp_path / "opt/app/lib").symlink_to("../vendor/lib")  # a symlinked library directory
    _elf(tmp_path / "tmp/evil.so", 3)
    _elf(tmp_path / "tmp/static-tool", 2)  # ET_EXEC: not a shared object
    (tmp_path / "usr/share/fonts").mkdir(parents=True)
    (tmp_path / "usr/share/fonts/a.ttf").write_bytes(b"\0\1\0\0")
    usage = {"/usr/lib/x86_64-linux-gnu/libc.so.6", "/opt/vendor/lib/libvendor.so.1.2"}
    loaded = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/opt/app/lib/libvendor.so.1.2",
        "/usr/share/fonts/a.ttf",
        "/tmp/static-tool",
        "/tmp/evil.so",
    ]
    root = RootFS(str(tmp_path))
    assert drift.detect_library_drift(loaded, usage, root=root) == ["/tmp/evil.so"]
    from zastava.contracts.paths import path_aliases

    assert path_aliases("/lib64//ld-linux-x86-64.so.2") == (
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/lib64/ld-linux-x86-64.so.2",
    )
    assert path_aliases("/usr/bin/env") == ("/usr/bin/env", "/bin/env")


def test_mapped_files_leave_out_devices_shm_sysv_and_deleted(tmp_path: Path) -> None:
    """A ``/proc/<pid>/maps`` as the kernel writes it (a fixture file: the mappings below need no process)."""
    (tmp_path / "7").mkdir()
    (tmp_path / "7/maps").write_text(
        "7f00-7f01 r-xp 00000000 08:01 11 /usr/lib/libc.so.6\n"
        "7f01-7f02 rw-s 00000000 00:05 12 /dev/zero (deleted)\n"
        "7f02-7f03 rw-s 00000000 00:1a 13 /dev/shm/queue\n"
        "7f03-7f04 rw-s 00000000 00:01 14 /SYSV0000162e (deleted)\n"
        "7f04-7f05 r-xp 00000000 08:01 15 /tmp/gone.so (deleted)\n"
        "7f05-7f06 r-xp 00000000 00:01 16 /memfd:payload (deleted)\n"
        "7f06-7f07 rw-p 00000000 00:00 0 [heap]\n"
        "7f07-7f08 r-xp 00000000 08:01 11 /usr/lib/libc.so.6\n"
    )
    assert drift.mapped_files(str(tmp_path), 7) == ["/usr/lib/libc.so.6"]


def test_mapped_files_leave_out_the_process_own_executable() -> None:
    """A PIE executable is ET_DYN like a library: the services suite reported nginx, cron, bash, initdb as
    "libraries not in the usage SBOM" before the process's own program was left out."""
    import sys

    from zastava.observer.drift import mapped_files

    files = mapped_files("/proc", os.getpid())
    assert os.path.realpath(sys.executable) not in files
    assert any(".so" in f for f in files)  # its libraries are still there
