"""Fixtures of the publisher's integration tests: a real HTTP server playing the backend's events API.

The server (:mod:`.events_server`) stands in for the reference backend of issue 5 until it is merged; the
tests only use the wire contract, so it can be replaced by the real backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zastava.config import ZastavaConfig
from zastava.telemetry.metrics import ZastavaMetrics

from .events_server import EventsServer


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
