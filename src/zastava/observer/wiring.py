"""The observer agent built from the configuration: :class:`AgentSettings` from the typed
:class:`~zastava.config.ZastavaConfig`, and :func:`create_agent` choosing the engine and the parts.

:mod:`.agent` holds the logic and reads plain settings; this module is the only one of the agent's that
reads the configuration, opens engines and connects to the backend.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..telemetry.logging import fields
from ..telemetry.metrics import ZastavaMetrics
from .agent import ObserverAgent
from .engines.kubernetes import PodWatcher
from .ports import (
    EntryTracer,
    Inspector,
    Publish,
    entrytrace_view,
    inspector_from_function,
    tracer_from_function,
)

if TYPE_CHECKING:
    import httpx

    from ..config import ZastavaConfig

__all__ = ["AgentSettings", "create_agent"]

log = logging.getLogger("zastava.observer.agent")


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """What the agent's logic reads: plain values, so a test builds one without a configuration."""

    tenant: str
    node: str
    procfs: str = "/proc"
    drift_enabled: bool = True
    drift_interval: float = 5.0
    drift_process: bool = True
    drift_filesystem: bool = True
    drift_library: bool = True
    drift_network: bool = False
    watched_dirs: tuple[str, ...] = ("/usr/local/bin", "/opt", "/app")
    allowed_programs: tuple[str, ...] = ()
    allowed_ports: frozenset[int] = frozenset()
    max_processes: int = 4096
    max_files: int = 10_000
    max_depth: int = 8
    max_hash_bytes: int = 64_000_000
    max_drift_events_per_container: int = 256
    exec_source: str = "auto"
    exec_queue: int = 4096
    quiet_window: float = 60.0
    max_concurrent_inspections: int = 8
    max_tracked_containers: int = 10_000
    posture_refresh_interval: float = 300.0
    enrichment_retries: int = 3
    enrichment_retry_delay: float = 0.1
    pod_wait_seconds: float = 1.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0

    @classmethod
    def from_config(cls, config: ZastavaConfig) -> AgentSettings:
        """The agent's settings from the configuration (``zastava.observer``, ``runtime``, ``limits``)."""
        observer, d = config.observer, config.observer.drift
        return cls(
            tenant=config.runtime.tenant,
            node=observer.node_name,
            procfs=_procfs(config.runtime.procfs),
            drift_enabled=d.enabled,
            drift_interval=d.interval_seconds,
            drift_process=d.process,
            drift_filesystem=d.filesystem,
            drift_library=d.library,
            drift_network=d.network,
            watched_dirs=tuple(d.watched_dirs),
            allowed_programs=tuple(d.allowed_programs),
            allowed_ports=frozenset(d.allowed_listening_ports),
            max_processes=d.max_processes,
            max_files=d.max_files,
            max_depth=d.max_depth,
            max_hash_bytes=d.max_hash_bytes,
            max_drift_events_per_container=d.max_events_per_container,
            exec_source=d.exec_source,
            exec_queue=d.exec_queue,
            quiet_window=d.quiet_window_seconds,
            max_concurrent_inspections=observer.max_concurrent_inspections,
            max_tracked_containers=config.limits.per_node_queue,
            posture_refresh_interval=float(observer.posture_cache_ttl_seconds or 300),
            reconnect_initial=observer.engines.reconnect_initial_seconds,
            reconnect_max=observer.engines.reconnect_max_seconds,
        )


def _procfs(configured: str) -> str:
    """The configured procfs (``/host/proc`` in a DaemonSet), or ``/proc`` when running on the host itself."""
    if Path(f"{configured}/self").is_dir() or not Path("/proc/self").is_dir():
        return configured
    log.info("configured procfs not found; using /proc", extra=fields(configured=configured))
    return "/proc"


def _optional_inspector(config: ZastavaConfig, metrics: ZastavaMetrics | None) -> Inspector | None:
    """``inspect_process`` with one bounded hash cache for the agent's lifetime (None when disabled)."""
    from .hashing import HashCache
    from .inspect import inspect_process

    collect = config.runtime.collect
    if not collect.loaded_libs:
        return None
    return inspector_from_function(
        inspect_process,
        procfs=config.runtime.procfs,
        max_libs=collect.max_libs,
        max_hash_bytes=collect.max_hash_bytes_per_container,
        hash_threads=collect.hash_threads,
        cache=HashCache(),
        metrics=metrics,
    )


def _optional_tracer(config: ZastavaConfig, metrics: ZastavaMetrics | None) -> EntryTracer | None:
    """EntryTrace of each container's ENTRYPOINT+CMD inside its root (None when disabled)."""
    if not config.runtime.collect.entry_trace:
        return None
    return tracer_from_function(entrytrace_view, max_depth=config.runtime.collect.max_depth, metrics=metrics)


async def create_agent(
    config: ZastavaConfig,
    publish: Publish,
    *,
    engine: str | None = None,
    metrics: ZastavaMetrics | None = None,
    backend: bool = True,
    http_client: httpx.AsyncClient | None = None,
    headers_provider: Callable[[str, str], Awaitable[dict[str, str]]] | None = None,
    count_events: bool = True,
) -> tuple[ObserverAgent, Callable[[], Awaitable[None]]]:
    """An agent wired from a :class:`zastava.config.ZastavaConfig`; returns it and its ``aclose``.

    ``runtime.procfs`` is resolved first (:func:`.hostprocfs.resolve_procfs`: ``/proc`` on the host when
    ``/host/proc`` is absent; :class:`~.hostprocfs.ProcfsUnavailable` when neither shows the host's
    processes). ``count_events=False`` when ``publish`` is the :class:`EventPublisher`, which counts
    ``zastava_runtime_events_total`` itself."""
    from .engines import open_engine
    from .hostprocfs import resolve_procfs
    from .posture_client import BackendPosture

    procfs = resolve_procfs(config.runtime.procfs)
    if procfs != config.runtime.procfs:
        config = config.model_copy(update={"runtime": config.runtime.model_copy(update={"procfs": procfs})})

    pods = None
    if config.observer.kubernetes_watch:
        pods = PodWatcher(
            config.observer.node_name,
            kubeconfig=config.observer.kubeconfig,
            backoff_initial=config.observer.engines.reconnect_initial_seconds,
            backoff_max=config.observer.engines.reconnect_max_seconds,
        )
    chosen = await open_engine(config, engine=engine, metrics=metrics, pods=pods)
    posture = None
    if backend:
        posture = BackendPosture(
            config.backend.base_address,
            policy_path=config.backend.policy_path,
            timeout=config.backend.request_timeout_seconds,
            cache_ttl=float(config.observer.posture_cache_ttl_seconds),
            metrics=metrics,
            client=http_client,
            headers_provider=headers_provider,
        )
    agent = ObserverAgent(
        chosen,
        publish,
        AgentSettings.from_config(config),
        inspector=_optional_inspector(config, metrics),
        tracer=_optional_tracer(config, metrics),
        posture=posture,
        pods=pods,
        metrics=metrics if count_events else None,
        on_exec_drop=(lambda reason: metrics.exec_drops.labels(reason=reason).inc()) if metrics else None,
    )

    async def aclose() -> None:
        await chosen.aclose()
        if posture is not None:
            await posture.aclose()
        if pods is not None:
            await pods.aclose()

    return agent, aclose
