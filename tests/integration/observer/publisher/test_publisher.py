"""The publisher against the real reference backend (``zastava backend serve`` subprocess, ``backend``
fixture) for delivery, outage, buffer cap and corruption; against the test server of ``events_server`` only
where the real backend cannot be made to misbehave on demand (forced 429/503, slow answers, refusing chosen
events, v1.0-only negotiation, POST counting).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from tests.harness.events import BASE_TIME, make_event
from zastava.contracts import RuntimeEvent, parse_runtime_envelope
from zastava.observer.publisher import EventPublisher
from zastava.telemetry.metrics import ZastavaMetrics

from .conftest import publisher_config
from .events_server import EventsServer
from .real_backend import BackendProcess


def sample(metrics: ZastavaMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def stored_events(server: EventsServer | BackendProcess) -> list[RuntimeEvent]:
    rows = server.rows() if isinstance(server, BackendProcess) else server.store.rows()
    return [parse_runtime_envelope(orjson.loads(row[5]))[1] for row in rows]


async def wait_for(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_batches_are_gzipped_ndjson_and_stored_once(
    events_server: EventsServer, tmp_path: Path, metrics: ZastavaMetrics
) -> None:
    config = publisher_config(events_server.url, publisher={"batchMaxEvents": 50})
    async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=metrics) as publisher:
        events = [make_event(i) for i in range(230)]
        for event in events:
            await publisher.publish(event)
        assert await publisher.flush(10)
        assert publisher.version is not None and str(publisher.version) == "zastava.runtime.event@v1.3"
    assert [e.event_id for e in stored_events(events_server)] == [e.event_id for e in events]
    assert events_server.posts >= 5  # 230 events in batches of at most 50
    assert sample(metrics, "zastava_runtime_events_total", kind="CONTAINER_START") == 230
    assert sample(metrics, "zastava_runtime_events_delivered_total") == 230
    assert (
        sample(metrics, "zastava_runtime_backend_latency_ms_count", endpoint="events") == events_server.posts
    )
    assert sample(metrics, "zastava_buffer_pending_events") == 0


async def test_flush_interval_sends_a_partial_batch(backend: BackendProcess, tmp_path: Path) -> None:
    config = publisher_config(backend.url, publisher={"batchMaxEvents": 1000, "flushIntervalSeconds": 0.2})
    async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=ZastavaMetrics()) as publisher:
        await publisher.publish(make_event(1))
        await wait_for(lambda: backend.count() == 1, within=5)


async def test_backend_down_for_a_while_then_everything_arrives_in_order_per_node(
    backend: BackendProcess, tmp_path: Path, metrics: ZastavaMetrics
) -> None:
    """The real backend process stopped (by PID) for 60 s while events keep coming, then started again.

    ``ZASTAVA_TEST_OUTAGE_SECONDS`` shortens the outage for local runs only; CI runs the full 60 s (the
    publisher's backoff grows to its cap during it, which a short outage would not exercise)."""
    outage = float(os.environ.get("ZASTAVA_TEST_OUTAGE_SECONDS", "60"))
    config = publisher_config(backend.url, publisher={"batchMaxEvents": 200, "flushIntervalSeconds": 0.5})
    published: dict[str, list[str]] = defaultdict(list)
    async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=metrics) as publisher:
        index = 0

        async def produce(seconds: float) -> None:
            nonlocal index
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for _ in range(10):
                    event = make_event(index, node=f"node-{index % 3}")
                    published[event.node].append(event.event_id)
                    await publisher.publish(event)
                    index += 1
                await asyncio.sleep(0.05)

        await produce(1.0)
        backend.stop()
        await produce(outage)
        assert publisher.buffer.pending > 0
        assert sample(metrics, "zastava_backend_failures_total", endpoint="events") > 0
        await asyncio.to_thread(backend.start)
        await produce(1.0)
        assert await publisher.flush(60)
    stored: dict[str, list[str]] = defaultdict(list)
    for _seq, event_id, node, *_rest in backend.rows():
        stored[node].append(event_id)
    assert stored == published  # every event, once, in publish order per node
    items, total = backend.query_all()  # the query API agrees: newest first, paginated
    assert total == len(items) == index
    assert [i["envelope"]["event"]["eventId"] for i in reversed(items)] == backend.event_ids()
    assert sample(metrics, "zastava_buffer_drops_total") == 0


