"""What each ingested event tells the console's views: the container inventory and per-node health.

:func:`event_facts` extracts, once per event at ingest, the few fields the views need (no SQL here);
:func:`merge_container` folds facts into a container's row so that the newest fact wins whatever order events
arrive in (resends, two batches out of order): start facts by the start event's time, the stop by its time,
``running`` from the newer of the two. The store applies the result in the ingest transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .event_fields import EventFields, PostureFields, WorkloadFields

__all__ = [
    "DRIFT_KINDS",
    "ContainerFacts",
    "EventFacts",
    "NodeDelta",
    "decision_outcome",
    "event_facts",
    "merge_container",
    "minute_of",
    "sort_key",
]

#: Kinds shown on the drift timeline (EXEC appears once the contract has it).
DRIFT_KINDS = ("DRIFT", "POLICY_VIOLATION", "EXEC")
_SEP = "\x1f"  # unit separator: sorts below every printable character, so prefixes group together
MAX_TERMINAL_CHARS = 4096
MAX_LABELS = 256


@dataclass(frozen=True, slots=True)
class ContainerFacts:
    container_id: str
    platform: str
    namespace: str | None
    pod: str | None
    container: str | None
    workload: str | None
    image: str | None
    image_name: str | None
    image_digest: str | None
    labels: str | None  # JSON object, only from CONTAINER_START
    terminal: str | None
    build_id: str | None
    libs: int | None
    posture: str | None  # JSON object


@dataclass(frozen=True, slots=True)
class EventFacts:
    event_id: str
    kind: str
    node: str
    engine: str
    when_us: int
    container: ContainerFacts | None
    #: AGENT_WARNING: (code, message, count)
    warning: tuple[str, str, int] | None = None


@dataclass(slots=True)
class NodeDelta:
    """One node's share of a batch (new events only)."""

    engine: str
    last_event_us: int
    events: int = 0
    drops: int = 0
    gaps: int = 0
    warnings: int = 0
    last_warning: tuple[int, str, str] | None = None  # (when_us, code, message)


def minute_of(us: int) -> int:
    return us // 60_000_000


def _workload(workload: WorkloadFields) -> str | None:
    owner = workload.get("owner")
    if isinstance(owner, dict) and owner.get("kind") and owner.get("name"):
        return f"{owner['kind']}/{owner['name']}"[:600]
    return workload.get("pod") or workload.get("container")


def sort_key(
    namespace: str | None, workload: str | None, pod: str | None, container: str | None, cid: str
) -> str:
    return _SEP.join((namespace or "", workload or "", pod or "", container or "", cid))


def event_facts(event: EventFields, digest: str | None, when_us: int) -> EventFacts:
    """The view facts of one validated event (snake_case dict as the ingest path holds it)."""
    kind = event["kind"].value if hasattr(event["kind"], "value") else str(event["kind"])
    workload = event["workload"]
    runtime = event.get("runtime") or {}
    warning = None
    container = None
    if kind == "AGENT_WARNING":
        w = event.get("warning")
        warning = (
            str((w.get("code") if w else None) or "unknown")[:128],
            str((w.get("message") if w else None) or "")[:4000],
            int((w.get("count") if w else None) or 1),
        )
    elif workload.get("platform") != "host" and workload.get("container_id"):
        process = event.get("process")
        start = kind == "CONTAINER_START"
        terminals = process.get("terminals") if start and process else None
        libs = event.get("loaded_libs") if start else None
        labels = workload.get("labels") if start else None
        posture = event.get("posture") if kind in ("CONTAINER_START", "ATTESTATION_STATUS") else None
        container = ContainerFacts(
            container_id=workload["container_id"],
            platform=str(workload.get("platform") or "unknown"),
            namespace=workload.get("namespace"),
            pod=workload.get("pod"),
            container=workload.get("container"),
            workload=_workload(workload),
            image=workload.get("image_ref"),
            image_name=workload.get("image_name"),
            image_digest=digest,
            labels=_json(dict(list(labels.items())[:MAX_LABELS])) if isinstance(labels, dict) else None,
            terminal=" ".join(terminals)[:MAX_TERMINAL_CHARS] if terminals else None,
            build_id=process.get("build_id") if start and process else None,
            libs=len(libs) if start and libs is not None else None,
            posture=_json(_posture(posture)) if isinstance(posture, dict) else None,
        )
    return EventFacts(
        event_id=event["event_id"],
        kind=kind,
        node=event["node"],
        engine=str(runtime.get("engine") or "unknown"),
        when_us=when_us,
        container=container,
        warning=warning,
    )


def _posture(posture: PostureFields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, wire in (("image_signed", "imageSigned"), ("sbom_referrer", "sbomReferrer")):
        value = posture.get(key)
        if value is not None:
            out[wire] = value
    attestation = posture.get("attestation")
    if isinstance(attestation, dict):
        out["attestation"] = {k: v for k, v in attestation.items() if v is not None}
    return out


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def merge_container(
    row: dict[str, Any] | None, facts: ContainerFacts, kind: str, when_us: int, node: str
) -> dict[str, Any]:
    """``row`` (column → value, or None for a container not seen before) updated by one event's facts."""
    out: dict[str, Any] = (
        dict(row)
        if row is not None
        else {
            "container_id": facts.container_id,
            "node": node,
            "platform": facts.platform,
            "namespace": facts.namespace,
            "pod": facts.pod,
            "container": facts.container,
            "workload": facts.workload,
            "image": facts.image,
            "image_name": facts.image_name,
            "image_digest": facts.image_digest,
            "labels": None,
            "terminal": None,
            "build_id": None,
            "libs": None,
            "posture": None,
            "started_us": None,
            "stopped_us": None,
            "last_seen_us": when_us,
            "last_drift_us": None,
            "running": True,
        }
    )
    out["last_seen_us"] = max(out["last_seen_us"], when_us)
    if kind == "CONTAINER_START" and (out["started_us"] is None or when_us >= out["started_us"]):
        out.update(
            started_us=when_us,
            node=node,
            platform=facts.platform,
            namespace=facts.namespace,
            pod=facts.pod,
            container=facts.container,
            workload=facts.workload,
            image=facts.image,
            image_name=facts.image_name,
            image_digest=facts.image_digest,
            labels=facts.labels,
            terminal=facts.terminal,
            build_id=facts.build_id,
            libs=facts.libs,
            posture=facts.posture if facts.posture is not None else out["posture"],
        )
    elif kind == "CONTAINER_STOP":
        out["stopped_us"] = max(out["stopped_us"] or when_us, when_us)
    elif kind in DRIFT_KINDS:
        out["last_drift_us"] = max(out["last_drift_us"] or when_us, when_us)
    elif kind == "ATTESTATION_STATUS" and facts.posture is not None:
        out["posture"] = facts.posture
    for name in ("namespace", "pod", "container", "workload", "image", "image_name", "image_digest"):
        if out[name] is None:  # a container first seen through a non-start event: fill what it names
            out[name] = getattr(facts, name)
    started, stopped = out["started_us"], out["stopped_us"]
    out["running"] = stopped is None or (started is not None and started > stopped)
    out["sort_key"] = sort_key(
        out["namespace"], out["workload"], out["pod"], out["container"], out["container_id"]
    )
    return out


def decision_outcome(decision: Any) -> str:
    """The webhook's answer for a decision record: ``outcome`` (v1.1), else derived from a v1.0 record."""
    if decision.outcome:
        return str(decision.outcome)
    if decision.decision == "Allow":
        return "allow"
    return "dry-run-deny" if decision.enforced is False else "deny"
