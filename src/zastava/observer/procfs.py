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
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "MAX_PROC_FILE_BYTES",
    "ContainerIdentity",
    "MapEntry",
    "MappedObject",
    "ProcStat",
    "ProcessGone",
    "mapped_objects",
    "parse_cgroup",
    "parse_cmdline",
    "parse_maps",
    "parse_stat",
    "read_proc_file",
]

#: Upper bound on bytes read from one procfs file (a JVM's maps is a few MB; this is far beyond).
MAX_PROC_FILE_BYTES = 32 << 20

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


def parse_maps(text: str) -> list[MapEntry]:
    """Every well-formed line of ``/proc/<pid>/maps``, in address order; malformed lines are skipped."""
    out: list[MapEntry] = []
    for line in text.split("\n"):  # not splitlines(): \x0b, \x1c … may occur in file names
        if not line:
            continue
        parts = line.split(" ", 5)
        if len(parts) < 5:
            continue
        try:
            lo, _, hi = parts[0].partition("-")
            start, end = int(lo, 16), int(hi, 16)
            perms = parts[1]
            offset = int(parts[2], 16)
            major, _, minor = parts[3].partition(":")
            dev = (int(major, 16), int(minor, 16))
            inode = int(parts[4])
        except ValueError:
            continue
        if len(perms) != 4 or start > end or inode < 0:
            continue
        raw = parts[5].lstrip(" ") if len(parts) == 6 else ""
        path, kind = _classify(raw, inode)
        out.append(MapEntry(start, end, perms, offset, dev, inode, path, kind))
    return out


@dataclass(slots=True)
class MappedObject:
    """One file-backed object (deduplicated by (dev, inode)) with all its mappings."""

    path: str
    dev: tuple[int, int]
    inode: int
    kind: MapKind
    mappings: list[MapEntry] = field(default_factory=list)

    @property
    def executable(self) -> bool:
        return any(m.executable for m in self.mappings)

    @property
    def first(self) -> MapEntry:
        return self.mappings[0]

    @property
    def preferred(self) -> MapEntry:
        """The mapping to open under ``map_files``: the one at file offset 0 when there is one."""
        return next((m for m in self.mappings if m.offset == 0), self.mappings[0])


def mapped_objects(entries: list[MapEntry], *, executable_only: bool = True) -> list[MappedObject]:
    """File-backed objects in order of first mapping; with ``executable_only`` just those mapped executable
    (the program and its shared objects; data files such as ``locale-archive`` are mapped read-only)."""
    objects: dict[tuple[tuple[int, int], int], MappedObject] = {}
    for entry in entries:
        if entry.kind not in ("file", "deleted", "memfd") or entry.path is None:
            continue
        key = (entry.dev, entry.inode)
        obj = objects.get(key)
        if obj is None:
            obj = objects[key] = MappedObject(entry.path, entry.dev, entry.inode, entry.kind)
        obj.mappings.append(entry)
    result = list(objects.values())
    return [o for o in result if o.executable] if executable_only else result


# ------------------------------------------------------------------------------------------------ stat


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    start_time: int  # clock ticks since boot (field 22)


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