async def test_cap_exceeded_drops_exactly_the_oldest_and_reports_the_gap(
    backend: BackendProcess, tmp_path: Path, metrics: ZastavaMetrics
) -> None:
    backend.stop()
    config = publisher_config(backend.url, publisher={"bufferMaxBytes": 64 * 1024, "batchMaxEvents": 50})
    events = [make_event(i) for i in range(600)]  # ~400 KB of envelopes into a 64 KB buffer
    async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=metrics) as publisher:
        for event in events:
            await publisher.publish(event)
            assert publisher.buffer.bytes_in_use <= 64 * 1024
            if event.process and event.process.pid % 25 == 0:
                await asyncio.sleep(0.01)  # let the sender try (and fail) meanwhile
        await asyncio.sleep(0.3)
        publisher.buffer.rewind()  # settle anything dropped while a failed POST was in flight
        dropped = publisher.buffer.dropped_total
        assert 0 < dropped < 600
        assert sample(metrics, "zastava_buffer_drops_total") == dropped
        assert sample(metrics, "zastava_buffer_bytes") <= 64 * 1024
        await asyncio.to_thread(backend.start)
        assert await publisher.flush(30)
        await wait_for(lambda: any(e.kind == "AGENT_WARNING" for e in stored_events(backend)))
        assert await publisher.flush(10)
    stored = stored_events(backend)
    delivered = [e for e in stored if e.kind != "AGENT_WARNING"]
    warnings = [e for e in stored if e.kind == "AGENT_WARNING"]
    # exactly the oldest went
    assert [e.event_id for e in delivered] == [e.event_id for e in events[dropped:]]
    (gap,) = warnings
    assert gap.warning is not None and gap.warning.code == "buffer.drop"
    assert gap.warning.count == dropped
    assert gap.warning.since == events[0].when and gap.warning.until == events[dropped - 1].when
    assert gap.event_id == gap.compute_id()
    assert not (tmp_path / "buf" / "gap.json").exists()


async def test_corrupt_segment_records_are_skipped_counted_and_the_rest_delivered(
    backend: BackendProcess, tmp_path: Path, metrics: ZastavaMetrics
) -> None:
    backend.stop()
    config = publisher_config(backend.url)
    events = [make_event(i) for i in range(40)]
    publisher = EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=ZastavaMetrics())
    await publisher.start()
    for event in events:
        await publisher.publish(event)
    await publisher.aclose(timeout=0.2)
    (segment,) = (tmp_path / "buf").glob("seg-*.log")
    data = bytearray(segment.read_bytes())
    for victim in (b'"seq","value":"5"', b'"seq","value":"17"', b'"seq","value":"30"'):
        at = data.find(victim)
        assert at > 0
        data[at + len(victim) - 2] ^= 0x01  # flip one bit inside the payload: checksum mismatch
    segment.write_bytes(bytes(data))
    await asyncio.to_thread(backend.start)
    async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=metrics) as publisher:
        assert await publisher.flush(10)
    expected = [e.event_id for i, e in enumerate(events) if i not in (5, 17, 30)]
    assert [e.event_id for e in stored_events(backend)] == expected
    assert sample(metrics, "zastava_buffer_corrupt_records_total") == 3


async def test_rate_limit_and_coalescing_behave_as_configured(
    backend: BackendProcess, tmp_path: Path, metrics: ZastavaMetrics
) -> None:
    config = publisher_config(backend.url, limits={"eventsPerSecond": 20, "burst": 5, "perNodeQueue": 3})
    async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=metrics) as publisher:
        started = time.monotonic()
        for i in range(5):
            await publisher.publish(make_event(i))  # the burst passes at once
        storm = make_event(100)
        for n in range(50):  # the same event repeated (e.g. a flapping container): folded into one
            await publisher.publish(
                make_event(100, when_us=(storm.when - BASE_TIME) // timedelta(microseconds=1) + n)
            )
        await publisher.publish(make_event(101))
        await publisher.publish(make_event(102))
        await publisher.publish(make_event(103))  # queue (3) full: dropped and counted
        assert sample(metrics, "zastava_runtime_events_limit_queue") == 3
        await wait_for(lambda: backend.count() == 8, within=10)
        elapsed = time.monotonic() - started
        assert await publisher.flush(5)
    stored = stored_events(backend)
    assert [e.workload.container_id for e in stored] == [
        make_event(i).workload.container_id for i in (0, 1, 2, 3, 4, 100, 101, 102)
    ]
    folded = stored[5]
    assert folded.count == 50 and folded.when == storm.when and folded.event_id == folded.compute_id()
    assert all(e.count is None for e in stored[:5] + stored[6:])
    assert elapsed >= 3 / 20 * 0.9  # three released at 20/s after the burst
    assert sample(metrics, "zastava_runtime_events_coalesced_total") == 49
    assert sample(metrics, "zastava_runtime_events_limited_total", outcome="queued") == 3
    assert sample(metrics, "zastava_runtime_events_limited_total", outcome="dropped") == 1
    assert sample(metrics, "zastava_runtime_events_total", kind="CONTAINER_START") == 58


async def test_rate_limited_events_are_persisted_on_close(backend: BackendProcess, tmp_path: Path) -> None:
    backend.stop()
    config = publisher_config(backend.url, limits={"eventsPerSecond": 0.5, "burst": 1, "perNodeQueue": 100})
    publisher = EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=ZastavaMetrics())
    await publisher.start()
    for i in range(10):
        await publisher.publish(make_event(i))
    await publisher.aclose(timeout=0.2)
    await asyncio.to_thread(backend.start)
    async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=ZastavaMetrics()) as publisher:
        assert publisher.buffer.pending == 10
        assert await publisher.flush(10)
    assert backend.count() == 10


