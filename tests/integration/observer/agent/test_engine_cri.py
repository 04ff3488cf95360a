"""The CRI engine against a real containerd with the CRI plugin (host-network pods, no CNI needed).

Event sources are exercised one by one: containerd's own events API (containerd 1.6 does not implement CRI
``GetContainerEvents``; ``auto`` must detect that and fall through), and polling ``ListContainers``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.harness import devstack
from tests.harness.devstack.cri import CriClient
from zastava.observer.engines.base import EngineUnavailable
from zastava.observer.engines.cri import CriEngine, socket_answers

from .conftest import next_matching


def _run_pod(cri: CriClient, image: str, name: str) -> tuple[str, str]:
    sandbox, config = cri.run_pod(name, namespace="payments", labels={"app": name})
    container = cri.run_container(sandbox, config, "app", image, labels={"tier": "web"})
    return sandbox, container


@pytest.mark.parametrize("source", ["auto", "poll"])
async def test_cri_start_stop_events_and_inspect(
    cri: devstack.ContainerdService, cri_images: dict[str, str], source: str
) -> None:
    assert await socket_answers(cri.socket)
    engine = CriEngine(cri.socket, event_source=source, poll_interval=0.3)  # type: ignore[arg-type]
    events = engine.events()
    name = f"obs-{source}-{uuid.uuid4().hex[:6]}"
    client = CriClient(cri.socket)
    started = asyncio.ensure_future(next_matching(events, lambda e: e.kind == "start", timeout=60))
    await asyncio.sleep(0.5)
    sandbox, container_id = await asyncio.to_thread(_run_pod, client, cri_images["busybox"], name)
    try:
        # the sandbox's own task start may come first through the events API: skip ids that are not ours
        start = await started
        while start.id != container_id:
            start = await next_matching(events, lambda e: e.kind == "start", timeout=60)
        expected_source = "containerd.events" if source == "auto" else "cri.poll"
        assert start.source == expected_source
        assert engine.event_source == ("containerd" if source == "auto" else "poll")
        # what it declares follows: events pushed through containerd's events API, found by polling else
        assert engine.capabilities.events is (source == "auto") and engine.capabilities.pid
        info = await engine.inspect(container_id)
        assert info is not None
        pid = await asyncio.to_thread(client.container_pid, container_id)
        assert info.pid == pid > 0
        if start.pid is not None:
            assert start.pid == pid
        assert info.engine == "containerd" and info.container_id == f"containerd://{container_id}"
        assert info.entrypoint == ("/entry.sh",)
        assert info.kubernetes is not None
        assert (info.kubernetes.namespace, info.kubernetes.pod, info.kubernetes.container) == (
            "payments",
            name,
            "app",
        )
        assert info.labels["tier"] == "web"
        image = (
            await asyncio.to_thread(
                client.images.ImageStatus,
                client.pb.ImageStatusRequest(image=client.pb.ImageSpec(image=cri_images["busybox"])),
                timeout=30,
            )
        ).image
        repo_digests = sorted(str(d) for d in image.repo_digests)
        expected = repo_digests[0].split("@", 1)[1] if repo_digests else str(image.id)
        assert info.image_digest == expected
        assert info.config_digest == str(image.id)
        assert info.repo_digest == (repo_digests[0] if repo_digests else None)
        assert info.runtime_version and info.runtime_version.startswith(("v1.", "1."))
        assert info.env.get("PATH") == "/usr/local/bin:/usr/bin:/bin"
        assert container_id in {c.id for c in await engine.list_containers()}
        # sandboxes are not containers
        assert await engine.inspect(sandbox) is None
        pending: asyncio.Future[Any] | None = None
        if source == "auto":
            # an exec'd process exiting (containerd TaskExit with an exec id) is not the container stopping
            pending = asyncio.ensure_future(anext(events))
            reply = await asyncio.to_thread(
                client.runtime.ExecSync,
                client.pb.ExecSyncRequest(container_id=container_id, cmd=["id"], timeout=10),
                timeout=30,
            )
            assert reply.exit_code == 0 and b"uid=" in reply.stdout
            done, _ = await asyncio.wait({pending}, timeout=1.0)
            assert not done, f"exec exit reported as a container event: {pending.result()}"

        await asyncio.to_thread(
            client.runtime.StopContainer,
            client.pb.StopContainerRequest(container_id=container_id, timeout=1),
            timeout=30,
        )
        stop = await asyncio.wait_for(pending, 60) if pending is not None else None
        if stop is None or not (stop.id == container_id and stop.kind == "stop"):
            stop = await next_matching(
                events, lambda e: e.id == container_id and e.kind == "stop", timeout=60
            )
        assert stop.source == expected_source
    finally:
        await asyncio.to_thread(client.remove_pod, sandbox)
        client.close()
        await events.aclose()
        await engine.aclose()


async def test_missing_socket_is_engine_unavailable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = CriEngine(tmp_path / "gone.sock")
    assert not await socket_answers(tmp_path / "gone.sock")
    with pytest.raises(EngineUnavailable, match="missing"):
        await engine.version()
    await engine.aclose()
