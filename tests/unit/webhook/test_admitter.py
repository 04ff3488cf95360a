"""Admission decisions with the policy source as an in-process callable (one backend round trip each);
the same flows over HTTP against the stand-in backend are in tests/integration/webhook."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zastava.config import ZastavaConfig
from zastava.contracts import AdmissionDecision, ImagePolicy, RuntimePolicyRequest, RuntimePolicyResponse
from zastava.telemetry import ZastavaMetrics
from zastava.telemetry.tracing import use_tracer
from zastava.webhook.admitter import Admitter
from zastava.webhook.resolve import ResolveError
from zastava.webhook.review import AdmissionReview

from .reviews import DIGEST_A, DIGEST_B, POD, pod_with, review

PINNED_A = f"ghcr.io/acme/a@{DIGEST_A}"


class Policy:
    def __init__(self, results: dict[str, ImagePolicy] | None = None, delay: float = 0) -> None:
        self.results = results or {}
        self.delay = delay
        self.requests: list[RuntimePolicyRequest] = []

    async def __call__(self, request: RuntimePolicyRequest, *, time_budget: float) -> RuntimePolicyResponse:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        default = ImagePolicy(signed=True, has_sbom=True, policy_verdict="pass", base_image_digest=DIGEST_B)
        return RuntimePolicyResponse(
            ttl_seconds=120,
            results={i: self.results.get(i, default) for i in request.images},
            policy_revision="r",
        )


class Resolver:
    def __init__(self, digest: str | None = DIGEST_B) -> None:
        self.digest = digest

    async def resolve(self, image: str) -> str:
        if self.digest is None:
            raise ResolveError("registry throttled the request (429)")
        return self.digest


def admitter(
    policy: Any = None, resolver: Any = None, **admission: Any
) -> tuple[Admitter, list[AdmissionDecision]]:
    records: list[AdmissionDecision] = []
    config = ZastavaConfig(admission={"failOpenNamespaces": ["dev"], **admission})
    return (
        Admitter(
            config,
            policy=Policy() if policy is None else policy,
            resolver=resolver,
            metrics=ZastavaMetrics(),
            record=records.append,
        ),
        records,
    )


async def decide(a: Admitter, document: dict[str, Any], timeout_param: str | None = None) -> Any:
    response = await a.review(AdmissionReview.model_validate(document), timeout_param=timeout_param)
    await asyncio.sleep(0)  # the decision record is built right after the response
    return response


async def test_every_container_list_in_one_backend_request() -> None:
    policy = Policy()
    a, records = admitter(policy)
    pod = pod_with(
        {"api": PINNED_A},
        initContainers=[{"name": "init", "image": "ghcr.io/acme/init:1"}],
        ephemeralContainers=[{"name": "dbg", "image": "busybox:1.36"}],
    )
    response = await decide(a, review(pod))
    assert response.allowed
    assert len(policy.requests) == 1
    # the backend is asked about normalised references (the record keeps the Pod's spelling)
    assert policy.requests[0].images == ["ghcr.io/acme/init:1", PINNED_A, "docker.io/library/busybox:1.36"]
    assert [i.name for i in records[0].images] == ["ghcr.io/acme/init:1", PINNED_A, "busybox:1.36"]
    assert [i.policy_verdict for i in records[0].images] == ["pass", "pass", "pass"]
    assert records[0].ttl_seconds == 120


async def test_more_images_than_one_request_carries_are_split() -> None:
    policy = Policy()
    a, _ = admitter(policy)
    images = {f"c{i}": f"ghcr.io/acme/img{i}@{DIGEST_A}" for i in range(300)}
    response = await decide(a, review(pod_with(images)))
    assert response.allowed
    assert sorted(len(r.images) for r in policy.requests) == [44, 256]


async def test_update_without_image_change_needs_no_backend() -> None:
    policy = Policy()
    a, _ = admitter(policy)
    relabelled = pod_with(None)
    relabelled["metadata"]["labels"]["extra"] = "1"
    response = await decide(a, review(relabelled, operation="UPDATE", old=POD))
    assert response.allowed and policy.requests == []


async def test_legacy_ephemeral_containers_kind() -> None:
    """Before Kubernetes 1.22 the subresource carried kind EphemeralContainers instead of the Pod."""
    policy = Policy()
    a, _ = admitter(policy)
    document = review(operation="UPDATE", old=POD, sub_resource="ephemeralcontainers")
    gvk = {"group": "", "version": "v1", "kind": "EphemeralContainers"}
    document["request"]["kind"] = document["request"]["requestKind"] = gvk
    meta = {"name": "api-7c9fbbd8b7-ktd84", "namespace": "payments"}
    document["request"]["oldObject"] = {"kind": "EphemeralContainers", "apiVersion": "v1", "metadata": meta}
    document["request"]["object"] = {
        "kind": "EphemeralContainers",
        "apiVersion": "v1",
        "metadata": meta,
        "ephemeralContainers": [{"name": "dbg", "image": f"ghcr.io/acme/dbg@{DIGEST_B}"}],
    }
    assert (await decide(a, document)).allowed
    assert policy.requests[0].images == [f"ghcr.io/acme/dbg@{DIGEST_B}"]


async def test_tags_resolved_to_digests() -> None:
    policy = Policy()
    a, records = admitter(policy, Resolver())
    await decide(a, review(pod_with({"app": "ghcr.io/acme/app:2"})))
    assert policy.requests[0].images == [f"ghcr.io/acme/app@{DIGEST_B}"]
    assert records[0].images[0].resolved == f"ghcr.io/acme/app@{DIGEST_B}"


@pytest.mark.parametrize(("namespace", "allowed"), [("dev", True), ("prod", False)])
async def test_resolution_failure_is_fail_open_or_closed(namespace: str, allowed: bool) -> None:
    a, records = admitter(Policy(), Resolver(None))
    response = await decide(a, review(pod_with({"app": "ghcr.io/acme/app:2"}), namespace=namespace))
    assert response.allowed is allowed
    assert "429" in (response.status.message if response.status else response.warnings[0])
    assert records[0].decision == ("Allow" if allowed else "Deny")
    assert records[0].images[0].policy_verdict == "warn"


async def test_resolver_answer_is_checked() -> None:
    a, _ = admitter(Policy(), Resolver("sha256:NOTHEX"))
    response = await decide(a, review(pod_with({"app": "ghcr.io/acme/app:2"})))
    assert not response.allowed and "invalid digest" in response.status.message


async def test_local_deny_wins_over_fail_open() -> None:
    a, _ = admitter(Policy(delay=5))
    response = await decide(a, review(pod_with({"x": "nginx:latest"}), namespace="dev"), timeout_param="1s")
    assert not response.allowed
    assert "tag :latest is banned" in response.status.message


async def test_invalid_image_reference_is_denied() -> None:
    a, _ = admitter()
    response = await decide(a, review(pod_with({"x": "Not A Ref"})))
    assert not response.allowed and "invalid" in response.status.message


async def test_malformed_pod_is_a_400_in_the_response() -> None:
    a, _ = admitter()
    document = review()
    document["request"]["object"]["spec"]["containers"] = "nope"
    response = await decide(a, document)
    assert not response.allowed and response.status.code == 400
    assert "spec.containers is not a list" in response.status.message


async def test_base_image_allowlist_from_backend_result() -> None:
    a, _ = admitter(base_image_allowlist=[DIGEST_A])
    response = await decide(a, review(pod_with({"api": PINNED_A})))
    assert (
        not response.allowed and f"base image {DIGEST_B} is not in the allowlist" in response.status.message
    )


async def test_no_backend_configured_is_a_failure() -> None:
    config = ZastavaConfig(admission={"failOpenNamespaces": ["dev"]})
    a = Admitter(config, policy=None)
    assert not (await decide(a, review(pod_with({"api": PINNED_A})))).allowed
    assert (await decide(a, review(pod_with({"api": PINNED_A}), namespace="dev"))).allowed


async def test_decision_metrics_and_record_fields() -> None:
    a, records = admitter(Policy({PINNED_A: ImagePolicy(signed=False, has_sbom=True, policy_verdict="fail")}))
    await decide(a, review(pod_with({"api": PINNED_A})))
    await decide(a, review(pod_with({"api": PINNED_A})))
    await decide(a, review(operation="DELETE"))
    assert a.metrics is not None
    text = a.metrics.render().decode()
    assert 'zastava_admission_decisions_total{decision="deny"} 2.0' in text
    assert 'zastava_admission_decisions_total{decision="skip"} 1.0' in text
    assert "zastava_admission_cache_hits_total 1.0" in text
    record = records[0]
    assert record.decision == "Deny" and record.images[0].signed is False
    assert record.pod_spec_digest.startswith("sha256-")


async def test_spans_request_resolve_respond() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer(provider.get_tracer("test"))
    try:
        a, _ = admitter()
        await decide(a, review(pod_with({"api": PINNED_A})))
    finally:
        use_tracer(None)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"request", "resolve", "respond"}
    assert spans["resolve"].parent.span_id == spans["request"].context.span_id
    assert spans["respond"].parent.span_id == spans["request"].context.span_id
    assert spans["request"].attributes["namespace"] == "payments"