async def test_429_retry_after_is_honoured(events_server: EventsServer, tmp_path: Path) -> None:
    events_server.fail_status, events_server.retry_after = 429, "2"
    config = publisher_config(events_server.url)
    async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=ZastavaMetrics()) as publisher:
        await publisher.publish(make_event(1))
        await wait_for(lambda: events_server.posts >= 1)
        first = time.monotonic()
        events_server.fail_status = None
        assert await publisher.flush(10)
        waited = time.monotonic() - first
    assert events_server.statuses[0] == 429 and events_server.statuses[-1] == 202
    assert events_server.posts == 2  # no hammering while told to wait
    assert waited >= 1.8


async def test_503_without_retry_after_and_slow_backend_are_retried(
    events_server: EventsServer, tmp_path: Path, metrics: ZastavaMetrics
) -> None:
    events_server.fail_status = 503
    config = publisher_config(events_server.url)
    config.backend.request_timeout_seconds = 0.3
    async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=metrics) as publisher:
        for i in range(20):
            await publisher.publish(make_event(i))
        await wait_for(lambda: events_server.posts >= 3)  # jittered backoff, retried
        events_server.fail_status = None
        events_server.delay_seconds = 0.6  # slower than the client's timeout: stored, but not acknowledged
        await wait_for(lambda: events_server.store.count() == 20)
        events_server.delay_seconds = 0
        assert await publisher.flush(20)
    assert events_server.store.count() == 20
    assert events_server.store.duplicates > 0  # re-sent after the timeouts: stored once by eventId
    assert sample(metrics, "zastava_backend_failures_total", endpoint="events") >= 3


async def test_a_rejected_event_is_isolated_counted_and_does_not_block_the_queue(
    events_server: EventsServer, tmp_path: Path, metrics: ZastavaMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    events = [make_event(i) for i in range(100)]
    events_server.reject_event_ids = {events[37].event_id, events[80].event_id}
    config = publisher_config(events_server.url, publisher={"batchMaxEvents": 100})
    with caplog.at_level(logging.ERROR, logger="zastava.observer.publisher"):
        async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=metrics) as publisher:
            for event in events:
                await publisher.publish(event)
            assert await publisher.flush(20)
            await publisher.publish(make_event(500))
            assert await publisher.flush(10)
            assert publisher.rejected_total == 2
    stored_ids = [e.event_id for e in stored_events(events_server)]
    assert stored_ids == [e.event_id for i, e in enumerate(events) if i not in (37, 80)] + [
        make_event(500).event_id
    ]
    assert sample(metrics, "zastava_runtime_events_rejected_total") == 2
    logged = {r.zastava_fields["eventId"] for r in caplog.records if hasattr(r, "zastava_fields")}  # type: ignore[attr-defined]
    assert {events[37].event_id, events[80].event_id} <= logged


async def test_v1_0_backend_gets_v1_0_lines_and_warnings_are_logged(
    tmp_path: Path, metrics: ZastavaMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    from zastava.observer.publisher.buffer import Gap
    from zastava.observer.publisher.publisher import gap_warning_event

    with EventsServer(tmp_path / "v10.sqlite", schema_versions="zastava.runtime.event@v1.0") as server:
        config = publisher_config(server.url)
        folded = make_event(3).model_copy(update={"count": 4}).with_computed_id()
        warning = gap_warning_event(Gap(3, 0, 10), tenant="tenant-01", node="node-a")
        with caplog.at_level(logging.WARNING, logger="zastava.observer.publisher"):
            async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=metrics) as publisher:
                for event in (make_event(1), folded, warning, make_event(2)):
                    await publisher.publish(event)
                assert await publisher.flush(10)
                assert str(publisher.version) == "zastava.runtime.event@v1.0"
        rows = server.store.rows()
        assert {row[4] for row in rows} == {"zastava.runtime.event@v1.0"}
        assert [row[1] for row in rows] == [make_event(1).event_id, folded.event_id, make_event(2).event_id]
        assert all(b'"count"' not in row[5] for row in rows)
        assert publisher.rejected_total == 0
        assert any("AGENT_WARNING" in r.getMessage() for r in caplog.records)


