"""Polling for a condition that another thread or process brings about."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def wait_for(check: Callable[[], bool], timeout: float = 10, interval: float = 0.02) -> bool:
    """``True`` as soon as ``check()`` is true, ``False`` if it is still false after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def wait_ready(
    client: httpx.Client, process: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> None:
    """Until ``client`` gets 200 from ``/readyz``; fails with the server's log when ``process`` ends first or
    ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            if client.get("/readyz").status_code == 200:
                return
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
