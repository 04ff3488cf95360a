"""The asynchronous event pipeline: rate limit/coalesce → disk ring buffer → batch → gzip → POST (spec §3.3).

Every accepted event is appended to the disk buffer before :meth:`EventPublisher.publish` returns (one
``write(2)``), so a crash of the agent loses nothing it accepted; a sender task reads the buffer in order,
batches by ``publisher.batchMaxEvents`` or ``publisher.flushIntervalSeconds``, and acknowledges records only
after the backend answered 2xx. Delivery is at-least-once; the backend stores each ``eventId`` once.

Backend answers: 2xx → acknowledged; 429/503 → wait ``Retry-After`` (else jittered exponential backoff);
other 5xx, timeouts and connection errors → jittered exponential backoff; 400/413/422 → the batch is split
until the offending event is isolated, which is then counted (``zastava_runtime_events_rejected_total``),
logged and skipped so that it never blocks the queue; 401/403/404 → retried slowly, never dropped.

Envelopes are written at the schema version negotiated from the backend's ``Zastava-Schema-Versions`` header
(current v1.1 until a response says otherwise). Towards a v1.0 backend ``count`` is left out and
``AGENT_WARNING`` events, which v1.0 cannot carry, are logged instead of sent; likewise ``EXEC`` events
towards a backend below v1.3.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from ...config import ZastavaConfig
from ...contracts import (
    RUNTIME_EVENT,
    AgentWarning,
    EnvelopeError,
    EventKind,
    RuntimeEvent,
    SchemaVersion,
    dump_runtime_envelope,
    kind_known_at,
    parse_runtime_envelope,
    versions,
)
from ...telemetry.logging import fields
from ...telemetry.metrics import ZastavaMetrics, default_metrics
from ...telemetry.tracing import current_context, span
from ..events import EngineLabel, observer_context
from .buffer import BufferRecord, DiskBuffer, DiskBufferError, DiskBufferFull, Gap
from .client import Backoff, EventsClient, HeadersProvider, Outcome, PostResult
from .ratelimit import Admission, Coalescer, TokenBucket

__all__ = ["EventPublisher", "PublisherClosed", "gap_warning_event"]

log = logging.getLogger("zastava.observer.publisher")

_ENDPOINT = "events"
#: Delay between retries of answers that need an operator (401/403/404): slow, but never give up.
_FATAL_RETRY_SECONDS = 30.0
#: Span contexts of buffered events kept for the batch span's links (spec §8 observe → batch → post).
_TRACE_LINKS = 1024


@dataclass(frozen=True, slots=True)
class _Batch:
    """Buffer records encoded at ``version`` and ready to POST."""

    records: Sequence[BufferRecord]
    lines: list[bytes]
    version: SchemaVersion
    body: bytes
    headers: dict[str, str]
    trace: Any = None  # the batch span's context: the post span's parent


def _span_context(current: Any) -> Any:
    return current.get_span_context() if current is not None else None


class PublisherClosed(RuntimeError):
    """publish() after aclose(), or before start()."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def _wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait for ``event`` at most ``seconds``; False on timeout. (``asyncio.timeout`` rather than
    ``wait_for``, which on Python 3.11 can swallow a cancellation that races with the timeout.)"""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
        return True
    except TimeoutError:
        return False


def _ts_us(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _from_us(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def gap_warning_event(gap: Gap, *, tenant: str, node: str, engine: str = "unknown") -> RuntimeEvent:
    """The ``AGENT_WARNING`` event (v1.1) reporting events dropped from the buffer past its cap."""
    warning = AgentWarning(
        code="buffer.drop",
        message=f"disk buffer full: dropped the {gap.count} oldest undelivered event(s)",
        count=gap.count,
        since=_from_us(gap.since_us),
        until=_from_us(gap.until_us),
    )
    runtime_engine: EngineLabel = "unknown"
    if engine in ("containerd", "cri-o", "docker"):
        runtime_engine = engine  # type: ignore[assignment]  # narrowed by the membership test
    ctx = observer_context(tenant=tenant, node=node, engine=runtime_engine, container_id=f"host://{node}")
    return ctx.event(EventKind.AGENT_WARNING, when=datetime.now(UTC), warning=warning)


class EventPublisher:
    """Durable, batching publisher of runtime events to the backend.

    ``buffer_dir`` overrides ``publisher.bufferDir``; ``headers_provider(method, url)`` returns per-request
    auth headers; ``http_client`` is used as is (and not closed) when given. ``rate_limit=False`` bypasses
    ``zastava.limits`` (the ``events send`` replay command uses it). ``node_name`` names this node in the gap
    warning event (default: ``$NODE_NAME``, else the host name).
    """

    def __init__(
        self,
        config: ZastavaConfig,
        *,
        buffer_dir: Path | None = None,
        metrics: ZastavaMetrics | None = None,
        http_client: httpx.AsyncClient | None = None,
        headers_provider: HeadersProvider | None = None,
        rate_limit: bool = True,
        node_name: str | None = None,
    ) -> None:
        self.config = config
        pub = config.publisher
        self.metrics = metrics or default_metrics()
        self.buffer = DiskBuffer(buffer_dir or Path(pub.buffer_dir), pub.buffer_max_bytes)
        self.buffer.on_drop = self._on_drop  # type: ignore[method-assign]
        self.buffer.on_corrupt = self._on_corrupt  # type: ignore[method-assign]
        self.client = EventsClient(
            config.backend.base_address,
            config.backend.events_path,
            http_client=http_client,
            headers_provider=headers_provider,
            gzip=pub.gzip,
            timeout=config.backend.request_timeout_seconds,
        )
        limits = config.limits
        self.limiter: Coalescer | None = (
            Coalescer(TokenBucket(limits.events_per_second, limits.burst), limits.per_node_queue)
            if rate_limit
            else None
        )
        self.batch_max = pub.batch_max_events
        self.flush_interval = pub.flush_interval_seconds
        self.node_name = node_name or os.environ.get("NODE_NAME") or socket.gethostname()
        self.version: SchemaVersion | None = None  # negotiated with the backend; None until it answered
        self.rejected_total = 0
        self.delivered_total = 0
        self._accept_header = versions.header_value(RUNTIME_EVENT)
        self._backoff = Backoff(base=0.2, cap=10.0)
        self._wake = asyncio.Event()
        self._release_wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._closing = asyncio.Event()
        self._retry_now = asyncio.Event()  # set by flush(): cut a backoff wait short once
        self._told_to_wait = False  # the last answer carried Retry-After
        self._flush_requested = 0
        self._sender: asyncio.Task[None] | None = None
        self._releaser: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._limit_drop_logged = 0.0
        self._kind_counters: dict[EventKind, Any] = {}
        self._encode_reported = -1  # highest buffer seq whose down-conversion problems were reported
        #: why the last write to the disk buffer failed (None once a write succeeds): readiness reads it
        self.store_error: str | None = None
        self._trace_links: dict[int, Any] = {}  # buffer seq → span context of the event's observe span
        # children of per-event metrics, resolved once (prometheus-client's labels() costs ~10 µs)
        self._m_buffer_bytes = self.metrics.buffer_bytes.labels()
        self._m_limit_queue = self.metrics.limit_queue.labels()
        self._current = versions.current(RUNTIME_EVENT)
        self._line_prefix = b'{"schemaVersion":"' + str(self._current).encode() + b'","event":'

    # ------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._started:
            return
        self.buffer.open()
        self._started = True
        self._update_gauges()
        if self.buffer.pending:
            log.info("replaying buffered events", extra=fields(pending=self.buffer.pending))
        self._sender = asyncio.create_task(self._run_sender(), name="zastava-publisher-sender")
        if self.limiter is not None:
            self._releaser = asyncio.create_task(self._run_releaser(), name="zastava-publisher-limiter")

    async def __aenter__(self) -> EventPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Persist events waiting in the rate limiter, deliver what can be within ``timeout`` (default: the
        backend request timeout), keep the rest on disk for the next start."""
        if self._closed or not self._started:
            self._closed = True
            return
        if self.limiter is not None:
            for event in self.limiter.drain():
                self._store(event)
        if self.buffer.pending:
            await self.flush(timeout if timeout is not None else self.config.backend.request_timeout_seconds)
        self._closed = True
        self._closing.set()
        for task in (self._sender, self._releaser):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.buffer.close()
        await self.client.aclose()
        self._update_gauges()

    # ------------------------------------------------------------------------------------- publishing

    async def publish(self, event: RuntimeEvent) -> None:
        """Accept one event: rate limit/coalesce, append it to the disk buffer. Never waits on the network."""
        if not self._started or self._closed:
            raise PublisherClosed("publisher is not running (call start() first; not after aclose())")
        counter = self._kind_counters.get(event.kind)
        if counter is None:  # labels() costs ~10 µs: keep the child per kind
            counter = self._kind_counters[event.kind] = self.metrics.events_total.labels(
                kind=event.kind.value
            )
        counter.inc()
        if self.limiter is None:
            self._store(event)
            return
        outcome = self.limiter.offer(event)
        if outcome == Admission.ACCEPT:
            self._store(event)
        elif outcome == Admission.QUEUED:
            self.metrics.events_limited.labels(outcome="queued").inc()
            self._release_wake.set()
        elif outcome == Admission.COALESCED:
            self.metrics.events_coalesced.inc()
        else:
            self.metrics.events_limited.labels(outcome="dropped").inc()
            now = time.monotonic()
            if now - self._limit_drop_logged > 10:
                self._limit_drop_logged = now
                log.warning(
                    "rate-limit queue full: dropping distinct events",
                    extra=fields(
                        perNodeQueue=self.limiter.max_queue, droppedTotal=self.limiter.dropped_total
                    ),
                )
        self._m_limit_queue.set(len(self.limiter))

    def _store(self, event: RuntimeEvent) -> None:
        seq = self._store_line(self.envelope_line(event), _ts_us(event.when))
        context = current_context()
        if context is not None and seq is not None:
            if len(self._trace_links) >= _TRACE_LINKS:
                del self._trace_links[next(iter(self._trace_links))]
            self._trace_links[seq] = context

    def _links(self, records: Sequence[BufferRecord]) -> list[Any]:
        if not self._trace_links:
            return []
        return [link for r in records if (link := self._trace_links.pop(r.seq, None)) is not None]

    def envelope_line(self, event: RuntimeEvent) -> bytes:
        """The ND-JSON line stored for ``event``: its envelope at the current version.

        Same JSON as :func:`~zastava.contracts.dump_runtime_envelope` (a test holds them equal), built with
        pydantic's native serializer, which is markedly faster than ``wire()`` + orjson.
        """
        return self._line_prefix + event.model_dump_json(by_alias=True).encode() + b"}"

    def _store_line(self, line: bytes, ts_us: int) -> int | None:
        try:
            seq = self.buffer.append(line, ts_us)
        except DiskBufferError as exc:  # larger than a buffer segment: refused locally, counted, logged
            self.rejected_total += 1
            self.metrics.events_rejected.inc()
            log.error("event too large for the disk buffer; skipped", extra=fields(error=str(exc)))
            return None
        except (
            DiskBufferFull
        ) as exc:  # counted as lost by the buffer (on_drop metrics; a gap event reports it)
            self.store_error = f"{type(exc).__name__}: {exc}"  # readiness reports the full disk
            return None
        except OSError as exc:
            self.store_error = f"{type(exc).__name__}: {exc}"
            self.metrics.buffer_drops.inc()
            log.error("cannot write to the disk buffer; event lost", extra=fields(error=str(exc)))
            return None
        self.store_error = None
        self._m_buffer_bytes.set(self.buffer.bytes_in_use)
        if self.buffer.pending >= self.batch_max:
            self._wake.set()
        return seq

    async def publish_waiting(self, event: RuntimeEvent, timeout: float) -> bool:  # noqa: ASYNC109
        """Backpressure for a sender that can wait (``zastava events send``): store ``event`` without the
        rate limiter, waiting while the buffer is full (past its cap, or the disk) instead of dropping the
        oldest records. Waits as long as deliveries make progress; False when nothing was settled for
        ``timeout`` seconds (the backend is down): the event was not stored and the caller counts it."""
        if not self._started or self._closed:
            raise PublisherClosed("publisher is not running (call start() first; not after aclose())")
        line = self.envelope_line(event)
        ts_us = _ts_us(event.when)
        settled = self.buffer.settled_seq
        deadline = time.monotonic() + timeout
        while True:
            if self.buffer.fits(len(line)):
                try:
                    self.buffer.append(line, ts_us, count_loss=False)
                except DiskBufferFull:
                    pass  # the disk is full: wait until delivered segments are deleted
                except DiskBufferError as exc:  # larger than a buffer segment: refused, counted
                    self.rejected_total += 1
                    self.metrics.events_rejected.inc()
                    log.error("event too large for the disk buffer; skipped", extra=fields(error=str(exc)))
                    return True
                else:
                    self.metrics.events_total.labels(kind=event.kind.value).inc()
                    self._m_buffer_bytes.set(self.buffer.bytes_in_use)
                    if self.buffer.pending >= self.batch_max:
                        self._wake.set()
                    return True
            if self._sender is None or self._sender.done():
                return False
            if self.buffer.settled_seq != settled:  # deliveries go on: keep waiting
                settled = self.buffer.settled_seq
                deadline = time.monotonic() + timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._progress.clear()
            self._flush_requested += 1
            self._wake.set()
            try:
                await _wait_event(self._progress, min(remaining, 1.0))
            finally:
                self._flush_requested -= 1

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Deliver everything buffered so far. True when all of it was settled (delivered, rejected or
        dropped) within ``timeout`` seconds (None: wait as long as it takes)."""
        if not self._started or self._closed:
            return self.buffer.pending == 0 if self._started else True
        target = self.buffer.last_seq
        self._flush_requested += 1
        self._wake.set()
        self._retry_now.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self.buffer.settled_seq < target:
                if self._sender is not None and self._sender.done():
                    return False
                self._progress.clear()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if not await _wait_event(self._progress, remaining):
                    return self.buffer.settled_seq >= target
            return True
        finally:
            self._flush_requested -= 1

    # ------------------------------------------------------------------------------------- rate limiter

    async def _run_releaser(self) -> None:
        assert self.limiter is not None
        while not self._closing.is_set():
            if not len(self.limiter):
                self._release_wake.clear()
                await self._release_wake.wait()
            delay = self.limiter.wait_time()
            if delay > 0:
                await asyncio.sleep(delay)
            for event in self.limiter.release():
                self._store(event)
            self._m_limit_queue.set(len(self.limiter))

    # ------------------------------------------------------------------------------------- sending

    async def _run_sender(self) -> None:
        while not self._closing.is_set():
            try:
                urgent = self._flush_requested or self.buffer.pending >= self.batch_max
                if not (urgent and self.buffer.has_unread()):
                    await _wait_event(self._wake, self.flush_interval)
                self._wake.clear()
                while True:
                    records = self.buffer.read(self.batch_max)
                    if not records:
                        break
                    delay = await self._deliver_stream(records)
                    self._update_gauges()
                    self._progress.set()
                    if delay is not None:
                        # not delivered: forget what was read (it is re-read from disk), wait, retry
                        self.buffer.rewind()
                        await self._sleep(delay, interruptible=not self._told_to_wait)
                        continue
                    if self.buffer.pending < self.batch_max and not self._flush_requested:
                        break
                self._progress.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the sender die: log and retry after a pause
                log.exception("publisher sender failed; retrying")
                self.buffer.rewind()
                await self._sleep(self._backoff.next_delay())

    async def _sleep(self, seconds: float, *, interruptible: bool = True) -> None:
        """Wait ``seconds``, or less when closing or (``interruptible``) when flush() asks to try now."""
        self._retry_now.clear()
        waiters = [asyncio.ensure_future(self._closing.wait())]
        if interruptible:
            waiters.append(asyncio.ensure_future(self._retry_now.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _encode(self, records: Sequence[BufferRecord]) -> tuple[list[bytes], SchemaVersion]:
        """Lines for ``records`` at the negotiated version (stored lines are at the current version)."""
        version = self.version or versions.current(RUNTIME_EVENT)
        if version == versions.current(RUNTIME_EVENT):
            return [r.payload for r in records], version
        lines: list[bytes] = []
        for record in records:
            first_time = record.seq > self._encode_reported  # retries re-encode: report each record once
            self._encode_reported = max(self._encode_reported, record.seq)
            try:
                _v, event = parse_runtime_envelope(orjson.loads(record.payload))
            except (orjson.JSONDecodeError, EnvelopeError) as exc:
                if first_time:
                    self._reject_one(record, f"unreadable buffered record: {exc}")
                continue
            if not kind_known_at(event.kind, version.minor):
                if not first_time:
                    continue
                log.warning(
                    f"backend speaks {version}: {event.kind} event not sent, logged here",
                    extra=fields(
                        eventId=event.event_id,
                        kind=event.kind.value,
                        warning=event.warning.wire() if event.warning else None,
                    ),
                )
                continue
            lines.append(dump_runtime_envelope(event, version))
        return lines, version

    def _negotiate(self, result: PostResult) -> bool:
        """Update the version from a response; True when it changed."""
        if not result.schema_versions:
            return False
        negotiated = versions.negotiate_header(RUNTIME_EVENT, result.schema_versions)
        if negotiated != self.version:
            log.info("negotiated runtime-event schema", extra=fields(version=str(negotiated)))
            self.version = negotiated
            return True
        return False

    def _prepare(self, records: Sequence[BufferRecord]) -> _Batch:
        with span("batch", events=len(records), links=self._links(records)) as current:
            lines, version = self._encode(records)
            body, headers = self.client.prepare(lines, self._accept_header) if lines else (b"", {})
        return _Batch(records, lines, version, body, headers, _span_context(current))

    async def _prepare_async(self, records: Sequence[BufferRecord]) -> _Batch:
        """As :meth:`_prepare`, with joining and gzip in a worker thread (zlib releases the GIL), so that it
        overlaps with a POST in flight."""
        with span("batch", events=len(records), links=self._links(records)) as current:
            lines, version = self._encode(records)
            if not lines:
                return _Batch(records, lines, version, b"", {})
            body, headers = await asyncio.to_thread(self.client.prepare, lines, self._accept_header)
        return _Batch(records, lines, version, body, headers, _span_context(current))

    async def _post(self, batch: _Batch) -> tuple[PostResult, bool]:
        """POST a prepared batch; (result, whether the negotiated version changed)."""
        with span("post", parent=batch.trace, events=len(batch.lines), version=str(batch.version)):
            result = await self.client.post_prepared(batch.body, batch.headers)
        if result.status is not None:
            self.metrics.backend_latency_ms.labels(endpoint=_ENDPOINT).observe(result.latency_ms)
        return result, self._negotiate(result)

    def _more_ready(self, in_hand: int) -> bool:
        """Whether to read the next batch now (a full one is waiting, or flush() wants everything)."""
        return bool(self._flush_requested) or self.buffer.pending - in_hand >= self.batch_max

    async def _deliver_stream(self, records: Sequence[BufferRecord]) -> float | None:
        """Deliver ``records`` and the batches after them, preparing (encoding, gzipping) the next batch
        while the backend works on the current one. Same result as :meth:`_deliver`."""
        batch: _Batch | None = await self._prepare_async(records)
        while batch is not None:
            if batch.version != (self.version or self._current):
                batch = self._prepare(batch.records)  # the negotiated version changed meanwhile
            if not batch.lines:
                self.buffer.ack(batch.records[-1].seq)
                upcoming = self.buffer.read(self.batch_max) if self._more_ready(0) else []
                batch = await self._prepare_async(upcoming) if upcoming else None
                continue
            posting = asyncio.ensure_future(self._post(batch))
            upcoming = self.buffer.read(self.batch_max) if self._more_ready(len(batch.records)) else []
            preparing = asyncio.ensure_future(self._prepare_async(upcoming)) if upcoming else None
            try:
                result, changed = await posting
                following = await preparing if preparing is not None else None
            except BaseException:
                posting.cancel()
                if preparing is not None:
                    preparing.cancel()
                raise
            if result.outcome is not Outcome.ACKED:
                delay = await self._deliver(batch.records, (result, changed), batch)
                if delay is not None:
                    return delay  # the caller rewinds: a prefetched batch is re-read from disk later
                batch = following  # settled (refused events isolated): go on in order
                continue
            self._acknowledged(batch, result)
            self._update_gauges()
            self._progress.set()
            batch = following
        return None

    def _acknowledged(self, batch: _Batch, result: PostResult) -> None:
        self._backoff.reset()
        self.buffer.ack(batch.records[-1].seq)
        refused = {index for index, _reason in result.rejected if index < len(batch.lines)}
        for index, reason in result.rejected:
            if index < len(batch.lines):  # accepted batch, but this line was refused (e.g. another tenant)
                self._reject_line(batch.lines[index], f"HTTP {result.status}: {reason}")
        delivered = len(batch.lines) - len(refused)
        self.delivered_total += delivered
        self.metrics.events_delivered.inc(delivered)
        self._report_gap()

    async def _deliver(
        self,
        records: Sequence[BufferRecord],
        answered: tuple[PostResult, bool] | None = None,
        prepared: _Batch | None = None,
    ) -> float | None:
        """Deliver ``records`` in order, settling refused ones as rejected. None when all are settled, else
        the delay before a retry (records up to the last acknowledged one stay settled). ``answered`` is the
        backend's answer to ``prepared`` when the caller already posted it."""
        while True:
            batch = prepared or self._prepare(records)
            version, lines = batch.version, batch.lines
            if not lines:
                self.buffer.ack(records[-1].seq)
                return None
            result, changed = answered or await self._post(batch)
            answered = prepared = None
            if result.outcome is Outcome.ACKED:
                self._acknowledged(batch, result)
                return None
            if result.outcome is Outcome.REJECTED:
                if changed and self.version != version:
                    continue  # the backend speaks another version: re-encode and resend
                self._backoff.reset()
                if len(records) == 1:
                    self._reject_one(records[0], f"HTTP {result.status}: {result.detail}")
                    self.buffer.ack(records[0].seq)
                    return None
                middle = len(records) // 2
                delay = await self._deliver(records[:middle])
                if delay is None:
                    delay = await self._deliver(records[middle:])
                return delay
            self.metrics.backend_failures.labels(endpoint=_ENDPOINT).inc()
            self._told_to_wait = False
            if result.outcome is Outcome.BACKOFF and result.retry_after is not None:
                delay = result.retry_after
                self._told_to_wait = True  # flush() must not cut a Retry-After short
                self._backoff.attempt += 1
            elif result.outcome is Outcome.FATAL:
                delay = _FATAL_RETRY_SECONDS
            else:
                delay = self._backoff.next_delay()
            log.warning(
                "backend did not accept the batch; will retry",
                extra=fields(
                    status=result.status,
                    outcome=result.outcome.value,
                    delaySeconds=round(delay, 3),
                    events=len(lines),
                    detail=result.detail[:200],
                ),
            )
            return delay

    def _reject_one(self, record: BufferRecord, reason: str) -> None:
        self.rejected_total += 1
        self.metrics.events_rejected.inc()
        event_id = None
        with contextlib.suppress(Exception):
            event_id = orjson.loads(record.payload)["event"]["eventId"]
        log.error(
            "backend rejected an event; skipped",
            extra=fields(eventId=event_id, seq=record.seq, reason=reason[:500]),
        )

    def _reject_line(self, line: bytes, reason: str) -> None:
        self.rejected_total += 1
        self.metrics.events_rejected.inc()
        event_id = None
        with contextlib.suppress(Exception):
            event_id = orjson.loads(line)["event"]["eventId"]
        log.error("backend rejected an event; skipped", extra=fields(eventId=event_id, reason=reason[:500]))

    def _report_gap(self) -> None:
        gap = self.buffer.take_gap()
        if gap is None:
            return
        event = gap_warning_event(
            gap, tenant=self.config.runtime.tenant, node=self.node_name, engine=self.config.runtime.engine
        )
        log.warning(
            "events were dropped from the disk buffer",
            extra=fields(
                code="buffer.drop",
                count=gap.count,
                since=event.warning.since.isoformat() if event.warning and event.warning.since else None,
                until=event.warning.until.isoformat() if event.warning and event.warning.until else None,
            ),
        )
        if self.version is not None and self.version.minor == 0:
            return  # a v1.0 backend cannot take AGENT_WARNING: the log line above is the record
        try:
            self.buffer.append(self.envelope_line(event), _ts_us(event.when), count_loss=False)
        except (DiskBufferFull, DiskBufferError):
            self.buffer.restore_gap(gap)  # the disk is still full: reported once there is room
            return
        self.metrics.events_total.labels(kind=event.kind.value).inc()

    # ------------------------------------------------------------------------------------- metrics

    def _on_drop(self, count: int, since_us: int | None, until_us: int | None) -> None:
        if count:
            self.metrics.buffer_drops.inc(count)

    def _on_corrupt(self, count: int) -> None:
        self.metrics.buffer_corrupt.inc(count)

    def _update_gauges(self) -> None:
        self.metrics.buffer_bytes.set(self.buffer.bytes_in_use)
        self.metrics.buffer_pending.set(self.buffer.pending)
