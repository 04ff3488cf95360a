"""Policy simulation: a candidate admission configuration replayed through the webhook's :class:`Admitter`.

Inputs are what the backend recorded: running workloads (the observers' inventory) and admission requests
(decision records v1.1, which keep exactly what the gates read). Each input becomes the AdmissionReview the
API server would send for it — a Pod ``CREATE`` with the recorded namespace, name, labels and containers —
and goes through :meth:`Admitter.review`, the code path of ``zastava webhook serve``: same parsing, gates,
backend policy, cache, fail-open/closed and dry-run decision. Nothing here decides anything on its own.

The result per input is compared with a baseline: the recorded answer for requests ("running" counts as
admitted for workloads), or — with ``baseline`` — the same inputs replayed through a second configuration at
the same moment, so that only the configuration differs. Identical inputs (a Deployment's replicas, a
controller re-creating the same Pod) are evaluated once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config import ZastavaConfig
from ..contracts import AdmissionDecision
from ..registry.errors import InvalidReference
from ..registry.posture.verifier import ImageVerifier
from ..registry.reference import parse_reference
from .admitter import Admitter, PolicySource
from .images import CONTAINER_FIELDS
from .resolve import ResolveError, TagResolver
from .review import AdmissionReview

__all__ = [
    "ReplayInput",
    "ReplayResult",
    "SimulationReport",
    "admitted",
    "replay_review",
    "simulate",
]

InputKind = Literal["workload", "request"]
DENIED_OUTCOMES = frozenset({"deny", "fail-closed"})
CONCURRENCY = 16


def admitted(outcome: str | None) -> bool | None:
    """Whether an outcome let the Pod in (dry-run and fail-open did); None when unknown."""
    if outcome is None:
        return None
    return outcome not in DENIED_OUTCOMES


@dataclass(frozen=True)
class ReplayInput:
    """One thing to evaluate: a running workload or a recorded request."""

    kind: InputKind
    key: str  # "<namespace>/<workload>" or the admission id
    namespace: str
    pod: str | None
    labels: Mapping[str, str]
    #: (containerField, container name, image as the spec names it)
    containers: tuple[tuple[str, str, str], ...]
    #: for requests: the recorded outcome; for workloads: "running"
    recorded: str | None = None
    when_us: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def signature(self) -> tuple[Any, ...]:
        """Inputs with the same signature get the same decision."""
        return (self.namespace, tuple(sorted(self.labels.items())), self.containers)


@dataclass
class ReplayResult:
    input: ReplayInput
    outcome: str  # allow | deny | fail-open | fail-closed | dry-run-deny | invalid
    allowed: bool
    message: str | None
    images: list[dict[str, Any]]
    baseline_outcome: str | None
    baseline_allowed: bool | None

    @property
    def change(self) -> str | None:
        """``allowed→denied``, ``denied→allowed`` or None (no change, or no baseline)."""
        if self.baseline_allowed is None or self.baseline_allowed == self.allowed:
            return None
        return "allowed→denied" if self.baseline_allowed else "denied→allowed"

    def wire(self) -> dict[str, Any]:
        i = self.input
        return {
            "kind": i.kind,
            "key": i.key,
            "namespace": i.namespace,
            "pod": i.pod,
            "labels": dict(i.labels),
            "containers": [{"field": f, "name": n, "image": img} for f, n, img in i.containers],
            "recorded": i.recorded,
            **({"whenUs": i.when_us} if i.when_us is not None else {}),
            **({"detail": dict(i.detail)} if i.detail else {}),
            "baseline": {"outcome": self.baseline_outcome, "allowed": self.baseline_allowed},
            "candidate": {"outcome": self.outcome, "allowed": self.allowed, "message": self.message},
            "change": self.change,
            "images": self.images,
        }


@dataclass
class SimulationReport:
    results: list[ReplayResult]
    baseline: str  # "recorded" or "config"
    truncated: dict[str, bool] = field(default_factory=dict)
    evaluated: int = 0

    def changes(self) -> list[ReplayResult]:
        return [r for r in self.results if r.change is not None]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in ("workload", "request"):
            rows = [r for r in self.results if r.input.kind == kind]
            out[kind + "s"] = {
                "total": len(rows),
                "denied": sum(1 for r in rows if not r.allowed),
                "allowedToDenied": sum(1 for r in rows if r.change == "allowed→denied"),
                "deniedToAllowed": sum(1 for r in rows if r.change == "denied→allowed"),
            }
        return out

    def wire(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "summary": self.summary(),
            "evaluated": self.evaluated,
            "truncated": self.truncated,
            "changes": [r.wire() for r in self.changes()],
            "results": [r.wire() for r in self.results],
        }


def replay_review(item: ReplayInput, uid: str) -> AdmissionReview:
    """The AdmissionReview the API server would send to create this Pod (only what the gates read)."""
    spec: dict[str, list[dict[str, str]]] = {}
    for container_field, name, image in item.containers:
        if container_field not in CONTAINER_FIELDS:
            container_field = "containers"
        spec.setdefault(container_field, []).append({"name": name, "image": image})
    if "containers" not in spec:
        spec["containers"] = []
    metadata: dict[str, Any] = {"namespace": item.namespace, "labels": dict(item.labels)}
    if item.pod:
        metadata["name"] = item.pod
    return AdmissionReview.model_validate(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "name": item.pod,
                "namespace": item.namespace,
                "operation": "CREATE",
                "userInfo": {"username": "zastava-simulation"},
                "object": {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec},
            },
        }
    )


class KnownDigests:
    """A :class:`TagResolver` answering from digests the backend already knows (what the observer saw
    running, what the webhook resolved when it admitted the request); other tags go to ``fallback``, or are
    unresolvable — which the admitter treats like an unreachable registry (fail-open/closed)."""

    def __init__(self, known: Mapping[str, str], fallback: TagResolver | None = None) -> None:
        # keyed by the one normalised spelling (the admitter asks with it): nginx, docker.io/nginx:latest and
        # index.docker.io/library/nginx:latest are one image
        self.known = {_normalised(image): digest for image, digest in known.items()}
        self.fallback = fallback

    async def resolve(self, image: str) -> str:
        digest = self.known.get(_normalised(image))
        if digest is not None:
            return digest
        if self.fallback is not None:
            return await self.fallback.resolve(image)
        raise ResolveError(
            "tag not resolvable in the simulation (no recorded digest; no registry configured)"
        )


def _normalised(image: str) -> str:
    try:
        return str(parse_reference(image))
    except InvalidReference:
        return image


@dataclass
class _Decision:
    outcome: str
    allowed: bool
    message: str | None
    images: list[dict[str, Any]]


async def _decide(
    admitter: Admitter, captured: dict[str, AdmissionDecision], item: ReplayInput, uid: str
) -> _Decision:
    review = replay_review(item, uid)
    response = await admitter.review(review)
    await asyncio.sleep(0)  # the decision record is built just after the response (call_soon)
    record = captured.pop(uid, None)
    outcome = (response.audit_annotations or {}).get("decision")
    if outcome is None:  # rejected before the gates (malformed Pod), or nothing to gate
        outcome = "allow" if response.allowed else "invalid"
    images = []
    if record is not None:
        for image in record.images:
            images.append(
                {
                    "container": image.container,
                    "image": image.name,
                    "resolved": image.resolved,
                    "verdict": image.policy_verdict,
                    "reasons": list(image.reasons),
                }
            )
    message = response.status.message if response.status is not None else None
    if message is None and response.warnings:
        message = " | ".join(response.warnings)
    return _Decision(outcome, bool(response.allowed), message, images)


def _admitter(
    config: ZastavaConfig,
    policy: PolicySource | None,
    resolver: TagResolver | None,
    verifier: ImageVerifier | None,
) -> tuple[Admitter, dict[str, AdmissionDecision]]:
    captured: dict[str, AdmissionDecision] = {}

    def keep(decision: AdmissionDecision) -> None:
        captured[decision.admission_id] = decision

    return Admitter(config, policy=policy, resolver=resolver, record=keep, verifier=verifier), captured


async def simulate(
    candidate: ZastavaConfig,
    inputs: Sequence[ReplayInput],
    *,
    policy: PolicySource | None,
    resolver: TagResolver | None = None,
    baseline: ZastavaConfig | None = None,
    truncated: Mapping[str, bool] | None = None,
    concurrency: int = CONCURRENCY,
    verifier_for: Callable[[ZastavaConfig], ImageVerifier | None] | None = None,
) -> SimulationReport:
    """Replay ``inputs`` through an :class:`Admitter` built from ``candidate`` (and from ``baseline``).

    ``verifier_for(config)`` gives the local verifier of a configuration with trust policies, as ``zastava
    webhook serve`` builds it (:func:`zastava.registry.settings.image_verifier`); None: no local verification.
    """
    unique: dict[tuple[Any, ...], ReplayInput] = {}
    for item in inputs:
        unique.setdefault(item.signature(), item)
    limit = asyncio.Semaphore(max(1, concurrency))

    async def run_all(config: ZastavaConfig) -> dict[tuple[Any, ...], _Decision]:
        verifier = verifier_for(config) if verifier_for is not None else None
        admitter, captured = _admitter(config, policy, resolver, verifier)
        out: dict[tuple[Any, ...], _Decision] = {}

        async def one(index: int, key: tuple[Any, ...], item: ReplayInput) -> None:
            async with limit:
                out[key] = await _decide(admitter, captured, item, f"simulation-{index}")

        try:
            await asyncio.gather(*(one(i, k, item) for i, (k, item) in enumerate(unique.items())))
        finally:
            await admitter.cache.close()
            if verifier is not None:
                await verifier.close()
        return out

    decided = await run_all(candidate)
    against = await run_all(baseline) if baseline is not None else None
    results = []
    for item in inputs:
        d = decided[item.signature()]
        base_outcome: str | None
        base_allowed: bool | None
        if against is not None:
            b = against[item.signature()]
            base_outcome, base_allowed = b.outcome, b.allowed
        elif item.kind == "workload":
            base_outcome, base_allowed = "running", True
        else:
            base_outcome, base_allowed = item.recorded, admitted(item.recorded)
        results.append(
            ReplayResult(item, d.outcome, d.allowed, d.message, d.images, base_outcome, base_allowed)
        )
    return SimulationReport(
        results=results,
        baseline="config" if baseline is not None else "recorded",
        truncated=dict(truncated or {}),
        evaluated=len(unique),
    )


def inputs_from_records(records: Iterable[Mapping[str, Any]]) -> list[ReplayInput]:
    """Recorded requests (``{"id", "receivedUs", "record": <decision wire dict>}``) as replay inputs.

    Records without the v1.1 container fields (written by an older webhook) are replayed with each image as
    a container of its own: the gates read images, namespace and labels, not container names.
    """
    out: list[ReplayInput] = []
    for entry in records:
        record = entry.get("record") or {}
        images = record.get("images") or []
        containers = tuple(
            (
                str(image.get("containerField") or "containers"),
                str(image.get("container") or f"container-{index}"),
                str(image.get("name") or ""),
            )
            for index, image in enumerate(images)
            if isinstance(image, dict) and image.get("name")
        )
        if not containers:
            continue
        outcome = record.get("outcome")
        if outcome is None:
            decision = record.get("decision")
            outcome = (
                "allow"
                if decision == "Allow"
                else ("dry-run-deny" if record.get("enforced") is False else "deny")
            )
        raw_labels = record.get("labels")
        labels: Mapping[str, Any] = raw_labels if isinstance(raw_labels, dict) else {}
        out.append(
            ReplayInput(
                kind="request",
                key=str(record.get("admissionId") or entry.get("id")),
                namespace=str(record.get("namespace") or ""),
                pod=record.get("pod"),
                labels={str(k): str(v) for k, v in labels.items()},
                containers=containers,
                recorded=str(outcome),
                when_us=entry.get("receivedUs"),
                detail={"decisionId": entry.get("id")} if entry.get("id") is not None else {},
            )
        )
    return out


def known_digests_from_records(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """image as written → digest the webhook resolved it to, from recorded requests."""
    out: dict[str, str] = {}
    for entry in records:
        for image in (entry.get("record") or {}).get("images") or []:
            if not isinstance(image, dict):
                continue
            name, resolved = image.get("name"), image.get("resolved")
            if isinstance(name, str) and isinstance(resolved, str) and "@sha256:" in resolved:
                out.setdefault(name, resolved.rsplit("@", 1)[1])
    return out
