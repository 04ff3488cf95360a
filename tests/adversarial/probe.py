"""A ``/healthz`` latency probe: what an attack costs every *other* request.

:class:`HealthProbe` polls ``GET {url}/healthz`` from its own thread over one keep-alive connection while an
attack runs, and records each answer's latency and status. The issue's goal is that no request makes another
wait more than 100 ms beyond its own cost; ``/healthz`` costs well under a millisecond, so a probe latency
above :data:`BUDGET_MS` (plus the probe's own worst case measured just before the attack, which is the shared
machine's scheduling noise) is a stall caused by the attack.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

#: The goal: no request makes any other wait more than this beyond its own cost.
BUDGET_MS = 100.0


@dataclass
class ProbeResult:
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def worst_ms(self) -> float:
        return max(self.latencies_ms, default=0.0)

    @property
    def count(self) -> int:
        return len(self.latencies_ms)


class HealthProbe:
    """``with HealthProbe(url) as probe: attack()`` then ``probe.result``; ``baseline()`` measures the
    probe alone first (its worst case is the allowance for machine noise)."""

    def __init__(self, url: str, *, interval: float = 0.01, **client: Any) -> None:
        self.url = url.rstrip("/") + "/healthz"
        self.interval = interval
        self.client_options = {"timeout": 30.0, **client}
        self.result = ProbeResult()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        with httpx.Client(**self.client_options) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = client.get(self.url).status_code
                except httpx.HTTPError as exc:
                    self.result.failures.append(f"{type(exc).__name__}: {exc}")
                    status = 0
                elapsed = (time.perf_counter() - started) * 1000
                if status != 200:
                    self.result.failures.append(f"HTTP {status}")
                self.result.latencies_ms.append(elapsed)
                self._stop.wait(self.interval)

    def __enter__(self) -> HealthProbe:
        self._thread = threading.Thread(target=self._run, name="healthz-probe", daemon=True)
        self._thread.start()
        time.sleep(0.05)  # at least a few probes before the attack starts
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.05)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def baseline(self, seconds: float = 1.0) -> ProbeResult:
        """The probe alone for ``seconds``: the machine's own noise."""
        probe = HealthProbe(self.url.removesuffix("/healthz"), interval=self.interval, **self.client_options)
        with probe:
            time.sleep(seconds)
        return probe.result


def assert_no_stall(result: ProbeResult, baseline: ProbeResult, what: str) -> None:
    """Every probe answered 200, and none waited more than the budget beyond the baseline's worst case."""
    assert not result.failures, f"{what}: /healthz failed during the attack: {result.failures[:5]}"
    assert result.count >= 2, f"{what}: the probe did not run"
    allowed = BUDGET_MS + baseline.worst_ms
    assert result.worst_ms <= allowed, (
        f"{what}: /healthz waited {result.worst_ms:.0f} ms during the attack "
        f"(allowed {allowed:.0f} ms = {BUDGET_MS:.0f} ms + the probe's own worst {baseline.worst_ms:.0f} ms)"
    )
