"""The agent survives its Docker daemon going away: it retries with backoff and, once the daemon answers
again, re-lists and observes new containers. A private Docker engine (own directory) is stopped and
restarted on the same data root."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.harness import devstack
from tests.harness.real import start_real
from tests.unit.observer.agent.standins import Collector
from zastava.contracts import EventKind
from zastava.observer.agent import ObserverAgent
from zastava.observer.engines.docker import DockerEngineClient
from zastava.observer.wiring import AgentSettings


async def test_docker_daemon_restart_is_survived(tmp_path: Path) -> None:
    workdir = tmp_path / "docker"
    engine = start_real(lambda: devstack.DockerEngine(workdir).start())
    image = "zastava-test/reconnect:1"
    client = DockerEngineClient(engine.host, timeout=3)
    collector = Collector()
    agent = ObserverAgent(
        client,
        collector,
        AgentSettings(tenant="t", node="n", drift_enabled=False, reconnect_initial=0.1, reconnect_max=0.5),
    )
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(devstack.busybox_image, engine, image)
        task = asyncio.create_task(agent.run(stop))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(engine.stop)  # the daemon goes away (its containers with it)
        await asyncio.sleep(1.0)
        assert not task.done(), "the agent must keep running without its engine"
        engine = await asyncio.to_thread(lambda: devstack.DockerEngine(workdir).start())
        container = await asyncio.to_thread(
            engine.client().containers.run, image, detach=True, network_mode="none"
        )
        start = await collector.wait_for(
            lambda e: (
                e.kind is EventKind.CONTAINER_START and e.workload.container_id == f"docker://{container.id}"
            ),
            timeout=30,
        )
        assert start.process is not None and start.process.pid > 0
    finally:
        stop.set()
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        await client.aclose()
        await asyncio.to_thread(engine.stop)
        await asyncio.to_thread(engine.cleanup)
