"""Drift per exec, as it happens (issue 22): :mod:`.execsource` records judged against a :class:`Baseline`.

For each exec in a watched container:

1. **provenance** — a process whose parent chain leaves the container (to runc or the runtime's shim)
   without passing the container's init was *entered* from outside (``docker exec``, ``kubectl exec``): an
   ``EXEC`` event (contract v1.3), never a ``DRIFT`` — unless its program is a declared command (a Docker
   health check and Kubernetes exec probes are entered exactly so);
2. the container's init exec'ing (its entrypoint chain moving on) is expected; so is anything while init has
   not reached one of its final programs yet (the start-up phase: an entry script's helpers);
3. otherwise the program must be in the baseline — anywhere, under its parent's program, or on the traced
   chain as init's direct child — or be its parent's own program (a re-exec, a worker);
4. what is left is ``DRIFT`` (``drift.process``), with the parent program as evidence.

Identical findings (image, kind, program, parent program) within the quiet window are one event plus one
summary with the count (:mod:`.quiet`). Per-exec work only: nothing here walks ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..contracts import EventKind, Evidence, Process, RuntimeDelta, RuntimeEvent
from ..telemetry.logging import fields
from .baseline import Baseline, program_name
from .drift import ContainerProcess
from .events import EventContext
from .execsource import ExecRecord, ExecSource, ExecSourceUnavailable, Link
from .programs import SHELLS, applet_of, is_multi_call, program_key

__all__ = ["ExecDrift", "Finding", "Watched", "judge", "judge_polled", "judge_record"]

log = logging.getLogger("zastava.observer.execdrift")


@dataclass(frozen=True, slots=True)
class Finding:
    kind: EventKind  # DRIFT or EXEC
    program: str  # the program key, or "comm:<name>" when the process was gone before it could be read
    parent: str | None
    reason: str
    record: ExecRecord


def _key(exe: str | None, applet: str | None) -> str | None:
    return program_key(exe, applet) if exe else None


def judge(
    program: str,
    parent: str | None,
    baseline: Baseline,
    *,
    parent_is_init: bool,
    starting: bool,
    script: str | None = None,
) -> str | None:
    """Why ``program`` (run under ``parent``) is expected, or None when it is drift. A shell is never
    "its parent's own program": a shell spawning a shell is how a foothold spreads; a shell is expected
    running one of the container's own scripts (``script``) under a shell, or where the baseline puts it."""
    if starting:
        return "start-up"
    if program in baseline.anywhere:
        return "baseline"
    shell = program_name(program) in SHELLS
    if parent is not None and program == parent and not shell:
        return "same program as parent"
    if shell and script in baseline.scripts and parent is not None and program_name(parent) in SHELLS:
        return "container script"
    if parent is not None and parent in baseline.under.get(program, ()):
        return "baseline under parent"
    if parent_is_init and program in baseline.chain:
        return "traced chain"
    # a multi-call binary allowed by its bare path allows every applet (configured that way)
    path = program.split("\0", 1)[0]
    if "\0" in program and path in baseline.anywhere:
        return "baseline"
    return None


def _entered(record: ExecRecord, init: int) -> bool:
    """The parent chain leaves the container without passing its init: entered from outside."""
    chain = record.chain
    return bool(chain) and chain[-1].in_container is False and all(link.pid != init for link in chain)


