"""Every exec as it happens: the kernel proc connector (``NETLINK_CONNECTOR``, ``CN_IDX_PROC``).

Polling ``/proc`` every few seconds misses a program that lives less than the interval (a ``docker exec`` of
a binary that exits at once, a dropped tool run for 50 ms). The proc connector multicasts one message per
``fork``/``exec``/``exit`` of every process on the host; it needs ``CAP_NET_ADMIN`` in the initial user
namespace (the observer DaemonSet has it; a non-root developer run does not, and falls back to polling).

One reader thread receives the messages and, for each ``PROC_EVENT_EXEC`` of a thread-group leader, reads at
once what drift needs while the process still exists: its pid namespace first (one ``readlink``; a process
outside every watched container costs nothing more), then ``stat`` (ppid, start time), ``exe``, ``comm``,
``cmdline`` (first 4 KiB) and the parent chain up to the container's init or out of the container (at most
:data:`MAX_CHAIN` links). Work is per exec, never per pass. A process already gone when it is read (it lived
less than the ~100 µs between its exec and our read) is still reported, with what could be read (its
pid and the parent chain from the fork that made it), marked ``exited``.

Records go to a bounded queue; a full queue drops the record and counts it (``dropped``, by reason), and a
kernel overflow of the socket buffer (``ENOBUFS``) is counted the same way, as ``kernel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..telemetry.logging import fields
from .procfs import read_ppid_and_start
from .programs import SHELLS, applet_of, is_multi_call

__all__ = [
    "MAX_CHAIN",
    "ExecRecord",
    "ExecSource",
    "ExecSourceUnavailable",
    "Link",
    "probe",
    "read_exec",
]

log = logging.getLogger("zastava.observer.execsource")

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2  # never sent: see ExecSource.close
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_COMM = 0x00000200  # also sent by exec itself (comm := basename of the file exec'd)
PROC_EVENT_EXIT = 0x80000000
NLMSG_DONE = 3
_NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_PROC_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
_HEADER = _NLMSG_HDR.size + _CN_MSG.size  # 36: where proc_event starts
#: links of a parent chain read per exec: deeper trees are cut (and said so) — a container's process tree
#: from init to a worker is 2-6 deep in the images measured (nginx, postgres, s6, supervisord)
MAX_CHAIN = 32
_SWITCH_INTERVAL = 0.001
_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
#: 4 MiB of socket buffer: ~100 000 messages of 40 B, a fork bomb's burst of ~1 s on this 2-core machine
_RCVBUF = 4 << 20


class ExecSourceUnavailable(RuntimeError):
    """The proc connector cannot be used here (no ``CAP_NET_ADMIN``, no netlink, kernel without it)."""


@dataclass(frozen=True, slots=True)
class Link:
    """One ancestor of an exec'd process: host pid and its program (None when unreadable)."""

    pid: int
    exe: str | None
    #: None when the ancestor was gone before it could be read (then nothing is known of where it lived)
    in_container: bool | None
    #: the applet of a multi-call binary (a busybox ``sh`` parent is not a busybox ``crond`` one)
    applet: str | None = None


@dataclass(frozen=True, slots=True)
class ExecRecord:
    """What was read of one exec, at once."""

    pid: int
    pid_ns: str
    start_time: int | None
    ppid: int | None
    exe: str | None
    exe_deleted: bool
    comm: str | None
    applet: str | None
    #: ancestors from the parent up: inside the container until the container's init, or the first one
    #: outside it (the runtime's shim or runc: the process was entered from outside, ``docker exec``)
    chain: tuple[Link, ...] = ()
    #: the process was gone (or a zombie) before its program could be read
    exited: bool = False
    #: for a shell, the script it runs (its first argument that is a path), else None
    script: str | None = None
    monotonic: float = field(default=0.0, compare=False)

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start_time or 0)


#: ancestors tried, through the fork table, for the namespace of an exec whose process and parent are gone
_MAX_GONE_ANCESTORS = 4


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)  # noqa: PTH115 - str in, str out, hot path
    except OSError:
        return None


def _read(path: str, limit: int) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def _exe(procfs: str, pid: int) -> tuple[str | None, bool]:
    exe = _readlink(f"{procfs}/{pid}/exe")
    if exe is not None and exe.endswith(" (deleted)"):
        return exe[: -len(" (deleted)")], True
    return exe, False


