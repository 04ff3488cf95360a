"""The observer's engine interface: one shape for Docker, CRI (containerd, CRI-O) and the log tail.

An engine lists running containers, streams start/stop events and inspects one container into a
:class:`ContainerInfo`. Engines only *read* from the runtime (spec §7): list, status, inspect, subscribe.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

from ...contracts import Evidence
from ...registry.reference import repository_name
from ...telemetry.metrics import ZastavaMetrics

__all__ = [
    "FULL",
    "ContainerEngine",
    "ContainerEvent",
    "ContainerInfo",
    "EngineCapabilities",
    "EngineName",
    "EngineUnavailable",
    "EventKindName",
    "KubernetesIdentity",
    "engine_metrics",
    "k8s_identity_from_labels",
    "parse_timestamp",
]

EngineName = Literal["containerd", "cri-o", "docker", "logtail"]
#: ``resync``: re-list containers (after a reconnect; source ``….subscribed``: once a stream that replays
#: nothing is live); ``degraded``: the engine fell back (reduced fidelity)
EventKindName = Literal["start", "stop", "remove", "resync", "degraded", "exec"]

#: CRI / dockershim labels carrying the Kubernetes identity of a container
LABEL_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD = "io.kubernetes.pod.name"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER = "io.kubernetes.container.name"


class EngineUnavailable(ConnectionError):
    """The engine's socket is missing or stopped answering (spec §12: fall back, reconnect with backoff)."""


@dataclass(frozen=True, slots=True)
class KubernetesIdentity:
    namespace: str
    pod: str
    container: str | None = None
    pod_uid: str | None = None


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """What an engine knows about one container. Fields it cannot know are None and named in ``missing``."""

    engine: EngineName
    id: str
    runtime_version: str | None = None
    pid: int | None = None
    name: str | None = None
    image_ref: str | None = None
    #: ``sha256:…`` — the repo (manifest) digest when the image came from a registry, else the config digest
    image_digest: str | None = None
    #: ``<repo>@sha256:…`` when a repo digest is known
    repo_digest: str | None = None
    config_digest: str | None = None
    image_created: datetime | None = None
    entrypoint: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    kubernetes: KubernetesIdentity | None = None
    created: datetime | None = None
    running: bool = True
    #: "reduced" for the log-tail fallback and metadata-only views (spec §12)
    fidelity: Literal["full", "reduced"] = "full"
    evidence: tuple[Evidence, ...] = ()
    missing: tuple[str, ...] = ()
    #: ports the image or container declares (Docker ``ExposedPorts``, ``8080/tcp`` → 8080): listening on
    #: them is not network drift
    exposed_ports: frozenset[int] = frozenset()
    #: the HEALTHCHECK command the engine runs in the container (``CMD …`` argv, or ``sh -c …`` for
    #: ``CMD-SHELL``): a declared command, part of the drift baseline
    healthcheck: tuple[str, ...] = ()

    @property
    def container_id(self) -> str:
        """``<engine>://<id>`` as in the runtime event's ``workload.containerId``."""
        return f"{self.engine}://{self.id}"

    @property
    def image_ref_by_digest(self) -> str | None:
        """The image reference pinned by digest (what ``/policy/runtime`` is asked about), when known."""
        if self.repo_digest:
            return self.repo_digest
        if self.image_ref and self.image_digest and "@" not in self.image_ref:
            return f"{_repository(self.image_ref)}@{self.image_digest}"
        return self.image_ref


def _repository(ref: str) -> str:
    name = repository_name(ref)  # the one reference model; a name it cannot read is kept as written
    if name is not None:
        return name
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return ref.rsplit(":", 1)[0] if ":" in last else ref


@dataclass(frozen=True, slots=True)
class ContainerEvent:
    kind: EventKindName
    engine: EngineName
    id: str
    when: datetime
    pid: int | None = None
    exit_code: int | None = None
    #: where the event came from, e.g. ``docker.events``, ``cri.GetContainerEvents``, ``containerd.events``
    source: str = ""
    #: for ``exec``: the command the engine started in the container (``docker exec``, a health check), as
    #: the engine shows it (argv joined by spaces)
    command: str | None = None


@dataclass(frozen=True, slots=True)
class EngineCapabilities:
    """What an engine can tell, declared by the engine class (read, never probed with ``getattr``).

    A reduced-fidelity engine (the log tail, Kubernetes pod metadata: spec §12) names containers but cannot
    say what runs in them: no image config, a pid only when found by container id in ``/proc/*/cgroup``.
    """

    #: "reduced" for the log-tail and pod-metadata fallbacks (spec §12)
    fidelity: Literal["full", "reduced"]
    #: the runtime pushes start/stop events (False: found by re-listing every ``pollIntervalSeconds``)
    events: bool
    #: the runtime names each container's init pid (False: searched for in ``/proc/*/cgroup``)
    pid: bool
    #: entrypoint, env, workdir, user and the image digest come from the runtime's image config
    image_config: bool


