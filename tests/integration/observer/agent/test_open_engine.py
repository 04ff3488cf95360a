"""``open_engine``: explicit choices and ``auto`` (CRI when a socket answers, else Docker, else log tail),
against the real engines of the session fixtures."""

from __future__ import annotations

from pathlib import Path

from tests.harness import devstack
from zastava.config import ZastavaConfig
from zastava.observer.engines import open_engine
from zastava.observer.engines.cri import CriEngine
from zastava.observer.engines.docker import DockerEngineClient
from zastava.observer.engines.logtail import LogTailEngine
from zastava.observer.engines.resilient import ResilientEngine


def config(tmp_path: Path, *, containerd: str | None = None, docker: str | None = None) -> ZastavaConfig:
    return ZastavaConfig(
        runtime={"procfs": "/proc"},
        observer={
            "nodeName": "n",
            "engines": {
                "containerdSocket": containerd or str(tmp_path / "no-containerd.sock"),
                "crioSocket": str(tmp_path / "no-crio.sock"),
                "dockerHost": docker or f"unix://{tmp_path}/no-docker.sock",
                "logDir": str(tmp_path / "logs"),
                "connectTimeoutSeconds": 1,
            },
        },
    )


async def test_auto_prefers_cri_then_docker_then_logtail(
    tmp_path: Path, cri: devstack.ContainerdService, docker_engine: devstack.DockerEngine
) -> None:
    both = await open_engine(config(tmp_path, containerd=str(cri.socket), docker=docker_engine.host))
    assert isinstance(both, ResilientEngine) and isinstance(both.primary, CriEngine)
    assert isinstance(both.fallback, LogTailEngine)
    assert (await both.version() or "").startswith(("v1.", "1."))
    await both.aclose()

    docker_only = await open_engine(config(tmp_path, docker=docker_engine.host))
    assert isinstance(docker_only, DockerEngineClient)
    assert await docker_only.version()
    await docker_only.aclose()

    nothing = await open_engine(config(tmp_path))
    assert isinstance(nothing, LogTailEngine)
    assert await nothing.list_containers() == []


async def test_explicit_choices(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    explicit = await open_engine(cfg, engine="containerd")
    assert isinstance(explicit, ResilientEngine)
    assert explicit.capabilities.fidelity == "full"  # CRI's, declared, until it turns out to be missing
    assert await explicit.list_containers() == []  # socket missing: served by the fallback
    assert explicit.degraded and explicit.name == "logtail"
    # on the fallback: the log tail's declaration (no pushed events, no pid from the runtime, no image config)
    assert explicit.capabilities == LogTailEngine.capabilities
    declared = explicit.capabilities
    assert not (declared.events or declared.pid or declared.image_config)
    assert explicit.fallback_reason and "missing" in explicit.fallback_reason
    assert isinstance(await open_engine(cfg, engine="docker"), DockerEngineClient)
    assert isinstance(await open_engine(cfg, engine="logtail"), LogTailEngine)
    crio = await open_engine(cfg, engine="cri-o")
    assert isinstance(crio, ResilientEngine) and isinstance(crio.primary, CriEngine)
    assert crio.primary.socket.endswith("no-crio.sock")
    try:
        await open_engine(cfg, engine="podman")
        raise AssertionError("unknown engine accepted")
    except ValueError as exc:
        assert "unknown engine" in str(exc)


async def test_auto_keeps_a_slow_cri_socket_and_skips_one_nobody_listens_on(
    tmp_path: Path, docker_engine: devstack.DockerEngine
) -> None:
    """A socket that accepts but never answers (this test's stalling server: a throttled runtime) is the
    engine to wait for, not a reason to pick Docker; a socket file nobody listens on (a stale one) is not."""
    import socket

    from tests.integration.observer.agent.test_observer_startup import StallingSocket
    from zastava.observer.engines.cri import probe_socket

    stalled = StallingSocket(tmp_path / "stalled.sock")
    stale_path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(stale_path))  # bound, never listening: connections are refused
    try:
        assert await probe_socket(stalled.path, 0.5) == "slow"
        assert await probe_socket(stale_path, 0.5) == "absent"
        assert await probe_socket(tmp_path / "missing.sock", 0.5) == "absent"

        slow = await open_engine(config(tmp_path, containerd=str(stalled.path), docker=docker_engine.host))
        assert isinstance(slow, ResilientEngine) and isinstance(slow.primary, CriEngine)
        assert slow.primary.socket == str(stalled.path)
        await slow.aclose()

        refused = await open_engine(config(tmp_path, containerd=str(stale_path), docker=docker_engine.host))
        assert isinstance(refused, DockerEngineClient)
        await refused.aclose()
    finally:
        stale.close()
        stalled.close()
