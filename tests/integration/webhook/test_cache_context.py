"""The webhook's verdict cache is keyed by what the backend's verdict depends on, against the REAL reference
backend (``zastava.backend.app`` with SQLite, served by uvicorn on loopback) with namespace- and label-scoped
rules. The webhook is wired as ``zastava webhook serve`` wires it (:func:`build_configured_webhook`) and
served over TLS.

Before the cache was keyed by namespace and labels, an image reviewed first in ``dev`` was admitted in
``prod`` from the cache for up to ``ttlSeconds`` (and the reverse denied wrongly).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.harness.servers import ThreadedServer
from tests.unit.webhook.reviews import body, pod_with, review
from zastava.backend.app import create_app
from zastava.config import BackendServer

from .conftest import RealBackend, RunningWebhook, make_config, start_webhook

DIGEST = "sha256:" + "7e" * 32
IMAGE = f"registry.example/team/api@{DIGEST}"
#: prod rejects unsigned images, and so does any namespace for Pods labelled tier=critical; dev allows them
POLICY = """
ttlSeconds: 300
rules:
  - name: prod-signed
    check: signed
    action: fail
    reason: unsigned images are not allowed in prod
    namespaces: [prod]
  - name: critical-signed
    check: signed
    action: fail
    reason: critical workloads run signed images
    labels: {tier: critical}
"""


@pytest.fixture(scope="module")
def scoped_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealBackend]:
    work = tmp_path_factory.mktemp("scoped-backend")
    (work / "policy.yaml").write_text(POLICY)
    settings = BackendServer(store=f"sqlite:///{work / 'backend.db'}", policy_file=str(work / "policy.yaml"))
    app = create_app(settings)
    server = ThreadedServer(app).start()
    try:
        backend = RealBackend(server)
        backend.put_catalog(DIGEST, signed=False, sbom=True)
        yield backend
    finally:
        server.stop()


@pytest.fixture
def running(scoped_backend: RealBackend, tls_dir: Path) -> Iterator[RunningWebhook]:
    # only the backend's namespace/label-scoped verdict decides: the webhook's signature/SBOM gates are off
    config = make_config(
        scoped_backend.url,
        tls_dir,
        admission={
            "failOpenNamespaces": [],
            "verify": {"imageSignature": False, "sbomReferrer": False, "scannerPolicyPass": True},
        },
    )
    webhook = start_webhook(config, tls_dir / "ca.crt", configured=True)
    try:
        yield webhook
    finally:
        webhook.stop()


def admit(running: RunningWebhook, namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    pod = pod_with({"api": IMAGE})
    if labels is not None:
        pod["metadata"]["labels"] = labels
    with running.client() as client:
        answer = client.post("/admit?timeout=10s", content=body(review(pod, namespace=namespace)))
    assert answer.status_code == 200, answer.text
    return dict(orjson.loads(answer.content)["response"])


def cache_hits(running: RunningWebhook) -> float:
    with running.client() as client:
        text = client.get("/metrics").text
    match = re.search(r"^zastava_admission_cache_hits_total ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_dev_then_prod_and_back_each_get_their_own_verdict(running: RunningWebhook) -> None:
    verdicts = []
    for namespace in ("dev", "prod", "dev", "prod", "dev"):
        result = admit(running, namespace, {"app": "api"})
        verdicts.append(result["allowed"])
        if not result["allowed"]:
            assert "unsigned images are not allowed in prod" in result["status"]["message"]
    assert verdicts == [True, False, True, False, True]
    # the repeats (dev, prod, dev) were answered from the cache, within the TTL
    assert cache_hits(running) == 3


def test_prod_first_does_not_deny_dev(running: RunningWebhook) -> None:
    assert admit(running, "prod", {"app": "api"})["allowed"] is False
    assert admit(running, "dev", {"app": "api"})["allowed"] is True


def test_labels_the_rules_read_are_part_of_the_key(running: RunningWebhook) -> None:
    assert admit(running, "dev", {"app": "api"})["allowed"] is True
    critical = admit(running, "dev", {"app": "api", "tier": "critical"})
    assert critical["allowed"] is False
    assert "critical workloads run signed images" in critical["status"]["message"]
    assert admit(running, "dev", {"tier": "critical", "app": "api"})["allowed"] is False  # label order
    assert admit(running, "dev", {"app": "api"})["allowed"] is True
    assert cache_hits(running) == 2
