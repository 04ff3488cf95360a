"""Fixtures of the publisher's integration tests.

``backend``: the real reference backend (``zastava backend serve`` subprocess over SQLite, see
:mod:`.real_backend`) — outage, crash, cap and corruption tests run against it. ``events_server``: the
in-process test server of :mod:`.events_server`, kept only for what the real backend cannot be made to do
(forced 429/503, slow answers, refusing chosen events, a v1.0-only backend, counting POSTs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zastava.config import ZastavaConfig
from zastava.telemetry.metrics import ZastavaMetrics

from .events_server import EventsServer
from .real_backend import BackendProcess


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[BackendProcess]:
    server = BackendProcess(tmp_path / "backend").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def events_server(tmp_path: Path) -> Iterator[EventsServer]:
    server = EventsServer(tmp_path / "backend.sqlite").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def metrics() -> ZastavaMetrics:
    return ZastavaMetrics()


def publisher_config(url: str, *, publisher: dict[str, Any] | None = None, **sections: Any) -> ZastavaConfig:
    """A config pointing at ``url`` with small, test-friendly publisher settings."""
    settings: dict[str, Any] = {"batchMaxEvents": 100, "flushIntervalSeconds": 0.1, "gzip": True}
    settings.update(publisher or {})
    return ZastavaConfig(
        backend={"baseAddress": url, "allowInsecureHttp": True, "requestTimeoutSeconds": 5},
        publisher=settings,
        limits=sections.pop("limits", {"eventsPerSecond": 100000, "burst": 100000, "perNodeQueue": 10000}),
        **sections,
    )
