"""The observer agent (spec §3, §10): container lifecycle → runtime events, drift, posture.

:class:`ObserverAgent` composes an engine with four pluggable parts, each a Protocol of :mod:`.ports`: an
:class:`~.ports.Inspector` (process inspection: loaded libs, hashes, build-id), a :class:`~.ports.EntryTracer`
(EntryTrace: the entrypoint's exec chain and terminal programs), a :class:`~.ports.PostureSource` (the
backend's ``/policy/runtime`` answer and the image's usage SBOM view) and ``publish`` (the durable
publisher's ``publish`` coroutine). Each missing part is reported as evidence on the events
(``*.unavailable``), never silently as null. Building an agent from the configuration is
:func:`.wiring.create_agent`'s job; this module holds the logic only.

Events: ``CONTAINER_START`` (for containers found running at start-up too), ``CONTAINER_STOP``, ``DRIFT``,
``POLICY_VIOLATION`` (the backend says ``fail`` for a running container's image), ``ATTESTATION_STATUS``
(an image's signature/attestation status first known or changed) and ``AGENT_WARNING`` (engine
fallback/reconnect). The agent only reads: procfs, container roots through :class:`RootFS`, engine inventory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts import (
    AgentWarning,
    Attestation,
    EventKind,
    Evidence,
    ImagePolicy,
    Posture,
    Process,
    RuntimeDelta,
    RuntimeEvent,
)
from ..telemetry.logging import fields
from ..telemetry.metrics import ZastavaMetrics
from ..telemetry.tracing import resume, span
from . import drift
from .baseline import Baseline
from .engines.base import ContainerEngine, ContainerEvent, ContainerInfo, EngineUnavailable
from .engines.kubernetes import ContainerMeta, PodMeta, PodWatcher
from .events import EventContext, context_for, observer_context
from .execdrift import ExecDrift, judge_polled, open_exec_drift
from .ports import EntryTraceLike, EntryTracer, InspectionLike, Inspector, PostureSource, Publish
from .rootfs import RootFS

if TYPE_CHECKING:
    # the settings are read here, built from the configuration in .wiring (which imports this module)
    from .wiring import AgentSettings

__all__ = ["ObserverAgent"]

log = logging.getLogger("zastava.observer.agent")

#: the longest pause between inspections of a container the engine said started but reports not running yet
_START_RETRY_MAX = 1.6

# ------------------------------------------------------------------------------------------------ state


@dataclass
class _Tracked:
    info: ContainerInfo
    ctx: EventContext
    start_key: drift.ProcessKey | None
    allowed: frozenset[str]
    since: datetime | None
    since_source: str
    upper_dir: str | None
    host_network: bool
    baseline: Baseline | None = None
    #: image ExposedPorts and the pod's containerPorts: listening there is not network drift
    declared_ports: frozenset[int] = frozenset()
    #: judged per exec (proc connector) rather than by polling
    exec_watched: bool = False
    policy: ImagePolicy | None = None
    attestation_key: tuple[Any, ...] | None = None
    reported_processes: set[drift.ProcessKey] = field(default_factory=set)
    reported_files: set[tuple[str, int]] = field(default_factory=set)
    reported_ports: set[tuple[str, int]] = field(default_factory=set)
    reported_libs: set[str] = field(default_factory=set)
    drift_events: int = 0
    stopped: bool = False


# ------------------------------------------------------------------------------------------------ agent


class ObserverAgent:
    def __init__(
        self,
        engine: ContainerEngine,
        publish: Publish,
        settings: AgentSettings,
        *,
        inspector: Inspector | None = None,
        tracer: EntryTracer | None = None,
        posture: PostureSource | None = None,
        pods: PodWatcher | None = None,
        metrics: ZastavaMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_exec_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        #: counts an exec record not judged, by reason (``zastava_drift_exec_drops_total``)
        self.on_exec_drop = on_exec_drop
        self._publish = publish
        self.settings = settings
        self.inspector = inspector
        self.tracer = tracer
        self.posture = posture
        self.pods = pods
        self.metrics = metrics
        self.clock = clock
        self.tracked: dict[str, _Tracked] = {}
        self._gate = asyncio.Semaphore(settings.max_concurrent_inspections)
        self._pending: set[asyncio.Task[Any]] = set()
        self._starting: set[str] = set()
        self._stopped_early: dict[str, ContainerEvent] = {}
        self.host_root = drift.host_root(settings.procfs)
        #: process drift per exec (proc connector), set by :meth:`run` when it can be subscribed
        self.exec_drift: ExecDrift | None = None

    # ---------------------------------------------------------------------------------------- publish

    async def emit(self, event: RuntimeEvent) -> None:
        if self.metrics is not None:
            self.metrics.events_total.labels(kind=event.kind.value).inc()
        try:
            with span("observe.publish", kind=event.kind.value, container=event.workload.container_id):
                await self._publish(event)
        except Exception as exc:  # the publisher owns buffering; never let it stop observation
            log.error(
                "publishing a runtime event failed",
                extra=fields(kind=event.kind.value, event_id=event.event_id, error=str(exc)[:300]),
            )

    # ------------------------------------------------------------------------------------------ start

    def _engine_evidence(self) -> list[Evidence]:
        if self.engine.degraded:
            reason = self.engine.fallback_reason or "engine unavailable"
            return [Evidence(signal="engine.fallback", value=f"reduced fidelity: {reason}"[:8192])]
        return []

    async def _enrich(self, info: ContainerInfo) -> tuple[ContainerInfo, list[Evidence]]:
        """Retry inspection while the pid is not known yet (late enrichment); say what stays missing."""
        evidence: list[Evidence] = []
        attempt = 0
        while info.pid is None and info.fidelity == "full" and attempt < self.settings.enrichment_retries:
            attempt += 1
            await asyncio.sleep(self.settings.enrichment_retry_delay * attempt)
            with contextlib.suppress(EngineUnavailable):
                again = await self.engine.inspect(info.id)
                if again is not None:
                    info = again
        if info.missing:
            evidence.append(Evidence(signal="enrichment.missing", value=",".join(info.missing)))
        if info.fidelity == "reduced":
            evidence.append(
                Evidence(signal="enrichment.partial", value=f"engine={info.engine} fidelity=reduced")
            )
        return info, evidence

    async def _pod(self, info: ContainerInfo) -> tuple[PodMeta | None, ContainerMeta | None, list[Evidence]]:
        if self.pods is None:
            return None, None, []
        found = self.pods.by_container_id(info.id)
        if found is not None:
            return found[0], found[1], []
        k8s = info.kubernetes
        if k8s is None:
            return None, None, []
        pod = await self.pods.wait_for(k8s.namespace, k8s.pod, self.settings.pod_wait_seconds)
        if pod is None:
            return (
                None,
                None,
                [Evidence(signal="kubernetes.pod.missing", value=f"{k8s.namespace}/{k8s.pod} not seen yet")],
            )
        return pod, pod.containers.get(k8s.container or ""), []

    async def handle_start(self, info: ContainerInfo, *, resync: bool = False) -> list[RuntimeEvent]:
        """Observe a started (or found-running) container; returns the events published."""
        if info.id in self.tracked or info.id in self._starting:
            return []
        if len(self.tracked) >= self.settings.max_tracked_containers:
            log.warning(
                "tracked-container cap reached; not observing", extra=fields(container=info.container_id)
            )
            return []
        self._starting.add(info.id)
        observed = None
        try:
            async with self._gate:
                with span("observe", container=info.container_id, engine=info.engine) as observed:
                    events = await self._observe_start(info, resync=resync)
        finally:
            self._starting.discard(info.id)
        with resume(observed):  # observe.publish (and the publisher's batch links) under this observe span
            for event in events:
                await self.emit(event)
        early = self._stopped_early.pop(info.id, None)
        if early is not None:
            events += await self.handle_stop(early)
        return events

    async def _observe_start(self, info: ContainerInfo, *, resync: bool) -> list[RuntimeEvent]:
        s = self.settings
        when = self.clock()
        info, evidence = await self._enrich(info)
        evidence = [*info.evidence, *evidence, *self._engine_evidence()]
        if resync:
            evidence.append(Evidence(signal="observer.resync", value="found running"))
        pod, container_meta, pod_evidence = await self._pod(info)
        evidence += pod_evidence
        ctx = context_for(
            info,
            tenant=s.tenant,
            node=s.node,
            owner=(pod.owner_kind, pod.owner_name) if pod else (None, None),
            labels=dict(pod.labels) if pod else dict(info.labels),
        )
        root = RootFS(f"{s.procfs}/{info.pid}/root") if info.pid else None
        start_time = drift.process_start_time(s.procfs, info.pid) if info.pid else None

        # inspection (loaded libs, hashes, build-id)
        inspection: InspectionLike | None = None
        if self.inspector is None:
            evidence.append(Evidence(signal="inspection.unavailable", value="no inspector configured"))
        elif info.pid is None:
            evidence.append(Evidence(signal="inspection.skipped", value="pid unknown"))
        else:
            try:
                inspection = await self.inspector.inspect(info.pid)
            except Exception as exc:
                evidence.append(
                    Evidence(signal="inspection.failed", value=f"{type(exc).__name__}: {exc}"[:8192])
                )
            if inspection is not None:
                evidence += list(inspection.evidence)
                if inspection.partial:
                    evidence.append(Evidence(signal="inspection.partial", value=f"pid={info.pid}"))

        # EntryTrace (terminal programs)
        trace: EntryTraceLike | None = None
        if self.tracer is None:
            evidence.append(Evidence(signal="entrytrace.unavailable", value="no tracer configured"))
        elif root is None:
            evidence.append(Evidence(signal="entrytrace.skipped", value="container root unknown (no pid)"))
        else:
            try:
                trace = await self.tracer.trace(info, root)
            except Exception as exc:
                evidence.append(
                    Evidence(signal="entrytrace.failed", value=f"{type(exc).__name__}: {exc}"[:8192])
                )
            if trace is not None and trace.ambiguous:
                evidence.append(
                    Evidence(signal="entrytrace.ambiguous", value=f"confidence={trace.confidence}")
                )

        process = self._process(info, inspection, trace, start_time)

        # posture + delta-scan request
        posture_model, delta, policy, posture_evidence = await self._posture(info, ctx, pod)
        evidence += posture_evidence

        start = ctx.event(
            EventKind.CONTAINER_START,
            when=when,
            process=process,
            loaded_libs=list(inspection.loaded_libs) if inspection is not None else None,
            posture=posture_model,
            delta=delta,
            evidence=evidence,
        )
        events = [start]
        tracked = self._track(info, ctx, root, trace, container_meta, start_time)
        if policy is not None:
            events += self._policy_events(tracked, policy, when)
        return events

    def _process(
        self,
        info: ContainerInfo,
        inspection: InspectionLike | None,
        trace: EntryTraceLike | None,
        start_time: int | None,
    ) -> Process | None:
        if info.pid is None and not info.entrypoint:
            return None
        update: dict[str, Any] = {"entrypoint": list(info.entrypoint)}
        if start_time is not None:
            update["start_time"] = start_time
        if trace is not None:
            update["entry_trace"] = list(trace.steps)
            update["terminals"] = list(trace.terminals)
            update["entry_trace_confidence"] = max(0, min(100, int(trace.confidence)))
        if inspection is not None:
            return inspection.process.model_copy(update=update)
        return Process(pid=info.pid or 0, **update)

    async def _posture(
        self, info: ContainerInfo, ctx: EventContext, pod: PodMeta | None
    ) -> tuple[Posture | None, RuntimeDelta | None, ImagePolicy | None, list[Evidence]]:
        ref = info.image_ref_by_digest
        if self.posture is None:
            return None, None, None, [Evidence(signal="posture.unavailable", value="no backend configured")]
        if not ref or "@sha256:" not in ref:
            return None, None, None, [Evidence(signal="posture.skipped", value="image digest unknown")]
        labels = dict(pod.labels) if pod else dict(info.labels)
        answer = await self.posture.lookup(ref, namespace=ctx.workload.namespace, labels=labels)
        if answer is None:
            return (
                Posture(sbom_referrer="unknown"),
                None,
                None,
                [Evidence(signal="posture.unavailable", value="backend did not answer")],
            )
        policy = answer.policy
        evidence = [
            Evidence(
                signal="backend.policy",
                value=f"verdict={policy.policy_verdict} revision={answer.policy_revision or '-'}",
            )
        ]
        attestation = None
        if policy.rekor is not None:
            attestation = Attestation(uuid=policy.rekor.uuid, verified=bool(policy.rekor.verified))
        posture = Posture(
            image_signed=policy.signed,
            sbom_referrer="present" if policy.has_sbom else "missing",
            attestation=attestation,
        )
        delta = None
        reasons = []
        if not policy.has_sbom:
            reasons.append("no SBOM in the backend catalog")
        tracked_base = next(
            (
                t.policy.base_image_digest
                for t in self.tracked.values()
                if t.policy is not None
                and t.info.image_digest == info.image_digest
                and t.policy.base_image_digest
            ),
            None,
        )
        if tracked_base and policy.base_image_digest and tracked_base != policy.base_image_digest:
            reasons.append(f"base differs from known baseline {tracked_base}")
        if reasons:
            delta = RuntimeDelta(baseline_image_digest=info.image_digest)
            evidence.append(Evidence(signal="delta-scan.requested", value="; ".join(reasons)))
        return posture, delta, policy, evidence

    def _track(
        self,
        info: ContainerInfo,
        ctx: EventContext,
        root: RootFS | None,
        trace: EntryTraceLike | None,
        container_meta: ContainerMeta | None,
        start_time: int | None,
    ) -> _Tracked:
        s = self.settings
        allowed: frozenset[str] = frozenset()
        baseline: Baseline | None = None
        if root is not None and info.pid is not None:
            declared: list[Sequence[str]] = (
                [argv for _, argv in container_meta.declared_commands] if container_meta else []
            )
            terminals = list(trace.terminals) if trace is not None else []
            if trace is None:
                # no EntryTrace: the program running as the container's init when first seen is the baseline
                try:
                    terminals = [
                        str(Path(f"{s.procfs}/{info.pid}/exe").readlink()).removesuffix(" (deleted)")
                    ]
                except OSError:
                    terminals = []
            if info.healthcheck:
                declared.append(list(info.healthcheck))
            allowed = drift.allowed_programs(
                root,
                terminals=terminals,
                declared_commands=declared,
                extra=s.allowed_programs,
                path_env=info.env.get("PATH"),
            )
            baseline = baseline_of(root, trace, terminals, declared, s.allowed_programs, info.env.get("PATH"))
        since, since_source = (
            (info.image_created, "imageCreated") if info.image_created else (info.created, "containerCreated")
        )
        tracked = _Tracked(
            info=info,
            ctx=ctx,
            start_key=(info.pid, start_time) if info.pid and start_time is not None else None,
            allowed=allowed,
            since=since,
            since_source=since_source,
            upper_dir=drift.overlay_upper_dir(s.procfs, info.pid) if info.pid else None,
            host_network=drift.shares_host_network(s.procfs, info.pid) if info.pid else False,
            baseline=baseline,
            declared_ports=info.exposed_ports | (container_meta.ports if container_meta else frozenset()),
        )
        self.tracked[info.id] = tracked
        if self.exec_drift is not None and baseline is not None and info.pid:
            tracked.exec_watched = self.exec_drift.watch(info.id, info.pid, baseline, ctx)
        return tracked

    # --------------------------------------------------------------------------------- posture events

    def _policy_events(self, tracked: _Tracked, policy: ImagePolicy, when: datetime) -> list[RuntimeEvent]:
        out = []
        previous, tracked.policy = tracked.policy, policy
        if policy.policy_verdict == "fail" and (previous is None or previous.policy_verdict != "fail"):
            out.append(
                tracked.ctx.event(
                    EventKind.POLICY_VIOLATION,
                    when=when,
                    posture=Posture(
                        image_signed=policy.signed, sbom_referrer="present" if policy.has_sbom else "missing"
                    ),
                    evidence=[Evidence(signal="backend.policy.fail", value=r) for r in policy.reasons]
                    or [Evidence(signal="backend.policy.fail", value="verdict=fail")],
                )
            )
        key = (
            policy.signed,
            policy.rekor.uuid if policy.rekor else None,
            policy.rekor.verified if policy.rekor else None,
        )
        if key != tracked.attestation_key:
            tracked.attestation_key = key
            attestation = Attestation(uuid=key[1], verified=bool(key[2])) if policy.rekor else None
            out.append(
                tracked.ctx.event(
                    EventKind.ATTESTATION_STATUS,
                    when=when,
                    posture=Posture(
                        image_signed=policy.signed,
                        sbom_referrer="present" if policy.has_sbom else "missing",
                        attestation=attestation,
                    ),
                    evidence=[
                        Evidence(
                            signal="backend.attestation",
                            value=f"signed={str(policy.signed).lower()} rekor={key[1] or '-'} "
                            f"verified={str(bool(key[2])).lower()}",
                        )
                    ],
                )
            )
        return out

    async def refresh_posture(self) -> list[RuntimeEvent]:
        """Ask the backend again about every tracked image (the cache decides what is fetched)."""
        if self.posture is None:
            return []
        events: list[RuntimeEvent] = []
        for tracked in list(self.tracked.values()):
            ref = tracked.info.image_ref_by_digest
            if tracked.stopped or not ref or "@sha256:" not in ref:
                continue
            answer = await self.posture.lookup(
                ref, namespace=tracked.ctx.workload.namespace, labels=dict(tracked.info.labels)
            )
            if answer is not None:
                events += self._policy_events(tracked, answer.policy, self.clock())
        for event in events:
            await self.emit(event)
        return events

    # ------------------------------------------------------------------------------------------- stop

    async def handle_stop(self, event: ContainerEvent) -> list[RuntimeEvent]:
        """A container stopped (or was removed): one CONTAINER_STOP, and the agent forgets it."""
        if event.id in self._starting:
            self._stopped_early[event.id] = event  # still being observed: stop it once its start is out
            return []
        tracked = self.tracked.pop(event.id, None)
        if self.exec_drift is not None:
            self.exec_drift.unwatch(event.id)
        if tracked is None or tracked.stopped:
            return []
        tracked.stopped = True
        evidence = [Evidence(signal=f"{event.source or 'engine'}.stop", value=f"exitCode={event.exit_code}")]
        if event.exit_code is None:
            evidence = [Evidence(signal=f"{event.source or 'engine'}.stop", value=event.kind)]
        process = None
        if tracked.info.pid:
            process = Process(
                pid=tracked.info.pid,
                entrypoint=list(tracked.info.entrypoint),
                start_time=tracked.start_key[1] if tracked.start_key else None,
            )
        stop = tracked.ctx.event(
            EventKind.CONTAINER_STOP,
            when=event.when,
            process=process,
            evidence=evidence + self._engine_evidence(),
        )
        await self.emit(stop)
        return [stop]

    # ------------------------------------------------------------------------------------------ drift

    def _drift_findings(self, tracked: _Tracked) -> list[RuntimeEvent]:
        """One container's drift pass (blocking reads; runs in a worker thread)."""
        s = self.settings
        pid = tracked.info.pid
        if pid is None or tracked.stopped:
            return []
        if tracked.start_key is not None and drift.process_start_time(s.procfs, pid) != tracked.start_key[1]:
            return []  # the container's init is gone (or the pid was reused): nothing of it to read
        when = self.clock()
        out: list[RuntimeEvent] = []
        root = RootFS(f"{s.procfs}/{pid}/root")
        if s.drift_process and tracked.allowed and not tracked.exec_watched:  # else judged per exec
            processes = drift.container_processes(s.procfs, pid, max_processes=s.max_processes)
            found = drift.detect_process_drift(
                processes, tracked.allowed, tracked.reported_processes, root=root
            )
            if found and tracked.baseline is not None:  # the same per-parent baseline as per exec
                found = judge_polled(processes, found, tracked.baseline, pid)
            if found:
                tracked.reported_processes.update(p.key for p in found)
                out.append(drift.process_drift_event(tracked.ctx, found, when=when))
        if s.drift_filesystem and tracked.since is not None:
            files = drift.detect_filesystem_drift(
                root,
                tracked.since,
                dirs=s.watched_dirs,
                upper=self.host_root if tracked.upper_dir else None,
                upper_dir=tracked.upper_dir,
                reported=tracked.reported_files,
                max_files=s.max_files,
                max_depth=s.max_depth,
                max_hash_bytes=s.max_hash_bytes,
            )
            if files:
                tracked.reported_files.update(f.key for f in files)
                out.append(
                    drift.filesystem_drift_event(
                        tracked.ctx, files, when=when, since=tracked.since, since_source=tracked.since_source
                    )
                )
        if s.drift_network and not tracked.host_network:
            listeners = drift.listening_sockets(s.procfs, pid)
            found_ports = drift.detect_network_drift(
                listeners, s.allowed_ports | tracked.declared_ports, tracked.reported_ports
            )
            if found_ports:
                tracked.reported_ports.update(listener.key for listener in found_ports)
                out.append(drift.network_drift_event(tracked.ctx, found_ports, when=when, pid=pid))
        return out

    async def _library_drift(self, tracked: _Tracked) -> list[RuntimeEvent]:
        s = self.settings
        digest, pid = tracked.info.image_digest, tracked.info.pid
        if not s.drift_library or self.posture is None or not digest or pid is None or tracked.stopped:
            return []
        usage = await self.posture.usage_paths(digest)
        if usage is None:
            return []
        root = RootFS(f"{s.procfs}/{pid}/root")
        loaded = await asyncio.to_thread(_container_mapped_files, s.procfs, pid, s.max_processes)
        found = await asyncio.to_thread(
            drift.detect_library_drift, loaded, usage, tracked.reported_libs, root=root
        )
        if not found:
            return []
        tracked.reported_libs.update(found)
        return [drift.library_drift_event(tracked.ctx, found, when=self.clock(), pid=pid)]

    async def drift_pass(self) -> list[RuntimeEvent]:
        """One drift pass over every tracked container; returns the DRIFT events published."""
        published: list[RuntimeEvent] = []
        cap = self.settings.max_drift_events_per_container
        for tracked in list(self.tracked.values()):
            if tracked.drift_events >= cap:
                continue
            with span("observe.drift", container=tracked.info.container_id):
                try:
                    events = await asyncio.to_thread(self._drift_findings, tracked)
                    events += await self._library_drift(tracked)
                except Exception as exc:
                    log.warning(
                        "drift pass failed for a container",
                        extra=fields(container=tracked.info.container_id, error=str(exc)[:300]),
                    )
                    continue
            for event in events[: cap - tracked.drift_events]:
                tracked.drift_events += 1
                await self.emit(event)
                published.append(event)
        return published

    # ----------------------------------------------------------------------------------------- loops

    async def resync(self) -> list[RuntimeEvent]:
        """Re-list running containers: start the unknown ones, stop the ones gone."""
        containers = await self.engine.list_containers()
        running_ids = [c.id[:12] for c in containers][:64]
        log.debug("re-listed", extra=fields(running=running_ids, tracked=len(self.tracked)))
        running = {c.id for c in containers}
        events: list[RuntimeEvent] = []
        now = self.clock()
        for container_id in [cid for cid in self.tracked if cid not in running]:
            events += await self.handle_stop(
                ContainerEvent(
                    kind="remove",
                    engine=self.engine.name,
                    id=container_id,
                    when=now,
                    source="observer.resync",
                )
            )
        for info in containers:
            events += await self.handle_start(info, resync=True)
        return events

    async def warn(self, code: str, message: str) -> RuntimeEvent:
        ctx = observer_context(
            tenant=self.settings.tenant,
            node=self.settings.node,
            engine=self.engine.name,
            container_id=f"{self.engine.name}://observer",
        )
        event = ctx.event(
            EventKind.AGENT_WARNING,
            when=self.clock(),
            warning=AgentWarning(code=code, message=message[:4000]),
            evidence=self._engine_evidence(),
        )
        await self.emit(event)
        return event

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _on_event(self, event: ContainerEvent) -> None:
        log.debug("engine event", extra=fields(kind=event.kind, container=event.id, source=event.source))
        if event.kind == "start":
            if len(self._pending) >= self.settings.max_tracked_containers:
                log.warning("too many pending starts; dropping one", extra=fields(container=event.id))
                return

            async def start() -> None:
                # containerd publishes /tasks/start before its CRI plugin records the container as running:
                # inspected 3 ms after the event it was still "created" and the start was dropped for good
                # (test_agent_cri, 1 run in ~6 at load 7-10). Inspected again while so, 0.05 s doubling to
                # 1.6 s (3.15 s in all); a container that exited meanwhile is not running either way
                delay = 0.05
                while True:
                    try:
                        info = await self.engine.inspect(event.id)
                    except EngineUnavailable as exc:
                        log.warning("inspect failed", extra=fields(container=event.id, error=str(exc)[:300]))
                        return
                    if info is None or info.running or delay > _START_RETRY_MAX:
                        break
                    retry = fields(container=event.id, retry_in_s=delay)
                    log.debug("started container not running yet", extra=retry)
                    await asyncio.sleep(delay)
                    delay *= 2
                if info is not None and info.running:
                    await self.handle_start(info)
                else:
                    state = "not found" if info is None else "not running"
                    log.debug("started container not observed", extra=fields(container=event.id, state=state))

            self._spawn(start())
        elif event.kind == "exec":
            if self.exec_drift is not None:  # the engine's word for what the connector may read too late
                self.exec_drift.engine_exec(event.id, event.command or "", event.when)
        elif event.kind in ("stop", "remove"):
            await self.handle_stop(event)
        elif event.kind == "degraded":
            await self.warn(
                "engine.fallback", f"container engine unavailable, reduced fidelity: {event.source}"
            )
            with contextlib.suppress(EngineUnavailable):
                await self.resync()
        elif event.kind == "resync":
            if event.source.endswith("overflow"):
                await self.warn("engine.events.overflow", f"{event.source}: events dropped, re-listing")
            elif not event.source.endswith(".subscribed"):
                # (".subscribed": the stream is live now; what started while it opened is re-listed quietly)
                await self.warn("engine.reconnected", f"container engine {event.engine} answers again")
            with contextlib.suppress(EngineUnavailable):
                await self.resync()

    async def _event_loop(self) -> None:
        delay = self.settings.reconnect_initial
        first = True
        while True:
            stream = self.engine.events()
            try:
                if not first:
                    await self.resync()
                first = False
                async for event in stream:
                    delay = self.settings.reconnect_initial
                    await self._on_event(event)
                # a stream the engine closed is not the end of observing (a daemon restarting ends its
                # stream cleanly): returning here ended `observer run` with status 0 and nothing watched
                log.warning("engine event stream ended; reconnecting", extra=fields(retry_in_s=delay))
            except EngineUnavailable as exc:
                log.warning(
                    "engine event stream lost; reconnecting",
                    extra=fields(error=str(exc)[:300], retry_in_s=delay),
                )
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(delay)
            delay = min(self.settings.reconnect_max, delay * 2)

    async def _periodic(self, interval: float, fn: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await fn()
            except EngineUnavailable:
                continue
            except Exception as exc:
                log.warning("periodic observer task failed", extra=fields(error=str(exc)[:300]))

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Observe until ``stop`` is set (or cancelled): initial resync, events, drift and posture loops."""
        stop = stop or asyncio.Event()
        tasks: list[asyncio.Task[Any]] = []
        if self.pods is not None:
            tasks.append(asyncio.create_task(self.pods.run(), name="pods"))
        tasks.append(asyncio.create_task(self._event_loop(), name="events"))
        try:
            try:
                await self.resync()
            except EngineUnavailable as exc:
                await self.warn("engine.unavailable", str(exc))
            if self.settings.drift_enabled and self.settings.drift_process:
                tasks += await self._start_exec_drift()
            if self.settings.drift_enabled:
                tasks.append(
                    asyncio.create_task(
                        self._periodic(self.settings.drift_interval, self.drift_pass), name="drift"
                    )
                )
            if self.posture is not None:
                tasks.append(
                    asyncio.create_task(
                        self._periodic(self.settings.posture_refresh_interval, self.refresh_posture),
                        name="posture",
                    )
                )
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            for task in tasks:
                if not task.done():
                    continue
                if not stop.is_set():
                    # a loop that ends by itself ends observing: said, with its cause (a cancellation no
                    # stop asked for once ended the agent silently, test_agent_cri)
                    cause = "cancelled" if task.cancelled() else repr(task.exception())[:300]
                    log.error("observer loop ended", extra=fields(loop=task.get_name(), cause=cause))
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in [*tasks, *self._pending]:
                task.cancel()
            await asyncio.gather(*tasks, *self._pending, return_exceptions=True)

    async def _start_exec_drift(self) -> list[asyncio.Task[Any]]:
        """Process drift per exec from the proc connector (``execSource``: auto, connector, poll)."""
        s = self.settings
        if s.exec_source == "poll":
            return []
        metrics, on_drop = self.metrics, self.on_exec_drop
        if on_drop is None and metrics is not None:
            on_drop = lambda reason: metrics.exec_drops.labels(reason=reason).inc()  # noqa: E731
        exec_drift = ExecDrift(
            s.procfs,
            self.emit,
            quiet_window=s.quiet_window,
            max_queue=s.exec_queue,
            max_events_per_container=s.max_drift_events_per_container,
            on_drop=on_drop,
            clock=self.clock,
        )
        unavailable = open_exec_drift(exec_drift, s.exec_source)
        if unavailable is not None:
            await self.warn("drift.exec-source.unavailable", f"process drift by /proc polling: {unavailable}")
            return []
        self.exec_drift = exec_drift
        for container_id, tracked in self.tracked.items():  # found running before the source started
            if tracked.baseline is not None and tracked.info.pid:
                tracked.exec_watched = exec_drift.watch(
                    container_id, tracked.info.pid, tracked.baseline, tracked.ctx
                )
        return [asyncio.create_task(exec_drift.run(), name="exec-drift")]

    async def snapshot(self) -> list[RuntimeEvent]:
        """The CONTAINER_START (and posture) events for the containers running now, without publishing
        anything: one pass, nothing kept."""
        collected: list[RuntimeEvent] = []
        publish = self._publish

        async def collect(event: RuntimeEvent) -> None:
            collected.append(event)

        self._publish = collect
        try:
            for info in await self.engine.list_containers():
                await self.handle_start(info, resync=True)
        finally:
            self._publish = publish
            self.tracked.clear()
        return collected


def baseline_of(
    root: RootFS,
    trace: EntryTraceLike | None,
    terminals: Sequence[str],
    declared: Sequence[Sequence[str]],
    extra: Sequence[str],
    path_env: str | None,
) -> Baseline:
    """The container's drift baseline (:mod:`.baseline`) from its trace and declared commands."""
    from .baseline import build_baseline

    chain = [step.target for step in trace.steps] if trace is not None else []
    return build_baseline(
        root,
        terminals=terminals,
        finals=list(getattr(trace, "finals", ()) or ()),
        chain=chain,
        scripts=list(getattr(trace, "scripts", ()) or ()),
        declared_commands=declared,
        extra=extra,
        path_env=path_env,
    )


def _container_mapped_files(procfs: str, init: int, max_processes: int) -> list[str]:
    """Files mapped by every process of the container (bounded by ``max_processes``), in first-seen order."""
    seen: dict[str, None] = {}
    for process in drift.container_processes(procfs, init, max_processes=max_processes):
        for path in drift.mapped_files(procfs, process.pid):
            seen.setdefault(path, None)
    return list(seen)
