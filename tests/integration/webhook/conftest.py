"""Fixtures of the webhook integration suite: the real reference backend, the stand-in backend (latency and
failure injection), certificates, a served webhook."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import devstack
from tests.harness.devstack import signing, wait_until
from zastava.backend.app import create_app
from zastava.config import BackendServer, ZastavaConfig, load_config
from zastava.registry.settings import image_verifier
from zastava.telemetry import ZastavaMetrics
from zastava.webhook.certs import generate_certs, write_certs
from zastava.webhook.resolve import TagResolver
from zastava.webhook.server import (
    WebhookComponents,
    WebhookServer,
    bind_socket,
    build_configured_webhook,
    build_webhook,
)

from .standins import PolicyBackend, ThreadServer

CATALOG = "/api/v1/scanner/catalog/images/"
DECISIONS = "/api/v1/scanner/admission/decisions"
SBOM = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "components": [{"type": "library", "name": "busybox", "version": "1.36.1"}],
}


@dataclass
class RealBackend:
    """The reference backend app (``zastava.backend.app.create_app``, default policy, SQLite in a temp dir)
    served by uvicorn on loopback in a thread of the test process. It verifies signatures in the loopback
    registry: its default signer (``zastava.registry.trust``) is ``key``; :meth:`sign` signs an image with it
    (the tests' own signer, cosign's legacy layout)."""

    server: ThreadServer
    key: signing.KeyPair | None = None  # None: a backend that verifies nothing
    registry: devstack.RegistryServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def sign(self, pinned: str) -> None:
        """Sign ``host/repo@sha256:…`` (an image in the loopback registry) with the backend's trusted key."""
        assert self.key is not None and self.registry is not None
        name, digest = pinned.split("@")
        pusher = signing.OciPusher(self.registry.url)
        try:
            signing.sign_legacy(pusher, name.split("/", 1)[1], digest, key=self.key)
        finally:
            pusher.close()

    def put_catalog(self, digest: str, *, sbom: bool, signed: bool = False) -> None:
        """A catalog entry; ``signed`` is only the operator's assertion (evidence, never a signature)."""
        payload: dict[str, Any] = {"signed": signed}
        if sbom:
            payload["sbom"] = SBOM
        answer = httpx.put(f"{self.url}{CATALOG}{digest}", json=payload, timeout=10)
        assert answer.status_code == 200, answer.text

    def decision(self, admission_id: str, timeout: float = 10) -> dict[str, Any]:
        """The decision record the webhook posted for ``admission_id`` (waits for the background post)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = httpx.get(f"{self.url}{DECISIONS}", params={"limit": 1000}, timeout=10)
            assert answer.status_code == 200, answer.text
            for item in answer.json()["items"]:
                if item["envelope"]["decision"]["admissionId"] == admission_id:
                    return dict(item["envelope"]["decision"])
            assert time.monotonic() < deadline, f"no decision record {admission_id} in the backend"
            time.sleep(0.05)


@pytest.fixture(scope="session")
def real_backend(
    tmp_path_factory: pytest.TempPathFactory, registry: devstack.RegistryServer
) -> Iterator[RealBackend]:
    directory = tmp_path_factory.mktemp("backend")
    key = signing.KeyPair.generate()
    key.write_public(directory / "ci.pub")
    config = load_config(
        text=f"zastava:\n  registry:\n    trust:\n      publicKeyFiles: [{directory / 'ci.pub'}]\n",
        warn=False,
    )
    app = create_app(
        BackendServer(store=f"sqlite:///{directory / 'backend.db'}"), verifier=image_verifier(config)
    )
    server = ThreadServer(app).start()
    try:
        yield RealBackend(server, key, registry)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def policy_backend_server() -> Iterator[PolicyBackend]:
    backend = PolicyBackend().start()
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture
def policy_backend(policy_backend_server: PolicyBackend) -> PolicyBackend:
    policy_backend_server.reset()
    return policy_backend_server


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    write_certs(generate_certs(extra_dns=["localhost"], ip_addresses=["127.0.0.1"]), tmp_path / "tls")
    return tmp_path / "tls"


def make_config(backend_url: str, tls: Path, **sections: dict[str, Any]) -> ZastavaConfig:
    data: dict[str, Any] = {
        "backend": {"baseAddress": backend_url, "allowInsecureHttp": True, "requestTimeoutSeconds": 2},
        "admission": {"failOpenNamespaces": ["dev"]},
        "runtime": {"authority": {"requireMutualTls": False}},
        "webhook": {
            "listen": "127.0.0.1:0",
            "certPath": str(tls / "tls.crt"),
            "keyPath": str(tls / "tls.key"),
            "certReloadIntervalSeconds": 0.2,
            "failureTtlSeconds": 1,
        },
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return ZastavaConfig(**data)


@dataclass
class RunningWebhook:
    components: WebhookComponents
    server: WebhookServer
    thread: threading.Thread
    ca: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, verify=ssl.create_default_context(cafile=str(self.ca)), timeout=15, **kwargs
        )

    def stop(self) -> None:
        self.server.request_exit()
        self.thread.join(15)


def start_webhook(
    config: ZastavaConfig, ca: Path, *, resolver: TagResolver | None = None, configured: bool = False
) -> RunningWebhook:
    """``configured``: wired as ``zastava webhook serve`` wires it (:func:`build_configured_webhook`: the
    real ``zastava.registry`` client as resolver, ``backend_auth``'s client and headers)."""
    if configured:
        components = build_configured_webhook(config, metrics=ZastavaMetrics())
    else:
        components = build_webhook(config, metrics=ZastavaMetrics(), resolver=resolver)
    server = WebhookServer(
        components,
        cert_path=config.webhook.cert_path,
        key_path=config.webhook.key_path,
        sock=bind_socket("127.0.0.1", 0),
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True, name="webhook")
    thread.start()
    wait_until(lambda: server.started and components.started, 15, "webhook server")
    return RunningWebhook(components, server, thread, ca)


@pytest.fixture
def webhook(policy_backend: PolicyBackend, tls_dir: Path) -> Iterator[Callable[..., RunningWebhook]]:
    started: list[RunningWebhook] = []

    def factory(*, resolver: TagResolver | None = None, **sections: dict[str, Any]) -> RunningWebhook:
        running = start_webhook(
            make_config(policy_backend.url, tls_dir, **sections), tls_dir / "ca.crt", resolver=resolver
        )
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()