def judge_record(record: ExecRecord, baseline: Baseline, init: int, *, starting: bool) -> Finding | None:
    """The finding for one exec in the container whose init is ``init`` (None: expected)."""
    if record.pid == init:
        return None  # the entrypoint chain moving on (init exec'ing its next program)
    chain = record.chain
    entered = _entered(record, init)
    parent_link: Link | None = chain[0] if chain else None
    parent = _key(parent_link.exe, parent_link.applet) if parent_link and parent_link.in_container else None
    parent_is_init = bool(parent_link and parent_link.pid == init)
    if record.exe is not None and (record.exe.startswith(("/memfd:runc", "memfd:runc"))):
        return None  # runc's own helper entering the container, not a program of it
    if record.exe is None and (record.comm or "").startswith("runc:["):
        return None  # runc's init stages (runc:[2:INIT]), read after their exe was already released
    if (
        record.comm in _script_names(baseline)
        and not entered
        and (record.exe is None or record.applet == record.comm)
    ):
        # gone (or its argv already released) before it could be read: the kernel named it after one of the
        # container's own scripts, run by its shebang
        return None
    candidates: list[str] = [program_key(record.exe, record.applet)] if record.exe else []
    if not candidates and record.comm:  # gone before its exe was read: what the exec named it
        candidates = sorted(baseline_names(baseline).get(record.comm[:15], ()))
        if not candidates and is_multi_call(record.comm):
            # `busybox wget` (a health check) gone with only the binary's name read: any applet of that
            # binary the baseline knows, as for an argv read too late (the Debian nginx suite, 1 run in 3)
            candidates = sorted(
                {
                    k
                    for names in baseline_names(baseline).values()
                    for k in names
                    if "\0" in k and k.split("\0", 1)[0].rsplit("/", 1)[-1] == record.comm
                }
            )
    elif record.exe and record.applet is None and is_multi_call(record.exe):
        # a multi-call binary gone before its argv could be read: any of its applets the baseline knows
        prefix = record.exe + "\0"
        candidates = (
            sorted({k for names in baseline_names(baseline).values() for k in names if k.startswith(prefix)})
            or candidates
        )
    shown = candidates[0] if record.exe else f"comm:{record.comm or '?'}"
    if entered:
        if not record.exe_deleted and any(c in baseline.declared for c in candidates):
            return None  # a health check or probe command: entered so by design
        outside = _key(chain[-1].exe, None)
        return Finding(EventKind.EXEC, shown, outside, "entered from outside", record)
    parents: list[str | None] = [parent]
    if (
        parent_link is not None
        and parent is not None
        and parent_link.applet is None
        and is_multi_call(parent_link.exe)
    ):  # the parent exited before its argv was read: any applet of it the baseline knows
        prefix = f"{parent_link.exe}\0"
        keys = {k for names in baseline_names(baseline).values() for k in names if k.startswith(prefix)}
        parents = [*sorted(keys), parent]
    for candidate in candidates:
        if record.exe_deleted and candidate not in baseline.anywhere:
            break  # a deleted program is only ever its own (fileless execution)
        for parent_key in parents:
            if judge(
                candidate,
                parent_key,
                baseline,
                parent_is_init=parent_is_init,
                starting=starting,
                script=record.script,
            ):
                return None
    if starting and not candidates:
        return None
    return Finding(EventKind.DRIFT, shown or "?", parent, "not in baseline", record)


def judge_polled(
    processes: Sequence[ContainerProcess], found: Sequence[ContainerProcess], baseline: Baseline, init: int
) -> list[ContainerProcess]:
    """The /proc-polling fallback judged like an exec: of ``found`` (not in the plain allowed set), those the
    per-parent baseline does not expect either. A poll sees no provenance (``docker exec`` processes are
    DRIFT there) and no start-up phase older than the pass."""
    by_pid = {p.pid: p for p in processes}
    init_process = by_pid.get(init)
    starting = init_process is not None and init_process.program not in baseline.finals
    out = []
    for process in found:
        program = process.program
        parent_process = by_pid.get(process.ppid)
        parent = parent_process.program if parent_process is not None else None
        if program is None or process.exe_deleted:
            out.append(process)
            continue
        if process.pid == init or judge(
            program, parent, baseline, parent_is_init=process.ppid == init, starting=starting
        ):
            continue
        out.append(process)
    return out


def _final_under_manager(record: ExecRecord, watched: Watched, init_program: str) -> bool:
    """A final program started as a direct child of an init that is no shell: a process manager
    (supervisord, tini, s6) has reached what it runs; it stays init forever, so without this the container
    would never leave start-up and all it ran would pass as start-up (seen on supervisord). An entry *shell*
    script running a final program before it ``exec``s (``nginx -t``) is still starting up."""
    if program_name(init_program) in SHELLS or not record.chain or record.chain[0].pid != watched.init:
        return False
    return bool(record.exe) and program_key(record.exe or "", record.applet) in watched.baseline.finals


