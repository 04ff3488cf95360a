"""Fixtures of the adversarial suite: the real servers (uvicorn processes started through the product's own
commands), each stopped by its PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.observer.publisher.real_backend import BackendProcess


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    """``zastava backend serve`` on SQLite (rate caps raised: the attacks, not the caps, are under test)."""
    process = BackendProcess(Path(tmp_path_factory.mktemp("adversarial-backend")))
    process.start()
    try:
        yield process
    finally:
        process.stop()
