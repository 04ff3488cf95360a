"""Parsing of ``/proc/<pid>/{maps,stat,cgroup,cmdline}`` (pure functions) and bounded reads of them.

Paths in ``maps`` are the process's own (container) paths. The kernel escapes only a newline in a path (as
``\\012``); spaces are literal, and a path of a file that was unlinked ends in `` (deleted)``. Anonymous
mappings have inode 0 and no path, special ones a ``[name]`` (``[heap]``, ``[stack]``, ``[vdso]`` …), and
``memfd_create`` files appear as ``/memfd:<name> (deleted)``.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MAX_PROC_FILE_BYTES",
    "ContainerIdentity",
    "MapEntry",
    "MappedObject",
    "MapsScan",
    "ProcStat",
    "ProcessGone",
    "mapped_objects",
    "parse_cgroup",
    "parse_cmdline",
    "parse_maps",
    "parse_stat",
    "read_proc_file",
    "scan_maps",
]

#: Upper bound on bytes read from one procfs file (a JVM's maps is a few MB; this is far beyond).
MAX_PROC_FILE_BYTES = 32 << 20

#: ``PF_KTHREAD`` in the flags of /proc/<pid>/stat
PF_KTHREAD = 0x00200000

MapKind = Literal["file", "deleted", "memfd", "anon", "special"]
Engine = Literal["containerd", "cri-o", "docker", "unknown"]


class ProcessGone(ProcessLookupError):
    """The process does not exist (any more), or its PID now names another process."""


# ------------------------------------------------------------------------------------------------ maps


@dataclass(frozen=True, slots=True)
class MapEntry:
    start: int
    end: int
    perms: str
    offset: int
    dev: tuple[int, int]
    inode: int
    path: str | None  # container path with " (deleted)" removed; "memfd:<name>" for memfd; "[x]" special
    kind: MapKind

    @property
    def executable(self) -> bool:
        return "x" in self.perms

    @property
    def range(self) -> str:
        """The name of this mapping under ``/proc/<pid>/map_files/``."""
        return f"{self.start:x}-{self.end:x}"


_DELETED = " (deleted)"


def _classify(raw: str, inode: int) -> tuple[str | None, MapKind]:
    if not raw:
        return None, "anon"
    if raw.startswith("["):
        return raw, "special"
    path = raw.replace("\\012", "\n")
    if path.startswith("/memfd:"):
        return path[1:].removesuffix(_DELETED), "memfd"
    if not path.startswith("/") or inode == 0:
        # e.g. "anon_inode:…", or a file-like name with no inode (SysV shm shows an inode; keep it simple)
        return path, "special"
    if path.endswith(_DELETED):
        return path.removesuffix(_DELETED), "deleted"
    return path, "file"


#: One maps line. Fields are single-space separated; the path follows after padding and may hold spaces.
_LINE = re.compile(
    r"^([0-9a-f]+)-([0-9a-f]+) ([-r][-w][-x][-psS]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) ([0-9]+)(?: +(.*))?$",
    re.MULTILINE,
)


def parse_maps(text: str) -> list[MapEntry]:
    """Every well-formed line of ``/proc/<pid>/maps``, in address order; malformed lines are skipped."""
    out: list[MapEntry] = []
    for m in _LINE.finditer(text):
        lo, hi, perms, offset, major, minor, inode_s, raw = m.groups()
        start, end, inode = int(lo, 16), int(hi, 16), int(inode_s)
        if start > end:
            continue
        path, kind = _classify(raw or "", inode)
        out.append(
            MapEntry(start, end, perms, int(offset, 16), (int(major, 16), int(minor, 16)), inode, path, kind)
        )
    return out


@dataclass(slots=True)
class MappedObject:
    """One file-backed object, deduplicated by (dev, inode)."""

    path: str
    dev: tuple[int, int]
    inode: int
    kind: MapKind
    #: first mapping's start address
    start: int
    #: ``map_files`` name of the first mapping (any mapping of a file opens the whole file)
    range: str
    executable: bool = False
    mappings: int = 0


@dataclass(slots=True)
class MapsScan:
    objects: list[MappedObject]
    #: lines of the maps text (the mappings)
    mappings: int


#: Executable file-backed lines only, found in C by searching for line starts (the text gets a leading "\n").
_EXEC_LINE = re.compile(
    r"\n([0-9a-f]+)-([0-9a-f]+) [-r][-w]x[-psS] [0-9a-f]+ ([0-9a-f]+):([0-9a-f]+) ([1-9][0-9]*) +(/[^\n]*)"
)


def scan_maps(text: str, *, executable_only: bool = True) -> MapsScan:
    """File-backed objects of a maps text in order of first mapping, as ``mapped_objects(parse_maps(text))``
    but without building per-line objects (the hot path of a sample). With ``executable_only`` just the
    objects mapped executable (the program and its shared objects; data files such as ``locale-archive``
    are mapped read-only), described by their executable mappings."""
    count = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    if not executable_only:
        return MapsScan(mapped_objects(parse_maps(text), executable_only=False), count)
    objects: dict[tuple[str, str, str], MappedObject] = {}
    for lo, hi, major, minor, inode_s, raw in _EXEC_LINE.findall("\n" + text):
        key = (major, minor, inode_s)
        obj = objects.get(key)
        if obj is None:
            start, end = int(lo, 16), int(hi, 16)
            if start > end:
                continue
            inode = int(inode_s)
            path, kind = _classify(raw, inode)
            if path is None or kind not in ("file", "deleted", "memfd"):
                continue
            # maps pads addresses to 8 digits; map_files names are unpadded
            obj = objects[key] = MappedObject(
                path, (int(major, 16), int(minor, 16)), inode, kind, start, f"{start:x}-{end:x}", True
            )
        obj.mappings += 1
    return MapsScan(list(objects.values()), count)


def mapped_objects(entries: list[MapEntry], *, executable_only: bool = True) -> list[MappedObject]:
    """The objects of already parsed entries (same rules as :func:`scan_maps`)."""
    objects: dict[tuple[tuple[int, int], int], MappedObject] = {}
    if executable_only:
        entries = [e for e in entries if e.executable]
    for entry in entries:
        if entry.kind not in ("file", "deleted", "memfd") or entry.path is None:
            continue
        key = (entry.dev, entry.inode)
        obj = objects.get(key)
        if obj is None:
            obj = objects[key] = MappedObject(
                entry.path, entry.dev, entry.inode, entry.kind, entry.start, entry.range
            )
        obj.mappings += 1
        obj.executable = obj.executable or entry.executable
    return list(objects.values())


# ------------------------------------------------------------------------------------------------ stat


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    start_time: int  # clock ticks since boot (field 22)
    flags: int = 0  # field 9

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def parse_stat(text: str) -> ProcStat:
    """``/proc/<pid>/stat``; ``comm`` may hold spaces and parentheses, so it is cut at the *last* ')'."""
    open_at = text.find("(")
    close_at = text.rfind(")")
    if open_at < 1 or close_at < open_at:
        raise ValueError("malformed /proc/<pid>/stat: no (comm)")
    rest = text[close_at + 1 :].split()
    if len(rest) < 20:
        raise ValueError(f"malformed /proc/<pid>/stat: {len(rest) + 2} fields")
    try:
        return ProcStat(
            pid=int(text[:open_at]),
            comm=text[open_at + 1 : close_at],
            state=rest[0],
            ppid=int(rest[1]),
            start_time=int(rest[19]),
            flags=int(rest[6]),
        )
    except ValueError as exc:
        raise ValueError(f"malformed /proc/<pid>/stat: {exc}") from None


def parse_cmdline(data: bytes, *, max_args: int = 4096) -> list[str]:
    """argv from ``/proc/<pid>/cmdline`` (NUL-separated; undecodable bytes escaped)."""
    if not data:
        return []
    args = data.split(b"\0")
    if args and args[-1] == b"":
        args.pop()
    return [a.decode("utf-8", "backslashreplace") for a in args[:max_args]]


# ---------------------------------------------------------------------------------------------- cgroup


@dataclass(frozen=True, slots=True)
class ContainerIdentity:
    """The container a process runs in, as told by its cgroup path."""

    container_id: str
    engine: Engine
    cgroup_path: str
    pod_uid: str | None = None
    qos: Literal["guaranteed", "burstable", "besteffort"] | None = None

    @property
    def uri(self) -> str:
        """``<engine>://<id>`` as in ``workload.containerId`` (``containerd`` when the engine is unknown)."""
        engine = "containerd" if self.engine == "unknown" else self.engine
        return f"{engine}://{self.container_id}"


