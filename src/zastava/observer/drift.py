"""Drift detection (spec §10): pure functions over procfs, a container's root and the baselines given.

Each ``detect_*`` function reads only what it is handed (a procfs path, a :class:`RootFS`, sets of known
paths/ports) and returns what is new; each ``*_event`` turns findings into one ``DRIFT`` runtime event with
evidence and a ``delta``. State (what was already reported) is passed in by the caller — processes are
keyed by ``(pid, start time)`` so a reused pid is a new process. All reads are bounded and read-only;
files inside the container are read only through :class:`~zastava.observer.rootfs.RootFS`.

* **process** — a process in the container (same pid and mount namespace as its init) whose program is
  neither an EntryTrace terminal nor a declared probe/exec command (nor configured as allowed); a program
  is its path and, for a multi-call binary, its applet (:mod:`~zastava.observer.programs`: a busybox ``sh``
  is not the busybox ``sleep`` the entrypoint runs);
* **filesystem** — a new executable under ``/usr/local/bin``, ``/opt``, ``/app``: present on the overlay
  upper layer (from ``/proc/<pid>/mountinfo``) is enough — mtime is evidence, not a gate (it is the
  attacker's to set); without an upper layer to look at, mtime after image creation;
* **library** — an ELF shared object mapped by any process of the container and absent from the image's
  usage SBOM view, paths compared as the backend catalog does (usr-merge aliases, symlinks resolved);
* **network** — a listening TCP socket (``/proc/<pid>/net/tcp{,6}``) on a port the configuration does
  not allow (skipped for containers sharing the host network namespace).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..contracts import EventKind, Evidence, NewBinary, Process, RuntimeDelta, RuntimeEvent
from ..contracts.paths import normalise_path, path_aliases
from .events import EventContext
from .procfs import read_ppid_and_start
from .programs import applet_of, is_multi_call, program_key
from .rootfs import RootFS, RootFSError

__all__ = [
    "ContainerProcess",
    "Listener",
    "NewExecutable",
    "ProcessKey",
    "allowed_programs",
    "container_processes",
    "detect_filesystem_drift",
    "detect_library_drift",
    "detect_network_drift",
    "detect_process_drift",
    "filesystem_drift_event",
    "host_root",
    "library_drift_event",
    "listening_sockets",
    "mapped_files",
    "network_drift_event",
    "overlay_upper_dir",
    "process_drift_event",
    "process_start_time",
    "shares_host_network",
]

ProcessKey = tuple[int, int]
_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "busybox"})
_READ_CAP = 1 << 20


def _read(path: str, limit: int = _READ_CAP) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)  # noqa: PTH115 - str in, str out, hot path
    except OSError:
        return None


# ------------------------------------------------------------------------------------------- processes


@dataclass(frozen=True, slots=True)
class ContainerProcess:
    pid: int
    start_time: int
    ppid: int
    #: the program as a container path (``/proc/<pid>/exe``), None when unreadable (kernel thread, raced exit)
    exe: str | None
    exe_deleted: bool = False
    #: the applet a multi-call binary runs as (busybox ``sh``), from its argv; None for other programs
    applet: str | None = None

    @property
    def key(self) -> ProcessKey:
        return (self.pid, self.start_time)

    @property
    def program(self) -> str | None:
        """What the allowed set is compared with: ``exe``, with the applet for a multi-call binary."""
        return program_key(self.exe, self.applet) if self.exe else None


def process_start_time(procfs: str, pid: int) -> int | None:
    fields = read_ppid_and_start(procfs, pid)
    return fields[1] if fields else None


def container_processes(procfs: str, init_pid: int, *, max_processes: int = 4096) -> list[ContainerProcess]:
    """Processes in the same pid *and* mount namespace as ``init_pid`` (the container's), at most
    ``max_processes`` of them, sorted by pid."""
    pid_ns = _readlink(f"{procfs}/{init_pid}/ns/pid")
    mnt_ns = _readlink(f"{procfs}/{init_pid}/ns/mnt")
    if pid_ns is None or mnt_ns is None:
        return []
    try:
        entries = sorted(int(e) for e in os.listdir(procfs) if e.isdigit())  # noqa: PTH208
    except OSError:
        return []
    out: list[ContainerProcess] = []
    for pid in entries:
        if len(out) >= max_processes:
            break
        if _readlink(f"{procfs}/{pid}/ns/pid") != pid_ns or _readlink(f"{procfs}/{pid}/ns/mnt") != mnt_ns:
            continue
        fields = read_ppid_and_start(procfs, pid)
        if fields is None:
            continue
        exe = _readlink(f"{procfs}/{pid}/exe")
        deleted = bool(exe and exe.endswith(" (deleted)"))
        if exe and deleted:
            exe = exe[: -len(" (deleted)")]
        applet = None
        if is_multi_call(exe):  # only then is the argv needed (bounded reads)
            argv = [
                a.decode("utf-8", "replace")
                for a in (_read(f"{procfs}/{pid}/cmdline", 4096) or b"").split(b"\0")
            ]
            comm = (_read(f"{procfs}/{pid}/comm", 64) or b"").decode("utf-8", "replace").strip()
            applet = applet_of(exe, [a for a in argv if a] or None, comm or None)
        out.append(
            ContainerProcess(
                pid=pid, start_time=fields[1], ppid=fields[0], exe=exe, exe_deleted=deleted, applet=applet
            )
        )
    return out


def _resolve(rootfs: RootFS, path: str) -> set[str]:
    """``path`` as given and resolved; where it resolves to a multi-call binary under another name, the
    program is that binary *and* the applet the name selects (``/bin/sh`` → busybox's ``sh``)."""
    if "\0" in path:  # already a program key
        return {path}
    try:
        resolved = rootfs.resolve(path)
    except RootFSError:
        resolved = path
    name = path.rsplit("/", 1)[-1]
    return {
        program_key(candidate, name) if is_multi_call(candidate) and not is_multi_call(path) else candidate
        for candidate in (path, resolved)
    }


def allowed_programs(
    rootfs: RootFS,
    *,
    terminals: Iterable[str] = (),
    declared_commands: Iterable[Sequence[str]] = (),
    extra: Iterable[str] = (),
    path_env: str | None = None,
) -> frozenset[str]:
    """Container paths of the programs that may run: EntryTrace terminals, the programs of declared probe/exec
    commands (looked up on ``PATH`` inside the root; for ``sh -c "<cmd> …"`` also ``<cmd>``) and ``extra`` —
    each as given and as resolved through symlinks inside the root, as a program key
    (:func:`~zastava.observer.programs.program_key`) where it names an applet of a multi-call binary.

    A multi-call binary named by its own path allows all its applets: from ``extra`` (configured), and among
    the terminals only when no terminal names one of its applets (EntryTrace lists ``/bin/sleep`` *and* its
    resolved ``/bin/busybox``: that is busybox's ``sleep``, not every applet)."""
    search = path_env or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    allowed: set[str] = set()
    traced: set[str] = set()
    for path in terminals:
        if path.startswith("/"):
            traced |= _resolve(rootfs, path)
    with_applet = {key.split("\0", 1)[0] for key in traced if "\0" in key}
    allowed |= {key for key in traced if key not in with_applet}
    for path in extra:
        if path.startswith("/"):
            allowed |= _resolve(rootfs, path)
    for argv in declared_commands:
        if not argv:
            continue
        names = [argv[0]]
        if argv[0].rsplit("/", 1)[-1] in _SHELLS and len(argv) >= 3 and argv[1] == "-c":
            try:
                words = shlex.split(argv[2])
            except ValueError:
                words = argv[2].split()
            if words:
                names.append(words[0])
        for name in names:
            found = rootfs.which(name, search)
            if found:
                allowed |= _resolve(rootfs, found)
    return frozenset(allowed)


def detect_process_drift(
    processes: Iterable[ContainerProcess],
    allowed: Collection[str],
    reported: Collection[ProcessKey] = (),
    *,
    root: RootFS | None = None,
) -> list[ContainerProcess]:
    """Processes whose program is not allowed, not yet reported (by ``(pid, start time)``). A multi-call
    binary's process is allowed by its applet's key, or by the binary's bare path (all applets).

    With ``root``, a program that is not a regular file in the container and not deleted is skipped: that is
    the runtime's own short-lived helper entering the container (``runc init`` shows ``exe`` as ``/`` or a
    ``memfd:runc…``) — a deleted or memfd program of anything else is reported (fileless execution).
    """
    out = []
    for p in processes:
        if p.exe is None or p.exe in allowed or p.program in allowed or p.key in reported:
            continue
        if p.exe.startswith("/memfd:runc") or p.exe.startswith("memfd:runc"):
            continue
        fileless = p.exe_deleted or p.exe.startswith(("/memfd:", "memfd:"))
        if root is not None and not fileless and not root.is_file(p.exe):
            continue
        out.append(p)
    return out


def process_drift_event(
    ctx: EventContext, found: Sequence[ContainerProcess], *, when: datetime
) -> RuntimeEvent:
    """One DRIFT event for the unexpected processes (program paths only: arguments are not exported, §7)."""
    first = found[0]
    evidence = [
        Evidence(
            signal="drift.process",
            value=f"pid={p.pid} startTime={p.start_time} ppid={p.ppid} exe={p.exe}"
            + (" (deleted)" if p.exe_deleted else "")
            + (f" applet={p.applet}" if p.applet else ""),
        )
        for p in found
    ]
    programs = sorted({p.exe for p in found if p.exe})
    return ctx.event(
        EventKind.DRIFT,
        when=when,
        process=Process(pid=first.pid, start_time=first.start_time, entrypoint=[first.exe or "?"]),
        delta=RuntimeDelta(baseline_image_digest=ctx.image_digest, changed_files=programs),
        evidence=evidence,
    )


# ------------------------------------------------------------------------------------------ filesystem


@dataclass(frozen=True, slots=True)
class NewExecutable:
    path: str
    mtime: datetime
    mtime_ns: int
    size: int
    sha256: str | None
    #: True/False when the overlay upper layer could be checked, None when there is none to check
    on_upper_layer: bool | None

    @property
    def key(self) -> tuple[str, int]:
        return (self.path, self.mtime_ns)


def _unescape_mount(value: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 3 < len(value) + 0 and value[i + 1 : i + 4].isdigit():
            out.append(chr(int(value[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def host_root(procfs: str) -> RootFS:
    """The host's root directory as seen from the observer: ``/`` when ``procfs`` is our own ``/proc``,
    else ``<procfs>/1/root`` (a DaemonSet with the host's /proc mounted at /host/proc)."""
    if os.path.realpath(procfs) == "/proc":
        return RootFS("/")
    return RootFS(f"{procfs}/1/root")


def overlay_upper_dir(procfs: str, pid: int) -> str | None:
    """The host path of the overlay upper directory mounted at the container's ``/``, if it is overlayfs."""
    raw = _read(f"{procfs}/{pid}/mountinfo", 4 << 20)
    if not raw:
        return None
    for line in raw.decode("utf-8", "replace").splitlines():
        left, sep, right = line.partition(" - ")
        parts = left.split()
        if not sep or len(parts) < 5 or parts[4] != "/":
            continue
        fs = right.split()
        if len(fs) < 3 or fs[0] != "overlay":
            continue
        for option in fs[2].split(","):
            if option.startswith("upperdir="):
                return _unescape_mount(option[len("upperdir=") :])
    return None


def _sha256(rootfs: RootFS, path: str, budget: int) -> tuple[str | None, int]:
    try:
        fd, info, _ = rootfs.open_regular(path)
    except RootFSError:
        return None, 0
    try:
        if info.st_size > budget:
            return None, 0
        digest = hashlib.sha256()
        used = 0
        while used <= info.st_size:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            used += len(chunk)
            digest.update(chunk)
        return digest.hexdigest(), used
    finally:
        os.close(fd)


def detect_filesystem_drift(
    rootfs: RootFS,
    since: datetime,
    *,
    dirs: Iterable[str] = ("/usr/local/bin", "/opt", "/app"),
    upper: RootFS | None = None,
    upper_dir: str | None = None,
    reported: Collection[tuple[str, int]] = (),
    max_files: int = 10_000,
    max_depth: int = 8,
    max_hash_bytes: int = 64_000_000,
) -> list[NewExecutable]:
    """Executable regular files under ``dirs`` written in the container.

    ``upper`` is a :class:`RootFS` of the host root and ``upper_dir`` the overlay upper directory (host path):
    when both are given, a file present there is reported whatever its mtime (it was written in the
    container, not shipped in the image) and one absent is not; without them, a file modified after
    ``since`` (the image creation time) is. Symlinks are not followed; at most ``max_files`` entries are
    visited, ``max_depth`` deep, and
    ``max_hash_bytes`` are hashed in total.
    """
    cutoff = since.timestamp()
    if upper is not None and upper_dir:
        try:  # the upper layer must itself be reachable, else nothing can be confirmed either way
            if not stat.S_ISDIR(upper.lstat(upper_dir).st_mode):
                upper = None
        except RootFSError:
            upper = None
    visited = 0
    budget = max_hash_bytes
    found: list[NewExecutable] = []
    stack: list[tuple[str, int]] = [(d.rstrip("/") or "/", 0) for d in sorted(set(dirs), reverse=True)]
    seen_dirs: set[str] = set()
    while stack and visited < max_files:
        directory, depth = stack.pop()
        if directory in seen_dirs:
            continue
        seen_dirs.add(directory)
        try:
            if not stat.S_ISDIR(rootfs.lstat(directory).st_mode):
                continue
            names = rootfs.listdir(directory)
        except RootFSError:
            continue
        for name in names:
            visited += 1
            if visited > max_files:
                break
            path = f"{directory}/{name}" if directory != "/" else f"/{name}"
            try:
                info = rootfs.lstat(path)
            except RootFSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                if depth + 1 < max_depth:
                    stack.append((path, depth + 1))
                continue
            if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
                continue
            if (path, info.st_mtime_ns) in reported:
                continue
            on_upper: bool | None = None
            if upper is not None and upper_dir:
                try:
                    upper.lstat(upper_dir.rstrip("/") + path)
                    on_upper = True
                except RootFSError:
                    on_upper = False
            # on the upper layer: written in the container, whatever its mtime says (`cp -p`, `touch -d`,
            # `docker cp` keep an old one); mtime is the gate only where there is no upper layer to look at
            if on_upper is False or (on_upper is None and info.st_mtime <= cutoff):
                continue
            digest, used = _sha256(rootfs, path, budget)
            budget -= used
            found.append(
                NewExecutable(
                    path=path,
                    mtime=datetime.fromtimestamp(info.st_mtime, UTC),
                    mtime_ns=info.st_mtime_ns,
                    size=info.st_size,
                    sha256=digest,
                    on_upper_layer=on_upper,
                )
            )
    return found


def filesystem_drift_event(
    ctx: EventContext, found: Sequence[NewExecutable], *, when: datetime, since: datetime, since_source: str
) -> RuntimeEvent:
    evidence = [
        Evidence(
            signal="drift.filesystem",
            value=f"{f.path} mtime={f.mtime.isoformat()} size={f.size} upperLayer="
            + {True: "yes", False: "no", None: "unknown"}[f.on_upper_layer]
            + (" mtimeBeforeBaseline=yes" if f.mtime <= since else ""),
        )
        for f in found
    ]
    evidence.append(Evidence(signal="drift.filesystem.baseline", value=f"{since_source}={since.isoformat()}"))
    evidence += [
        Evidence(signal="drift.filesystem.hash-skipped", value=f.path) for f in found if f.sha256 is None
    ]
    return ctx.event(
        EventKind.DRIFT,
        when=when,
        delta=RuntimeDelta(
            baseline_image_digest=ctx.image_digest,
            changed_files=[f.path for f in found],
            new_binaries=[NewBinary(path=f.path, sha256=f.sha256) for f in found],
        ),
        evidence=evidence,
    )


# --------------------------------------------------------------------------------------------- library


def detect_library_drift(
    loaded: Iterable[str],
    usage: Collection[str] | None,
    reported: Collection[str] = (),
    *,
    root: RootFS | None = None,
) -> list[str]:
    """Loaded DSO paths absent from the usage view (None: no view known, nothing can be said).

    Paths are compared as the backend catalog compares them (:func:`~zastava.contracts.paths.path_aliases`:
    ``/lib/x`` ≡ ``/usr/lib/x``); with ``root``, also as resolved through the container's symlinks (a
    ``/usr/lib/libfoo.so.1`` → ``libfoo.so.1.2.3`` link, a symlinked library directory), and only ELF shared
    objects count (``ET_DYN``: not ``/dev/zero``, fonts, locale archives or data files a program maps)."""
    if usage is None:
        return []
    known = {alias for p in usage for alias in path_aliases(p)}
    out: list[str] = []
    for path in loaded:
        norm = normalise_path(path)
        if norm in reported or norm in out:
            continue
        names = set(path_aliases(norm))
        if root is not None:
            try:
                names.update(path_aliases(root.resolve(norm)))
            except RootFSError:
                pass
        if names & known:
            continue
        if root is not None and not _is_shared_object(root, norm):
            continue
        out.append(norm)
    return out


def _is_shared_object(root: RootFS, path: str) -> bool:
    """An ELF file of type ET_DYN (a shared object, or a PIE executable) inside the container's root."""
    try:
        head = root.read_bytes(path, 18)
    except RootFSError:
        return False
    if len(head) < 18 or head[:4] != b"\x7fELF":
        return False
    return int.from_bytes(head[16:18], "little" if head[5] == 1 else "big") == 3  # e_type == ET_DYN


#: mapped paths that are never a library: devices, SysV shared memory, memfds and anonymous names
_NOT_FILES = ("/dev/", "/SYSV", "/memfd:", "/proc/", "/sys/")


def mapped_files(procfs: str, pid: int, *, max_entries: int = 65_536) -> list[str]:
    """Distinct file paths mapped by ``pid`` (container paths from ``/proc/<pid>/maps``), in order; deleted
    files (their name is no longer theirs), devices (``/dev/zero``, ``/dev/shm/*``), SysV segments and the
    process's own executable are left out."""
    raw = _read(f"{procfs}/{pid}/maps", 16 << 20)
    if not raw:
        return []
    # the process's own program is no library (a PIE executable is ET_DYN too): process drift judges it
    # (the services suite: nginx, cron, bash, initdb … were all "libraries not in the SBOM" without this)
    exe = _readlink(f"{procfs}/{pid}/exe")
    seen: dict[str, None] = {}
    for line in raw.decode("utf-8", "replace").splitlines()[:max_entries]:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            path = parts[5]
            if path.endswith(" (deleted)") or path.startswith(_NOT_FILES) or path == exe:
                continue
            seen.setdefault(path, None)
    return list(seen)


def library_drift_event(ctx: EventContext, paths: Sequence[str], *, when: datetime, pid: int) -> RuntimeEvent:
    return ctx.event(
        EventKind.DRIFT,
        when=when,
        delta=RuntimeDelta(baseline_image_digest=ctx.image_digest, changed_files=list(paths)),
        evidence=[Evidence(signal="drift.library", value=f"pid={pid} {p} not in usage SBOM") for p in paths],
    )


# --------------------------------------------------------------------------------------------- network


@dataclass(frozen=True, slots=True)
class Listener:
    proto: str
    address: str
    port: int
    inode: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.proto, self.port)


def _ipv4(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)[::-1]
    return ".".join(str(b) for b in raw)


def _ipv6(hex_addr: str) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def listening_sockets(procfs: str, pid: int, *, max_lines: int = 65_536) -> list[Listener]:
    """Listening TCP sockets of the network namespace of ``pid``."""
    out: list[Listener] = []
    for proto, decode in (("tcp", _ipv4), ("tcp6", _ipv6)):
        raw = _read(f"{procfs}/{pid}/net/{proto}", 16 << 20)
        if not raw:
            continue
        for line in raw.decode("ascii", "replace").splitlines()[1 : max_lines + 1]:
            parts = line.split()
            if len(parts) < 10 or parts[3] != "0A":
                continue
            address, _, port = parts[1].partition(":")
            try:
                out.append(Listener(proto, decode(address), int(port, 16), int(parts[9])))
            except ValueError:
                continue
    return out


def shares_host_network(procfs: str, pid: int) -> bool:
    """True when the process lives in the network namespace of the host's pid 1."""
    mine, host = _readlink(f"{procfs}/{pid}/ns/net"), _readlink(f"{procfs}/1/ns/net")
    return mine is not None and mine == host


def detect_network_drift(
    listeners: Iterable[Listener], allowed_ports: Collection[int], reported: Collection[tuple[str, int]] = ()
) -> list[Listener]:
    out: list[Listener] = []
    for listener in listeners:
        if listener.port in allowed_ports or listener.key in reported or listener in out:
            continue
        out.append(listener)
    return out


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def network_drift_event(
    ctx: EventContext, found: Sequence[Listener], *, when: datetime, pid: int
) -> RuntimeEvent:
    return ctx.event(
        EventKind.DRIFT,
        when=when,
        delta=RuntimeDelta(baseline_image_digest=ctx.image_digest),
        evidence=[
            Evidence(
                signal="drift.network",
                value=f"pid={pid} {x.proto} {_hostport(x.address, x.port)} listening (inode {x.inode})",
            )
            for x in found
        ],
    )
