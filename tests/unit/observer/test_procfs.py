"""Parsing of /proc/<pid>/{maps,stat,cgroup,cmdline}."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zastava.observer.procfs import (
    ContainerIdentity,
    mapped_objects,
    parse_cgroup,
    parse_cmdline,
    parse_maps,
    parse_stat,
    scan_maps,
)

ID = "3f4e1b2a" * 8
ID2 = "0123456789abcdef" * 4
MAPS = f"""\
55d0c0000000-55d0c0002000 r--p 00000000 fd:01 1234                       /usr/bin/prog
55d0c0002000-55d0c0005000 r-xp 00002000 fd:01 1234                       /usr/bin/prog
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000001000 r--p 00000000 08:02 777                        /opt/my libs/lib two.so
7f0000001000-7f0000002000 r-xp 00001000 08:02 777                        /opt/my libs/lib two.so
7f0000003000-7f0000004000 r-xp 00000000 08:02 778                        /tmp/gone.so (deleted)
7f0000005000-7f0000006000 r-xp 00000000 00:01 9001                       /memfd:payload (deleted)
7f0000007000-7f0000008000 r--p 00000000 08:02 779                        /usr/lib/locale/locale-archive
7f0000009000-7f000000a000 r-xp 00000000 08:02 780                        /odd\\012name.so
7f000000b000-7f000000c000 rw-p 00000000 00:00 0{" "}
7f000000d000-7f000000e000 r-xp 00000000 08:03 1234                       /other/fs/same-inode.so
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
7ffc00100000-7ffc00102000 r-xp 00000000 00:00 0                          [vdso]
00401000-00479000 r-xp 00001000 fe:00 2146785                            /static-non-pie
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
garbage line
"""


def test_parse_maps_kinds_and_paths() -> None:
    entries = parse_maps(MAPS)
    assert len(entries) == 15  # the garbage line is skipped
    first = entries[0]
    assert (first.start, first.end, first.perms, first.offset, first.dev, first.inode) == (
        0x55D0C0000000,
        0x55D0C0002000,
        "r--p",
        0,
        (0xFD, 1),
        1234,
    )
    assert first.range == "55d0c0000000-55d0c0002000"
    by_path = {e.path: e for e in entries}
    assert by_path["/opt/my libs/lib two.so"].kind == "file"
    assert by_path["/tmp/gone.so"].kind == "deleted"
    assert by_path["memfd:payload"].kind == "memfd"
    assert by_path["/odd\nname.so"].kind == "file"
    assert by_path["[heap]"].kind == "special"
    assert by_path["[vsyscall]"].kind == "special"
    assert [e.kind for e in entries].count("anon") == 1


def test_mapped_objects_dedup_by_dev_and_inode() -> None:
    objects = mapped_objects(parse_maps(MAPS))
    assert [o.path for o in objects] == [
        "/usr/bin/prog",
        "/opt/my libs/lib two.so",
        "/tmp/gone.so",
        "memfd:payload",
        "/odd\nname.so",
        "/other/fs/same-inode.so",  # same inode number, other device: a different file
        "/static-non-pie",
    ]
    assert objects[-1].range == "401000-479000"  # map_files names are not zero-padded
    prog = objects[0]
    assert prog.mappings == 1  # its executable mapping
    assert prog.range == "55d0c0002000-55d0c0005000"
    assert prog.start == 0x55D0C0002000
    everything = mapped_objects(parse_maps(MAPS), executable_only=False)
    assert everything[0].mappings == 2 and everything[0].range == "55d0c0000000-55d0c0002000"
    assert "/usr/lib/locale/locale-archive" in [o.path for o in everything]
    # the fast scanner agrees with parse + group
    scan = scan_maps(MAPS, executable_only=False)
    assert scan.objects == everything
    assert scan.mappings == 16  # lines (the kernel writes no malformed ones)
    assert scan_maps(MAPS).objects == objects


def test_scan_agrees_with_parse_on_real_maps() -> None:
    with open("/proc/self/maps") as handle:
        text = handle.read()
    assert scan_maps(text).objects == mapped_objects(parse_maps(text))
    assert scan_maps(text).mappings == len(parse_maps(text))


@settings(max_examples=300)
@given(st.lists(st.sampled_from(MAPS.split("\n")), max_size=30), st.text(max_size=50))
def test_scan_agrees_with_parse_on_shuffled_lines(lines: list[str], noise: str) -> None:
    text = "\n".join([*lines, noise])
    for executable_only in (True, False):
        assert scan_maps(text, executable_only=executable_only).objects == mapped_objects(
            parse_maps(text), executable_only=executable_only
        )


@settings(max_examples=300)
@given(st.text(max_size=2000))
def test_parse_maps_never_raises(text: str) -> None:
    for entry in parse_maps(text):
        assert entry.start <= entry.end


def test_parse_maps_of_real_process_matches_line_count() -> None:
    with open("/proc/self/maps") as handle:
        text = handle.read()
    entries = parse_maps(text)
    assert len(entries) == len([line for line in text.split("\n") if line])
    assert any(e.path == os.path.realpath(sys.executable) for e in entries)


def test_parse_stat_with_hostile_comm() -> None:
    text = "4242 (a) b (c)) d) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0\n"
    stat = parse_stat(text)
    assert stat.pid == 4242
    assert stat.comm == "a) b (c)) d"
    assert stat.state == "S"
    assert stat.ppid == 1
    assert stat.start_time == 987654
    assert stat.flags == 4194560 and not stat.kernel_thread and not stat.zombie
    kthread = parse_stat("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 6 0 0\n")
    assert kthread.kernel_thread
    with pytest.raises(ValueError):
        parse_stat("garbage")
    with pytest.raises(ValueError):
        parse_stat("1 (x) S 1 2")


def test_parse_stat_of_real_child_matches_ps() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        with open(f"/proc/{child.pid}/stat") as handle:
            stat = parse_stat(handle.read())
        assert stat.pid == child.pid
        assert stat.ppid == os.getpid()
        assert stat.comm == "sleep"
        ticks = os.sysconf("SC_CLK_TCK")
        boot_relative = stat.start_time / ticks
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        assert 0 <= uptime - boot_relative < 60
    finally:
        child.kill()
        child.wait()


def test_parse_cmdline() -> None:
    assert parse_cmdline(b"/bin/sh\0-c\0echo hi\0") == ["/bin/sh", "-c", "echo hi"]
    assert parse_cmdline(b"") == []
    assert parse_cmdline(b"a\xff\0") == ["a\\xff"]
    assert len(parse_cmdline(b"x\0" * 10000)) == 4096


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Docker, cgroupfs driver, cgroup v1 (as on this machine)
        (f"12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n0::/docker/{ID}\n", ("docker", ID, None, None)),
        # Docker, systemd driver, cgroup v2
        (f"0::/system.slice/docker-{ID}.scope\n", ("docker", ID, None, None)),
        # Kubernetes + containerd, systemd driver, burstable
        (
            "0::/kubepods.slice/kubepods-burstable.slice/"
            "kubepods-burstable-pod1a2b3c4d_0000_1111_2222_333344445555.slice/"
            f"cri-containerd-{ID}.scope\n",
            ("containerd", ID, "1a2b3c4d-0000-1111-2222-333344445555", "burstable"),
        ),
        # Kubernetes + CRI-O, systemd driver, besteffort
        (
            "0::/kubepods.slice/kubepods-besteffort.slice/"
            "kubepods-besteffort-pod1a2b3c4d_0000_1111_2222_333344445555.slice/"
            f"crio-{ID}.scope\n",
            ("cri-o", ID, "1a2b3c4d-0000-1111-2222-333344445555", "besteffort"),
        ),
        # Kubernetes, cgroupfs driver, v1, besteffort: bare id (engine not told by the path)
        (
            f"4:cpu,cpuacct:/kubepods/besteffort/pod1a2b3c4d-0000-1111-2222-333344445555/{ID}\n",
            ("unknown", ID, "1a2b3c4d-0000-1111-2222-333344445555", "besteffort"),
        ),
        # Kubernetes, guaranteed QoS (no class directory)
        (
            f"0::/kubepods/pod1a2b3c4d-0000-1111-2222-333344445555/{ID}\n",
            ("unknown", ID, "1a2b3c4d-0000-1111-2222-333344445555", "guaranteed"),
        ),
        # CRI-O, cgroupfs driver
        (
            f"0::/kubepods/burstable/pod1a2b3c4d-0000-1111-2222-333344445555/crio-{ID}\n",
            ("cri-o", ID, "1a2b3c4d-0000-1111-2222-333344445555", "burstable"),
        ),
        # containerd's CRI plugin with no cgroup parent: /k8s.io/<id> (as the CRI fixture runs it)
        (f"0::/k8s.io/{ID}\n", ("containerd", ID, None, None)),
        # containerd in another namespace: /<namespace>/<id>, engine not told by the path
        (f"0::/default/{ID}\n", ("unknown", ID, None, None)),
        # seen from inside another cgroup namespace
        (f"0::/../../docker/{ID}\n", ("docker", ID, None, None)),
        # hybrid: the unified line names the container, v1 lines are root
        (f"1:name=systemd:/\n0::/docker/{ID2}\n", ("docker", ID2, None, None)),
    ],
)
def test_parse_cgroup(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    identity = parse_cgroup(text)
    assert identity is not None
    assert (identity.engine, identity.container_id, identity.pod_uid, identity.qos) == expected


@pytest.mark.parametrize(
    "text",
    [
        "0::/\n",
        "12:pids:/\n11:memory:/user.slice\n0::/init.scope\n",
        f"0::/system.slice/crio-conmon-{ID}.scope\n",  # CRI-O's monitor, not a container
        "0::/system.slice/docker-short.scope\n",
        "",
        "garbage",
    ],
)
def test_parse_cgroup_host_processes(text: str) -> None:
    assert parse_cgroup(text) is None


def test_identity_uri() -> None:
    assert ContainerIdentity(ID, "docker", "/docker/x").uri == f"docker://{ID}"
    assert ContainerIdentity(ID, "unknown", "/x").uri == f"containerd://{ID}"
    assert ContainerIdentity(ID, "cri-o", "/x").uri == f"cri-o://{ID}"


@settings(max_examples=300)
@given(st.text(max_size=500))
def test_parse_cgroup_never_raises(text: str) -> None:
    parse_cgroup(text)