def _applet(procfs: str, pid: int, exe: str | None, comm: str | None) -> str | None:
    if exe is None or not is_multi_call(exe):  # only then is the argv needed (bounded reads)
        return None
    raw = _read(f"{procfs}/{pid}/cmdline", 4096) or b""
    argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0")]
    if comm is None:
        comm_raw = _read(f"{procfs}/{pid}/comm", 64)
        comm = comm_raw.decode("utf-8", "replace").strip() if comm_raw else None
    argv = [a for a in argv if a]
    if not argv and (comm == _SELF_EXEC_COMM or is_multi_call(comm)):
        # busybox's shell runs its applets by exec'ing /proc/self/exe with the applet as argv[0], so the
        # kernel names the process "exe"; once it has exited its argv is gone and the applet is unknown
        # (seen once in ~10 runs of the services suite: a health check's applet reported as "busybox exe");
        # likewise `busybox wget` exec'd by its own name (comm "busybox"): not the applet "busybox" (the
        # Debian nginx image's health check, reported as an EXEC of it, 1 run in 3)
        return None
    return applet_of(exe, argv or None, comm)


#: the comm of a process that exec'd ``/proc/self/exe`` (the basename of the path exec'd)
_SELF_EXEC_COMM = "exe"


def _script(procfs: str, pid: int, exe: str | None, applet: str | None) -> str | None:
    """The script a shell runs: its first argument, when that is a path (``sh /jobs/x.sh``; a script run by
    its shebang shows as ``/bin/sh /jobs/x.sh``); None for ``sh -c …`` and for other programs."""
    name = applet or (exe.rsplit("/", 1)[-1] if exe else "")
    if name not in SHELLS:
        return None
    raw = _read(f"{procfs}/{pid}/cmdline", 4096) or b""
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0")[1:] if a]
    for arg in args:
        if arg.startswith("-"):
            if arg in ("-c", "-s", "-i"):
                return None
            continue
        return arg if "/" in arg else None
    return None


def read_exec(
    procfs: str,
    pid: int,
    watched: Callable[[str], int | None],
    *,
    parent_hint: int | None = None,
    comm_hint: str | None = None,
    exec_boottime_ns: int | None = None,
    parent_of: Callable[[int], int | None] | None = None,
) -> ExecRecord | None:
    """Read one exec'd process, or None when it is not in a watched container.

    ``watched`` maps a pid-namespace link (``pid:[4026532…]``) to the host pid of that container's init (None:
    not watched). ``parent_hint`` is the parent recorded at fork time and ``comm_hint`` the name the exec
    set (from the connector's COMM message), used when the process is already gone (``parent_of``: the
    fork table, to reach an ancestor still there when the parent is gone too). With
    ``exec_boottime_ns`` (when the exec happened), a pid whose process started after it was reused: the
    process exec'd is gone and this one is another (a busy container forks hundreds a second), so None.
    """
    pid_ns = _readlink(f"{procfs}/{pid}/ns/pid")
    exited = False
    if pid_ns is None:
        # gone already (or a zombie: its namespaces are released at exit): judge by the parent from the fork
        if parent_hint is None:
            return None
        pid_ns = _readlink(f"{procfs}/{parent_hint}/ns/pid")
        ancestor, hops = parent_hint, 0
        while pid_ns is None and parent_of is not None and hops < _MAX_GONE_ANCESTORS:
            # the parent is gone too (PostgreSQL's session backend ends with its connection, right after
            # `COPY … TO PROGRAM` ran a ~1 ms program): the namespace of the nearest ancestor still there
            # (the postmaster) — else the exec is lost whole. Seen possible, not seen to be the cause of
            # bench_drift's pg-dropped-1ms misses (8/10 before and after)
            ancestor_of = parent_of(ancestor)
            if ancestor_of is None:
                break
            ancestor, hops = ancestor_of, hops + 1
            pid_ns = _readlink(f"{procfs}/{ancestor}/ns/pid")
        if pid_ns is None:
            return None
        exited = True
    init = watched(pid_ns)
    if init is None:
        return None
    fields = None if exited else read_ppid_and_start(procfs, pid)
    if exec_boottime_ns is not None:
        started = fields[1] if fields else None
        if exited and parent_hint is not None:
            parent_fields = read_ppid_and_start(procfs, parent_hint)
            started = parent_fields[1] if parent_fields else None
        if started is not None and started * _NS_PER_TICK > exec_boottime_ns:
            return None
    ppid = fields[0] if fields else parent_hint
    exe, deleted = (None, False) if exited else _exe(procfs, pid)
    comm_raw = _read(f"{procfs}/{pid}/comm", 64)
    comm = comm_raw.decode("utf-8", "replace").strip() if comm_raw else comm_hint
    applet = _applet(procfs, pid, exe, comm)
    if applet is None and exe is not None and is_multi_call(exe):
        # a multi-call binary whose applet cannot be read is not a program we can name: unidentified (counted,
        # or an EXEC when entered from outside), never judged as the bare binary
        exe, comm = None, None
    script = _script(procfs, pid, exe, applet)
    if exe is None:
        exited = True
    chain: list[Link] = []
    current = ppid
    child, followed = pid, False
    while current and len(chain) < MAX_CHAIN and pid != init:
        ns = _readlink(f"{procfs}/{current}/ns/pid")
        if ns is None and not followed and not exited:
            # the parent exited between our reads (runc, after starting a `docker exec` or a health check's
            # `sh -c`): the child was reparented — to the runtime's shim (a subreaper outside the container)
            # when it was entered, to the container's init when not. Follow it once, as the kernel did
            # (the Debian nginx suite: a health check's shell judged as DRIFT under "? (gone)", 1 run in 3)
            followed = True
            again = read_ppid_and_start(procfs, child)
            if again is not None and again[0] not in (0, current):
                current = again[0]
                continue
        inside = None if ns is None else ns == pid_ns
        parent_exe, _ = _exe(procfs, current)
        chain.append(Link(current, parent_exe, inside, _applet(procfs, current, parent_exe, None)))
        if not inside or current == init:
            break
        up = read_ppid_and_start(procfs, current)
        child, current = current, (up[0] if up else 0)
    return ExecRecord(
        pid=pid,
        pid_ns=pid_ns,
        start_time=fields[1] if fields else None,
        ppid=ppid,
        exe=exe,
        exe_deleted=deleted,
        comm=comm,
        applet=applet,
        chain=tuple(chain),
        exited=exited,
        script=script,
        monotonic=time.monotonic(),
    )


