"""Building runtime events (spec §2.1): the one place the observer constructs a :class:`RuntimeEvent`.

An :class:`EventContext` holds what every event about one container (or about the observer itself, see
:func:`observer_context`) repeats; :meth:`EventContext.event` builds each event from it with its canonical
``eventId``. The agent, drift detection and the publisher's gap warning all build through it, so a change to
what the observer sends is made here (and in the contract), nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..contracts import (
    AgentWarning,
    EventKind,
    Evidence,
    LoadedLib,
    Owner,
    Posture,
    Process,
    RuntimeDelta,
    RuntimeEvent,
    RuntimeInfo,
    Workload,
)
from .engines.base import ContainerInfo

__all__ = ["EngineLabel", "EventContext", "context_for", "observer_context"]

#: ``runtime.engine`` of the contract
EngineLabel = Literal["containerd", "cri-o", "docker", "logtail", "kubernetes", "unknown"]

_MAX_EVIDENCE = 4096
MAX_LABELS = 256


@dataclass(frozen=True, slots=True)
class EventContext:
    """Tenant, node, runtime and workload of one container: what every event about it repeats."""

    tenant: str
    node: str
    runtime: RuntimeInfo
    workload: Workload
    image_digest: str | None = None
    #: sent with CONTAINER_START only (``workload.labels``, contract v1.2): what admission rules match on
    labels: Mapping[str, str] | None = None

    def event(
        self,
        kind: EventKind,
        *,
        when: datetime,
        process: Process | None = None,
        loaded_libs: Sequence[LoadedLib] | None = None,
        posture: Posture | None = None,
        delta: RuntimeDelta | None = None,
        evidence: Iterable[Evidence] = (),
        warning: AgentWarning | None = None,
    ) -> RuntimeEvent:
        """A complete event with its canonical ``eventId``."""
        workload = self.workload
        if self.labels and kind is EventKind.CONTAINER_START:
            workload = workload.model_copy(update={"labels": dict(self.labels)})
        return RuntimeEvent(
            event_id="pending",
            when=when,
            kind=kind,
            tenant=self.tenant,
            node=self.node,
            runtime=self.runtime,
            workload=workload,
            process=process,
            loaded_libs=list(loaded_libs) if loaded_libs is not None else None,
            posture=posture,
            delta=delta,
            evidence=list(evidence)[:_MAX_EVIDENCE],
            warning=warning,
        ).with_computed_id()


def context_for(
    info: ContainerInfo,
    *,
    tenant: str,
    node: str,
    owner: tuple[str | None, str | None] = (None, None),
    labels: Mapping[str, str] | None = None,
) -> EventContext:
    """The :class:`EventContext` of a container as an engine (plus pod metadata for ``owner``) sees it."""
    k8s = info.kubernetes
    owner_model = Owner(kind=owner[0], name=owner[1]) if owner[0] and owner[1] else None
    workload = Workload(
        platform="kubernetes" if k8s is not None else ("docker" if info.engine == "docker" else "host"),
        namespace=k8s.namespace if k8s else None,
        pod=k8s.pod if k8s else None,
        container=(k8s.container if k8s and k8s.container else info.name),
        container_id=info.container_id,
        image_ref=info.image_ref_by_digest,
        owner=owner_model,
        image_name=_image_name(info),
    )
    return EventContext(
        tenant=tenant,
        node=node,
        runtime=RuntimeInfo(engine=info.engine, version=info.runtime_version),
        workload=workload,
        image_digest=info.image_digest,
        labels=dict(list(labels.items())[:MAX_LABELS]) if labels else None,
    )


def observer_context(*, tenant: str, node: str, engine: EngineLabel, container_id: str) -> EventContext:
    """The context of events about the observer itself (``AGENT_WARNING``): platform ``host``, no workload."""
    return EventContext(
        tenant=tenant,
        node=node,
        runtime=RuntimeInfo(engine=engine),
        workload=Workload(platform="host", container_id=container_id),
    )


def _image_name(info: ContainerInfo) -> str | None:
    """The image as the workload names it, when ``imageRef`` says something else (a digest-pinned form)."""
    name = info.image_ref
    if not name or name == info.image_ref_by_digest or name.startswith("sha256:"):
        return None
    return name[:4096]
