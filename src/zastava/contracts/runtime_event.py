"""Runtime event (observer → backend), spec §2.1.

Version history of ``zastava.runtime.event``:

* ``v1.0`` — the seed contract of the spec.
* ``v1.1`` — appends optional fields: ``process.startTime`` (so a reused PID is never confused with an
  older process), ``process.terminals`` and ``process.entryTraceConfidence`` (EntryTrace result), ``count``
  (identical events coalesced by the publisher), ``warning`` and the ``AGENT_WARNING`` kind (e.g. a gap in
  the buffered event stream). Old payloads keep their ids: absent optional fields are not serialised.
* ``v1.2`` — appends ``workload.labels`` (the Pod's labels on Kubernetes, the container's labels elsewhere;
  sent with ``CONTAINER_START``) and ``workload.imageName`` (the image as the workload names it, e.g.
  ``nginx:1.25``, when ``imageRef`` is pinned by digest): what admission gates read, so that the backend's
  inventory can be replayed through them (policy simulation).
* ``v1.3`` — appends the ``EXEC`` kind: a process entered into a running container from outside it (its
  parent chain leaves the container to the runtime — ``docker exec``, ``kubectl exec``, ``crictl exec`` — and
  it is not a descendant of the container's init). Kept apart from ``DRIFT`` (what the container's own
  programs did); a peer below v1.3 is not sent it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .base import ContractModel, OptionalField, UtcDatetime
from .canonical import canonical_id

__all__ = [
    "KINDS_V1_0",
    "KIND_SINCE",
    "AgentWarning",
    "Attestation",
    "EntryTraceStep",
    "EventKind",
    "Evidence",
    "LoadedLib",
    "NewBinary",
    "Owner",
    "Posture",
    "Process",
    "RuntimeDelta",
    "RuntimeEvent",
    "RuntimeInfo",
    "Workload",
    "kind_known_at",
]

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class EventKind(StrEnum):
    CONTAINER_START = "CONTAINER_START"
    CONTAINER_STOP = "CONTAINER_STOP"
    DRIFT = "DRIFT"
    POLICY_VIOLATION = "POLICY_VIOLATION"
    ATTESTATION_STATUS = "ATTESTATION_STATUS"
    AGENT_WARNING = "AGENT_WARNING"  # since v1.1
    EXEC = "EXEC"  # since v1.3


#: The minor of ``zastava.runtime.event`` v1 each kind appeared in (absent: v1.0).
KIND_SINCE: dict[EventKind, int] = {EventKind.AGENT_WARNING: 1, EventKind.EXEC: 3}

#: Kinds a peer speaking v1.0 understands.
KINDS_V1_0 = frozenset(k for k in EventKind if k not in KIND_SINCE)


def kind_known_at(kind: EventKind, minor: int) -> bool:
    """Whether a peer speaking ``v1.<minor>`` knows ``kind``."""
    return KIND_SINCE.get(kind, 0) <= minor


class RuntimeInfo(ContractModel):
    engine: Literal["containerd", "cri-o", "docker", "logtail", "kubernetes", "unknown"]
    version: str | None = OptionalField()


class Owner(ContractModel):
    kind: NonEmpty
    name: NonEmpty


class Workload(ContractModel):
    platform: Literal["kubernetes", "docker", "host"]
    namespace: str | None = OptionalField()
    pod: str | None = OptionalField()
    container: str | None = OptionalField()
    container_id: NonEmpty = Field(description="'<engine>://<id>'")
    image_ref: str | None = OptionalField(description="image reference, by digest when known")
    owner: Owner | None = OptionalField()
    labels: dict[str, str] | None = OptionalField(
        since="1.2",
        max_length=256,
        description="Pod labels (Kubernetes) or container labels; CONTAINER_START",
    )
    image_name: str | None = OptionalField(
        since="1.2", max_length=4096, description="the image as the workload names it (tag form)"
    )


class EntryTraceStep(ContractModel):
    file: NonEmpty = Field(description="script or '<argv>' for steps taken from the command line")
    line: int | None = OptionalField(ge=0)
    op: NonEmpty = Field(description="exec, source, run-parts, wrapper name, interpreter, …")
    target: NonEmpty


class Process(ContractModel):
    pid: int = Field(ge=0)
    entrypoint: list[str] = Field(default_factory=list, max_length=4096)
    entry_trace: list[EntryTraceStep] = Field(default_factory=list, max_length=4096)
    build_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{2,128}$",
        description="GNU build-id of /proc/<pid>/exe, lower-case hex; null when the binary has none",
    )
    start_time: int | None = OptionalField(
        since="1.1", ge=0, description="start time in clock ticks since boot (/proc/<pid>/stat field 22)"
    )
    terminals: list[str] | None = OptionalField(since="1.1", description="EntryTrace terminal program(s)")
    entry_trace_confidence: int | None = OptionalField(
        since="1.1", ge=0, le=100, description="EntryTrace confidence in percent (integers keep ids exact)"
    )


class LoadedLib(ContractModel):
    path: NonEmpty
    inode: int = Field(ge=0)
    sha256: Sha256Hex | None = OptionalField(description="absent when a hashing cap was hit (see evidence)")


class Attestation(ContractModel):
    uuid: str | None = OptionalField()
    verified: bool


class Posture(ContractModel):
    image_signed: bool | None = OptionalField()
    sbom_referrer: Literal["present", "missing", "unknown"] = "unknown"
    attestation: Attestation | None = OptionalField()


class NewBinary(ContractModel):
    path: NonEmpty
    sha256: Sha256Hex | None = OptionalField()


class RuntimeDelta(ContractModel):
    baseline_image_digest: str | None = OptionalField()
    changed_files: list[str] | None = OptionalField()
    new_binaries: list[NewBinary] | None = OptionalField()


class Evidence(ContractModel):
    signal: NonEmpty
    value: str = Field(max_length=8192)


class AgentWarning(ContractModel):
    code: NonEmpty
    message: str
    count: int | None = OptionalField(ge=0)
    since: UtcDatetime | None = OptionalField()
    until: UtcDatetime | None = OptionalField()


class RuntimeEvent(ContractModel):
    event_id: NonEmpty = Field(description="canonical id of the event without eventId (see compute_id)")
    when: UtcDatetime
    kind: EventKind = Field(strict=False)  # the name as a string (strict mode wants an EventKind)
    tenant: NonEmpty
    node: NonEmpty
    runtime: RuntimeInfo
    workload: Workload
    process: Process | None = OptionalField()
    loaded_libs: list[LoadedLib] | None = OptionalField(max_length=65536)
    posture: Posture | None = OptionalField()
    delta: RuntimeDelta | None = OptionalField()
    evidence: list[Evidence] = Field(default_factory=list, max_length=4096)
    count: int | None = OptionalField(
        since="1.1", ge=1, description="identical events coalesced into this one"
    )
    warning: AgentWarning | None = OptionalField(since="1.1")

    def compute_id(self) -> str:
        """Reproducible id: the canonical id of the wire form without ``eventId``."""
        body = self.wire()
        body.pop("eventId", None)
        return canonical_id(body)

    def with_computed_id(self) -> RuntimeEvent:
        return self.model_copy(update={"event_id": self.compute_id()})