def _open_socket() -> socket.socket:
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    except (OSError, AttributeError) as exc:
        raise ExecSourceUnavailable(f"netlink connector socket: {exc}") from None
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        sock.bind((0, CN_IDX_PROC))
        _subscribe(sock, PROC_CN_MCAST_LISTEN)
    except OSError as exc:
        sock.close()
        hint = " (needs CAP_NET_ADMIN)" if exc.errno in (errno.EPERM, errno.EACCES) else ""
        raise ExecSourceUnavailable(f"proc connector subscription: {exc}{hint}") from None
    return sock


def _subscribe(sock: socket.socket, op: int) -> None:
    body = struct.pack("=I", op)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(body), 0) + body
    sock.send(_NLMSG_HDR.pack(_NLMSG_HDR.size + len(cn), NLMSG_DONE, 0, 0, 0) + cn)


def probe() -> str | None:
    """None when the proc connector can be subscribed here, else why not (for logs and the docs' check)."""
    try:
        sock = _open_socket()
    except ExecSourceUnavailable as exc:
        return str(exc)
    sock.close()  # no IGNORE: see ExecSource.close
    return None


class ExecSource:
    """The reader thread and its bounded queue of :class:`ExecRecord` (consumed with :meth:`get`).

    ``watched`` is consulted per exec (a dict lookup the agent keeps: pid namespace → init pid). Counters:
    ``execs`` (exec messages seen), ``records`` (queued), ``dropped`` by reason (``queue``: the consumer fell
    behind; ``kernel``: the socket buffer overflowed), ``exited`` (read after the process was gone)."""

    def __init__(
        self,
        procfs: str,
        watched: Callable[[str], int | None],
        *,
        max_queue: int = 4096,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.procfs = procfs
        self.watched = watched
        self.max_queue = max_queue
        self.on_drop = on_drop
        self.execs = 0
        self.records = 0
        self.exited = 0
        self.dropped: dict[str, int] = {"queue": 0, "kernel": 0}
        self.busy_seconds = 0.0
        self.errors = 0  # thread CPU spent reading execs (for the benchmark's per-exec figure)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[ExecRecord] | None = None
        #: child pid → parent pid from FORK messages and pid → comm from the exec's COMM message, for a
        #: process gone before its exec is read; bounded (forgotten at EXIT, halved past 65 536 entries)
        self._parents: dict[int, int] = {}
        self._comms: dict[int, str] = {}
        #: the connector stamps events with CLOCK_MONOTONIC; /proc/<pid>/stat start times are CLOCK_BOOTTIME
        self._boot_offset = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.monotonic_ns()

    def start(self) -> None:
        """Subscribe (raises :class:`ExecSourceUnavailable`) and start the reader thread."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self.max_queue)
        self._sock = _open_socket()
        self._sock.settimeout(0.2)  # how often the thread looks at the stop flag
        self._thread = threading.Thread(target=self._run, name="zastava-execsource", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            # No PROC_CN_MCAST_IGNORE: the kernel counts listeners globally, so an IGNORE from one socket can
            # silence every other subscriber on the node (another agent, a second source in a test run);
            # closing the socket is enough, the kernel then multicasts to nobody
            self._sock.close()
            self._sock = None

    async def get(self) -> ExecRecord:
        assert self._queue is not None, "start() first"
        return await self._queue.get()

    def _offer(self, record: ExecRecord) -> None:
        assert self._queue is not None
        try:
            self._queue.put_nowait(record)
            self.records += 1
        except asyncio.QueueFull:
            self._drop("queue")

    def _drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n
        if self.on_drop is not None:
            for _ in range(n):
                self.on_drop(reason)

    def _run(self) -> None:
        assert self._sock is not None and self._loop is not None
        sock, loop = self._sock, self._loop
        # A program that lives 1 ms is read only if this thread runs within that millisecond of its exec:
        # ask for a higher priority (needs CAP_SYS_NICE; without it the default) and hand the GIL over
        # every 1 ms instead of 5 ms, so a busy event loop delays a read by at most about that
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        if sys.getswitchinterval() > _SWITCH_INTERVAL:
            sys.setswitchinterval(_SWITCH_INTERVAL)
        while not self._stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the kernel dropped messages: count, keep reading
                    loop.call_soon_threadsafe(self._drop, "kernel")
                    continue
                if self._stop.is_set():
                    return
                log.warning("proc connector receive failed; retrying", extra=fields(error=str(exc)[:300]))
                self._stop.wait(0.5)
                continue
            started = time.thread_time()
            offset = 0
            while offset + _HEADER + _PROC_EVENT.size <= len(data):
                length = _NLMSG_HDR.unpack_from(data, offset)[0]
                if length < _HEADER:
                    break
                try:
                    self._handle(data, offset + _HEADER, loop)
                except RuntimeError:  # the event loop is closed: the agent is gone
                    return
                except Exception as exc:  # one malformed message must not stop the reader
                    self.errors += 1
                    log.warning("proc connector message skipped", extra=fields(error=str(exc)[:300]))
                offset += (length + 3) & ~3
            self.busy_seconds += time.thread_time() - started

    def _handle(self, data: bytes, at: int, loop: asyncio.AbstractEventLoop) -> None:
        what, _cpu, stamp = _PROC_EVENT.unpack_from(data, at)
        body = at + _PROC_EVENT.size
        if what == PROC_EVENT_FORK:
            _ppid, parent_tgid, child_pid, child_tgid = struct.unpack_from("=IIII", data, body)
            if child_pid == child_tgid:  # a new process, not a thread
                _bounded_put(self._parents, child_pid, parent_tgid)
        elif what == PROC_EVENT_COMM:
            pid, tgid = struct.unpack_from("=II", data, body)
            if pid == tgid:
                name = data[body + 8 : body + 24].split(b"\0", 1)[0].decode("utf-8", "replace")
                _bounded_put(self._comms, tgid, name)
        elif what == PROC_EVENT_EXEC:
            pid, tgid = struct.unpack_from("=II", data, body)
            if pid != tgid:
                return
            self.execs += 1
            record = read_exec(
                self.procfs,
                tgid,
                self.watched,
                parent_hint=self._parents.get(tgid),
                comm_hint=self._comms.get(tgid),
                exec_boottime_ns=stamp + self._boot_offset,
                parent_of=self._parents.get,
            )
            if record is not None:
                if record.exited:
                    self.exited += 1
                loop.call_soon_threadsafe(self._offer, record)
        elif what == PROC_EVENT_EXIT:
            pid, tgid = struct.unpack_from("=II", data, body)
            if pid == tgid:
                self._parents.pop(tgid, None)
                self._comms.pop(tgid, None)


def _bounded_put(table: dict[int, Any], key: int, value: Any) -> None:
    if len(table) >= 65_536:  # bounded: forget the oldest half (insertion order)
        for old in list(table)[:32_768]:
            del table[old]
    table[key] = value
