"""Spec §12 "CRI socket missing": fallback to the log tail, reconnect with backoff, metrics say so.

A private containerd (CRI plugin on, its own socket) is started late, then stopped and started again, while a
:class:`ResilientEngine` watches its socket.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry

from tests.harness import devstack
from tests.harness.real import start_real
from zastava.observer.engines.cri import CriEngine
from zastava.observer.engines.logtail import LogTailEngine
from zastava.observer.engines.resilient import ResilientEngine
from zastava.telemetry.metrics import ZastavaMetrics

from .conftest import next_matching

CID = "c" * 64


def _gauge(metrics: ZastavaMetrics, name: str, engine: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"engine": engine})


async def test_missing_then_vanishing_socket_falls_back_and_reconnects(tmp_path: Path) -> None:
    workdir = tmp_path / "containerd"
    logs = tmp_path / "logs"
    logs.mkdir()
    socket = workdir / "containerd.sock"
    metrics = ZastavaMetrics(CollectorRegistry())
    engine = ResilientEngine(
        CriEngine(socket, event_source="poll", poll_interval=0.2, timeout=2),
        LogTailEngine(logs, procfs=str(tmp_path / "noproc"), poll_interval=0.1),
        metrics=metrics,
        backoff_initial=0.1,
        backoff_max=0.4,
    )
    events = engine.events()
    service: devstack.ContainerdService | None = None
    try:
        # 1. socket missing at start: degraded, fallback inventory, reduced fidelity
        degraded = await next_matching(events, lambda e: True, timeout=10)
        assert degraded.kind == "degraded" and "missing" in degraded.source
        assert engine.degraded and engine.name == "logtail"
        assert _gauge(metrics, "zastava_observer_engine_connected", "containerd") == 0
        assert _gauge(metrics, "zastava_observer_engine_fallback", "logtail") == 1
        (logs / f"web-0_shop_web-{CID}.log").write_text("")
        start = await next_matching(events, lambda e: e.kind == "start", timeout=10)
        assert (start.id, start.engine, start.source) == (CID, "logtail", "logtail")
        info = await engine.inspect(CID)
        assert info is not None and info.fidelity == "reduced"

        # 2. the runtime comes up: resync, back on CRI
        service = start_real(lambda: devstack.ContainerdService(workdir, cri=True).start())
        resync = await next_matching(events, lambda e: e.kind == "resync", timeout=30)
        assert resync.engine == "containerd"
        assert not engine.degraded and engine.name == "containerd"
        assert await engine.list_containers() == []
        assert _gauge(metrics, "zastava_observer_engine_connected", "containerd") == 1
        assert _gauge(metrics, "zastava_observer_engine_fallback", "logtail") == 0
        assert engine.reconnects >= 1
        assert (
            metrics.registry.get_sample_value(
                "zastava_observer_engine_reconnects_total", {"engine": "containerd", "result": "ok"}
            )
            or 0
        ) >= 1

        # 3. the socket vanishes while running: degraded again
        await asyncio.to_thread(service.stop)
        again = await next_matching(events, lambda e: e.kind == "degraded", timeout=30)
        assert again.engine == "containerd"
        assert engine.degraded
        listed = await engine.list_containers()
        assert [c.id for c in listed] == [CID] and listed[0].fidelity == "reduced"
    finally:
        await events.aclose()
        await engine.aclose()
        if service is not None:
            await asyncio.to_thread(service.stop)
