"""Gating end to end against the REAL parts (issue 9): the reference backend (``zastava.backend.app``
served by uvicorn on loopback, SQLite store in a temp dir, its default policy: unsigned or missing SBOM
fails) and the loopback distribution registry fixture. The webhook is wired exactly as ``zastava webhook
serve`` wires it (:func:`build_configured_webhook`: ``zastava.registry.RegistryClient`` resolves tags,
``backend_auth``'s client calls the backend). Catalog entries are put through the backend's API; decision
records are read back from it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.harness import devstack
from tests.unit.webhook.reviews import body, pod_with, review

from .conftest import RealBackend, RunningWebhook, make_config, start_webhook


@dataclass(frozen=True)
class Pushed:
    tag_ref: str  # registry/repo:1
    pinned: str  # registry/repo@sha256:…

    @property
    def digest(self) -> str:
        return self.pinned.partition("@")[2]


@pytest.fixture(scope="module")
def images(
    docker_engine: devstack.DockerEngine, registry: devstack.RegistryServer, real_backend: RealBackend
) -> dict[str, Pushed]:
    """Three distinct tiny images in the loopback registry: ``good`` (signed by the backend's trusted key,
    SBOM in the catalog), ``unsigned`` (SBOM only; its catalog entry *asserts* signed, which is not a
    signature), ``nosbom`` (signed only); ``good`` is also pushed as ``:latest``."""
    out: dict[str, Pushed] = {}
    for name in ("good", "unsigned", "nosbom"):
        local = f"zastava-test/wh-{name}:1"
        devstack.build_image(
            docker_engine, local, {"/variant": (name.encode(), 0o644)}, labels={"variant": name}
        )
        pinned = devstack.push_image(docker_engine, local, registry.host, f"webhook-e2e/{name}:1")
        out[name] = Pushed(f"{registry.host}/webhook-e2e/{name}:1", pinned)
    devstack.push_image(docker_engine, "zastava-test/wh-good:1", registry.host, "webhook-e2e/good:latest")
    real_backend.sign(out["good"].pinned)
    real_backend.sign(out["nosbom"].pinned)
    real_backend.put_catalog(out["good"].digest, sbom=True)
    real_backend.put_catalog(out["unsigned"].digest, signed=True, sbom=True)
    real_backend.put_catalog(out["nosbom"].digest, sbom=False)
    return out


Factory = Callable[..., RunningWebhook]


@pytest.fixture
def webhook_real(real_backend: RealBackend, tls_dir: Path) -> Iterator[Factory]:
    started: list[RunningWebhook] = []

    def factory(**sections: dict[str, Any]) -> RunningWebhook:
        config = make_config(real_backend.url, tls_dir, **sections)
        running = start_webhook(config, tls_dir / "ca.crt", configured=True)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()


def admit(running: RunningWebhook, document: dict[str, Any]) -> dict[str, Any]:
    with running.client() as client:
        answer = client.post("/admit?timeout=10s", content=body(document))
    assert answer.status_code == 200, answer.text
    return dict(orjson.loads(answer.content)["response"])


def test_signed_image_with_sbom_is_allowed_and_recorded(
    webhook_real: Factory, real_backend: RealBackend, images: dict[str, Pushed]
) -> None:
    running = webhook_real()
    uid = str(uuid.uuid4())
    result = admit(running, review(pod_with({"app": images["good"].pinned}), uid=uid))
    assert result["allowed"] is True, result
    assert result["auditAnnotations"]["decision"] == "allow"
    record = real_backend.decision(uid)
    assert record["decision"] == "Allow" and record["namespace"] == "payments"
    (image,) = record["images"]
    assert image["name"] == images["good"].pinned
    assert image["signed"] is True and image["hasSbomReferrers"] is True and image["policyVerdict"] == "pass"


def test_unsigned_and_sbomless_images_are_denied_with_reasons(
    webhook_real: Factory, real_backend: RealBackend, images: dict[str, Pushed]
) -> None:
    running = webhook_real()
    uid = str(uuid.uuid4())
    pod = pod_with(
        {
            "a": images["unsigned"].pinned,
            "b": images["nosbom"].pinned,
            "c": images["good"].pinned,
        }
    )
    result = admit(running, review(pod, uid=uid))
    assert result["allowed"] is False and result["status"]["code"] == 403
    message = result["status"]["message"]
    assert f"containers[a] {images['unsigned'].pinned}" in message
    assert "image signature not verified" in message and "unsigned" in message
    assert f"containers[b] {images['nosbom'].pinned}" in message and "SBOM" in message
    assert "containers[c]" not in message
    record = real_backend.decision(uid)
    assert record["decision"] == "Deny"
    verdicts = {i["name"]: (i["signed"], i["hasSbomReferrers"], i["policyVerdict"]) for i in record["images"]}
    assert verdicts == {
        images["unsigned"].pinned: (False, True, "fail"),
        images["nosbom"].pinned: (True, False, "fail"),
        images["good"].pinned: (True, True, "pass"),
    }


def test_image_unknown_to_the_catalog_is_denied(webhook_real: Factory, images: dict[str, Pushed]) -> None:
    running = webhook_real()
    unknown = images["good"].pinned.rpartition("@")[0] + "@sha256:" + "e" * 64
    result = admit(running, review(pod_with({"app": unknown})))
    assert result["allowed"] is False
    assert "image signature not verified" in result["status"]["message"]


def test_tag_only_image_is_resolved_by_the_registry_client(
    webhook_real: Factory, real_backend: RealBackend, images: dict[str, Pushed]
) -> None:
    running = webhook_real()
    uid = str(uuid.uuid4())
    result = admit(running, review(pod_with({"app": images["good"].tag_ref}), uid=uid))
    assert result["allowed"] is True, result
    (image,) = real_backend.decision(uid)["images"]
    assert image["name"] == images["good"].tag_ref and image["resolved"] == images["good"].pinned
    # the same tag of an unsigned image resolves to its own digest and is denied by the backend's verdict
    denied = admit(running, review(pod_with({"app": images["unsigned"].tag_ref})))
    assert denied["allowed"] is False and "unsigned" in denied["status"]["message"]


def test_unknown_tag_fails_closed_or_open(
    webhook_real: Factory, registry: devstack.RegistryServer, images: dict[str, Pushed]
) -> None:
    running = webhook_real()
    missing = f"{registry.host}/webhook-e2e/good:no-such-tag"
    closed = admit(running, review(pod_with({"app": missing})))
    assert closed["allowed"] is False
    assert "registry could not resolve the tag" in closed["status"]["message"]
    opened = admit(running, review(pod_with({"app": missing}), namespace="dev"))
    assert opened["allowed"] is True and any("fail-open" in w for w in opened["warnings"])


def test_latest_tag_is_banned_before_any_lookup(
    webhook_real: Factory, real_backend: RealBackend, images: dict[str, Pushed]
) -> None:
    running = webhook_real()
    uid = str(uuid.uuid4())
    latest = images["good"].tag_ref.rsplit(":", 1)[0] + ":latest"
    result = admit(running, review(pod_with({"app": latest}), uid=uid))
    assert result["allowed"] is False and "tag :latest is banned" in result["status"]["message"]
    assert real_backend.decision(uid)["decision"] == "Deny"


def test_without_resolve_tags_the_tag_goes_to_the_backend_unpinned(
    webhook_real: Factory, images: dict[str, Pushed]
) -> None:
    """``resolveTags: false``: no registry client is built; the backend cannot match a tag to the catalog."""
    running = webhook_real(admission={"resolveTags": False})
    assert running.components.admitter.resolver is None
    result = admit(running, review(pod_with({"app": images["good"].tag_ref})))
    assert result["allowed"] is False


def test_dry_run_allows_and_records_would_deny(
    webhook_real: Factory, real_backend: RealBackend, images: dict[str, Pushed]
) -> None:
    running = webhook_real(admission={"enforce": False})
    uid = str(uuid.uuid4())
    result = admit(running, review(pod_with({"api": images["unsigned"].pinned}), uid=uid))
    assert result["allowed"] is True
    assert result["warnings"][0].startswith("zastava dry-run (enforce: false) would deny")
    assert result["auditAnnotations"]["decision"] == "dry-run-deny"
    record = real_backend.decision(uid)
    assert record["decision"] == "Deny" and record["enforced"] is False


def test_kubectl_dry_run_request_posts_no_record(
    webhook_real: Factory, real_backend: RealBackend, images: dict[str, Pushed]
) -> None:
    running = webhook_real()
    dry, after = str(uuid.uuid4()), str(uuid.uuid4())
    admit(running, review(pod_with({"app": images["good"].pinned}), dry_run=True, uid=dry))
    admit(running, review(pod_with({"app": images["good"].pinned}), uid=after))
    real_backend.decision(after)  # posted after the dry run's would have been
    with pytest.raises(AssertionError, match="no decision record"):
        real_backend.decision(dry, timeout=0.3)


def test_ephemeral_container_subresource_is_gated(webhook_real: Factory, images: dict[str, Pushed]) -> None:
    old = pod_with({"app": images["good"].pinned})
    debugger = {"name": "debugger", "image": images["unsigned"].pinned, "stdin": True}
    new = pod_with({"app": images["good"].pinned}, ephemeralContainers=[debugger])
    document = review(new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers")
    result = admit(webhook_real(), document)
    assert result["allowed"] is False
    message = result["status"]["message"]
    assert f"ephemeralContainers[debugger] {images['unsigned'].pinned}" in message
    assert "containers[app]" not in message
