"""The Docker engine against a real (private) Docker daemon and a loopback registry."""

from __future__ import annotations

import asyncio
import contextlib

from tests.harness import devstack
from zastava.observer.engines.base import ContainerEvent
from zastava.observer.engines.docker import DockerEngineClient

from .conftest import next_matching


async def test_start_and_stop_events_with_pid_digest_and_entrypoint(
    docker_engine: devstack.DockerEngine, pushed_busybox: str
) -> None:
    engine = DockerEngineClient(docker_engine.host)
    events = engine.events()
    # prime the stream (the subscription starts on first iteration)
    first = asyncio.ensure_future(next_matching(events, lambda e: e.kind == "start", timeout=30))
    await asyncio.sleep(0.5)
    container = docker_engine.client().containers.run(
        pushed_busybox, detach=True, network_mode="none", labels={"app": "demo"}
    )
    try:
        start: ContainerEvent = await first
        assert start.id == container.id
        # pushed by the daemon's event stream, not found by a poll (a wall-clock bound here, 2 s, held only on
        # an idle machine: containers.run blocks this loop and the reader thread shares 2 busy cores)
        assert start.source == "docker.events"
        info = await engine.inspect(container.id)
        assert info is not None
        container.reload()
        assert info.pid == container.attrs["State"]["Pid"] > 0
        assert info.container_id == f"docker://{container.id}"
        assert info.entrypoint == ("/entry.sh",)
        assert info.repo_digest == pushed_busybox
        assert info.image_digest == pushed_busybox.split("@", 1)[1]
        assert info.config_digest == container.attrs["Image"]
        assert info.labels["app"] == "demo"
        assert info.env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
        assert info.image_created is not None and info.created is not None
        assert info.image_created <= info.created
        assert info.runtime_version and info.runtime_version[0].isdigit()
        assert info.kubernetes is None and info.missing == ()
        listed = {c.id for c in await engine.list_containers()}
        assert container.id in listed

        container.stop(timeout=1)
        stop = await next_matching(events, lambda e: e.id == container.id and e.kind == "stop", timeout=30)
        assert stop.exit_code is not None
        after = await engine.inspect(container.id)
        assert after is not None and not after.running
        assert container.id not in {c.id for c in await engine.list_containers()}
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        await events.aclose()
        await engine.aclose()


async def test_unreachable_daemon_raises_engine_unavailable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from zastava.observer.engines.base import EngineUnavailable

    engine = DockerEngineClient(f"unix://{tmp_path}/nothing.sock", timeout=2)
    try:
        with pytest.raises(EngineUnavailable, match="missing"):
            await engine.version()
        with pytest.raises(EngineUnavailable):
            await engine.list_containers()
    finally:
        await engine.aclose()
