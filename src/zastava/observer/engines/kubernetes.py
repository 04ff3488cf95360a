"""Kubernetes metadata for the observer: a lightkube watch of the Pods on this node.

It supplies what the container engines cannot: owner kind/name (a ReplicaSet with a ``pod-template-hash`` is
reported as its Deployment), pod labels and the *declared* commands of each container — exec liveness,
readiness and startup probes and ``lifecycle`` hooks — which drift detection must not flag. It also maps
container ids (``containerd://…`` from ``status.containerStatuses``) to pods, and can act as a
reduced-fidelity event source when the CRI socket is gone (spec §12), via :meth:`PodWatcher.events`.

Tests run it against ``kmock``, a fake Kubernetes API server (no kube-apiserver can run on the test machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...contracts import Evidence
from ...telemetry.logging import fields
from .base import (
    ContainerEvent,
    ContainerInfo,
    EngineCapabilities,
    EngineName,
    KubernetesIdentity,
    parse_timestamp,
)

__all__ = ["ContainerMeta", "PodMeta", "PodMetadataEngine", "PodWatcher", "pod_meta_from_dict"]

log = logging.getLogger("zastava.observer.kubernetes")

_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_HOOKS = ("postStart", "preStop")
_MAX_PODS = 10_000


@dataclass(frozen=True, slots=True)
class ContainerMeta:
    name: str
    image: str | None = None
    #: (kind, argv) of every declared exec command: ``livenessProbe``, ``readinessProbe``, ``startupProbe``,
    #: ``lifecycle.postStart``, ``lifecycle.preStop``
    declared_commands: tuple[tuple[str, tuple[str, ...]], ...] = ()
    container_id: str | None = None
    running: bool = False
    started_at: datetime | None = None
    #: ``ports[].containerPort`` of the container spec (listening on them is not network drift)
    ports: frozenset[int] = frozenset()

    @property
    def probe_programs(self) -> tuple[str, ...]:
        """argv[0] of every declared command (to be resolved inside the container's root)."""
        return tuple(dict.fromkeys(argv[0] for _, argv in self.declared_commands if argv))


@dataclass(frozen=True, slots=True)
class PodMeta:
    namespace: str
    name: str
    uid: str | None = None
    node: str | None = None
    owner_kind: str | None = None
    owner_name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    containers: Mapping[str, ContainerMeta] = field(default_factory=dict)

    def identity(self, container: str | None) -> KubernetesIdentity:
        return KubernetesIdentity(
            namespace=self.namespace, pod=self.name, container=container, pod_uid=self.uid
        )


def _exec_command(handler: Any) -> tuple[str, ...] | None:
    if not isinstance(handler, Mapping):
        return None
    command = (handler.get("exec") or {}).get("command") if isinstance(handler.get("exec"), Mapping) else None
    if isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        return tuple(command[:256])
    return None


def _owner(metadata: Mapping[str, Any], labels: Mapping[str, str]) -> tuple[str | None, str | None]:
    refs = [r for r in metadata.get("ownerReferences") or [] if isinstance(r, Mapping)]
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if ref is None:
        return None, None
    kind, name = str(ref.get("kind") or "") or None, str(ref.get("name") or "") or None
    template_hash = labels.get("pod-template-hash")
    if kind == "ReplicaSet" and name and template_hash and name.endswith(f"-{template_hash}"):
        return "Deployment", name[: -len(template_hash) - 1]
    return kind, name


def pod_meta_from_dict(pod: Mapping[str, Any]) -> PodMeta | None:
    """A Pod object (as JSON) → :class:`PodMeta`; None when it lacks a name/namespace."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    name, namespace = metadata.get("name"), metadata.get("namespace") or "default"
    if not isinstance(name, str) or not name:
        return None
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    statuses: dict[str, Mapping[str, Any]] = {}
    for item in [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            statuses[item["name"]] = item
    containers: dict[str, ContainerMeta] = {}
    for spec_container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if not isinstance(spec_container, Mapping) or not isinstance(spec_container.get("name"), str):
            continue
        declared: list[tuple[str, tuple[str, ...]]] = []
        for probe in _PROBES:
            argv = _exec_command(spec_container.get(probe))
            if argv:
                declared.append((probe, argv))
        lifecycle = spec_container.get("lifecycle") or {}
        for hook in _HOOKS:
            argv = _exec_command(lifecycle.get(hook) if isinstance(lifecycle, Mapping) else None)
            if argv:
                declared.append((f"lifecycle.{hook}", argv))
        cstatus = statuses.get(spec_container["name"]) or {}
        state = cstatus.get("state") or {}
        running = state.get("running") if isinstance(state, Mapping) else None
        containers[spec_container["name"]] = ContainerMeta(
            name=spec_container["name"],
            image=spec_container.get("image"),
            declared_commands=tuple(declared),
            ports=frozenset(
                int(p["containerPort"])
                for p in spec_container.get("ports") or []
                if isinstance(p, Mapping) and isinstance(p.get("containerPort"), int)
            ),
            container_id=str(cstatus.get("containerID") or "") or None,
            running=isinstance(running, Mapping),
            started_at=parse_timestamp(running.get("startedAt")) if isinstance(running, Mapping) else None,
        )
    owner_kind, owner_name = _owner(metadata, labels)
    return PodMeta(
        namespace=str(namespace),
        name=name,
        uid=str(metadata.get("uid") or "") or None,
        node=str(spec.get("nodeName") or "") or None,
        owner_kind=owner_kind,
        owner_name=owner_name,
        labels=labels,
        containers=containers,
    )


class PodWatcher:
    """Watches the Pods of one node and indexes them by (namespace, name) and by container id."""

    def __init__(
        self,
        node_name: str,
        *,
        client: Any = None,
        kubeconfig: str | None = None,
        server_timeout: int = 300,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.node_name = node_name
        self._client = client
        self._kubeconfig = kubeconfig
        self.server_timeout = server_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._pods: dict[tuple[str, str], PodMeta] = {}
        self._by_container: dict[str, tuple[str, str, str]] = {}
        self._changed = asyncio.Condition()
        self._event_queues: list[asyncio.Queue[ContainerEvent]] = []
        self.synced = asyncio.Event()
        self.connected = False
        self.errors = 0
        self.dropped = 0

    def _make_client(self) -> Any:
        if self._client is None:
            from lightkube import AsyncClient, KubeConfig

            config = KubeConfig.from_file(self._kubeconfig) if self._kubeconfig else KubeConfig.from_env()
            self._client = AsyncClient(config=config)
        return self._client

    # ------------------------------------------------------------------------------------------ lookups

    def pod(self, namespace: str, name: str) -> PodMeta | None:
        return self._pods.get((namespace, name))

    def by_container_id(self, container_id: str) -> tuple[PodMeta, ContainerMeta] | None:
        """Look up ``<engine>://<id>`` or a bare id."""
        key = self._by_container.get(container_id.split("://", 1)[-1])
        if key is None:
            return None
        pod = self._pods.get((key[0], key[1]))
        if pod is None or key[2] not in pod.containers:
            return None
        return pod, pod.containers[key[2]]

    def pods(self) -> list[PodMeta]:
        return list(self._pods.values())

    async def wait_for(self, namespace: str, name: str, wait_s: float) -> PodMeta | None:
        """The pod once the watch has seen it, waiting at most ``wait_s`` (late enrichment, bounded)."""

        async def seen() -> PodMeta:
            async with self._changed:
                await self._changed.wait_for(lambda: (namespace, name) in self._pods)
                return self._pods[(namespace, name)]

        try:
            return await asyncio.wait_for(seen(), wait_s)
        except TimeoutError:
            return self._pods.get((namespace, name))

    # ----------------------------------------------------------------------------------------- watching

    async def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        """Apply one watch event (``ADDED``/``MODIFIED``/``DELETED``) to the index."""
        meta = pod_meta_from_dict(obj)
        if meta is None or (meta.node is not None and meta.node != self.node_name):
            return
        key = (meta.namespace, meta.name)
        previous = self._pods.get(key)
        if kind == "DELETED":
            self._pods.pop(key, None)
            current = None
        else:
            if key not in self._pods and len(self._pods) >= _MAX_PODS:
                log.warning(
                    "pod index full; ignoring pod", extra=fields(namespace=meta.namespace, pod=meta.name)
                )
                return
            self._pods[key] = meta
            current = meta
        self._reindex(previous, current)
        self._emit(previous, current)
        async with self._changed:
            self._changed.notify_all()

    def _reindex(self, previous: PodMeta | None, current: PodMeta | None) -> None:
        for pod in (previous,):
            if pod is not None:
                for container in pod.containers.values():
                    if container.container_id:
                        self._by_container.pop(container.container_id.split("://", 1)[-1], None)
        if current is not None:
            for container in current.containers.values():
                if container.container_id:
                    self._by_container[container.container_id.split("://", 1)[-1]] = (
                        current.namespace,
                        current.name,
                        container.name,
                    )

    def _emit(self, previous: PodMeta | None, current: PodMeta | None) -> None:
        if not self._event_queues:
            return
        before = {
            c.container_id: c for c in (previous.containers.values() if previous else []) if c.container_id
        }
        after = {
            c.container_id: c for c in (current.containers.values() if current else []) if c.container_id
        }
        now = datetime.now(UTC)
        out: list[ContainerEvent] = []
        for cid, container in after.items():
            was = before.get(cid)
            if container.running and not (was and was.running):
                out.append(_k8s_event("start", cid, container.started_at or now))
            elif not container.running and was and was.running:
                out.append(_k8s_event("stop", cid, now))
        for cid, was in before.items():
            if cid not in after and was.running:
                out.append(_k8s_event("stop", cid, now))
        for queue in self._event_queues:
            for event in out:
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    self.dropped += 1
                    log.warning("pod event queue full; dropping", extra=fields(dropped=self.dropped))

    def events(self) -> AsyncIterator[ContainerEvent]:
        """Container start/stop seen through pod status (reduced fidelity: no pid, seconds late).

        The subscription starts when this is called (not on first iteration), so nothing is lost between.
        """
        queue: asyncio.Queue[ContainerEvent] = asyncio.Queue(10_000)
        self._event_queues.append(queue)

        async def stream() -> AsyncIterator[ContainerEvent]:
            try:
                while True:
                    yield await queue.get()
            finally:
                with contextlib.suppress(ValueError):
                    self._event_queues.remove(queue)

        return stream()

    async def run(self) -> None:
        """List+watch forever, reconnecting with exponential backoff; cancel to stop."""
        delay = self.backoff_initial
        resource_version: str | None = None
        while True:
            try:
                resource_version = await self._list_and_watch(resource_version)
                delay = self.backoff_initial
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected = False
                self.errors += 1
                resource_version = None
                log.warning(
                    "kubernetes pod watch failed; retrying",
                    extra=fields(node=self.node_name, error=str(exc)[:300], retry_in_s=delay),
                )
                await asyncio.sleep(delay)
                delay = min(self.backoff_max, delay * 2)

    async def _list_and_watch(self, resource_version: str | None) -> str | None:
        from lightkube.resources.core_v1 import Pod

        client = self._make_client()
        selector = {"spec.nodeName": self.node_name}
        if resource_version is None:
            seen: set[tuple[str, str]] = set()
            listing = client.list(Pod, namespace="*", fields=selector)
            async for pod in listing:
                data = pod.to_dict()
                await self.apply("ADDED", data)
                meta = data.get("metadata") or {}
                seen.add((meta.get("namespace") or "default", meta.get("name") or ""))
            for key in [k for k in self._pods if k not in seen]:
                stale = self._pods[key]
                await self.apply(
                    "DELETED",
                    {
                        "metadata": {"namespace": key[0], "name": key[1]},
                        "spec": {"nodeName": stale.node or self.node_name},
                    },
                )
            resource_version = getattr(listing, "resourceVersion", None)
        self.connected = True
        self.synced.set()
        async for kind, pod in client.watch(
            Pod,
            namespace="*",
            fields=selector,
            resource_version=resource_version,
            server_timeout=self.server_timeout,
        ):
            data = pod.to_dict()
            resource_version = (data.get("metadata") or {}).get("resourceVersion") or resource_version
            await self.apply(str(kind), data)
        return resource_version

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


def _k8s_event(kind: str, container_id: str, when: datetime) -> ContainerEvent:
    engine, _, raw = container_id.partition("://")
    name = engine if engine in ("containerd", "cri-o", "docker") else "containerd"
    return ContainerEvent(
        kind=kind,  # type: ignore[arg-type]
        engine=name,  # type: ignore[arg-type]
        id=raw or container_id,
        when=when,
        source="kubernetes.pods",
    )


class PodMetadataEngine:
    """Kubernetes metadata as a reduced-fidelity :class:`~.base.ContainerEngine` (spec §12: "fall back to K8s
    events only"). Containers come from pod status: identity, image, labels — no pid unless found by its id in
    ``/proc/*/cgroup``, no argv. The watcher must be running (:meth:`PodWatcher.run`)."""

    #: pod status through the API server's watch: events, no image config, no pid from the runtime
    capabilities = EngineCapabilities(fidelity="reduced", events=True, pid=False, image_config=False)
    degraded = False
    fallback_reason: str | None = None

    def __init__(self, watcher: PodWatcher, *, procfs: str = "/proc") -> None:
        self.watcher = watcher
        self.procfs = procfs

    @property
    def name(self) -> EngineName:
        return "containerd"

    async def version(self) -> str | None:
        return None

    async def ping(self) -> None:
        """Nothing to ask: the pod watcher reconnects on its own (this engine serves only as a fallback)."""

    def _info(self, pod: PodMeta, container: ContainerMeta) -> ContainerInfo | None:
        from .logtail import find_pid_by_container_id

        if not container.container_id:
            return None
        engine, _, raw = container.container_id.partition("://")
        name: EngineName = engine if engine in ("containerd", "cri-o", "docker") else "containerd"  # type: ignore[assignment]
        pid = find_pid_by_container_id(self.procfs, raw) if container.running else None
        image_ref = container.image
        evidence = [Evidence(signal="kubernetes.metadata-only", value=f"{pod.namespace}/{pod.name} status")]
        return ContainerInfo(
            engine=name,
            id=raw,
            pid=pid,
            name=container.name,
            image_ref=image_ref,
            labels=dict(pod.labels),
            kubernetes=pod.identity(container.name),
            created=container.started_at,
            running=container.running,
            fidelity="reduced",
            evidence=tuple(evidence),
            missing=tuple(
                n for n, v in (("pid", pid), ("imageDigest", None), ("entrypoint", None)) if v is None
            ),
        )

    async def list_containers(self) -> list[ContainerInfo]:
        out = []
        for pod in self.watcher.pods():
            for container in pod.containers.values():
                if container.running:
                    info = await asyncio.to_thread(self._info, pod, container)
                    if info is not None:
                        out.append(info)
        return out

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        found = self.watcher.by_container_id(container_id)
        if found is None:
            return None
        return await asyncio.to_thread(self._info, *found)

    def events(self) -> AsyncIterator[ContainerEvent]:
        return self.watcher.events()

    async def aclose(self) -> None:
        return None