async def test_headers_provider_is_called_per_request(events_server: EventsServer, tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []

    async def provider(method: str, url: str) -> dict[str, str]:
        calls.append((method, url))
        return {"Authorization": "DPoP test-token"}

    config = publisher_config(events_server.url, publisher={"batchMaxEvents": 10})
    async with EventPublisher(
        config, buffer_dir=tmp_path / "buf", metrics=ZastavaMetrics(), headers_provider=provider
    ) as publisher:
        for i in range(25):
            await publisher.publish(make_event(i))
        assert await publisher.flush(10)
    assert len(calls) == events_server.posts >= 3
    assert calls[0] == ("POST", events_server.url + "/api/v1/scanner/runtime/events")


async def test_publish_before_start_is_refused(tmp_path: Path, backend: BackendProcess) -> None:
    from zastava.observer.publisher import PublisherClosed

    publisher = EventPublisher(publisher_config(backend.url), buffer_dir=tmp_path, metrics=ZastavaMetrics())
    with pytest.raises(PublisherClosed):
        await publisher.publish(make_event(1))


async def test_an_event_larger_than_a_buffer_segment_is_refused_and_counted(
    backend: BackendProcess, tmp_path: Path, metrics: ZastavaMetrics
) -> None:
    config = publisher_config(backend.url, publisher={"bufferMaxBytes": 64 * 1024})
    async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=metrics) as publisher:
        await publisher.publish(make_event(1, padding=8000))  # > the 4 KiB segments of a 64 KiB buffer
        await publisher.publish(make_event(2))
        assert await publisher.flush(10)
    assert backend.event_ids() == [make_event(2).event_id]
    assert sample(metrics, "zastava_runtime_events_rejected_total") == 1


async def test_batch_and_post_spans_are_recorded(events_server: EventsServer, tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from zastava.telemetry import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer(provider.get_tracer("test"))
    try:
        config = publisher_config(events_server.url, publisher={"batchMaxEvents": 10})
        async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=ZastavaMetrics()) as publisher:
            for i in range(25):
                await publisher.publish(make_event(i))
            assert await publisher.flush(10)
    finally:
        tracing.use_tracer(None)
    spans = exporter.get_finished_spans()
    posts = [s for s in spans if s.name == "post"]
    batches = [s for s in spans if s.name == "batch"]
    assert sum(s.attributes["events"] for s in posts) == 25  # type: ignore[index]
    assert sum(s.attributes["events"] for s in batches) == 25  # type: ignore[index]
    assert {s.attributes["version"] for s in posts} == {"zastava.runtime.event@v1.3"}  # type: ignore[index]


async def test_lines_the_real_backend_refuses_in_an_accepted_batch_are_counted_not_delivered(
    backend: BackendProcess, tmp_path: Path, metrics: ZastavaMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """The reference backend answers 2xx with ``rejected: [{index, error}]`` when only some lines are refused
    (here: events naming a tenant other than the caller's); those are counted and logged, not delivered."""
    events = [make_event(i) for i in range(30)]
    foreign = {7, 19}
    events = [
        e.model_copy(update={"tenant": "tenant-99"}).with_computed_id() if i in foreign else e
        for i, e in enumerate(events)
    ]
    config = publisher_config(backend.url, publisher={"batchMaxEvents": 100})
    with caplog.at_level(logging.ERROR, logger="zastava.observer.publisher"):
        async with EventPublisher(config, buffer_dir=tmp_path / "buf", metrics=metrics) as publisher:
            for event in events:
                await publisher.publish(event)
            assert await publisher.flush(20)
            assert publisher.rejected_total == 2 and publisher.delivered_total == 28
    assert backend.event_ids() == [e.event_id for i, e in enumerate(events) if i not in foreign]
    assert sample(metrics, "zastava_runtime_events_rejected_total") == 2
    assert sample(metrics, "zastava_runtime_events_delivered_total") == 28
    logged = {r.zastava_fields.get("eventId") for r in caplog.records if hasattr(r, "zastava_fields")}  # type: ignore[attr-defined]
    assert {events[i].event_id for i in foreign} <= logged
