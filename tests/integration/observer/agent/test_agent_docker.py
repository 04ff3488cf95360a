"""The observer agent end to end on a real Docker engine with an image pushed to the loopback registry.

EntryTrace and the reference backend are not on this branch yet: the test uses the TEMPORARY stand-ins of
``tests/unit/observer/agent/standins.py`` (a static tracer stating ``/entry.sh`` → ``/bin/sleep``, and a
Starlette ``/policy/runtime`` app). Inspection is absent, which the events must say in evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import devstack
from tests.harness.agent_run import running_agent
from tests.unit.observer.agent.standins import Collector, policy_app
from zastava.backend.app import create_app
from zastava.config import BackendServer
from zastava.contracts import EventKind, RuntimeEvent
from zastava.observer.agent import ObserverAgent
from zastava.observer.drift import mapped_files
from zastava.observer.engines.docker import DockerEngineClient
from zastava.observer.ports import entrytrace_view, tracer_from_function
from zastava.observer.posture_client import BackendPosture
from zastava.observer.wiring import AgentSettings

#: the real EntryTrace, run on each container's root
REAL_TRACER = tracer_from_function(entrytrace_view, max_depth=48)


def _for(container_id: str, kind: EventKind) -> Any:
    return lambda e: e.kind is kind and e.workload.container_id == f"docker://{container_id}"


@pytest.fixture
async def agent_setup(
    docker_engine: devstack.DockerEngine, pushed_busybox: str
) -> AsyncIterator[tuple[ObserverAgent, Collector]]:
    collector = Collector()
    backend = policy_app(
        {
            pushed_busybox: {
                "signed": True,
                "hasSbom": False,
                "policyVerdict": "fail",
                "reasons": ["unsigned base image"],
                "rekor": {"uuid": "rekor-1", "verified": True},
            }
        }
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=backend))
    posture = BackendPosture("http://backend.test", client=client)
    engine = DockerEngineClient(docker_engine.host)
    settings = AgentSettings(
        tenant="tenant-01",
        node="node-1",
        drift_interval=0.2,
        exec_source="poll",  # /proc polling, the fallback (the connector: test_drift_services.py)
        drift_network=True,
        allowed_ports=frozenset({8080}),
    )
    agent = ObserverAgent(engine, collector, settings, tracer=REAL_TRACER, posture=posture)
    try:
        async with running_agent(agent):
            yield agent, collector
    finally:
        await engine.aclose()
        await client.aclose()


async def test_start_drift_posture_and_stop_events(
    docker_engine: devstack.DockerEngine, pushed_busybox: str, agent_setup: tuple[ObserverAgent, Collector]
) -> None:
    _agent, collector = agent_setup
    started = time.monotonic()
    container = await asyncio.to_thread(
        docker_engine.client().containers.run, pushed_busybox, detach=True, network_mode="none"
    )
    try:
        start = await collector.wait_for(_for(container.id, EventKind.CONTAINER_START), timeout=10)
        latency = time.monotonic() - started
        assert latency < 2.0, f"CONTAINER_START after {latency:.2f}s"
        await asyncio.to_thread(container.reload)
        assert start.process is not None
        assert start.process.pid == container.attrs["State"]["Pid"]
        assert start.process.entrypoint == ["/entry.sh"]
        assert start.process.terminals == ["/bin/sleep", "/bin/busybox"]
        assert start.process.entry_trace_confidence == 100  # a fully decided exec chain
        assert start.process.start_time is not None
        assert start.workload.image_ref == pushed_busybox
        assert start.workload.platform == "docker"
        assert (start.tenant, start.node, start.runtime.engine) == ("tenant-01", "node-1", "docker")
        assert start.event_id == start.compute_id()
        assert start.posture is not None and start.posture.image_signed is True
        assert start.posture.sbom_referrer == "missing"
        signals = {e.signal: e.value for e in start.evidence}
        assert "inspection.unavailable" in signals  # inspection module not on this branch: said, not hidden
        assert signals["delta-scan.requested"] == "no SBOM in the backend catalog"
        assert start.delta is not None and start.delta.baseline_image_digest == pushed_busybox.split("@")[1]

        violation = await collector.wait_for(_for(container.id, EventKind.POLICY_VIOLATION))
        assert [e.value for e in violation.evidence] == ["unsigned base image"]
        attestation = await collector.wait_for(_for(container.id, EventKind.ATTESTATION_STATUS))
        assert attestation.posture is not None and attestation.posture.attestation is not None
        assert attestation.posture.attestation.uuid == "rekor-1"

        # drift: a copied binary run by exec, a busybox shell and listeners (one on an undeclared port)
        for argv in (
            ["busybox", "mkdir", "-p", "/usr/local/bin"],
            ["cp", "/bin/busybox", "/usr/local/bin/sleep"],
        ):
            await asyncio.to_thread(docker_engine.docker, "exec", container.id, *argv)
        await asyncio.to_thread(
            docker_engine.docker, "exec", "-d", container.id, "/usr/local/bin/sleep", "300"
        )
        await asyncio.to_thread(
            docker_engine.docker, "exec", "-d", container.id, "sh", "-c", "sleep 300; true"
        )
        await asyncio.to_thread(docker_engine.docker, "exec", "-d", container.id, "nc", "-l", "-p", "8081")
        await asyncio.to_thread(docker_engine.docker, "exec", "-d", container.id, "nc", "-l", "-p", "8080")

        def drift_with(signal: str) -> Any:
            return lambda e: (
                _for(container.id, EventKind.DRIFT)(e) and any(x.signal == signal for x in e.evidence)
            )

        def process_evidence() -> list[str]:
            return [
                x.value
                for e in collector.events
                if _for(container.id, EventKind.DRIFT)(e)
                for x in e.evidence
                if x.signal == "drift.process"
            ]

        def reported(*needles: str) -> bool:
            return all(any(n in v for v in process_evidence()) for n in needles)

        # the copied binary, and busybox's sh and nc applets: the same /bin/busybox as the entrypoint's
        # sleep, other programs (the shell's `sleep 300` is the shell's child: busybox sleep, allowed)
        await collector.wait_for(
            lambda _e: reported("exe=/usr/local/bin/sleep", "exe=/bin/busybox applet=sh", "applet=nc")
        )
        fs_drift = await collector.wait_for(drift_with("drift.filesystem"))
        assert fs_drift.delta is not None and [b.path for b in fs_drift.delta.new_binaries or []] == [
            "/usr/local/bin/sleep"
        ]
        net_drift = await collector.wait_for(drift_with("drift.network"))
        assert [e.value.split()[2].rsplit(":", 1)[1] for e in net_drift.evidence] == ["8081"]
        await asyncio.sleep(0.6)  # a few more drift passes: nothing is reported twice
        drifts = [e for e in collector.events if _for(container.id, EventKind.DRIFT)(e)]
        assert len([e for e in drifts if drift_with("drift.filesystem")(e)]) == 1
        assert len([e for e in drifts if drift_with("drift.network")(e)]) == 1
        processes = [v.split()[0] for v in process_evidence()]
        assert len(processes) == len(set(processes))
        # the entrypoint's own program (busybox's sleep, pid 1 of the container) is never process drift
        assert not any("applet=sleep" in v and "exe=/bin/busybox" in v for v in process_evidence())

        await asyncio.to_thread(container.stop, timeout=1)
        stop = await collector.wait_for(_for(container.id, EventKind.CONTAINER_STOP))
        assert stop.process is not None and stop.process.pid == start.process.pid
        assert stop.when >= start.when
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(container.remove, force=True)


async def test_publisher_failure_does_not_stop_observation(
    docker_engine: devstack.DockerEngine, pushed_busybox: str, agent_setup: tuple[ObserverAgent, Collector]
) -> None:
    agent, collector = agent_setup
    collector.fail = True
    first = await asyncio.to_thread(
        docker_engine.client().containers.run, pushed_busybox, detach=True, network_mode="none"
    )
    try:
        await asyncio.sleep(1.0)
        assert first.id in agent.tracked  # observed although publishing failed
        collector.fail = False
        second = await asyncio.to_thread(
            docker_engine.client().containers.run, pushed_busybox, detach=True, network_mode="none"
        )
        try:
            event: RuntimeEvent = await collector.wait_for(_for(second.id, EventKind.CONTAINER_START))
            assert event.process is not None and event.process.pid > 0
        finally:
            await asyncio.to_thread(second.remove, force=True)
    finally:
        await asyncio.to_thread(first.remove, force=True)


async def test_library_drift_against_the_usage_view(
    docker_engine: devstack.DockerEngine, dynamic_image: str, tmp_path: Path
) -> None:
    """A dynamically linked container whose usage SBOM view (the real backend's catalog) lacks one mapped
    library."""
    container = await asyncio.to_thread(
        docker_engine.client().containers.run, dynamic_image, detach=True, network_mode="none"
    )
    engine = DockerEngineClient(docker_engine.host)
    client: httpx.AsyncClient | None = None
    try:
        info = await engine.inspect(container.id)
        assert info is not None and info.pid
        deadline = time.monotonic() + 10
        # the container path of the init's program (its own executable is no library: not in mapped_files)
        while os.readlink(f"/proc/{info.pid}/exe") != "/usr/bin/sleep":
            assert time.monotonic() < deadline, "entrypoint did not exec sleep"
            await asyncio.sleep(0.05)
            info = await engine.inspect(container.id)
            assert info is not None and info.pid
        maps = set(mapped_files("/proc", info.pid))
        assert "/usr/bin/sleep" not in maps and maps
        libc = next(p for p in maps if "libc.so" in p)
        ref = info.image_ref_by_digest
        assert ref is not None and info.image_digest is not None
        # the real reference backend (in-process) with a CycloneDX SBOM listing every mapped file but libc
        backend = create_app(
            BackendServer(store=f"sqlite:///{tmp_path / 'b.db'}", static_tenant="t"), purge=False
        )
        sbom = {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "components": [{"bom-ref": p, "type": "file", "name": p} for p in sorted(maps) if p != libc],
        }
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=backend), base_url="http://backend.test")
        put = await client.put(
            f"/api/v1/scanner/catalog/images/{info.image_digest}", json={"sbom": sbom, "signed": True}
        )
        assert put.status_code == 200, put.text
        collector = Collector()
        agent = ObserverAgent(
            engine,
            collector,
            AgentSettings(tenant="t", node="n", drift_filesystem=False),
            tracer=REAL_TRACER,
            posture=BackendPosture("http://backend.test", client=client),
        )
        await agent.handle_start(info)
        drifts = await agent.drift_pass()
        assert [e.kind for e in drifts] == [EventKind.DRIFT]
        assert drifts[0].delta is not None and drifts[0].delta.changed_files == [libc]
        assert [e.signal for e in drifts[0].evidence] == ["drift.library"]
        assert await agent.drift_pass() == []  # reported once
    finally:
        await asyncio.to_thread(container.remove, force=True)
        await engine.aclose()
        if client is not None:
            await client.aclose()