def _script_names(baseline: Baseline) -> set[str]:
    """comm of a process running one of the baseline's scripts by its shebang: the script's basename."""
    return {s.rsplit("/", 1)[-1][:15] for s in baseline.scripts}


def baseline_names(baseline: Baseline) -> Mapping[str, frozenset[str]]:
    """comm → program keys of a baseline."""
    return baseline.by_name


# ------------------------------------------------------------------------------------------- watcher


@dataclass
class Watched:
    container_id: str
    init: int
    pid_ns: str
    baseline: Baseline
    ctx: EventContext
    image: str
    settled: bool = False
    events: int = 0
    findings: int = 0


def _init_program(procfs: str, pid: int) -> str | None:
    try:
        exe = os.readlink(f"{procfs}/{pid}/exe").removesuffix(" (deleted)")  # noqa: PTH115
    except OSError:
        return None
    applet = None
    if is_multi_call(exe):
        try:
            with open(f"{procfs}/{pid}/cmdline", "rb") as handle:
                argv = [a.decode("utf-8", "replace") for a in handle.read(4096).split(b"\0") if a]
        except OSError:
            argv = []
        applet = applet_of(exe, argv or None)
    return program_key(exe, applet)


@dataclass
class ExecDrift:
    """Watches containers through one :class:`ExecSource`; ``emit`` publishes each event."""

    procfs: str
    emit: Callable[[RuntimeEvent], Awaitable[None]]
    quiet_window: float = 60.0
    max_queue: int = 4096
    max_events_per_container: int = 256
    on_drop: Callable[[str], None] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    watched: dict[str, Watched] = field(default_factory=dict)  # pid namespace → container
    source: ExecSource | None = None
    published: list[RuntimeEvent] = field(default_factory=list)  # the last few (bounded) for `status`

    def __post_init__(self) -> None:
        from .quiet import Quieter

        #: execs reaped before even their name could be read: counted, not judged (nothing to judge; the
        #: services test measures how many)
        self.unidentified = 0
        self.quiet: Quieter[Finding] = Quieter(self.quiet_window)
        self._by_container: dict[str, str] = {}
        #: engine exec starts not yet matched by an entered exec the connector read: container id →
        #: [(deadline, command, when)], at most _MAX_PENDING per container
        self._pending: dict[str, list[tuple[float, str, datetime]]] = {}
        #: entered execs the connector read before the engine's event about them arrived: container → times
        self._read_first: dict[str, list[float]] = {}
        self.engine_execs = 0
        #: the entered processes already paired with an engine exec: container id → pids (last few)
        self._matched_pids: dict[str, dict[int, None]] = {}

    # --------------------------------------------------------------------------------- containers

    def _init_of(self, pid_ns: str) -> int | None:
        found = self.watched.get(pid_ns)  # read by the source's thread: one dict lookup
        return found.init if found is not None else None

    def watch(self, container_id: str, init: int, baseline: Baseline, ctx: EventContext) -> bool:
        try:
            pid_ns = os.readlink(f"{self.procfs}/{init}/ns/pid")  # noqa: PTH115
        except OSError:
            return False
        if pid_ns == _host_pid_ns(self.procfs):
            return False  # a container sharing the host's pid namespace: every host exec would match
        self.unwatch(container_id)
        self.watched[pid_ns] = Watched(container_id, init, pid_ns, baseline, ctx, ctx.image_digest or "")
        self._by_container[container_id] = pid_ns
        return True

    def unwatch(self, container_id: str) -> None:
        self._pending.pop(container_id, None)
        self._read_first.pop(container_id, None)
        self._matched_pids.pop(container_id, None)
        pid_ns = self._by_container.pop(container_id, None)
        if pid_ns is not None:
            self.watched.pop(pid_ns, None)

    # ------------------------------------------------------------------------------------ running

    def start(self) -> None:
        """Subscribe to the proc connector (raises :class:`ExecSourceUnavailable`)."""
        self.source = ExecSource(self.procfs, self._init_of, max_queue=self.max_queue, on_drop=self.on_drop)
        self.source.start()

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    async def run(self) -> None:
        assert self.source is not None, "start() first"
        try:
            while True:
                record = None
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that races a
                # completed get() (a busy queue), and the agent would never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        record = await self.source.get()
                events = self.handle(record) if record is not None else []
                events += self.flush(time.monotonic())
                for event in events:
                    await self.emit(event)
        finally:
            self.close()

    def handle(self, record: ExecRecord) -> list[RuntimeEvent]:
        """The events one exec record gives now (at most two: a window's summary closed early, and it)."""
        watched = self.watched.get(record.pid_ns)
        if watched is None:
            return []
        # reaped before anything could be read: by a process of the container, or entered where the platform
        # enters declared commands (a health check's `sh -c` is gone in ~1 ms); counted, not judged — an
        # entered one in a container with no declared command is still an EXEC
        if (
            record.exe is None
            and not record.comm
            and (not _entered(record, watched.init) or watched.baseline.declared)
        ):
            self.unidentified += 1
            return []
        starting = False
        if not watched.settled:
            current = _init_program(self.procfs, watched.init)
            watched.settled = (
                current is None
                or current in watched.baseline.finals
                or _final_under_manager(record, watched, current)
            )
            starting = not watched.settled
        finding = judge_record(record, watched.baseline, watched.init, starting=starting)
        if finding is not None and finding.kind is EventKind.EXEC and not record.chain[:-1]:
            # the engine's exec, read: no need for its word — once per process: `docker exec bash -c id`
            # is two execs of one pid (bash, then id in its place), and counting both consumed the *next*
            # docker exec's pairing (which then went unreported when the connector missed it: bench_drift,
            # pg-exec-bash 9/10)
            recent = self._matched_pids.setdefault(watched.container_id, {})
            if record.pid not in recent:
                recent[record.pid] = None
                while len(recent) > _MAX_PENDING:
                    del recent[next(iter(recent))]
                self._matched(watched.container_id)
        if finding is None:
            return []
        watched.findings += 1
        key = (watched.container_id, finding.kind.value, finding.program, finding.parent or "")
        now_first, closed = self.quiet.offer(key, time.monotonic(), finding)
        out = [e for r in closed if (e := self._summary(r.key, r.count, r.sample)) is not None]
        if now_first:
            event = self._event(watched, finding, count=1)
            if event is not None:
                out.append(event)
        return out

    def engine_exec(self, container_id: str, command: str, when: datetime) -> None:
        """The engine started ``command`` in the container (Docker's ``exec_start``). A declared command (the
        health check) is expected; anything else must be matched by an entered exec the connector reads
        within :data:`_ENGINE_GRACE` seconds, else it is reported from the engine's word (a program living
        ~1 ms may be reaped, with runc, before the reader runs)."""
        pid_ns = self._by_container.get(container_id)
        watched = self.watched.get(pid_ns) if pid_ns else None
        if watched is None or command in watched.baseline.declared_commands:
            return
        self.engine_execs += 1
        now = time.monotonic()
        read = [t for t in self._read_first.get(container_id, []) if now - t < _ENGINE_GRACE]
        if read:  # the connector read it already (the engine's event comes 10-100 ms after the exec)
            read.pop(0)
            self._read_first[container_id] = read
            return
        pending = self._pending.setdefault(container_id, [])
        if len(pending) < _MAX_PENDING:
            pending.append((now + _ENGINE_GRACE, command, when))

    def _matched(self, container_id: str) -> None:
        pending = self._pending.get(container_id)
        if pending:
            pending.pop(0)
            return
        read = self._read_first.setdefault(container_id, [])
        now = time.monotonic()
        read[:] = [t for t in read if now - t < _ENGINE_GRACE][-_MAX_PENDING:]
        read.append(now)

    def flush(self, now: float) -> list[RuntimeEvent]:
        out = [e for r in self.quiet.due(now) if (e := self._summary(r.key, r.count, r.sample)) is not None]
        for container_id, pending in list(self._pending.items()):
            while pending and pending[0][0] <= now:
                _deadline, command, when = pending.pop(0)
                event = self._engine_event(container_id, command, when)
                if event is not None:
                    out.append(event)
            if not pending:
                del self._pending[container_id]
        return out

    def _engine_event(self, container_id: str, command: str, when: datetime) -> RuntimeEvent | None:
        pid_ns = self._by_container.get(container_id)
        watched = self.watched.get(pid_ns) if pid_ns else None
        if watched is None or watched.events >= self.max_events_per_container:
            return None
        program = command.split(" ", 1)[0] or "?"
        key = (container_id, EventKind.EXEC.value, f"engine:{program}", "")
        first, _closed = self.quiet.offer(key, time.monotonic(), None)  # type: ignore[arg-type]
        if not first:
            return None
        watched.events += 1
        return watched.ctx.event(
            EventKind.EXEC,
            when=when,
            process=Process(pid=0, entrypoint=[program]),
            delta=RuntimeDelta(baseline_image_digest=watched.ctx.image_digest, changed_files=[program]),
            evidence=[
                Evidence(signal="exec.engine", value=command[:8192]),
                Evidence(signal="drift.source", value="engine-events"),
                Evidence(
                    signal="exec.unread",
                    value=f"no entered process read within {_ENGINE_GRACE:g}s (reaped before the reader ran)",
                ),
            ],
        )

    def _summary(self, key: tuple[str, ...], count: int, sample: Finding) -> RuntimeEvent | None:
        watched = self.watched.get(sample.record.pid_ns)
        if watched is None or watched.container_id != key[0]:
            return None
        return self._event(watched, sample, count=count, repeated=True)

    def _event(
        self, watched: Watched, finding: Finding, *, count: int, repeated: bool = False
    ) -> RuntimeEvent | None:
        if watched.events >= self.max_events_per_container:
            return None
        watched.events += 1
        r = finding.record
        program = finding.program.replace("\0", " applet=")
        parent = (finding.parent or "-").replace("\0", " applet=")
        signal = "exec.entered" if finding.kind is EventKind.EXEC else "drift.process"
        evidence = [
            Evidence(
                signal=signal,
                value=f"pid={r.pid} startTime={r.start_time or 0} ppid={r.ppid or 0} program={program}"
                + (" (deleted)" if r.exe_deleted else "")
                + (" (exited before read)" if r.exited else ""),
            ),
            Evidence(signal=f"{signal}.parent", value=parent),
            Evidence(
                signal=f"{signal}.chain",
                value=" <- ".join(_link(link) for link in r.chain)[:8192] or "-",
            ),
            Evidence(signal="drift.source", value="proc-connector"),
            Evidence(signal="drift.count", value=f"{count} in {self.quiet_window:g}s" if repeated else "1"),
        ]
        exe = r.exe or f"comm:{r.comm or '?'}"
        event = watched.ctx.event(
            finding.kind,
            when=self.clock(),
            process=Process(pid=r.pid, start_time=r.start_time, entrypoint=[exe]),
            delta=RuntimeDelta(baseline_image_digest=watched.ctx.image_digest, changed_files=[exe]),
            evidence=evidence,
        )
        if len(self.published) >= 256:
            del self.published[:128]
        self.published.append(event)
        return event


#: how long an engine exec start waits for the connector's read of it (s): the reader is ms behind; the engine
#: event itself arrives ~10-100 ms after the exec
_ENGINE_GRACE = 2.0
_MAX_PENDING = 64


def _link(link: Link) -> str:
    where = {True: "", False: " (outside)", None: " (gone)"}[link.in_container]
    return f"{link.pid}:{link.exe or '?'}{where}"


def _host_pid_ns(procfs: str) -> str | None:
    try:
        return os.readlink(f"{procfs}/1/ns/pid")  # noqa: PTH115
    except OSError:
        return None


def open_exec_drift(drift: ExecDrift, mode: str) -> str | None:
    """Start ``drift`` for ``mode`` (``auto``/``connector``); None when running, else why not (``auto``
    falls back to polling; ``connector`` raises)."""
    try:
        drift.start()
    except ExecSourceUnavailable as exc:
        if mode == "connector":
            raise
        log.info("proc connector unavailable; process drift by /proc polling", extra=fields(reason=str(exc)))
        return str(exc)
    return None
