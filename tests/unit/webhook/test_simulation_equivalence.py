"""The policy simulation decides exactly what the webhook decides (issue 18): a property over generated Pods,
configurations and backend answers.

For each example a review goes to the webhook's ASGI handler (:meth:`WebhookApp.admit`, what ``zastava
webhook serve`` runs); the decision record the webhook hands to its recorder — the bytes it would post to
the backend — is then replayed by :func:`zastava.webhook.simulation.simulate` under the same configuration.
Outcome (allow / deny / fail-open / fail-closed / dry-run-deny), the API server's ``allowed``, and every
image's verdict and reasons must be equal. The backend's ``/policy/runtime`` and the registry are stand-in
functions here (deterministic, generated per example): they are the inputs of the property, not under test.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zastava.config import ZastavaConfig
from zastava.contracts import AdmissionDecision, ImagePolicy, RuntimePolicyRequest, RuntimePolicyResponse
from zastava.contracts.envelope import AdmissionDecisionEnvelope, parse_admission_envelope
from zastava.webhook.admitter import Admitter
from zastava.webhook.app import WebhookApp
from zastava.webhook.simulation import KnownDigests, inputs_from_records, known_digests_from_records, simulate

IMAGES = [
    "nginx",
    "nginx:latest",
    "nginx:1.25",
    "docker.io/library/nginx:1.25",
    "index.docker.io/library/nginx:1.25",
    "ghcr.io/acme/api:1.2.3",
    "ghcr.io/acme/api@sha256:" + "a" * 64,
    "ghcr.io/acme/worker:2",
    "evil.io/x:1",
    "registry.example.com:5000/team-a/app:7",
    "registry.example.com:5000/team-a/app@sha256:" + "b" * 64,
    "quay.io/other/tool:latest",
    "UPPER/Case:1",  # invalid reference: denied locally
]
UNRESOLVABLE = {"quay.io/other/tool:latest", "ghcr.io/acme/worker:2"}
NAMESPACES = ["prod", "dev", "payments", ""]


def digest_for(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


class StandInResolver:
    async def resolve(self, image: str) -> str:
        if image in UNRESOLVABLE:
            raise RuntimeError("registry unreachable")
        return digest_for(image.split("@")[0])


def stand_in_policy(answers: dict[str, tuple[bool, bool, str]], down: bool) -> Any:
    async def policy(
        request: RuntimePolicyRequest, *, time_budget: float | None = None
    ) -> RuntimePolicyResponse:
        if down:
            raise RuntimeError("backend down")
        results = {}
        for image in request.images:
            signed, sbom, verdict = answers.get(image.rsplit("@", 1)[-1][:16], (True, True, "pass"))
            results[image] = ImagePolicy(
                signed=signed,
                has_sbom=sbom,
                policy_verdict=verdict,  # type: ignore[arg-type]
                reasons=[] if verdict == "pass" else [f"rule says {verdict}"],
            )
        return RuntimePolicyResponse(ttl_seconds=60, results=results)

    return policy


configs = st.fixed_dictionaries(
    {
        "enforce": st.booleans(),
        "failOpenNamespaces": st.lists(st.sampled_from(NAMESPACES), max_size=2, unique=True),
        "verify": st.fixed_dictionaries(
            {
                "imageSignature": st.booleans(),
                "sbomReferrer": st.booleans(),
                "scannerPolicyPass": st.booleans(),
            }
        ),
        "resolveTags": st.booleans(),
        "allowWarn": st.booleans(),
        "registryAllowlist": st.lists(
            st.sampled_from(["ghcr.io", "docker.io/library", "registry.example.com:5000/team-a"]),
            max_size=2,
            unique=True,
        ),
        "registryDenylist": st.lists(
            st.sampled_from(["evil.io", "docker.io/library/nginx", "ghcr.io/acme/worker"]),
            max_size=2,
            unique=True,
        ),
        "bannedTags": st.lists(st.sampled_from(["latest", "1.25", "7"]), max_size=2, unique=True),
        "denyUntagged": st.booleans(),
    }
)
pods = st.fixed_dictionaries(
    {
        "namespace": st.sampled_from(NAMESPACES),
        "labels": st.dictionaries(
            st.sampled_from(["app", "env", "team"]), st.sampled_from(["a", "prod", "x"]), max_size=2
        ),
        "containers": st.lists(st.sampled_from(IMAGES), min_size=1, max_size=3),
        "init": st.lists(st.sampled_from(IMAGES), max_size=1),
        "operation": st.sampled_from(["CREATE", "CREATE", "UPDATE"]),
        "old": st.lists(st.sampled_from(IMAGES), max_size=2),
    }
)
answers = st.dictionaries(
    st.sampled_from(
        [digest_for(i.split("@")[0])[:16] for i in IMAGES] + ["sha256:aaaaaaaaa", "sha256:bbbbbbbbb"]
    ),
    st.tuples(st.booleans(), st.booleans(), st.sampled_from(["pass", "warn", "fail"])),
    max_size=6,
)


def review(pod: dict[str, Any]) -> bytes:
    def spec(images: list[str], init: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]
        }
        if init:
            out["initContainers"] = [{"name": f"init{i}", "image": img} for i, img in enumerate(init)]
        return out

    request: dict[str, Any] = {
        "uid": "uid-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "pod-1",
        "namespace": pod["namespace"],
        "operation": pod["operation"],
        "userInfo": {"username": "someone", "groups": ["system:authenticated"]},
        "object": {
            "metadata": {"name": "pod-1", "labels": pod["labels"], "annotations": {"secret": "not recorded"}},
            "spec": {**spec(pod["containers"], pod["init"]), "serviceAccountName": "sa"},
        },
    }
    if pod["operation"] == "UPDATE":
        request["oldObject"] = {"metadata": {"name": "pod-1"}, "spec": spec(pod["old"] or ["nginx:1.25"], [])}
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, pod=pods, policy_answers=answers, backend_down=st.booleans())
def test_simulation_equals_the_webhook(
    config: dict[str, Any],
    pod: dict[str, Any],
    policy_answers: dict[str, tuple[bool, bool, str]],
    backend_down: bool,
) -> None:
    asyncio.run(_check(config, pod, policy_answers, backend_down))


async def _check(
    config: dict[str, Any], pod: dict[str, Any], policy_answers: Any, backend_down: bool
) -> None:
    cfg = ZastavaConfig(admission=config)
    policy = stand_in_policy(policy_answers, backend_down)
    resolver = StandInResolver()
    recorded: list[AdmissionDecision] = []
    admitter = Admitter(cfg, policy=policy, resolver=resolver, record=recorded.append)
    app = WebhookApp(admitter)
    status, body = await app.admit(review(pod), None)
    await asyncio.sleep(0)  # the record is built right after the response
    await admitter.cache.close()
    answer = orjson.loads(body)["response"]
    if not recorded:  # nothing gated (an UPDATE that changes no image): nothing to replay
        assert answer["allowed"] is True
        return
    assert status == 200
    # what the backend receives and stores: the envelope's bytes, parsed back
    wire = orjson.loads(
        orjson.dumps(
            AdmissionDecisionEnvelope(
                schema_version="zastava.admission.decision@v1.1", decision=recorded[0]
            ).wire()
        )
    )
    _, stored = parse_admission_envelope(wire)
    assert "secret" not in orjson.dumps(wire).decode() and "serviceAccount" not in orjson.dumps(wire).decode()
    records = [{"id": 1, "receivedUs": 0, "record": stored.wire()}]
    inputs = inputs_from_records(records)
    report = await simulate(
        cfg,
        inputs,
        policy=policy,
        resolver=KnownDigests(known_digests_from_records(records), fallback=resolver),
    )
    [result] = report.results
    webhook_outcome = answer["auditAnnotations"]["decision"]
    assert result.outcome == webhook_outcome
    assert result.allowed is answer["allowed"]
    assert result.input.recorded == webhook_outcome  # the record says what the webhook answered
    assert result.change is None  # same configuration, same inputs: nothing changes
    webhook_images = [(i.name, i.policy_verdict, i.reasons) for i in recorded[0].images]
    replay_images = [(i["image"], i["verdict"], i["reasons"]) for i in result.images]
    assert replay_images == webhook_images
