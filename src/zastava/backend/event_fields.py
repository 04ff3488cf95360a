"""A validated runtime event as the ingest path holds it: plain dicts keyed by field name, typed.

The ingest fast path (:mod:`.fastpath`) validates into dicts, not models — building ~16 pydantic instances
per event was most of the ingest time — and the contracts' slow path dumps its model into the same shape.
These ``TypedDict`` s name what those dicts hold, so :meth:`.ingest.Ingestor.prepare` and
:func:`.inventory.event_facts` read typed fields at no run-time cost (a ``TypedDict`` is a plain ``dict``).
Optional contract fields may be absent or None (``total=False``); required ones are ``Required``.

One shape per contract model (:mod:`zastava.contracts.runtime_event`); ``tests/unit/backend/
test_event_fields.py`` fails when a model gains or loses a field these do not name.
"""

# no ``from __future__ import annotations``: ``Required`` must be seen at run time for ``__required_keys__``
from datetime import datetime
from typing import Any, Literal, Required, TypedDict

from ..contracts import EventKind

__all__ = [
    "AgentWarningFields",
    "AttestationFields",
    "EventFields",
    "LoadedLibFields",
    "OwnerFields",
    "PostureFields",
    "ProcessFields",
    "RuntimeInfoFields",
    "WorkloadFields",
]


class OwnerFields(TypedDict):
    kind: str
    name: str


class WorkloadFields(TypedDict, total=False):
    platform: Required[Literal["kubernetes", "docker", "host"]]
    namespace: str | None
    pod: str | None
    container: str | None
    container_id: Required[str]
    image_ref: str | None
    owner: OwnerFields | None
    labels: dict[str, str] | None
    image_name: str | None


class ProcessFields(TypedDict, total=False):
    pid: Required[int]
    entrypoint: list[str]
    entry_trace: list[dict[str, Any]]
    build_id: str | None
    start_time: int | None
    terminals: list[str] | None
    entry_trace_confidence: int | None


class LoadedLibFields(TypedDict, total=False):
    path: Required[str]
    inode: Required[int]
    sha256: str | None


class RuntimeInfoFields(TypedDict, total=False):
    engine: Required[str]
    version: str | None


class AttestationFields(TypedDict, total=False):
    uuid: str | None
    verified: Required[bool]


class PostureFields(TypedDict, total=False):
    image_signed: bool | None
    sbom_referrer: Literal["present", "missing", "unknown"]
    attestation: AttestationFields | None


class AgentWarningFields(TypedDict, total=False):
    code: Required[str]
    message: Required[str]
    count: int | None
    since: datetime | None
    until: datetime | None


class EventFields(TypedDict, total=False):
    event_id: Required[str]
    when: Required[datetime]
    kind: Required[EventKind]
    tenant: Required[str]
    node: Required[str]
    runtime: Required[RuntimeInfoFields]
    workload: Required[WorkloadFields]
    process: ProcessFields | None
    loaded_libs: list[LoadedLibFields] | None
    posture: PostureFields | None
    delta: dict[str, Any] | None
    evidence: list[dict[str, Any]]
    count: int | None
    warning: AgentWarningFields | None
