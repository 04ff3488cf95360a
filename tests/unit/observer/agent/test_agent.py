"""Agent logic over this machine's real /proc, with a child process playing the container's init.

The engine here is an in-memory table (the real engines are exercised in tests/integration/observer/agent);
posture answers come from a small in-test source. Both are test doubles of *inputs*, not of the agent.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from zastava.contracts import EventKind, ImagePolicy, RekorRef
from zastava.observer.agent import ObserverAgent
from zastava.observer.engines.base import FULL, ContainerEvent, ContainerInfo, EngineName
from zastava.observer.wiring import AgentSettings

from .standins import Collector, StaticTracer

DIGEST = "sha256:" + "d" * 64


class TableEngine:
    """In-memory engine: ``infos`` by id; ``queue`` feeds events()."""

    name: EngineName = "docker"
    capabilities = FULL
    degraded = False
    fallback_reason: str | None = None

    def __init__(self, infos: dict[str, ContainerInfo]) -> None:
        self.infos = infos
        self.queue: asyncio.Queue[ContainerEvent] = asyncio.Queue()
        self.inspects = 0
        self.late_pid: dict[str, int] = {}
        #: id → how many more inspections report it not running yet (then running)
        self.not_running_yet: dict[str, int] = {}

    async def version(self) -> str | None:
        return "test"

    async def ping(self) -> None:
        return None

    async def list_containers(self) -> list[ContainerInfo]:
        return [i for i in self.infos.values() if i.running]

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        self.inspects += 1
        info = self.infos.get(container_id)
        if info is not None and container_id in self.late_pid and self.inspects > 2:
            info = replace(info, pid=self.late_pid.pop(container_id), missing=())
            self.infos[container_id] = info
        if info is not None and container_id in self.not_running_yet:
            self.not_running_yet[container_id] -= 1
            if self.not_running_yet[container_id] >= 0:
                return replace(info, running=False)
        return info

    def events(self) -> AsyncIterator[ContainerEvent]:
        async def stream() -> AsyncIterator[ContainerEvent]:
            while True:
                yield await self.queue.get()

        return stream()

    async def aclose(self) -> None:
        return None


@dataclass
class Answer:
    policy: ImagePolicy
    policy_revision: str | None = "r1"


class FlippingPosture:
    def __init__(self, *policies: ImagePolicy) -> None:
        self.policies = list(policies)

    async def lookup(
        self, image_ref: str, *, namespace: str | None = None, labels: Any = None
    ) -> Answer | None:
        policy = self.policies[0] if len(self.policies) == 1 else self.policies.pop(0)
        return Answer(policy)

    async def usage_paths(self, digest: str) -> frozenset[str] | None:
        return None


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def info_for(pid: int | None, cid: str = "c1") -> ContainerInfo:
    return ContainerInfo(
        engine="docker",
        id=cid,
        runtime_version="20.10",
        pid=pid,
        image_ref="127.0.0.1:5000/demo/app:1",
        image_digest=DIGEST,
        repo_digest=f"127.0.0.1:5000/demo/app@{DIGEST}",
        entrypoint=("/entry.sh",),
        created=datetime(2026, 1, 1, tzinfo=UTC),
        image_created=datetime(2100, 1, 1, tzinfo=UTC),
        missing=() if pid else ("pid",),
    )


def settings(**kwargs: Any) -> AgentSettings:
    return AgentSettings(tenant="t", node="n", procfs="/proc", enrichment_retry_delay=0.01, **kwargs)


async def test_start_without_optional_parts_says_so_and_stop_once(child: subprocess.Popen[bytes]) -> None:
    engine = TableEngine({"c1": info_for(child.pid)})
    collector = Collector()
    agent = ObserverAgent(engine, collector, settings())
    [start] = await agent.handle_start(engine.infos["c1"])
    assert start.kind is EventKind.CONTAINER_START and start.process is not None
    assert start.process.pid == child.pid and start.process.start_time is not None
    assert start.workload.image_ref == f"127.0.0.1:5000/demo/app@{DIGEST}"
    signals = {e.signal for e in start.evidence}
    assert {"inspection.unavailable", "entrytrace.unavailable", "posture.unavailable"} <= signals
    # no EntryTrace: the init's program observed at start is the process baseline
    assert os.path.realpath(sys.executable) in agent.tracked["c1"].allowed  # noqa: ASYNC240
    assert await agent.handle_start(engine.infos["c1"]) == []  # already tracked
    now = datetime.now(UTC)
    stops = await agent.handle_stop(
        ContainerEvent("stop", "docker", "c1", now, exit_code=137, source="docker.events")
    )
    assert [e.kind for e in stops] == [EventKind.CONTAINER_STOP]
    assert stops[0].evidence[0].value == "exitCode=137"
    assert "c1" not in agent.tracked  # forgotten at stop: stopped-but-kept containers do not accumulate
    assert await agent.handle_stop(ContainerEvent("remove", "docker", "c1", now)) == []
    assert [e.kind for e in collector.events] == [EventKind.CONTAINER_START, EventKind.CONTAINER_STOP]


async def test_late_pid_is_retried_then_missing_is_evidence(child: subprocess.Popen[bytes]) -> None:
    engine = TableEngine({"c1": info_for(None), "c2": info_for(None, "c2")})
    engine.late_pid["c1"] = child.pid
    agent = ObserverAgent(engine, Collector(), settings(enrichment_retries=3))
    [late] = await agent.handle_start(engine.infos["c1"])
    assert late.process is not None and late.process.pid == child.pid
    [never] = await agent.handle_start(engine.infos["c2"])
    values = {e.signal: e.value for e in never.evidence}
    assert values["enrichment.missing"] == "pid"
    assert never.process is not None and never.process.pid == 0 and never.process.start_time is None


async def test_policy_violation_on_fail_and_attestation_on_change(child: subprocess.Popen[bytes]) -> None:
    passing = ImagePolicy(signed=False, has_sbom=True, policy_verdict="pass")
    failing = ImagePolicy(
        signed=True,
        has_sbom=True,
        policy_verdict="fail",
        reasons=["cve"],
        rekor=RekorRef(uuid="u1", verified=True),
    )
    engine = TableEngine({"c1": info_for(child.pid)})
    collector = Collector()
    agent = ObserverAgent(engine, collector, settings(), posture=FlippingPosture(passing, failing, failing))
    events = await agent.handle_start(engine.infos["c1"])
    assert [e.kind for e in events] == [EventKind.CONTAINER_START, EventKind.ATTESTATION_STATUS]
    assert events[0].posture is not None and events[0].posture.sbom_referrer == "present"
    refreshed = await agent.refresh_posture()
    assert [e.kind for e in refreshed] == [EventKind.POLICY_VIOLATION, EventKind.ATTESTATION_STATUS]
    assert refreshed[0].evidence[0].value == "cve"
    assert refreshed[1].posture is not None and refreshed[1].posture.attestation is not None
    assert await agent.refresh_posture() == []  # unchanged: nothing new


async def test_drift_events_are_capped_per_container(child: subprocess.Popen[bytes]) -> None:
    """The child shares this machine's pid and mount namespace, so the container's processes are the host's.
    The trace names the child's own program, so the init is settled (past start-up) and a ``sleep`` started
    here, outside the baseline, is drift — whatever else runs on the machine (CI runs few programs)."""
    init_program = os.path.realpath(sys.executable)  # noqa: ASYNC240
    engine = TableEngine({"c1": info_for(child.pid)})
    agent = ObserverAgent(
        engine,
        Collector(),
        settings(drift_filesystem=False, max_drift_events_per_container=1),
        tracer=StaticTracer({("/entry.sh",): [init_program]}),
    )
    await agent.handle_start(engine.infos["c1"])
    first_sleep = subprocess.Popen(["sleep", "30"])  # noqa: ASYNC220
    extra = None
    try:
        first = await agent.drift_pass()
        assert len(first) == 1 and first[0].kind is EventKind.DRIFT
        programs = {e.value for e in first[0].evidence}
        assert any("sleep" in v for v in programs), programs
        extra = subprocess.Popen(["sleep", "31"])  # noqa: ASYNC220
        assert await agent.drift_pass() == []  # capped
    finally:
        for process in (first_sleep, extra):
            if process is not None:
                process.kill()
                process.wait()


async def test_snapshot_publishes_nothing_and_keeps_nothing(child: subprocess.Popen[bytes]) -> None:
    engine = TableEngine(
        {"c1": info_for(child.pid), "gone": replace(info_for(child.pid, "gone"), running=False)}
    )
    collector = Collector()
    agent = ObserverAgent(engine, collector, settings())
    events = await agent.snapshot()
    assert [e.workload.container_id for e in events] == ["docker://c1"]
    assert collector.events == [] and agent.tracked == {}


async def test_run_resyncs_and_follows_engine_events(child: subprocess.Popen[bytes]) -> None:
    engine = TableEngine({"c1": info_for(child.pid)})
    collector = Collector()
    agent = ObserverAgent(engine, collector, settings(drift_enabled=False))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await collector.wait_for(lambda e: e.workload.container_id == "docker://c1", timeout=5)
        engine.infos["c2"] = info_for(child.pid, "c2")
        await engine.queue.put(ContainerEvent("start", "docker", "c2", datetime.now(UTC)))
        await collector.wait_for(lambda e: e.workload.container_id == "docker://c2", timeout=5)
        await engine.queue.put(
            ContainerEvent("degraded", "docker", "", datetime.now(UTC), source="socket gone")
        )
        warning = await collector.wait_for(lambda e: e.kind is EventKind.AGENT_WARNING, timeout=5)
        assert warning.warning is not None and warning.warning.code == "engine.fallback"
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_start_event_ahead_of_the_engine_status_is_inspected_again(
    child: subprocess.Popen[bytes],
) -> None:
    """containerd publishes /tasks/start before CRI reports the container running (inspected 3 ms after the
    event it was still "created", and the start was dropped for good): the agent inspects again, a bounded
    number of times, and observes it once it runs."""
    engine = TableEngine({})
    collector = Collector()
    agent = ObserverAgent(engine, collector, settings(drift_enabled=False))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await asyncio.sleep(0.1)
        engine.infos["c1"] = info_for(child.pid)
        engine.not_running_yet["c1"] = 3
        await engine.queue.put(ContainerEvent("start", "docker", "c1", datetime.now(UTC)))
        start = await collector.wait_for(lambda e: e.kind is EventKind.CONTAINER_START, timeout=10)
        assert start.workload.container_id == "docker://c1" and engine.not_running_yet["c1"] == -1
        # one that never runs: given up after the bound (7 inspections over 3.15 s), nothing published
        engine.infos["c2"] = info_for(child.pid, "c2")
        engine.not_running_yet["c2"] = 100
        await engine.queue.put(ContainerEvent("start", "docker", "c2", datetime.now(UTC)))
        for _ in range(100):
            await asyncio.sleep(0.1)
            if not agent._pending:
                break
        assert not agent._pending and engine.not_running_yet["c2"] == 100 - 7
        assert [e.workload.container_id for e in collector.events] == ["docker://c1"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_stop_during_start_is_emitted_after_the_start(child: subprocess.Popen[bytes]) -> None:
    engine = TableEngine({"c1": info_for(child.pid)})
    collector = Collector()

    class SlowTracer(StaticTracer):
        async def trace(self, info: ContainerInfo, root: Any) -> Any:
            await asyncio.sleep(0.2)
            return await super().trace(info, root)

    agent = ObserverAgent(engine, collector, settings(), tracer=SlowTracer({("/entry.sh",): ["/x"]}))
    starting = asyncio.create_task(agent.handle_start(engine.infos["c1"]))
    await asyncio.sleep(0.05)
    assert await agent.handle_stop(ContainerEvent("stop", "docker", "c1", datetime.now(UTC))) == []
    events = await starting
    assert [e.kind for e in events] == [EventKind.CONTAINER_START, EventKind.CONTAINER_STOP]
    assert agent.tracked == {}


async def test_fallback_engine_is_said_in_evidence(child: subprocess.Popen[bytes]) -> None:
    engine = TableEngine({"c1": replace(info_for(child.pid), fidelity="reduced")})
    engine.degraded = True
    engine.fallback_reason = "CRI socket /run/containerd/containerd.sock is missing"
    [start] = await ObserverAgent(engine, Collector(), settings()).handle_start(engine.infos["c1"])
    values = {e.signal: e.value for e in start.evidence}
    assert (
        values["engine.fallback"] == "reduced fidelity: CRI socket /run/containerd/containerd.sock is missing"
    )
    assert values["enrichment.partial"] == "engine=docker fidelity=reduced"


async def test_pod_metadata_gives_owner_and_declared_probe_programs(child: subprocess.Popen[bytes]) -> None:
    from zastava.observer.engines.base import KubernetesIdentity
    from zastava.observer.engines.kubernetes import PodWatcher

    from .test_kubernetes import NODE, pod

    watcher = PodWatcher(NODE, client=object())
    body = pod("api-7c9fbbd8b7-ktd84", container_id="docker://c1")
    body["spec"]["containers"][0]["livenessProbe"]["exec"]["command"] = [sys.executable, "-c", "pass"]
    await watcher.apply("ADDED", body)
    identity = KubernetesIdentity(namespace="payments", pod="api-7c9fbbd8b7-ktd84", container="api")
    engine = TableEngine({"c1": replace(info_for(child.pid), kubernetes=identity)})
    agent = ObserverAgent(
        engine, Collector(), settings(), pods=watcher, tracer=StaticTracer({("/entry.sh",): ["/nonexistent"]})
    )
    [start] = await agent.handle_start(engine.infos["c1"])
    assert start.workload.owner is not None
    assert (start.workload.owner.kind, start.workload.owner.name) == ("Deployment", "api")
    assert (start.workload.platform, start.workload.namespace, start.workload.container) == (
        "kubernetes",
        "payments",
        "api",
    )
    # the child runs the interpreter named by the declared liveness probe: not drift
    assert os.path.realpath(sys.executable) in agent.tracked["c1"].allowed  # noqa: ASYNC240


async def test_observe_spans_when_tracing_is_enabled(child: subprocess.Popen[bytes]) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from zastava.telemetry import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer(provider.get_tracer("test"))
    try:
        engine = TableEngine({"c1": info_for(child.pid)})
        await ObserverAgent(engine, Collector(), settings()).handle_start(engine.infos["c1"])
    finally:
        tracing.use_tracer(None)
    names = [s.name for s in exporter.get_finished_spans()]
    assert "observe" in names and "observe.publish" in names
    observe = next(s for s in exporter.get_finished_spans() if s.name == "observe")
    assert observe.attributes is not None and observe.attributes["container"] == "docker://c1"
