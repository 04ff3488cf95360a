"""Reproducible runtime events for the publisher's tests and benchmark."""

from __future__ import annotations

from typing import Any


def make_event(
    index: int,
    *,
    node: str = "node-a",
    kind: str = "CONTAINER_START",
    pid: int | None = None,
    when_us: int | None = None,
    padding: int = 0,
) -> Any:
    """A valid runtime event numbered ``index`` (distinct content per index, reproducible id)."""
    from datetime import UTC, datetime, timedelta

    from zastava.contracts import EventKind, Evidence, Process, RuntimeEvent, RuntimeInfo, Workload

    base = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    when = base + timedelta(microseconds=when_us if when_us is not None else index * 1000)
    evidence = [Evidence(signal="seq", value=str(index))]
    if padding:
        evidence.append(Evidence(signal="padding", value="x" * padding))
    event = RuntimeEvent(
        event_id="pending",
        when=when,
        kind=EventKind(kind),
        tenant="tenant-01",
        node=node,
        runtime=RuntimeInfo(engine="containerd", version="1.6.20"),
        workload=Workload(
            platform="kubernetes",
            namespace="payments",
            pod=f"api-{index % 7}",
            container="api",
            container_id=f"containerd://{index:064x}",
            image_ref="registry.local/payments/api@sha256:" + "ab" * 32,
        ),
        process=Process(pid=pid if pid is not None else 1000 + index, entrypoint=["/bin/api", "--serve"]),
        evidence=evidence,
    )
    return event.with_computed_id()