#: Docker, CRI (containerd, CRI-O): everything the runtime knows
FULL = EngineCapabilities(fidelity="full", events=True, pid=True, image_config=True)


@runtime_checkable
class ContainerEngine(Protocol):
    """The engine interface. All calls are async; blocking clients run in threads.

    ``capabilities``, ``degraded``/``fallback_reason`` and :meth:`ping` are declared by every engine, so the
    agent and ``/readyz`` read them instead of probing for attributes."""

    @property
    def name(self) -> EngineName: ...

    @property
    def capabilities(self) -> EngineCapabilities:
        """Of the engine serving now (a :class:`~.resilient.ResilientEngine` on its fallback: the
        fallback's)."""
        ...

    @property
    def degraded(self) -> bool:
        """True while a fallback serves in place of the configured engine (spec §12)."""
        ...

    @property
    def fallback_reason(self) -> str | None:
        """Why the configured engine is not serving (None when it is)."""
        ...

    async def ping(self) -> None:
        """One cheap round trip to the runtime itself (readiness); :class:`EngineUnavailable` when it does
        not answer."""
        ...

    async def version(self) -> str | None:
        """The runtime's version string; raises :class:`EngineUnavailable` when it does not answer."""
        ...

    async def list_containers(self) -> list[ContainerInfo]:
        """Every running container, inspected."""
        ...

    def events(self) -> AsyncIterator[ContainerEvent]:
        """Start/stop/remove events from now on, until :meth:`aclose`."""
        ...

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        """One container by its engine id (without ``<engine>://``); None when it does not exist."""
        ...

    async def aclose(self) -> None: ...


def k8s_identity_from_labels(labels: Mapping[str, str]) -> KubernetesIdentity | None:
    namespace, pod = labels.get(LABEL_NAMESPACE), labels.get(LABEL_POD)
    if not namespace or not pod:
        return None
    return KubernetesIdentity(
        namespace=namespace, pod=pod, container=labels.get(LABEL_CONTAINER), pod_uid=labels.get(LABEL_POD_UID)
    )


def parse_timestamp(value: object) -> datetime | None:
    """RFC 3339 with nanoseconds (Docker), epoch seconds/nanoseconds (CRI) → aware UTC datetime."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, int | float):
        seconds = value / 1e9 if value > 1e12 else float(value)
        return datetime.fromtimestamp(seconds, UTC)
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # trim fractional seconds to microseconds
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.year < 1971:  # Docker's "0001-01-01T00:00:00Z" for never
        return None
    return parsed.astimezone(UTC)


class EngineMetrics:
    """Observer engine health on the component's metrics registry (spec §12: 'say so in metrics')."""

    def __init__(self, metrics: ZastavaMetrics) -> None:
        from prometheus_client import Counter, Gauge

        common = tuple(metrics.common_tags)
        self._common = metrics.common_tags
        self.connected = Gauge(
            "zastava_observer_engine_connected",
            "1 while the observer's container engine answers, by engine",
            (*common, "engine"),
            registry=metrics.registry,
        )
        self.reconnects = Counter(
            "zastava_observer_engine_reconnects",
            "Reconnection attempts to a container engine, by engine and result",
            (*common, "engine", "result"),
            registry=metrics.registry,
        )
        self.fallback = Gauge(
            "zastava_observer_engine_fallback",
            "1 while the observer runs on a reduced-fidelity fallback engine, by fallback engine",
            (*common, "engine"),
            registry=metrics.registry,
        )

    def set_connected(self, engine: str, up: bool) -> None:
        self.connected.labels(**self._common, engine=engine).set(1 if up else 0)

    def reconnect(self, engine: str, result: str) -> None:
        self.reconnects.labels(**self._common, engine=engine, result=result).inc()

    def set_fallback(self, engine: str, active: bool) -> None:
        self.fallback.labels(**self._common, engine=engine).set(1 if active else 0)


def engine_metrics(metrics: ZastavaMetrics) -> EngineMetrics:
    """The engine metrics registered on ``metrics``' registry (created once per metrics object)."""
    found = getattr(metrics, "_observer_engine_metrics", None)
    if not isinstance(found, EngineMetrics):
        found = EngineMetrics(metrics)
        metrics._observer_engine_metrics = found  # type: ignore[attr-defined]
    return found
