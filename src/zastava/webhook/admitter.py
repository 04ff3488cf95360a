"""The admission decision: AdmissionReview in, AdmissionResponse + §2.2 decision record out.

Flow (spans request → resolve → respond): only Pods on CREATE/UPDATE and the ``ephemeralcontainers``
subresource are gated (everything else is allowed without work); on UPDATE only images that the old Pod did
not already run are gated. Local gates run first; tag-only images are resolved to digests (``resolveTags``)
and all images of the Pod go to the backend in one ``/policy/runtime`` request through the cache, all within
the deadline. Images are parsed and normalised by the one reference model (``zastava.registry.reference``).
Whatever happens — a gate denies, the registry or backend fails, the Pod is malformed, the webhook has a bug
(:meth:`Admitter.internal_error`) — the answer is settled by :class:`~.decision.Decisions` (fail-open/closed
per namespace, ``enforce: false`` dry run). The decision record is logged and posted in the background.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from ..config import ZastavaConfig
from ..contracts import (
    ADMISSION_DECISION,
    AdmissionDecision,
    AdmissionImage,
    CanonicalIdMemo,
    CanonicalizationError,
    ImagePolicy,
    PolicyVerdict,
    RuntimePolicyRequest,
    RuntimePolicyResponse,
    multihash_id,
    versions,
)
from ..contracts.admission import ContainerField, Outcome
from ..registry.errors import InvalidReference
from ..registry.posture.verifier import ImageVerifier, VerifyOutcome
from ..registry.reference import ImageReference, parse_reference
from ..telemetry import ZastavaMetrics, fields, span
from ..telemetry.logging import emit_many
from .cache import CacheEntry, PolicyCache, PolicyContext, PolicyKey
from .deadline import Deadline, budget_seconds
from .decision import Decision, DecisionLabel, Decisions, Problem
from .gates import backend_gates, local_gates
from .images import VOLUMES, ContainerImage, PodShapeError, changed_images, collect_images
from .pinning import jsonpatch, pin_operations
from .resolve import TagResolver
from .review import (
    RESPONSE_HEAD,
    AdmissionRequest,
    AdmissionResponse,
    AdmissionReview,
    QuickRequest,
    quick_request,
    review_response,
)
from .verification import local_verdict, needs_backend
from .warm import WarmAnswer, WarmAnswers, WarmKey

__all__ = ["Admitter", "ImageOutcome", "PolicySource"]

log = logging.getLogger("zastava.webhook")

#: ``policy(request, time_budget=…)`` — :meth:`BackendClient.policy` has this shape.
PolicySource = Callable[..., Awaitable[RuntimePolicyResponse]]
#: Receives each decision record to post (``DecisionRecorder.submit``).
RecordSink = Callable[[AdmissionDecision], None]
#: Receives decision records as envelope lines, in batches (``DecisionRecorder.submit_lines``).
LinesSink = Callable[[list[bytes]], None]
_DECISION_VERSION = str(versions.current(ADMISSION_DECISION))

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_IMAGES_PER_REQUEST = 256  # RuntimePolicyRequest.images max_length
_GATE_MEMO_MAX = 4096


@dataclass(slots=True)
class ImageOutcome:
    item: ContainerImage
    ref: ImageReference | None = None
    resolved: str | None = None
    signed: bool | None = None
    has_sbom: bool | None = None
    deny: list[str] = field(default_factory=list)
    warn: list[str] = field(default_factory=list)
    unavailable: str | None = None
    ttl: int | None = None

    @property
    def verdict(self) -> PolicyVerdict:
        if self.deny:
            return "fail"
        if self.warn or self.unavailable:
            return "warn"
        return "pass"

    def record(self) -> AdmissionImage:
        reasons = (*self.deny, *self.warn, *((self.unavailable,) if self.unavailable else ()))
        return _image_record(
            self.item.image,
            self.resolved,
            self.signed,
            self.has_sbom,
            self.verdict,
            reasons,
            self.item.container[:253],
            self.item.field,
        )

    def line(self) -> str:
        reasons = [*self.deny] or [*self.warn]
        if self.unavailable and not self.deny:
            reasons.append(self.unavailable)
        return f"{self.label()}: " + ("; ".join(reasons) or "pass")

    def label(self) -> str:
        """``containers[api] nginx:1.25`` for messages a terminal shows (``kubectl`` prints them): a name or
        image with control or non-ASCII characters is shown escaped, never as raw escape sequences."""
        return f"{_shown(self.item.where)} {_shown(self.item.image)}"


def _shown(text: str) -> str:
    if text.isascii() and text.isprintable():
        return text
    return ascii(text)[1:-1]  # \x1b, \u0435: escaped, so a reason is readable and inert in a terminal


@functools.lru_cache(maxsize=4096)
def _image_record(
    name: str,
    resolved: str | None,
    signed: bool | None,
    has_sbom: bool | None,
    verdict: PolicyVerdict,
    reasons: tuple[str, ...],
    container: str,
    container_field: str,
) -> AdmissionImage:
    """One validated record per distinct image outcome (the replicas of a rollout repeat it): a tuple lookup
    instead of a model validation per image and review. Records are never mutated once built."""
    return AdmissionImage(
        name=name,
        resolved=resolved,
        signed=signed,
        has_sbom_referrers=has_sbom,
        policy_verdict=verdict,
        reasons=list(reasons),
        container=container,
        # an image volume has no ContainerField in the v1.1 contract: recorded with none (its name kept)
        container_field=(None if container_field == VOLUMES else cast(ContainerField, container_field)),
    )


def _gated(request: AdmissionRequest) -> bool:
    resource = request.resource
    if resource.group != "" or resource.version != "v1" or resource.resource != "pods":
        return False
    if request.sub_resource not in (None, "", "ephemeralcontainers"):
        return False
    return request.operation in ("CREATE", "UPDATE")


#: the Pod specs of a rollout's replicas are equal: their canonical id is computed once (bounded LRU)
_POD_SPECS = CanonicalIdMemo(max_entries=4096)


def pod_spec_digest(pod: object) -> str:
    spec = pod.get("spec") if isinstance(pod, dict) else None
    try:
        return _POD_SPECS.canonical_id(spec)
    except CanonicalizationError:
        return multihash_id(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS))


_OUTCOMES = frozenset({"allow", "deny", "fail-open", "fail-closed", "dry-run-deny"})


def _pod_name(request: AdmissionRequest) -> str | None:
    return _pod_name_of(request.name, request.object)


def _pod_name_of(request_name: str | None, pod: object) -> str | None:
    meta = pod.get("metadata") if isinstance(pod, dict) else None
    metadata: dict[str, Any] = meta if isinstance(meta, dict) else {}
    name = request_name or metadata.get("name") or metadata.get("generateName")
    return name[:253] if isinstance(name, str) and name else None


def _generate_name(pod: object) -> object:
    metadata = pod.get("metadata") if isinstance(pod, dict) else None
    return metadata.get("generateName") if isinstance(metadata, dict) else None


class Admitter:
    def __init__(
        self,
        config: ZastavaConfig,
        *,
        policy: PolicySource | None,
        resolver: TagResolver | None = None,
        cache: PolicyCache | None = None,
        metrics: ZastavaMetrics | None = None,
        record: RecordSink | None = None,
        verifier: ImageVerifier | None = None,
        record_lines: LinesSink | None = None,
    ) -> None:
        self.config = config
        self.admission = config.admission
        self.policy = policy
        self.resolver = resolver
        #: local verification (trust policies): signatures and attestations are checked here; the backend is
        #: asked only for what only it knows (:func:`.verification.needs_backend`)
        self.verifier = verifier
        self._trust = verifier.revision if verifier is not None else ""
        self._ask_backend = verifier is None or needs_backend(self.admission, config.backend.base_address)
        # with local verification the backend's signed/hasSbom do not gate (its catalog still counts for SBOM)
        local_only = {"image_signature": False, "sbom_referrer": False}
        verify = self.admission.verify.model_copy(update=local_only)
        self._backend_admission = (
            self.admission if verifier is None else self.admission.model_copy(update={"verify": verify})
        )
        # `is None`, not `or`: an empty cache is falsy (``__len__``) and a given one must be the one used
        self.cache = (
            cache
            if cache is not None
            else PolicyCache(
                max_ttl_seconds=config.admission.cache_ttl_seconds,
                failure_ttl_seconds=config.webhook.failure_ttl_seconds,
                max_entries=config.webhook.cache_max_entries,
            )
        )
        self.metrics = metrics
        self.record = record
        self.decisions = Decisions(config.admission)
        self._decision_counters: dict[str, Any] = {}
        self._static = functools.lru_cache(maxsize=4096)(self._static_uncached)
        self._gate_memo: dict[int, tuple[ImagePolicy, tuple[str, ...], tuple[str, ...]]] = {}
        #: warm answers (:mod:`.warm`): only where the answer is the verdict cache's alone — no local
        #: verification (its outcomes are cached elsewhere), a backend to cache verdicts of, and records
        #: that can be taken as envelope lines (``record_lines``) or are not posted at all
        self.record_lines = record_lines
        self._warm_enabled = (
            verifier is None and policy is not None and (record is None or bool(record_lines))
        )
        self.warm = WarmAnswers()
        self._pending: list[tuple[WarmAnswer, QuickRequest]] = []

    # ------------------------------------------------------------------------------------------- warm

    def warm_answer(self, data: Any) -> bytes | None:
        """The response body to a parsed review when it is a Pod CREATE whose answer is remembered and every
        verdict it read is still cached (:mod:`.warm`), else None (the caller reviews it in full). The
        decision is counted, logged and recorded in a batch right after the response (:meth:`flush_warm`)."""
        if not self.warm or not self._warm_enabled:
            return None
        quick = quick_request(data)
        if quick is None:
            return None
        try:
            images = tuple(collect_images(quick.pod))
        except PodShapeError:
            return None
        context = self._context_of(quick.namespace, quick.pod)
        answer = self.warm.get((context, images), self.cache.get)
        if answer is None:
            return None
        with span("request", uid=quick.uid, namespace=quick.namespace, operation="CREATE", warm=True):
            self._pending.append((answer, quick))  # counted, logged and recorded by flush_warm
            if len(self._pending) == 1:
                asyncio.get_running_loop().call_soon(self.flush_warm)
            return RESPONSE_HEAD + orjson.dumps(quick.uid) + answer.tail

    def flush_warm(self) -> None:
        """Log and hand over the records of the warm answers given since the last flush (called soon after
        the responses; records are equal to the slow path's, ``tests/unit/webhook/test_warm.py``)."""
        pending, self._pending = self._pending, []
        lines: list[bytes] = []
        rows: list[dict[str, Any]] | None = [] if log.isEnabledFor(logging.INFO) else None
        hits = 0
        labels: dict[str, int] = {}
        for answer, _ in pending:
            hits += len(answer.verdicts)
            labels[answer.label] = labels.get(answer.label, 0) + 1
        if self.metrics is not None:
            if hits:
                self.metrics.admission_cache_hits.inc(hits)
            for label, count in labels.items():
                self._counter(label).inc(count)
        if rows is None and self.record_lines is None:
            return  # neither logged nor recorded (log level above INFO, postDecisions off)
        for answer, quick in pending:
            try:
                pod = quick.pod
                digest = pod_spec_digest(pod)
                wire = answer.record.copy()
                wire["admissionId"] = quick.uid
                wire["podSpecDigest"] = digest
                name = _pod_name_of(quick.name, pod)
                if name is None:
                    del wire["pod"]
                else:
                    wire["pod"] = name
                if rows is not None:
                    rows.append(
                        {
                            "admissionId": quick.uid,
                            "namespace": wire["namespace"],
                            "pod": quick.name or _generate_name(pod),
                            "decision": wire["decision"],
                            "result": answer.label,
                            "podSpecDigest": digest,
                            "images": wire["images"],
                        }
                    )
                if not quick.dry_run and self.record_lines is not None:
                    lines.append(orjson.dumps({"schemaVersion": _DECISION_VERSION, "decision": wire}))
            except Exception:  # a record must never take the webhook down
                log.exception("decision record failed", extra=fields(admissionId=quick.uid))
        try:
            if rows:
                emit_many(log, logging.INFO, "admission decision", rows)
            if lines and self.record_lines is not None:
                self.record_lines(lines)
        except Exception:
            log.exception("decision records failed", extra=fields(records=len(lines)))

    def _remember(
        self,
        key: WarmKey,
        request: AdmissionRequest,
        outcomes: list[ImageOutcome],
        decision: Decision,
        response: AdmissionResponse,
        verdicts: dict[PolicyKey, CacheEntry],
    ) -> None:
        """Keep the answer a warm review settled (the response after its uid, the record's wire form)."""
        body = review_response(response)
        head = RESPONSE_HEAD + orjson.dumps(request.uid)
        if not body.startswith(head):  # pragma: no cover - review_response writes the uid first
            return
        record = self.decision_record(request, outcomes, decision.would_allow, decision.label)
        wire = record.model_copy(update={"pod": "-"}).wire()  # "pod" kept in its place, filled per review
        wire["images"] = orjson.Fragment(orjson.dumps(wire["images"]))
        self.warm.put(key, WarmAnswer(tuple(verdicts.items()), body[len(head) :], decision.label, wire))

    # ------------------------------------------------------------------------------------------ entry

    async def review(self, review: AdmissionReview, *, timeout_param: str | None = None) -> AdmissionResponse:
        request = review.request
        ns = request.namespace or ""
        with span("request", uid=request.uid, namespace=request.namespace, operation=request.operation):
            if not _gated(request):
                return self._count(AdmissionResponse(uid=request.uid, allowed=True), "skip")
            pod = request.object
            if request.kind.kind == "EphemeralContainers" and isinstance(pod, dict):
                # API servers before 1.22 send the subresource as kind EphemeralContainers (no spec)
                pod = {"spec": {"ephemeralContainers": pod.get("ephemeralContainers")}}
            try:
                images = collect_images(pod)
            except PodShapeError as exc:
                invalid = self.decisions.decide("invalid", ns, f"malformed Pod: {exc}")
                return self._settle(request, [], invalid)
            if request.operation == "UPDATE":
                old = request.old_object
                if request.kind.kind == "EphemeralContainers" and isinstance(old, dict):
                    old = {"spec": {"ephemeralContainers": old.get("ephemeralContainers")}}
                images = changed_images(images, old)
            if not images:
                return self._count(AdmissionResponse(uid=request.uid, allowed=True), "allow")
            deadline = Deadline.after(
                budget_seconds(
                    timeout_param,
                    self.config.webhook.deadline_margin_seconds,
                    self.config.backend.request_timeout_seconds,
                )
            )
            outcomes = [self._local(item) for item in images]
            rememberable = self._warm_enabled and request.operation == "CREATE" and request.kind.kind == "Pod"
            context = self._context(request) if rememberable else None
            with span("resolve", images=len(outcomes)):
                warm = await self._evaluate(request, outcomes, deadline, context)
            if self.admission.pin_digests:
                self._require_pinned(outcomes)
            with span("respond"):
                response, decision = self._decide(request, outcomes)
            if warm is not None and context is not None:
                self._remember((context, tuple(images)), request, outcomes, decision, response, warm)
            return response

    async def mutate(self, review: AdmissionReview, *, timeout_param: str | None = None) -> AdmissionResponse:
        """``/mutate`` (digest pinning, ``admission.pinDigests``): the Pod reviewed as ``/admit`` reviews it,
        answered ``allowed`` with a JSONPatch pinning every tag-only image that passed to the digest that was
        resolved and verified. It never denies and records nothing: the validating ``/admit`` decides."""
        request = review.request
        answer = AdmissionResponse(uid=request.uid, allowed=True)
        if not self.admission.pin_digests or not _gated(request) or request.kind.kind != "Pod":
            return answer
        try:
            images = collect_images(request.object)
        except PodShapeError:
            return answer
        if request.operation == "UPDATE":
            images = changed_images(images, request.old_object)
        tagged = [item for item in images if "@" not in item.image]
        if not tagged:
            return answer
        deadline = Deadline.after(
            budget_seconds(
                timeout_param,
                self.config.webhook.deadline_margin_seconds,
                self.config.backend.request_timeout_seconds,
            )
        )
        outcomes = [self._local(item) for item in tagged]
        with span("pin", images=len(outcomes)):
            await self._evaluate(request, outcomes, deadline)
        pinned = [
            (o.item.field, o.item.container, o.item.image, o.resolved.rpartition("@")[2])
            for o in outcomes
            if not o.deny and not o.unavailable and o.resolved and "@" in o.resolved
        ]
        ops = pin_operations(request.object or {}, pinned)
        if ops:
            answer.patch, answer.patch_type = jsonpatch(ops), "JSONPatch"
        return answer

    # ------------------------------------------------------------------------------------------ steps

    def _local(self, item: ContainerImage) -> ImageOutcome:
        ref, deny = self._static(item.image)
        outcome = ImageOutcome(item, ref=ref, deny=list(deny))
        outcome.resolved = ref.pinned if ref is not None else None
        return outcome

    @staticmethod
    def _require_pinned(outcomes: list[ImageOutcome]) -> None:
        """With ``pinDigests`` the validating path admits digests only: ``/mutate`` pins every image it
        verified, so a tag-only image that verifies here means the mutation did not run (bypassed, skipped by
        its ``failurePolicy: Ignore``, ordered after another mutating webhook that rewrote the image) and the
        tag could move between this review and the pull. It is denied; what is admitted is always the digest
        that was verified. A tag whose verification is *unavailable* (registry down — then ``/mutate`` could
        not pin it either) stays unavailable: the namespace's fail-open/closed decides, as for any outage."""
        for o in outcomes:
            if o.ref is not None and o.ref.digest is None and not o.deny and o.unavailable is None:
                o.deny.append(
                    "image is not pinned to a digest (admission.pinDigests: the mutating webhook /mutate "
                    "pins verified images; a tag-only image at /admit was not pinned by it)"
                )

    def _static_uncached(self, image: str) -> tuple[ImageReference | None, tuple[str, ...]]:
        """Parse + local gates: a pure function of the image string and the (fixed) policy."""
        try:
            ref = parse_reference(image)
        except InvalidReference as exc:
            return None, (str(exc),)
        return ref, tuple(local_gates(ref, self.admission))

    async def _evaluate(
        self,
        request: AdmissionRequest,
        outcomes: list[ImageOutcome],
        deadline: Deadline,
        context: PolicyContext | None = None,
    ) -> dict[PolicyKey, CacheEntry] | None:
        """Looks every usable image up; returns the cached verdicts it read when the answer came from the
        verdict cache alone (no tag resolved, no verification, no backend call, nothing unavailable) — what a
        :class:`~.warm.WarmAnswer` may be built on — else None."""
        # an image a local gate denied is never looked up: a denied reference costs no registry or backend
        # request (no SSRF towards a denylisted host, no work for a Pod that is refused anyway)
        usable = [o for o in outcomes if o.ref is not None and not o.deny]
        if not usable:
            return {}
        if self.verifier is not None:
            await self._verify(self.verifier, usable, deadline)
            if not self._ask_backend:
                return None
            await self._ask(request, usable, deadline, context)
            return None
        resolved = self._needs_resolution(usable)
        try:
            if resolved:
                async with asyncio.timeout(deadline.remaining()):
                    await self._resolve(usable)
        except TimeoutError:
            for o in usable:
                if (
                    o.resolved is None
                    and o.unavailable is None
                    and o.ref is not None
                    and o.ref.digest is None
                ):
                    o.unavailable = "registry did not resolve the tag before the deadline"
        if self.policy is None:
            for o in usable:
                if o.unavailable is None:
                    o.unavailable = "no policy backend configured"
            return None
        warm = await self._ask(request, usable, deadline, context)
        return None if resolved else warm

    async def _ask(
        self,
        request: AdmissionRequest,
        usable: list[ImageOutcome],
        deadline: Deadline,
        context: PolicyContext | None = None,
    ) -> dict[PolicyKey, CacheEntry] | None:
        """The backend's ``/policy/runtime`` verdicts for the Pod's images, through the cache; returns the
        cached entries when every one was a fresh hit (the warm path) and all were usable, else None."""
        if self.policy is None:
            for o in usable:
                if o.unavailable is None:
                    o.unavailable = "no policy backend configured"
            return None
        if context is None:
            context = self._context(request)
        keyed: dict[PolicyKey, list[ImageOutcome]] = {}
        for o in usable:
            if o.unavailable is None and o.ref is not None:
                keyed.setdefault(PolicyKey._make((o.resolved or str(o.ref), context)), []).append(o)
        if not keyed:
            return None
        namespace = request.namespace
        policy = self.policy

        async def fetch(keys: list[PolicyKey]) -> RuntimePolicyResponse:
            refs = [key.image for key in keys]
            labels = dict(context.labels)
            budget = self.config.backend.request_timeout_seconds
            if len(refs) <= MAX_IMAGES_PER_REQUEST:
                request_ = RuntimePolicyRequest(namespace=namespace, labels=labels, images=refs)
                return await policy(request_, time_budget=budget)
            # more images than one RuntimePolicyRequest may carry: split, ask concurrently, merge
            parts = [
                refs[i : i + MAX_IMAGES_PER_REQUEST] for i in range(0, len(refs), MAX_IMAGES_PER_REQUEST)
            ]
            answers = await asyncio.gather(
                *(
                    policy(
                        RuntimePolicyRequest(namespace=namespace, labels=labels, images=p), time_budget=budget
                    )
                    for p in parts
                )
            )
            return RuntimePolicyResponse(
                ttl_seconds=min(a.ttl_seconds for a in answers),
                results={k: v for a in answers for k, v in a.results.items()},
                policy_revision=answers[-1].policy_revision,
            )

        entries: dict[PolicyKey, CacheEntry] = {}
        budget = deadline.remaining()
        cached = self.cache.get_all(keyed)
        warm = cached
        if cached is not None:  # warm cache: no await, no timer
            entries, hits = cached, len(cached)
        else:
            hits = 0
            try:
                async with asyncio.timeout(budget):
                    entries, hits = await self.cache.get_many(list(keyed), fetch)
            except TimeoutError:
                pass
            # the answer just fetched is what the cache now holds: the next replica's answer can be remembered
            now_cached = self.cache.get_all(keyed)
            if now_cached is not None and all(now_cached[k] is entries.get(k) for k in keyed):
                warm = now_cached
        if hits and self.metrics is not None:
            self.metrics.admission_cache_hits.inc(hits)
        for key, group in keyed.items():
            entry = entries.get(key)
            for o in group:
                if entry is None:
                    o.unavailable = (
                        f"backend did not answer before the admission deadline ({budget * 1000:.0f} ms)"
                    )
                elif entry.result is None:
                    o.unavailable = f"policy unavailable: {entry.error}"
                else:
                    result = entry.result
                    o.ttl = entry.ttl_seconds
                    deny, warn = self._gates(result)
                    o.deny.extend(deny)
                    o.warn.extend(warn)
                    if self.verifier is None:
                        o.signed, o.has_sbom = result.signed, result.has_sbom
                    else:  # verified here; the backend's catalog may still know an SBOM
                        o.has_sbom = bool(o.has_sbom or result.has_sbom)
                        self._sbom_gate(o)
        if warm is not None and any(o.unavailable for o in usable):
            return None  # a cached failure ("policy unavailable"): not an answer to remember
        return warm

    def _gates(self, result: ImagePolicy) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The backend gates' (deny, warn) for a cached verdict, worked out once per verdict object: a warm
        review reads the same cached ImagePolicy for every replica (keyed by identity, the object kept so its
        id cannot be reused; bounded)."""
        hit = self._gate_memo.get(id(result))
        if hit is not None and hit[0] is result:
            return hit[1], hit[2]
        verdict = backend_gates(result, self._backend_admission)
        if len(self._gate_memo) >= _GATE_MEMO_MAX:
            self._gate_memo.clear()  # verdicts expire with the cache anyway: start over
        self._gate_memo[id(result)] = (result, tuple(verdict.deny), tuple(verdict.warn))
        return tuple(verdict.deny), tuple(verdict.warn)

    def _sbom_gate(self, o: ImageOutcome) -> None:
        if self.admission.verify.sbom_referrer and o.has_sbom is False:
            o.deny.append("no SBOM (no referrer or verified SBOM attestation, nor a catalog entry)")

    async def _verify(self, verifier: ImageVerifier, usable: list[ImageOutcome], deadline: Deadline) -> None:
        """Every image verified against the trust policies (tags resolved by the verifier), within the
        deadline; the warm path (every pinned image's outcome cached) does not await."""
        pending = [o for o in usable if o.ref is not None and o.unavailable is None]
        outcomes: dict[ImageReference, VerifyOutcome] = {}
        missing: list[ImageReference] = []
        for o in pending:
            assert o.ref is not None
            hit = verifier.cached(o.ref)
            if hit is not None:
                outcomes[o.ref] = hit
            elif o.ref not in missing:
                missing.append(o.ref)
        if missing:
            tasks = {ref: asyncio.ensure_future(verifier.verify(ref)) for ref in missing}
            _done, late = await asyncio.wait(tasks.values(), timeout=deadline.remaining())
            for task in late:
                task.cancel()  # the shared verification keeps running and warms the cache
            outcomes.update({ref: t.result() for ref, t in tasks.items() if t.done() and not t.cancelled()})
        for o in pending:
            assert o.ref is not None
            found = outcomes.get(o.ref)
            if found is None:
                o.unavailable = "signature verification did not finish before the admission deadline"
                continue
            verdict = local_verdict(found, self.admission)
            o.deny.extend(verdict.deny)
            o.warn.extend(verdict.warn)
            o.unavailable = o.unavailable or verdict.unavailable
            o.signed, o.has_sbom = verdict.signed, verdict.has_sbom
            if verdict.digest is not None and o.ref.digest is None:
                o.resolved = o.ref.with_digest(verdict.digest).pinned
            if not self._ask_backend and verdict.unavailable is None and not verdict.deny:
                self._sbom_gate(o)

    def _needs_resolution(self, outcomes: list[ImageOutcome]) -> bool:
        if not self.admission.resolve_tags or self.resolver is None:
            return False
        return any(o.ref is not None and o.ref.digest is None for o in outcomes)

    async def _resolve(self, outcomes: list[ImageOutcome]) -> None:
        resolver = self.resolver
        if not self.admission.resolve_tags or resolver is None:
            return
        pending = [o for o in outcomes if o.ref is not None and o.ref.digest is None]
        if not pending:
            return

        async def one(o: ImageOutcome) -> None:
            assert o.ref is not None
            try:
                digest = await resolver.resolve(str(o.ref))
            except Exception as exc:  # registry down, throttled, unknown tag: fail-open/closed decides
                o.unavailable = f"registry could not resolve the tag: {str(exc) or type(exc).__name__}"
                return
            if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
                o.unavailable = f"registry resolved the tag to an invalid digest {str(digest)[:80]!r}"
                return
            o.resolved = o.ref.with_digest(digest).pinned

        await asyncio.gather(*(one(o) for o in pending))

    def _context(self, request: AdmissionRequest) -> PolicyContext:
        return self._context_of(request.namespace or "", request.object)

    def _context_of(self, namespace: str, pod: object) -> PolicyContext:
        """Namespace and string-valued Pod labels, sorted (one pass: this is on the warm path), and the
        trust-policy revision."""
        metadata = pod.get("metadata") if isinstance(pod, dict) else None
        labels = metadata.get("labels") if isinstance(metadata, dict) else None
        if not isinstance(labels, dict):
            return PolicyContext(namespace, (), self._trust)
        pairs = tuple(sorted(labels.items()))  # keys of a JSON object are strings
        if not set(map(type, labels.values())) <= {str}:  # C-level check: the usual case costs no loop
            pairs = tuple((k, v) for k, v in pairs if isinstance(v, str))
        return PolicyContext._make((namespace, pairs, self._trust))

    # --------------------------------------------------------------------------------------- decision

    def _decide(
        self, request: AdmissionRequest, outcomes: list[ImageOutcome]
    ) -> tuple[AdmissionResponse, Decision]:
        namespace = request.namespace or ""
        denied = [o for o in outcomes if o.deny]
        unavailable = [o for o in outcomes if o.unavailable and not o.deny]
        warnings: list[str] = []
        for o in outcomes:
            if o.warn and not o.deny:
                warnings.append(f"{o.label()}: " + "; ".join(o.warn))
        problem: Problem | None = None
        message: str | None = None
        if denied:
            problem = "deny"
            message = "zastava denied the Pod: " + " | ".join(o.line() for o in denied)
        elif unavailable:
            problem = "unavailable"
            message = "; ".join(f"{_shown(o.item.where)}: {o.unavailable}" for o in unavailable)
        decision = self.decisions.decide(problem, namespace, message)
        return self._settle(request, outcomes, decision, warnings), decision

    def internal_error(self, request: AdmissionRequest, exc: BaseException) -> AdmissionResponse:
        """The answer when reviewing ``request`` raised: like an unavailable backend (fail-open/closed per
        namespace, a dry run admits), recorded — a bug of the webhook must neither block nor open a cluster
        beyond what the operator chose for outages."""
        message = f"zastava internal error ({type(exc).__name__})"
        decision = self.decisions.decide("unavailable", request.namespace or "", message)
        return self._settle(request, [], decision)

    def invalid_review(self, uid: str, message: str) -> AdmissionResponse:
        """The answer to an AdmissionReview whose ``request.uid`` is readable but that is otherwise invalid
        (no Pod to record; denied as malformed, admitted by a dry run)."""
        decision = self.decisions.decide("invalid", "", message)
        return self._count(self.decisions.response(uid, decision, ""), decision.label)

    def _settle(
        self,
        request: AdmissionRequest,
        outcomes: list[ImageOutcome],
        decision: Decision,
        warnings: list[str] | None = None,
    ) -> AdmissionResponse:
        # The §2.2 record (canonical pod-spec id, log line, background post) is built after the response
        # has been written: it never delays the answer to the API server.
        asyncio.get_running_loop().call_soon(
            self._record, request, outcomes, decision.would_allow, decision.label
        )
        response = self.decisions.response(request.uid, decision, request.namespace or "", warnings)
        return self._count(response, decision.label)

    def _record(
        self, request: AdmissionRequest, outcomes: list[ImageOutcome], would_allow: bool, label: str
    ) -> None:
        try:
            decision = self.decision_record(request, outcomes, would_allow, label)
            if log.isEnabledFor(logging.INFO):
                wire = decision.wire()
                log.info(
                    "admission decision",
                    extra=fields(
                        admissionId=request.uid,
                        namespace=wire["namespace"],
                        pod=request.name or _generate_name(request.object),
                        decision=wire["decision"],
                        result=label,
                        podSpecDigest=wire["podSpecDigest"],
                        images=wire["images"],
                    ),
                )
            if self.record is not None and not request.dry_run:
                self.record(decision)
        except Exception:  # a record must never take the webhook down
            log.exception("decision record failed", extra=fields(admissionId=request.uid))

    def decision_record(
        self,
        request: AdmissionRequest,
        outcomes: list[ImageOutcome],
        would_allow: bool,
        label: str | None = None,
    ) -> AdmissionDecision:
        """The §2.2 record; ``podSpecDigest`` is the canonical id of the Pod spec.

        It also keeps what the gates read, and nothing more, so the request can be replayed by the policy
        simulation: namespace, the Pod's name and labels, the operation, and each gated container's name,
        place and image (never env, commands, annotations, volumes or the requesting user).
        """
        ttls = [o.ttl for o in outcomes if o.ttl is not None]
        labels = dict(self._context(request).labels)  # exactly what the backend's rules were asked with
        return AdmissionDecision(
            admission_id=request.uid,
            namespace=request.namespace or "",
            pod_spec_digest=pod_spec_digest(request.object),
            images=[o.record() for o in outcomes],
            decision="Allow" if would_allow else "Deny",
            ttl_seconds=min(ttls) if ttls else self.admission.cache_ttl_seconds,
            enforced=self.admission.enforce,
            outcome=cast(Outcome, label) if label in _OUTCOMES else None,
            operation=request.operation if request.operation in ("CREATE", "UPDATE") else None,
            pod=_pod_name(request),
            labels=dict(list(labels.items())[:256]) if labels else None,
        )

    def _count(self, response: AdmissionResponse, label: DecisionLabel) -> AdmissionResponse:
        if self.metrics is not None:
            self._counter(label).inc()
        return response

    def _counter(self, label: str) -> Any:
        counter = self._decision_counters.get(label)
        if counter is None:
            assert self.metrics is not None
            counter = self._decision_counters[label] = self.metrics.admission_decisions.labels(decision=label)
        return counter
