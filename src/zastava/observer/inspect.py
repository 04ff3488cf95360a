"""One sample of a live process: its exe, build-id, loaded objects with sha256, and container identity.

:func:`inspect_process` is synchronous (the agent runs it in a worker thread) and bounded: at most
``max_libs`` objects are hashed and at most ``max_hash_bytes`` bytes per call; every object that is not hashed
is named in the evidence with the reason. Files are read through ``/proc/<pid>/map_files/<range>`` (the mapped
file itself, even when deleted) and, where that is not permitted, through
:class:`~zastava.observer.rootfs.RootFS` on ``/proc/<pid>/root`` (symlinks resolved inside the container root)
with the inode checked against ``maps``.

A process is identified by (pid, start time): a PID that vanishes or is reused mid-sample is re-sampled once,
then reported ``partial`` (spec §12). Command-line arguments and the environment are exported only with
``diagnostic=True`` (spec §7); otherwise ``process.entrypoint`` holds the program (argv[0]) alone.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zastava.contracts import Evidence, LoadedLib, Process
from zastava.telemetry.metrics import ZastavaMetrics

from .elf import BuildIdResult, read_build_id
from .hashing import FileChanged, FileKey, FileTooLarge, HashCache, file_key, sha256_fd
from .procfs import (
    ContainerIdentity,
    MappedObject,
    ProcessGone,
    ProcStat,
    parse_cgroup,
    parse_cmdline,
    parse_stat,
    read_proc_file,
    scan_maps,
)
from .rootfs import RootFS, RootFSError

__all__ = ["MAX_LISTED_OBJECTS", "Inspection", "ProcessGone", "inspect_process"]

#: Objects listed in ``loadedLibs`` at most (those past ``max_libs`` are listed without sha256).
MAX_LISTED_OBJECTS = 4096
#: Paths named in one evidence value at most (the value is also cut to the contract's 8192 characters).
_MAX_NAMED = 64
_EVIDENCE_MAX = 8192
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
#: Threads hashing one sample at most (``hash_threads`` is clamped to it).
_MAX_HASH_THREADS = 8


@dataclass
class Inspection:
    """The result of one sample. ``wire()`` gives the ``process``/``loadedLibs``/``evidence`` parts of a
    runtime event exactly as sent."""

    process: Process
    loaded_libs: list[LoadedLib]
    evidence: list[Evidence]
    identity: ContainerIdentity | None
    exe_path: str | None
    partial: bool
    #: bytes actually read and hashed by this call (cache hits excluded)
    hashed_bytes: int = 0
    #: objects whose sha256 came from the cache
    cache_hits: int = 0
    #: full argv and environment, only filled with ``diagnostic=True``
    argv: list[str] = field(default_factory=list)

    @property
    def start_time(self) -> int | None:
        return self.process.start_time

    def wire(self) -> dict[str, Any]:
        return {
            "process": self.process.wire(),
            "loadedLibs": [lib.wire() for lib in self.loaded_libs],
            "evidence": [e.wire() for e in self.evidence],
        }


#: (path, inode from maps, file key): a lib with this key is the same ``LoadedLib`` as in the previous sample
LibKey = tuple[str, int, FileKey]


@dataclass(frozen=True, slots=True)
class PreviousSample:
    """What one sample of a process leaves in the :class:`HashCache` for the next one to diff against."""

    #: the maps text as read (compared byte for byte: ~10 µs for 130 KB, where hashing it costs ~0.1 ms)
    maps: bytes
    exe_path: str | None
    #: the objects of ``maps`` in sample order (the program first); never mutated once scanned
    objects: tuple[MappedObject, ...]
    mappings: int
    #: the hashed objects of that sample
    libs: dict[LibKey, LoadedLib]
    #: the whole outcome of that sample's objects when a ``stat`` of each one can confirm it (see
    #: :class:`Replay`), else None
    replay: Replay | None = None
    #: the executable lines of ``maps`` (:func:`_exec_lines`), once a sample needed them
    exec_lines: list[bytes] | None = None


def _exec_lines(maps: bytes) -> list[bytes]:
    """The lines of a maps text whose mapping is executable, as they are: the objects of a sample are made
    from these lines alone (``procfs.scan_maps``), so equal lists mean equal objects whatever the other
    mappings (heap, stacks, anonymous memory) did. ~0.5 ms for 1,300 lines, where a scan costs ~2 ms."""
    out: list[bytes] = []
    for line in maps.split(b"\n"):
        perms = line.find(b" ") + 3  # "start-end rwxp …": the third permission character
        if line[perms : perms + 1] == b"x":
            out.append(line)
    return out


def _count_lines(maps: bytes) -> int:
    return maps.count(b"\n") + (1 if maps and not maps.endswith(b"\n") else 0)


@dataclass(frozen=True, slots=True)
class Replay:
    """A sample's outcome for its objects, valid again while the maps text, the caps, the program file and the
    file key of every object within ``max_libs`` are unchanged: then a warm sample is one ``stat`` per object
    and a tuple comparison (256 objects: ~1 ms of ``stat`` through ``map_files``; the general loop, which also
    looks each object up and builds its row, cost ~1 ms more)."""

    max_libs: int
    max_hash_bytes: int
    #: ``map_files`` name and file key of every object within ``max_libs``, in sample order
    checks: tuple[tuple[str, FileKey], ...]
    loaded_libs: tuple[LoadedLib, ...]
    #: the evidence the objects gave: caps and unreadable objects, then (after the ``procfs.maps`` summary,
    #: made anew with the sample's mapping count) deleted and memfd objects
    evidence: tuple[Evidence, ...]
    tail: tuple[Evidence, ...]
    #: file key of ``/proc/<pid>/exe`` and the build-id read from it
    exe_key: FileKey | None
    build: BuildIdResult


def _clip(value: str) -> str:
    return value if len(value) <= _EVIDENCE_MAX else value[: _EVIDENCE_MAX - 1] + "…"


def _named(paths: list[str]) -> str:
    shown = ", ".join(paths[:_MAX_NAMED])
    if len(paths) > _MAX_NAMED:
        shown += f", … and {len(paths) - _MAX_NAMED} more"
    return shown


class _Sampler:
    """One attempt. Steps that fail because the process went away leave ``gone`` set; the rest still count."""

    def __init__(
        self,
        pid: int,
        procfs: str,
        *,
        max_libs: int,
        max_hash_bytes: int,
        cache: HashCache | None,
        diagnostic: bool,
        hash_threads: int = 1,
    ) -> None:
        self.pid = pid
        self.hash_threads = hash_threads
        self.base = f"{procfs.rstrip('/') or ''}/{pid}"
        self.max_libs = max_libs
        self.max_hash_bytes = max_hash_bytes
        self.cache = cache
        self.diagnostic = diagnostic
        self.evidence: list[Evidence] = []
        self.gone: str | None = None
        self.unreadable: str | None = None
        self.map_files_ok = True
        self.map_files_fd: int | None = None
        self.map_files_denied: str | None = None
        self.rootfs = RootFS(f"{self.base}/root")
        self.hashed_bytes = 0
        self.cache_hits = 0
        #: the previous sample's libs by identity (a warm sample reuses them after one ``stat`` each)
        self.previous_libs: dict[LibKey, LoadedLib] = {}
        #: this sample's hashed libs, for the next one
        self.hashed_libs: dict[LibKey, LoadedLib] = {}
        #: (map_files name, file key) of each object within max_libs; None once an object's outcome cannot be
        #: confirmed again by a ``stat`` alone (read through the container root, or not hashed for a reason)
        self.checks: list[tuple[str, FileKey]] | None = []
        #: full ``stat`` of ``/proc/<pid>/exe`` at the start of the sample
        self.exe_info: os.stat_result | None = None

    def note(self, signal: str, value: str) -> None:
        self.evidence.append(Evidence(signal=signal, value=_clip(value)))

    # ---------------------------------------------------------------------------------------- reads

    def stat(self) -> ProcStat:
        data, _ = read_proc_file(f"{self.base}/stat", 4096)
        try:
            return parse_stat(data.decode("utf-8", "replace"))
        except ValueError as exc:
            raise ProcessGone(errno.ESRCH, str(exc), f"{self.base}/stat") from None

    def exe_identity(self) -> tuple[int, int] | None:
        try:
            info = os.stat(f"{self.base}/exe")  # noqa: PTH116 - hot path; pathlib costs µs
        except OSError:
            return None
        if self.exe_info is None:
            self.exe_info = info
        return info.st_dev, info.st_ino

    def exe_path(self) -> str | None:
        try:
            target = str(Path(f"{self.base}/exe").readlink())
        except FileNotFoundError:
            return None  # kernel thread, zombie, or gone (the caller checks which)
        except PermissionError as exc:
            self.note("procfs.exe", f"exe link not readable: {exc.strerror}")
            return None
        return target.removesuffix(" (deleted)")

    def build_id(self, exe_path: str | None, exe_inode: int | None) -> BuildIdResult:
        """Build-id of ``/proc/<pid>/exe``; without access to that link, of the program read through the
        container root, provided its inode is the one mapped."""
        try:
            fd = os.open(f"{self.base}/exe", _OPEN_FLAGS)
        except FileNotFoundError:
            return BuildIdResult(None, "unreadable", "no executable (kernel thread or exited)")
        except OSError as exc:
            if exe_path is None:
                return BuildIdResult(None, "unreadable", exc.strerror or str(exc))
            try:  # no ptrace access to /proc/<pid>/exe: read the program inside the container root
                fd, info, _ = self.rootfs.open_regular(exe_path)
            except RootFSError as inner:
                return BuildIdResult(None, "unreadable", inner.strerror or str(inner))
            if exe_inode is None or info.st_ino != exe_inode:
                os.close(fd)
                return BuildIdResult(None, "unreadable", "the path no longer names the mapped program")
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return BuildIdResult(None, "unreadable", "executable is not a regular file")
            return read_build_id(fd)
        finally:
            os.close(fd)

    # -------------------------------------------------------------------------------------- hashing

    def _map_files_dir(self) -> int | None:
        """An fd of ``/proc/<pid>/map_files`` (opened once per sample), or None when it is unavailable."""
        if self.map_files_fd is None and self.map_files_ok:
            try:
                self.map_files_fd = os.open(
                    f"{self.base}/map_files", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                )
            except FileNotFoundError:
                self.map_files_ok = False  # kernel without map_files, a procfs copy, or the process is gone
                self.map_files_denied = "no map_files directory"
            except OSError as exc:
                self.map_files_ok = False
                self.map_files_denied = exc.strerror or str(exc)
        return self.map_files_fd

    def close(self) -> None:
        if self.map_files_fd is not None:
            os.close(self.map_files_fd)
            self.map_files_fd = None

    def _locate(self, obj: MappedObject) -> tuple[str | None, int | None, os.stat_result] | str:
        """(map_files name, None, stat) — or (None, open fd, stat) when read through the container root —
        of the mapped file; or the reason it cannot be read. A warm sample needs nothing but this ``stat``."""
        directory = self._map_files_dir()
        if directory is not None:
            try:
                info = os.stat(obj.range, dir_fd=directory)  # follows the magic link to the mapped file
            except FileNotFoundError:
                return "mapping is gone (unmapped, or the process exited)"
            except PermissionError as exc:
                self.map_files_ok = False
                self.map_files_denied = exc.strerror or "permission denied"
                self.close()
            except OSError as exc:
                return f"map_files: {exc.strerror or exc}"
            else:
                if not stat.S_ISREG(info.st_mode):
                    return "not a regular file"  # never open a device or FIFO
                return obj.range, None, info
        if obj.kind != "file":
            return f"{obj.kind} object is reachable only through map_files ({self.map_files_denied})"
        try:
            fd, info, _resolved = self.rootfs.open_regular(obj.path)
        except RootFSError as exc:
            return f"not found in the container root: {exc.strerror or exc}"
        if info.st_ino != obj.inode:
            os.close(fd)
            return f"path now names another file (inode {info.st_ino}, mapped inode {obj.inode})"
        return None, fd, info

    def libs(self, objects: list[MappedObject]) -> list[LoadedLib]:
        listed = objects[:MAX_LISTED_OBJECTS]
        if len(objects) > len(listed):
            self.note(
                "procfs.maps.cap",
                f"{len(objects)} mapped objects; the first {len(listed)} are listed",
            )
        hits = self.cache_hits
        judged = self._judge(listed, parallel=self.hash_threads > 1)
        if judged is None:  # see _judge: judged again on this thread alone, from the same state
            self.hashed_libs, self.checks, self.cache_hits = {}, [], hits
            judged = self._judge(listed, parallel=False)
            assert judged is not None
        out, over_libs, over_bytes, failed = judged
        if over_libs:
            self.note(
                "hash.cap.maxLibs",
                f"maxLibs={self.max_libs}: {len(over_libs)} of {len(listed)} objects not hashed: "
                + _named(over_libs),
            )
        if over_bytes:
            total = sum(size for _, size in over_bytes)
            self.note(
                "hash.cap.maxHashBytes",
                f"maxHashBytes={self.max_hash_bytes}: {len(over_bytes)} objects ({total} bytes) "
                f"not hashed: " + _named([f"{path} ({size} bytes)" for path, size in over_bytes]),
            )
        if failed:
            failed.sort()
            self.note(
                "hash.unreadable",
                f"{len(failed)} objects not hashed: " + _named([text for _, text in failed]),
            )
        if self.map_files_denied is not None:
            self.checks = None
            self.note(
                "procfs.map_files",
                f"map_files unavailable ({self.map_files_denied}); objects read through the container root",
            )
        return out

    def _judge(
        self, listed: list[MappedObject], *, parallel: bool
    ) -> tuple[list[LoadedLib], list[str], list[tuple[str, int]], list[tuple[int, str]]] | None:
        """(libs, objects past maxLibs, (path, size) past the byte budget, (index, reason) not hashed).

        In order: the caps are first fit, and a file that cannot be read leaves its bytes to the next ones.
        With ``parallel`` the reads of files missing from the cache are handed to the hash threads and judged
        once all are read; the budget was planned as if each succeeds, which is exact unless a read failed and
        an object after it was over the budget (it might fit now): then None, and the caller judges again on
        one thread."""
        out: list[LoadedLib] = []
        over_libs: list[str] = []
        over_bytes: list[tuple[str, int]] = []
        failed: list[tuple[int, str]] = []
        budget = self.max_hash_bytes
        #: reads handed to the hash threads (map_files objects missing from the cache), in sample order
        jobs: list[_Job] = []
        over_after_job = False
        for index, obj in enumerate(listed):
            path = obj.path
            if index >= self.max_libs:
                over_libs.append(path)
                out.append(LoadedLib(path=path, inode=obj.inode))
                continue
            located = self._locate(obj)
            if isinstance(located, str):
                failed.append((index, f"{path}: {located}"))
                out.append(LoadedLib(path=path, inode=obj.inode))
                self.checks = None
                continue
            link, fd, info = located
            checks = self.checks
            if checks is not None:
                if link is None:
                    self.checks = None
                else:
                    checks.append((link, file_key(info)))
            lib_key = (path, obj.inode, file_key(info))
            try:
                if info.st_size > budget:
                    over_bytes.append((path, info.st_size))
                    out.append(LoadedLib(path=path, inode=obj.inode))
                    over_after_job = over_after_job or bool(jobs)
                    continue
                same = self.previous_libs.get(lib_key)
                if same is not None:  # unchanged since the previous sample: the stat was all the work
                    self.cache_hits += 1
                    budget -= info.st_size
                    out.append(same)
                    self.hashed_libs[lib_key] = same
                    continue
                digest = self._cached(info)
                if digest is None:
                    if parallel and link is not None:
                        out.append(LoadedLib(path=path, inode=obj.inode))  # replaced once read
                        jobs.append(_Job(index, lib_key, link, info, budget))
                        budget -= info.st_size  # planned as read; see the docstring
                        continue
                    digest = self._digest(link, fd, info, budget)
            finally:
                if fd is not None:
                    os.close(fd)
            if digest.startswith("!"):
                failed.append((index, f"{path}: {digest[1:]}"))
                out.append(LoadedLib(path=path, inode=obj.inode))
                self.checks = None
                continue
            budget -= info.st_size  # cached or not: the outcome must not depend on cache state
            lib = LoadedLib(path=path, inode=obj.inode, sha256=digest)
            out.append(lib)
            self.hashed_libs[lib_key] = lib
        if not jobs:
            return out, over_libs, over_bytes, failed
        results = _read_all(self.map_files_fd, jobs, self.hash_threads)
        unread = False
        for job in jobs:
            digest, read = results[job.index]
            self.hashed_bytes += read
            if digest.startswith("!"):
                unread = True
            elif self.cache is not None:
                self.cache.put(file_key(job.info), digest)
        if unread and over_after_job:
            return None
        for job in jobs:
            digest, _ = results[job.index]
            if digest.startswith("!"):
                failed.append((job.index, f"{job.key[0]}: {digest[1:]}"))
                self.checks = None
                continue
            lib = LoadedLib(path=job.key[0], inode=job.key[1], sha256=digest)
            out[job.index] = lib
            self.hashed_libs[job.key] = lib
        return out, over_libs, over_bytes, failed

    def replay(self, replay: Replay) -> bool:
        """True when every object of ``replay`` still has its file key (one ``stat`` each through
        ``map_files``): the previous outcome is then this sample's. False on the first difference or error;
        the caller then runs the general path, which judges that object again."""
        directory = self._map_files_dir()
        if directory is None:
            return False
        stat_ = os.stat
        try:
            for name, key in replay.checks:
                info = stat_(name, dir_fd=directory)
                if (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns) != key:
                    return False
        except OSError:
            return False
        self.cache_hits += len(replay.checks)
        return True

    def _cached(self, info: os.stat_result) -> str | None:
        if self.cache is None:
            return None
        cached = self.cache.get(file_key(info))
        if cached is not None:
            self.cache_hits += 1
        return cached

    def _digest(self, link: str | None, fd: int | None, info: os.stat_result, budget: int) -> str:
        """Hex digest of a file missing from the cache (read now), or ``"!reason"``."""
        if fd is None:
            assert link is not None
            digest, read = _read_link(self.map_files_fd, link, info, budget)
        else:
            digest, read = _read_fd(fd, info, budget)
        if not digest.startswith("!"):
            self.hashed_bytes += read
            if self.cache is not None:
                self.cache.put(file_key(info), digest)
        return digest


@dataclass(frozen=True, slots=True)
class _Job:
    """One object to read: its place in the sample, identity, ``map_files`` name, stat and the byte budget
    left when it was planned."""

    index: int
    key: LibKey
    link: str
    info: os.stat_result
    budget: int


def _read_link(directory: int | None, link: str, info: os.stat_result, budget: int) -> tuple[str, int]:
    """(hex digest or ``"!reason"``, bytes read) of the file behind a ``map_files`` name."""
    assert directory is not None
    try:
        fd = os.open(link, _OPEN_FLAGS, dir_fd=directory)
    except FileNotFoundError:
        return "!mapping is gone (unmapped, or the process exited)", 0
    except OSError as exc:
        return f"!open failed: {exc.strerror or exc}", 0
    try:
        return _read_fd(fd, info, budget)
    finally:
        os.close(fd)


def _read_fd(fd: int, info: os.stat_result, budget: int) -> tuple[str, int]:
    key = file_key(info)
    try:
        current = os.fstat(fd)
        # dev/ino may differ between the two views of an overlayfs file; size and times may not
        if not stat.S_ISREG(current.st_mode) or key[2:] != file_key(current)[2:]:
            return f"!file changed between stat and open ({key} != {file_key(current)})", 0
        return sha256_fd(fd, limit=budget, info=current)
    except FileTooLarge as exc:
        return f"!{exc}", 0
    except FileChanged as exc:
        return f"!{exc.strerror}", 0
    except OSError as exc:
        return f"!read failed: {exc.strerror or exc}", 0


#: Threads that read and hash for samples besides the sampling thread itself; shared by all samples (the
#: agent samples several containers at once) and started on first use.
_HELPERS: ThreadPoolExecutor | None = None
_HELPERS_LOCK = threading.Lock()
#: Below this many bytes to read a sample hashes on its own thread: handing work over costs ~50 µs.
_PARALLEL_MIN_BYTES = 1 << 20


def _helpers() -> ThreadPoolExecutor:
    global _HELPERS  # one lazily started pool per process
    with _HELPERS_LOCK:
        if _HELPERS is None:
            _HELPERS = ThreadPoolExecutor(
                max_workers=_MAX_HASH_THREADS - 1, thread_name_prefix="zastava-hash"
            )
        return _HELPERS


def _read_all(directory: int | None, jobs: list[_Job], threads: int) -> dict[int, tuple[str, int]]:
    """Read every job, on this thread and ``threads - 1`` helpers pulling from one queue (sha256 and
    ``preadv`` release the GIL, so two cores hash at once). Helpers busy with another sample simply find the
    queue empty when they get to it; this thread never waits for work it could do itself."""
    results: dict[int, tuple[str, int]] = {}
    queue = iter(jobs)  # next() on a list iterator is atomic under the GIL

    def drain() -> None:
        for job in queue:
            results[job.index] = _read_link(directory, job.link, job.info, job.budget)

    helpers = []
    if threads > 1 and len(jobs) > 1 and sum(job.info.st_size for job in jobs) >= _PARALLEL_MIN_BYTES:
        pool = _helpers()
        helpers = [pool.submit(drain) for _ in range(min(threads, _MAX_HASH_THREADS) - 1)]
    drain()
    for helper in helpers:
        if not helper.cancel():  # a helper still busy with another sample is not waited for
            helper.result()
    return results


@dataclass
class _Attempt:
    stat: ProcStat
    exe_id: tuple[int, int] | None
    inspection: Inspection


def _sample_objects(
    sampler: _Sampler, maps_text: bytes, exe_path: str | None
) -> tuple[BuildIdResult, list[LoadedLib]]:
    """Build-id of the program and the loaded objects of one sample; the previous sample of the process (in
    the cache) makes a warm sample of an unchanged process one ``stat`` per object."""
    pid = sampler.pid
    cache = sampler.cache
    remembered = cache.previous(pid) if cache is not None else None
    previous = remembered if isinstance(remembered, PreviousSample) else None
    same_program = previous is not None and previous.exe_path == exe_path
    same_text = same_program and previous is not None and previous.maps == maps_text
    exec_lines: list[bytes] | None = None
    same_maps = same_text
    if same_program and not same_text:  # other mappings may have changed: are the executable ones the same?
        assert previous is not None
        exec_lines = _exec_lines(maps_text)
        same_maps = exec_lines == (
            previous.exec_lines if previous.exec_lines is not None else _exec_lines(previous.maps)
        )
    exe_info = sampler.exe_info
    exe_key = file_key(exe_info) if exe_info is not None else None
    replay = previous.replay if previous is not None and same_maps else None
    if (
        replay is not None
        and replay.max_libs == sampler.max_libs
        and replay.max_hash_bytes == sampler.max_hash_bytes
        and replay.exe_key is not None
        and replay.exe_key == exe_key
    ):
        try:
            replayed = sampler.replay(replay)
        finally:
            sampler.close()
        if replayed:  # nothing changed: the previous outcome, confirmed by one stat per object
            assert previous is not None and cache is not None
            mappings = previous.mappings if same_text else _count_lines(maps_text)
            sampler.evidence.extend(replay.evidence)
            sampler.note("procfs.maps", f"pid={pid} mappings={mappings} objects={len(previous.objects)}")
            sampler.evidence.extend(replay.tail)
            if not same_text:  # the next sample compares with this text
                cache.remember(
                    pid,
                    dataclasses.replace(previous, maps=maps_text, mappings=mappings, exec_lines=exec_lines),
                )
            return replay.build, list(replay.loaded_libs)
    if same_maps:
        assert previous is not None
        objects = list(previous.objects)  # the same executable lines: the same objects
        mappings = previous.mappings if same_text else _count_lines(maps_text)
    else:
        scan = scan_maps(maps_text.decode("utf-8", "surrogateescape"))
        objects, mappings = scan.objects, scan.mappings
        if exe_path is not None:  # the program first, then the shared objects in address order
            objects.sort(key=lambda o: o.path != exe_path)
    if previous is not None:
        sampler.previous_libs = previous.libs
    exe_inode = next((o.inode for o in objects if o.path == exe_path), None)
    build = sampler.build_id(exe_path, exe_inode)
    noted = len(sampler.evidence)
    try:
        libs = sampler.libs(objects)
    finally:
        sampler.close()
    lib_notes = len(sampler.evidence)
    sampler.note(
        "procfs.maps",
        f"pid={pid} mappings={mappings} objects={len(objects)}",
    )
    for obj in objects:
        if obj.kind in ("deleted", "memfd"):
            sampler.note(f"procfs.maps.{obj.kind}", f"{obj.path}@0x{obj.start:x}")
    if cache is not None:
        checks = sampler.checks
        cache.remember(
            pid,
            PreviousSample(
                maps_text,
                exe_path,
                tuple(objects),
                mappings,
                sampler.hashed_libs,
                None
                if checks is None or exe_key is None
                else Replay(
                    sampler.max_libs,
                    sampler.max_hash_bytes,
                    tuple(checks),
                    tuple(libs),
                    tuple(sampler.evidence[noted:lib_notes]),
                    tuple(sampler.evidence[lib_notes + 1 :]),
                    exe_key,
                    build,
                ),
                exec_lines,
            ),
        )
    return build, libs


def _sample_once(sampler: _Sampler, first: ProcStat) -> _Attempt:
    pid = sampler.pid
    exe_id = sampler.exe_identity()
    identity: ContainerIdentity | None = None
    argv: list[str] = []
    exe_path: str | None = None
    build = BuildIdResult(None, "unreadable", "not read")
    libs: list[LoadedLib] = []
    step = "cgroup"
    try:
        cgroup, _ = read_proc_file(f"{sampler.base}/cgroup", 1 << 20)
        identity = parse_cgroup(cgroup.decode("utf-8", "replace"))
        step = "cmdline"
        raw_argv, _ = read_proc_file(f"{sampler.base}/cmdline", 1 << 20)
        argv = parse_cmdline(raw_argv)
        exe_path = sampler.exe_path()
        step = "maps"
        maps_text, truncated = read_proc_file(f"{sampler.base}/maps")
        if truncated:
            sampler.note("procfs.maps.cap", f"maps larger than {len(maps_text)} bytes; the rest was not read")
        build, libs = _sample_objects(sampler, maps_text, exe_path)
    except ProcessGone as exc:
        sampler.gone = exc.strerror or "process exited"
    except OSError as exc:  # e.g. no ptrace access to another user namespace's process
        sampler.unreadable = f"{step}: {exc.strerror or exc}"
        sampler.note("procfs.unreadable", f"{sampler.base}/{sampler.unreadable}")
    if exe_path is None and sampler.gone is None:
        if first.kernel_thread:
            sampler.note("procfs.exe", "no executable (kernel thread)")
        elif first.zombie:
            sampler.note("procfs.exe", "no executable (zombie: exited, not yet reaped)")
    if build.status == "absent":
        sampler.note("elf.build_id.absent", f"{exe_path or '<exe>'}: {build.detail}")
    elif not build.ok and exe_path is not None:
        sampler.note(f"elf.build_id.{build.status}", f"{exe_path}: {build.detail}")
    program = argv[:1] or ([exe_path] if exe_path else [])
    if sampler.diagnostic:  # argv goes into process.entrypoint; the environment into evidence (JSON list)
        try:
            env, _ = read_proc_file(f"{sampler.base}/environ", 1 << 20)
            sampler.note("diagnostic.environ", json.dumps(parse_cmdline(env), ensure_ascii=False))
        except (ProcessGone, OSError) as exc:
            sampler.note("diagnostic.environ", f"not readable: {exc}")
    process = Process(
        pid=pid,
        entrypoint=argv if sampler.diagnostic else program,
        build_id=build.build_id,
        start_time=first.start_time,
    )
    inspection = Inspection(
        process=process,
        loaded_libs=libs,
        evidence=sampler.evidence,
        identity=identity,
        exe_path=exe_path,
        partial=False,
        hashed_bytes=sampler.hashed_bytes,
        cache_hits=sampler.cache_hits,
        argv=argv if sampler.diagnostic else [],
    )
    return _Attempt(first, exe_id, inspection)


def inspect_process(
    pid: int,
    *,
    procfs: str = "/proc",
    max_libs: int = 256,
    max_hash_bytes: int = 64_000_000,
    cache: HashCache | None = None,
    metrics: ZastavaMetrics | None = None,
    diagnostic: bool = False,
    expect_start_time: int | None = None,
    hash_threads: int = 1,
) -> Inspection:
    """Sample process ``pid`` as seen in ``procfs``.

    Raises :class:`ProcessGone` when the process does not exist at the start (or its start time differs from
    ``expect_start_time``: the PID was reused). A process that exits or execs mid-sample is sampled once more;
    if that is not consistent either, the result is ``partial`` with a ``procfs.partial`` evidence entry.

    Caps: the first ``max_libs`` objects (the program first, then address order) are hashed while their sizes
    fit in ``max_hash_bytes`` (first fit); a file served from ``cache`` counts against the budget too, so the
    event never depends on the cache's state. Objects past the caps are listed without ``sha256`` and named in
    ``hash.cap.*`` evidence. ``metrics`` gets ``proc_maps_samples{result=ok|partial|error|gone}`` and the
    bytes actually read in ``hash_bytes``.

    ``hash_threads`` > 1 reads the files missing from the cache on that many threads (this one and helpers
    shared by all samples, at most 8) when there is at least 1 MiB to read; the result is the same as on one
    thread.
    """
    if max_libs < 0 or max_hash_bytes < 0:
        raise ValueError("max_libs and max_hash_bytes must not be negative")
    if hash_threads < 1:
        raise ValueError("hash_threads must be at least 1")

    def sampler() -> _Sampler:
        return _Sampler(
            pid,
            procfs,
            max_libs=max_libs,
            max_hash_bytes=max_hash_bytes,
            cache=cache,
            diagnostic=diagnostic,
            hash_threads=min(hash_threads, _MAX_HASH_THREADS),
        )

    try:
        first = sampler().stat()
    except ProcessGone:
        if metrics is not None:
            metrics.proc_maps_samples.labels(result="gone").inc()
        raise
    if expect_start_time is not None and first.start_time != expect_start_time:
        if metrics is not None:
            metrics.proc_maps_samples.labels(result="gone").inc()
        raise ProcessGone(
            errno.ESRCH, f"pid {pid} now has start time {first.start_time}, not {expect_start_time}"
        )
    hashed = 0
    reasons: list[str] = []
    attempt: _Attempt | None = None
    reason: str | None = None
    for round_ in range(2):
        current = sampler()
        attempt = _sample_once(current, first)
        hashed += attempt.inspection.hashed_bytes
        reason = _inconsistency(current, first, attempt)
        if reason is None:
            break
        reasons.append(reason)
        if round_ == 0:
            try:
                again = current.stat()
            except ProcessGone:
                break  # gone for good: nothing to retry against
            if again.start_time != first.start_time or again.zombie:
                break  # reused, or exited for good (a zombie has nothing left to sample)
    assert attempt is not None
    result = attempt.inspection
    result.hashed_bytes = hashed
    outcome = "ok"
    if current.unreadable is not None:
        result.partial = True
        outcome = "error"
    if reason is not None:
        result.partial = True
        outcome = "partial"
        result.evidence.append(
            Evidence(
                signal="procfs.partial",
                value=_clip(f"pid={pid}: " + "; then ".join(reasons) + f" (attempts={len(reasons)})"),
            )
        )
    elif reasons:
        result.evidence.append(
            Evidence(signal="procfs.retry", value=_clip(f"pid={pid}: {reasons[0]}; the second sample held"))
        )
    if metrics is not None:
        metrics.proc_maps_samples.labels(result=outcome).inc()
        if hashed:
            metrics.hash_bytes.inc(hashed)
    return result


def _inconsistency(current: _Sampler, first: ProcStat, attempt: _Attempt) -> str | None:
    """Why the attempt does not describe one process image, or None when it does."""
    if current.gone is not None:
        return f"process went away mid-sample ({current.gone})"
    try:
        now = current.stat()
    except ProcessGone:
        return "process exited during the sample"
    if now.start_time != first.start_time:
        return f"pid reused during the sample (start time {now.start_time})"
    # an exited process stays a zombie until reaped: its maps and exe are gone, so a sample of it (or one
    # that it left mid-read) lists nothing or only part — never a complete sample of zero libraries
    if first.zombie:
        return "process had exited before the sample (zombie: not yet reaped)"
    if now.zombie:
        return "process exited during the sample (zombie: not yet reaped)"
    if current.exe_identity() != attempt.exe_id:
        return "process executed a new program during the sample"
    return None
