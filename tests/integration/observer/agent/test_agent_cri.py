"""The observer agent through the CRI engine on a real containerd (host-network pod), and the
``zastava observer snapshot`` command on real engines.

EntryTrace is not on this branch yet: the TEMPORARY static tracer of ``standins.py`` states the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.harness import devstack
from tests.harness.devstack.cri import CriClient
from tests.unit.observer.agent.standins import Collector
from zastava.contracts import EventKind, RuntimeEvent
from zastava.observer.agent import ObserverAgent
from zastava.observer.engines.base import ContainerEvent, EngineUnavailable
from zastava.observer.engines.cri import CriEngine
from zastava.observer.ports import entrytrace_view, tracer_from_function
from zastava.observer.wiring import AgentSettings
from zastava.telemetry.logging import FIELDS_ATTR

#: the real EntryTrace, run on each container's root
REAL_TRACER = tracer_from_function(entrytrace_view, max_depth=48)


async def _wait(
    collector: Collector,
    predicate: Any,
    task: asyncio.Task[None],
    engine: CriEngine,
    caplog: pytest.LogCaptureFixture | None = None,
) -> RuntimeEvent:
    """The first collected event matching ``predicate`` within 45 s; else a failure that says what the agent
    was doing (a CI failure otherwise said only "TimeoutError")."""
    try:
        return await collector.wait_for(predicate, timeout=45)
    except TimeoutError:
        state = "running" if not task.done() else "cancelled" if task.cancelled() else repr(task.exception())
        warnings = [e.warning.message for e in collector.events if e.warning is not None]
        kinds = [e.kind.value for e in collector.events]
        records = caplog.records if caplog is not None else []
        logged = [(r.created, r.getMessage(), getattr(r, FIELDS_ATTR, None)) for r in records]
        raise AssertionError(
            f"not seen in 45 s; agent {state}, event source {engine.event_source}, events {kinds}, "
            f"warnings {warnings}, log {logged}"
        ) from None


async def test_cri_pod_start_and_stop_events(
    cri: devstack.ContainerdService, cri_images: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "zastava.observer")  # what the agent saw, shown when this fails
    collector = Collector()
    engine = CriEngine(cri.socket, poll_interval=0.3)
    agent = ObserverAgent(
        engine,
        collector,
        AgentSettings(tenant="t", node="n", drift_interval=0.3),
        tracer=REAL_TRACER,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    client = CriClient(cri.socket)
    name = f"agent-{uuid.uuid4().hex[:6]}"
    sandbox = ""
    try:
        await asyncio.sleep(0.5)
        sandbox, config = await asyncio.to_thread(client.run_pod, name, "payments", {"app": name})
        container_id = await asyncio.to_thread(
            client.run_container, sandbox, config, "app", cri_images["busybox"]
        )

        def ours(kind: EventKind) -> Any:
            return lambda e: e.kind is kind and e.workload.container_id == f"containerd://{container_id}"

        # a bound, not a speed check: the start (an event, an inspection, an EntryTrace) comes within 2 s at
        # load 7-10. It once "missed" 45 s in full-suite runs: the agent dropped a start it inspected before
        # containerd's CRI reported it running (test_agent.py: test_a_start_event_ahead_of_the_engine…),
        # missed containers started while its stream opened (test_a_container_started_before_the_event…) and
        # ended on a CRI call past its deadline (test_agent_keeps_observing_after_a_cri_call_misses…)
        start: RuntimeEvent = await _wait(collector, ours(EventKind.CONTAINER_START), task, engine, caplog)
        pid = await asyncio.to_thread(client.container_pid, container_id)
        assert start.process is not None and start.process.pid == pid
        assert start.process.entrypoint == ["/entry.sh"] and start.process.terminals == [
            "/bin/sleep",
            "/bin/busybox",
        ]
        assert start.runtime.engine == "containerd" and start.runtime.version
        assert (
            start.workload.platform,
            start.workload.namespace,
            start.workload.pod,
            start.workload.container,
        ) == (
            "kubernetes",
            "payments",
            name,
            "app",
        )
        assert start.workload.image_ref is not None and "@sha256:" in start.workload.image_ref
        # the pause sandbox is not a container event
        assert not any(sandbox in e.workload.container_id for e in collector.events)
        await asyncio.sleep(0.7)  # drift passes over the entrypoint's own program report nothing
        assert not [e for e in collector.events if ours(EventKind.DRIFT)(e)]

        await asyncio.to_thread(
            client.runtime.StopContainer,
            client.pb.StopContainerRequest(container_id=container_id, timeout=1),
            timeout=30,
        )
        stopped = await _wait(collector, ours(EventKind.CONTAINER_STOP), task, engine)
        assert stopped.process is not None and stopped.process.pid == pid
    finally:
        if sandbox:
            await asyncio.to_thread(client.remove_pod, sandbox)
        client.close()
        stop.set()
        await asyncio.wait_for(task, 10)
        await engine.aclose()


async def test_agent_keeps_observing_after_a_cri_call_misses_its_deadline(
    cri: devstack.ContainerdService, cri_images: dict[str, str]
) -> None:
    """A unary CRI call that misses its deadline (a throttled containerd; the readiness probe's ping racing
    it) resets the engine's channel, which cancels the containerd event stream on it. That ended the agent's
    event loop, and the agent with it, without a word: test_agent_cri saw no CONTAINER_START in 2 full-suite
    runs of 3 (load 10+ on 2 cores, 5 s deadline). Here containerd (this session's, stopped by PID) is frozen
    for one 1 s deadline; the agent must reconnect and still see the container stop."""
    collector = Collector()
    engine = CriEngine(cri.socket, poll_interval=0.3)
    agent = ObserverAgent(engine, collector, AgentSettings(tenant="t", node="n", drift_enabled=False))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    client = CriClient(cri.socket)
    name = f"stall-{uuid.uuid4().hex[:6]}"
    sandbox = ""
    assert cri.process is not None
    try:
        sandbox, config = await asyncio.to_thread(client.run_pod, name, "payments", {"app": name})
        container_id = await asyncio.to_thread(
            client.run_container, sandbox, config, "app", cri_images["busybox"]
        )
        cid = f"containerd://{container_id}"
        # the start proves the agent is up and its event stream (or its first resync) works
        await collector.wait_for(
            lambda e: e.kind is EventKind.CONTAINER_START and e.workload.container_id == cid, timeout=45
        )
        for _ in range(100):  # the event stream subscribed (the start may have come from the first resync)
            if engine.event_source == "containerd":
                break
            await asyncio.sleep(0.1)
        assert engine.event_source == "containerd"
        engine.timeout = 1.0  # this one call's deadline (the others keep the 5 s default, whatever the load)
        os.kill(cri.process.pid, signal.SIGSTOP)
        try:
            await _all_threads_stopped(cri.process.pid)  # a thread still running answered once (1 in ~7)
            with pytest.raises(EngineUnavailable, match="Deadline Exceeded"):
                await engine.ping()
        finally:
            os.kill(cri.process.pid, signal.SIGCONT)
            engine.timeout = 5.0
        assert not task.done(), "the agent ended after one call missed its deadline"
        await asyncio.to_thread(
            client.runtime.StopContainer,
            client.pb.StopContainerRequest(container_id=container_id, timeout=1),
            timeout=30,
        )
        await collector.wait_for(
            lambda e: e.kind is EventKind.CONTAINER_STOP and e.workload.container_id == cid, timeout=45
        )
        assert not task.done()
    finally:
        if sandbox:
            await asyncio.to_thread(client.remove_pod, sandbox)
        client.close()
        stop.set()
        await asyncio.wait_for(task, 10)
        await engine.aclose()


async def _all_threads_stopped(pid: int, timeout: float = 10) -> None:  # noqa: ASYNC109
    """Until every thread of ``pid`` is in state T (a SIGSTOP reaches each thread on its own)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        states = set()
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/stat") as handle:  # noqa: ASYNC230
                states.add(handle.read().rsplit(")", 1)[1].split()[0])
        if states <= {"T", "t"}:
            return
        assert asyncio.get_running_loop().time() < deadline, f"containerd threads not stopped: {states}"
        await asyncio.sleep(0.01)


class _LateSubscriber(CriEngine):
    """The real engine, whose containerd subscription is opened ``delay`` seconds late: what a loaded node
    does to it (test double of timing only; every call still goes to the real containerd)."""

    delay = 3.0

    async def _containerd_events(self) -> AsyncIterator[ContainerEvent]:
        await asyncio.sleep(self.delay)
        async for event in super()._containerd_events():
            yield event


async def test_a_container_started_before_the_event_stream_is_live_is_observed(
    cri: devstack.ContainerdService, cri_images: dict[str, str]
) -> None:
    """containerd does not replay events, and the agent's first list runs while its stream is being opened:
    a container started in between was never observed (the agent then waits for events only). The engine
    says when its stream is live; the agent re-lists then."""
    collector = Collector()
    engine = _LateSubscriber(cri.socket, poll_interval=0.3)
    agent = ObserverAgent(engine, collector, AgentSettings(tenant="t", node="n", drift_enabled=False))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    client = CriClient(cri.socket)
    name = f"late-{uuid.uuid4().hex[:6]}"
    sandbox = ""
    try:
        await asyncio.sleep(0.5)  # the agent's first list is done, its stream not open yet
        sandbox, config = await asyncio.to_thread(client.run_pod, name, "payments", {"app": name})
        container_id = await asyncio.to_thread(
            client.run_container, sandbox, config, "app", cri_images["busybox"]
        )
        assert engine.event_source != "containerd" or not collector.events, "the stream opened too early"
        cid = f"containerd://{container_id}"

        def ours(e: RuntimeEvent) -> bool:
            return e.kind is EventKind.CONTAINER_START and e.workload.container_id == cid

        start = await _wait(collector, ours, task, engine)
        assert ("observer.resync", "found running") in [(e.signal, e.value) for e in start.evidence]
        assert not [e for e in collector.events if e.kind is EventKind.AGENT_WARNING]  # a quiet re-list
    finally:
        if sandbox:
            await asyncio.to_thread(client.remove_pod, sandbox)
        client.close()
        stop.set()
        await asyncio.wait_for(task, 10)
        await engine.aclose()


def test_snapshot_command_lists_running_docker_containers(
    docker_engine: devstack.DockerEngine, pushed_busybox: str, tmp_path: Any
) -> None:
    container = docker_engine.client().containers.run(pushed_busybox, detach=True, network_mode="none")
    try:
        config = tmp_path / "zastava.yaml"
        config.write_text(
            "zastava:\n  runtime:\n    procfs: /proc\n  observer:\n    nodeName: snap-node\n"
            f"    engines:\n      dockerHost: {docker_engine.host}\n"
        )
        env = {**os.environ, "ZASTAVA_CACHE_DIR": str(tmp_path / "cache")}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "zastava",
                "observer",
                "snapshot",
                "--engine",
                "docker",
                "--json",
                "-c",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        events = json.loads(result.stdout)
        ours = [e for e in events if e["workload"]["containerId"] == f"docker://{container.id}"]
        assert len(ours) == 1
        event = ours[0]
        container.reload()
        assert event["kind"] == "CONTAINER_START" and event["node"] == "snap-node"
        assert event["process"]["pid"] == container.attrs["State"]["Pid"]
        assert event["workload"]["imageRef"] == pushed_busybox
        assert {"signal": "observer.resync", "value": "found running"} in event["evidence"]
        table = subprocess.run(
            [
                sys.executable,
                "-m",
                "zastava",
                "observer",
                "snapshot",
                "--engine",
                "docker",
                "-c",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, "COLUMNS": "200"},
            check=False,
        )
        assert table.returncode == 0 and container.id[:12] in table.stdout
        bad = subprocess.run(
            [sys.executable, "-m", "zastava", "observer", "snapshot", "--engine", "nope", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert bad.returncode == 2 and "unknown engine" in bad.stderr
    finally:
        container.remove(force=True)
