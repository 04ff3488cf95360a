"""The time budget of a review: the API server's ``?timeout=`` minus a margin, capped by the backend timeout.

The API server appends ``timeout=<Go duration>`` (e.g. ``10s``; 1–30 s, default 10 s) to the webhook URL and
stops waiting after it; answering later is wasted work and turns into the webhook's ``failurePolicy``.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "Deadline", "budget_seconds", "parse_go_duration"]

DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_TIMEOUT_SECONDS = 30.0
MIN_BUDGET_SECONDS = 0.05
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str | None) -> float | None:
    """Seconds of a Go duration (``10s``, ``1m30s``, ``500ms``) or bare seconds; None if invalid."""
    if not text or len(text) > 64:
        return None
    text = text.strip()
    try:
        return float(text) if text.replace(".", "", 1).isdigit() else _parse_units(text)
    except ValueError:
        return None


def _parse_units(text: str) -> float:
    position, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            raise ValueError(text)
        total += float(match.group(1)) * _UNIT[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise ValueError(text)
    return total


@functools.lru_cache(maxsize=64)
def budget_seconds(timeout_param: str | None, margin: float, backend_timeout: float) -> float:
    """Seconds the webhook may spend: ``min(timeout - margin, backend_timeout)``, at least 50 ms."""
    timeout = parse_go_duration(timeout_param)
    if timeout is None or timeout <= 0:
        timeout = DEFAULT_TIMEOUT_SECONDS
    timeout = min(timeout, MAX_TIMEOUT_SECONDS)
    return max(MIN_BUDGET_SECONDS, min(timeout - margin, backend_timeout))


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute point on the monotonic clock."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at
