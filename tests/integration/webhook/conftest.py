"""Fixtures of the webhook integration suite: the stand-in backend, certificates, a served webhook."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from zastava.config import ZastavaConfig
from zastava.devstack import wait_until
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

from .standins import PolicyBackend


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
