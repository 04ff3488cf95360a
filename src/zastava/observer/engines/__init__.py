"""Container engines of the observer behind one interface (:class:`ContainerEngine`).

* :class:`~.docker.DockerEngineClient` — Docker SDK (events start/die/destroy, inspect).
* :class:`~.cri.CriEngine` — CRI v1 over gRPC (containerd, CRI-O); events from CRI, containerd's events API
  or polling.
* :class:`~.logtail.LogTailEngine` — ``/var/log/containers`` names, reduced fidelity.
* :class:`~.kubernetes.PodWatcher` — Kubernetes pod metadata (owner, labels, declared probe/exec commands).
* :class:`~.resilient.ResilientEngine` — fallback + reconnection with backoff (spec §12).

:func:`open_engine` picks one from ``runtime.engine``: ``auto`` takes CRI when a CRI socket answers, else
Docker when the daemon answers, else the log tail.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...telemetry.logging import fields
from .base import (
    ContainerEngine,
    ContainerEvent,
    ContainerInfo,
    EngineName,
    EngineUnavailable,
    KubernetesIdentity,
)

if TYPE_CHECKING:
    from ...config import ZastavaConfig
    from ...telemetry.metrics import ZastavaMetrics
    from .kubernetes import PodWatcher

__all__ = [
    "ContainerEngine",
    "ContainerEvent",
    "ContainerInfo",
    "EngineName",
    "EngineUnavailable",
    "KubernetesIdentity",
    "open_engine",
]

log = logging.getLogger("zastava.observer.engines")


async def open_engine(
    config: ZastavaConfig,
    *,
    engine: str | None = None,
    metrics: ZastavaMetrics | None = None,
    pods: PodWatcher | None = None,
) -> ContainerEngine:
    """The engine chosen by ``engine`` (default ``runtime.engine``), wrapped for fallback where it applies.

    ``containerd``/``cri-o``: CRI on the configured socket, falling back while it is missing to Kubernetes
    pod metadata when ``pods`` (a running :class:`PodWatcher`) is given, else to the log tail. ``docker``:
    the Docker daemon at ``observer.engines.dockerHost``. ``logtail``: the log tail only.
    ``auto``: the first of CRI (containerd socket, then CRI-O socket), Docker, log tail that answers now;
    a CRI socket that accepts the call but does not reply within ``connectTimeoutSeconds`` (a runtime
    slowed down, e.g. a CPU-throttled node at start-up) is still chosen: it is served through its fallback
    and retried with backoff until it answers, rather than settling for a weaker engine for good.
    """
    from .cri import CriEngine, probe_socket
    from .docker import DockerEngineClient
    from .kubernetes import PodMetadataEngine
    from .logtail import LogTailEngine
    from .resilient import ResilientEngine

    observer = config.observer
    engines = observer.engines
    choice = engine or config.runtime.engine
    procfs = config.runtime.procfs

    def logtail() -> LogTailEngine:
        return LogTailEngine(engines.log_dir, procfs=procfs, poll_interval=observer.poll_interval_seconds)

    def cri(socket: str) -> ResilientEngine:
        primary = CriEngine(
            socket,
            namespace=engines.containerd_namespace,
            poll_interval=observer.poll_interval_seconds,
            timeout=engines.connect_timeout_seconds,
        )
        fallback: ContainerEngine = PodMetadataEngine(pods, procfs=procfs) if pods is not None else logtail()
        return ResilientEngine(
            primary,
            fallback,
            metrics=metrics,
            backoff_initial=engines.reconnect_initial_seconds,
            backoff_max=engines.reconnect_max_seconds,
        )

    if choice == "containerd":
        return cri(engines.containerd_socket)
    if choice == "cri-o":
        return cri(engines.crio_socket)
    if choice == "docker":
        return DockerEngineClient(engines.docker_host, timeout=engines.connect_timeout_seconds)
    if choice == "logtail":
        return logtail()
    if choice != "auto":
        raise ValueError(f"unknown engine {choice!r} (containerd, cri-o, docker, logtail, auto)")
    slow: str | None = None
    for socket in (engines.containerd_socket, engines.crio_socket):
        answer = await probe_socket(socket, engines.connect_timeout_seconds)
        if answer == "answers":
            return cri(socket)
        if answer == "slow" and slow is None:
            slow = socket
    if slow is not None:
        log.warning(
            "CRI runtime accepted the call but did not answer in time; retrying it, its fallback meanwhile",
            extra=fields(socket=slow, timeout_s=engines.connect_timeout_seconds),
        )
        return cri(slow)
    docker = DockerEngineClient(engines.docker_host, timeout=engines.connect_timeout_seconds)
    try:
        await docker.version()
        return docker
    except EngineUnavailable:
        await docker.aclose()
    return logtail()