_ID = r"[0-9a-f]{64}"
# systemd driver: <prefix>-<id>.scope ; cgroupfs driver: /docker/<id>, /kubepods/…/[crio-]<id>
_SCOPE = re.compile(rf"(?:^|/)(docker|cri-containerd|crio|libpod)-({_ID})\.scope(?:/|$)")
_DOCKER_DIR = re.compile(rf"(?:^|/)docker/({_ID})(?:/|$)")
_CRIO_DIR = re.compile(rf"(?:^|/)crio-({_ID})(?:/|$)")
# containerd's CRI plugin without a cgroup parent: /<namespace "k8s.io">/<id>
_CONTAINERD_CRI_DIR = re.compile(rf"(?:^|/)k8s\.io/({_ID})(?:/|$)")
_KUBEPODS = re.compile(r"(?:^|/)kubepods(?:\.slice)?(?:/|$)")
_QOS = re.compile(r"kubepods[-/](besteffort|burstable)")
_POD = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?/"
)
_BARE_ID = re.compile(rf"/({_ID})(?:/|$)")
_PREFIX_ENGINE: dict[str, Engine] = {
    "docker": "docker",
    "cri-containerd": "containerd",
    "crio": "cri-o",
    "libpod": "unknown",
}
_Qos = Literal["guaranteed", "burstable", "besteffort"]


