"""Warm answers (issue 19): a Pod CREATE whose verdicts are all cached is answered from the remembered
answer — the same bytes, the same §2.2 record and log line as the full review gives — and only while every
verdict it was built from is still the cache's, in the same namespace and labels (issue 15)."""

from __future__ import annotations

import asyncio
import copy
import io
import logging
from typing import Any

import orjson
import pytest

from zastava.config import ZastavaConfig
from zastava.contracts import AdmissionDecision, ImagePolicy
from zastava.telemetry import ZastavaMetrics
from zastava.telemetry.logging import JsonFormatter, emit_many, fields
from zastava.webhook.admitter import Admitter
from zastava.webhook.app import WebhookApp
from zastava.webhook.cache import PolicyCache
from zastava.webhook.policy_client import decision_line
from zastava.webhook.review import ReviewError, quick_request, review_response, validate_review

from .reviews import DIGEST_A, DIGEST_B, body, pod_with, review
from .test_admitter import Policy

IMAGES = {"api": f"ghcr.io/acme/api@{DIGEST_A}", "sidecar": f"ghcr.io/acme/side@{DIGEST_B}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """An admitter as ``build_webhook`` wires it (records taken as lines) and its app."""

    def __init__(self, policy: Policy | None = None, **admission: Any) -> None:
        self.policy = policy or Policy()
        self.clock = Clock()
        self.cache = PolicyCache(max_ttl_seconds=300, clock=self.clock)
        self.records: list[AdmissionDecision] = []
        self.lines: list[bytes] = []
        self.config = ZastavaConfig(admission={"failOpenNamespaces": ["dev"], **admission})
        self.metrics = ZastavaMetrics()
        self.admitter = Admitter(
            self.config,
            policy=self.policy,
            cache=self.cache,
            metrics=self.metrics,
            record=self.records.append,
            record_lines=self.lines.extend,
        )
        self.app = WebhookApp(self.admitter, metrics=self.metrics)

    async def admit(self, document: dict[str, Any]) -> bytes:
        status, data = await self.app.admit(body(document), "10s")
        assert status == 200
        await asyncio.sleep(0)  # records are written right after the response
        return data

    async def expected(self, document: dict[str, Any]) -> tuple[bytes, bytes]:
        """The full review's answer and record line for ``document`` on the same cache (no warm answers)."""
        records: list[AdmissionDecision] = []
        slow = Admitter(self.config, policy=self.policy, cache=self.cache, record=records.append)
        response = await slow.review(validate_review(document), timeout_param="10s")
        await asyncio.sleep(0)
        return review_response(response), decision_line(records[-1])

    def hits(self) -> float:
        return self.metrics.registry.get_sample_value("zastava_admission_cache_hits_total") or 0.0


def replica(name: str, token: str, **kwargs: Any) -> dict[str, Any]:
    """Another replica: its own uid, name and ``kube-api-access-*`` volume (so the spec differs)."""
    pod = pod_with(IMAGES)
    pod["metadata"]["name"] = name
    document = review(pod, **kwargs)
    spec = document["request"]["object"]["spec"]
    spec["volumes"][0]["name"] = f"kube-api-access-{token}"
    for container in spec["containers"]:
        container["volumeMounts"][0]["name"] = f"kube-api-access-{token}"
    return document


@pytest.mark.parametrize(
    "admission",
    [
        {},
        {"enforce": False, "verify": {"scannerPolicyPass": True}},
        {"registryDenylist": ["ghcr.io/acme/side"]},
    ],
)
async def test_warm_answer_is_the_full_reviews_answer_byte_for_byte(admission: dict[str, Any]) -> None:
    policy = Policy(
        {
            f"ghcr.io/acme/api@{DIGEST_A}": ImagePolicy(
                signed=True, has_sbom=True, policy_verdict="fail", reasons=["CVE-1"]
            )
        }
    )
    rig = Rig(policy, **admission)
    await rig.admit(replica("api-1", "aaaaa"))  # full review: the backend is asked, the answer remembered
    assert len(policy.requests) == 1 and len(rig.admitter.warm) == 1 and len(rig.records) == 1
    second = replica("api-2", "bbbbb")
    answer = await rig.admit(second)
    assert len(rig.records) == 1, "the second replica was answered warm (no full review)"
    assert len(policy.requests) == 1
    expected_answer, expected_line = await rig.expected(second)
    assert answer == expected_answer
    assert rig.lines[-1] == expected_line
    record = orjson.loads(rig.lines[-1])["decision"]
    assert record["admissionId"] == second["request"]["uid"] and record["pod"] == "api-2"


async def test_warm_answers_count_as_the_full_review_counts() -> None:
    rig = Rig()
    for i in range(3):
        await rig.admit(replica(f"api-{i}", f"t{i:04d}"))
    decisions = rig.metrics.registry.get_sample_value(
        "zastava_admission_decisions_total", {"decision": "allow"}
    )
    assert decisions == 3
    assert rig.hits() == 4  # 2 images × the 2 warm reviews (the first one fetched)
    assert len(rig.records) == 1 and len(rig.lines) == 2


async def test_warm_answer_lives_only_as_long_as_the_cached_verdicts() -> None:
    rig = Rig()
    await rig.admit(replica("api-1", "aaaaa"))
    await rig.admit(replica("api-2", "bbbbb"))
    assert len(rig.policy.requests) == 1
    rig.clock.now += 121  # the backend's ttlSeconds (120) passed
    await rig.admit(replica("api-3", "ccccc"))
    assert len(rig.policy.requests) == 2, "an expired verdict is fetched again, not answered from memory"
    rig.cache.clear()  # evicted (or a new policy revision: the cache drops its entries)
    await rig.admit(replica("api-4", "ddddd"))
    assert len(rig.policy.requests) == 3


async def test_warm_answer_is_never_served_to_another_namespace_or_labels() -> None:
    """Issue 15: an image admitted in ``dev`` is not admitted in ``prod`` from memory."""
    policy = Policy()
    rig = Rig(policy)
    await rig.admit(replica("api-1", "aaaaa", namespace="dev"))
    await rig.admit(replica("api-2", "bbbbb", namespace="prod"))
    assert [r.namespace for r in policy.requests] == ["dev", "prod"]
    relabelled = replica("api-3", "ccccc", namespace="prod")
    relabelled["request"]["object"]["metadata"]["labels"]["tier"] = "frontend"
    await rig.admit(relabelled)
    assert len(policy.requests) == 3 and policy.requests[-1].labels["tier"] == "frontend"
    assert len(rig.records) == 3 and rig.lines == []


async def test_dry_run_review_is_logged_but_not_posted_warm() -> None:
    rig = Rig()
    await rig.admit(replica("api-1", "aaaaa"))
    await rig.admit(replica("api-2", "bbbbb", dry_run=True))
    assert len(rig.records) == 1 and rig.lines == []


async def test_a_changed_image_is_reviewed_in_full() -> None:
    rig = Rig()
    await rig.admit(replica("api-1", "aaaaa"))
    other = replica("api-2", "bbbbb")
    other["request"]["object"]["spec"]["containers"][1]["image"] = f"ghcr.io/acme/side@{DIGEST_A}"
    await rig.admit(other)
    assert len(rig.policy.requests) == 2 and len(rig.records) == 2


def _mutations() -> list[tuple[str, Any]]:
    """(what, how) — each a change to a warm-eligible review."""

    def setter(path: list[str], value: Any) -> Any:
        def change(doc: dict[str, Any]) -> None:
            target = doc
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value

        return change

    def remover(path: list[str]) -> Any:
        def change(doc: dict[str, Any]) -> None:
            target = doc
            for key in path[:-1]:
                target = target[key]
            del target[path[-1]]

        return change

    r = ["request"]
    return [
        ("unchanged", lambda doc: None),
        ("snake_case key the model also reads", setter([*r, "sub_resource"], "status")),
        ("unknown request key", setter([*r, "future"], 1)),
        ("unknown top-level key", setter(["response"], {})),
        ("empty uid", setter([*r, "uid"], "")),
        ("long uid", setter([*r, "uid"], "u" * 257)),
        ("uid of 256", setter([*r, "uid"], "u" * 256)),
        ("uid not a string", setter([*r, "uid"], 7)),
        ("UPDATE", setter([*r, "operation"], "UPDATE")),
        ("DELETE", setter([*r, "operation"], "DELETE")),
        ("a Deployment", setter([*r, "kind", "kind"], "Deployment")),
        ("kind version missing", remover([*r, "kind", "version"])),
        ("kind group null", setter([*r, "kind", "group"], None)),
        ("resource group apps", setter([*r, "resource", "group"], "apps")),
        ("status subresource", setter([*r, "subResource"], "status")),
        ("ephemeralcontainers", setter([*r, "subResource"], "ephemeralcontainers")),
        ("requestKind not an object", setter([*r, "requestKind"], "Pod")),
        ("requestResource null", setter([*r, "requestResource"], None)),
        ("requestSubResource number", setter([*r, "requestSubResource"], 1)),
        ("namespace number", setter([*r, "namespace"], 5)),
        ("namespace null", setter([*r, "namespace"], None)),
        ("name null", setter([*r, "name"], None)),
        ("dryRun string", setter([*r, "dryRun"], "true")),
        ("dryRun number", setter([*r, "dryRun"], 1)),
        ("dryRun null", setter([*r, "dryRun"], None)),
        ("userInfo null", setter([*r, "userInfo"], None)),
        ("userInfo groups string", setter([*r, "userInfo", "groups"], "system:masters")),
        ("userInfo groups of numbers", setter([*r, "userInfo", "groups"], [1])),
        ("userInfo extra", setter([*r, "userInfo", "extra"], {"scopes": ["a", "b"]})),
        ("userInfo extra not lists", setter([*r, "userInfo", "extra"], {"scopes": "a"})),
        ("userInfo unknown key", setter([*r, "userInfo", "name"], "x")),
        ("object not an object", setter([*r, "object"], [])),
        ("oldObject list", setter([*r, "oldObject"], [])),
        ("options list", setter([*r, "options"], [])),
        ("options null", setter([*r, "options"], None)),
        ("apiVersion v1beta1", setter(["apiVersion"], "admission.k8s.io/v1beta1")),
    ]


@pytest.mark.parametrize(("what", "change"), _mutations(), ids=[m[0] for m in _mutations()])
def test_quick_reading_accepts_only_what_the_model_accepts_unchanged(what: str, change: Any) -> None:
    document = copy.deepcopy(review(pod_with(IMAGES)))
    change(document)
    document = orjson.loads(orjson.dumps(document))  # as parsed from a body
    quick = quick_request(document)
    try:
        request = validate_review(document).request
    except ReviewError:
        assert quick is None, f"{what}: read quickly but the model refuses it"
        return
    if quick is None:
        return  # the full review reads it (e.g. not a Pod CREATE)
    assert request.operation == "CREATE" and request.kind.kind == "Pod"
    assert request.resource.resource == "pods" and request.sub_resource in (None, "")
    assert (quick.uid, quick.namespace, quick.name, quick.dry_run) == (
        request.uid,
        request.namespace or "",
        request.name,
        bool(request.dry_run),
    )
    assert quick.pod is request.object


def test_quick_reading_takes_the_usual_review() -> None:
    assert quick_request(orjson.loads(body(review(pod_with(IMAGES))))) is not None


def test_emit_many_writes_what_logging_writes() -> None:
    """The batched log lines are the lines ``logger.info(..., extra=fields(...))`` writes (but the time)."""
    logger = logging.getLogger("zastava.test.emit_many")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler._zastava = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter({"plane": "runtime"}, {"tenant": "t"}))
    logger.addHandler(handler)
    rows: list[dict[str, Any]] = [
        {"admissionId": "u1", "images": orjson.Fragment(b'[{"name":"a"}]'), "pod": None},
        {"token": "secret-value", "nested": {"password": "p", "ok": 1}},
        {"plane": "overridden", "n": 2},
        {},
    ]
    try:
        emit_many(logger, logging.INFO, "admission decision", rows)
        batched = stream.getvalue().splitlines()
        stream.truncate(0)
        stream.seek(0)
        for row in rows:
            logger.info("admission decision", extra=fields(**row))
        single = stream.getvalue().splitlines()
    finally:
        logger.removeHandler(handler)
    assert len(batched) == len(single) == 4
    for a, b in zip(batched, single, strict=True):
        left, right = orjson.loads(a), orjson.loads(b)
        left.pop("ts"), right.pop("ts")
        assert left == right
        assert list(left) == list(right)  # same key order
    assert orjson.loads(batched[1])["token"] == "***"
    assert orjson.loads(batched[2])["plane"] == "overridden"