def _identify(path: str) -> ContainerIdentity | None:
    if "crio-conmon-" in path:
        return None  # CRI-O's monitor process, not the container
    pod = _POD.search(path) if _KUBEPODS.search(path) else None
    pod_uid = pod.group(1).replace("_", "-") if pod else None
    qos: _Qos | None = None
    if pod:
        found = _QOS.search(path)
        qos = (
            "guaranteed" if found is None else "burstable" if found.group(1) == "burstable" else "besteffort"
        )
    engine: Engine
    if match := _SCOPE.search(path):
        engine, cid = _PREFIX_ENGINE[match.group(1)], match.group(2)
    elif match := _CRIO_DIR.search(path):
        engine, cid = "cri-o", match.group(1)
    elif match := _DOCKER_DIR.search(path):
        engine, cid = "docker", match.group(1)
    elif match := _CONTAINERD_CRI_DIR.search(path):
        engine, cid = "containerd", match.group(1)
    elif match := _BARE_ID.search(path):
        engine, cid = "unknown", match.group(1)  # kubepods/<qos>/pod<uid>/<id>, or containerd's /<ns>/<id>
    else:
        return None
    return ContainerIdentity(cid, engine, path, pod_uid, qos)


def parse_cgroup(text: str) -> ContainerIdentity | None:
    """Container id and engine from ``/proc/<pid>/cgroup`` (cgroup v1, v2 or hybrid); None on the host.

    The unified (``0::``) line is preferred, then v1 lines in order.
    """
    lines = [line.split(":", 2) for line in text.split("\n") if line.count(":") >= 2]
    ordered = sorted(lines, key=lambda parts: parts[0] != "0")
    for parts in ordered:
        identity = _identify(parts[2])
        if identity is not None:
            return identity
    return None


# ----------------------------------------------------------------------------------------------- reads


def read_proc_file(path: str, limit: int = MAX_PROC_FILE_BYTES) -> tuple[bytes, bool]:
    """(at most ``limit`` bytes of a procfs file, whether it was truncated). ``ProcessGone`` when absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise ProcessGone(errno.ESRCH, "no such process", path) from None
    try:
        chunks: list[bytes] = []
        total = 0
        while total < limit:
            try:
                chunk = os.read(fd, min(1 << 20, limit - total))
            except ProcessLookupError:
                raise ProcessGone(errno.ESRCH, "process exited while reading", path) from None
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks), bool(os.read(fd, 1))
    finally:
        os.close(fd)


def read_ppid_and_start(procfs: str, pid: int) -> tuple[int, int] | None:
    """(ppid, start time in clock ticks since boot) of ``pid``, None when gone or unreadable. The per-exec and
    per-pass readers call it for every process they look at, so it reads 4 KiB and splits once instead of
    building a :class:`ProcStat`."""
    try:
        with open(f"{procfs}/{pid}/stat", "rb") as handle:
            raw = handle.read(4096)
    except OSError:
        return None
    tail = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(tail[1]), int(tail[19])
    except (IndexError, ValueError):
        return None
