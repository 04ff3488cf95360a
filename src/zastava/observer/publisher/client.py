"""HTTP side of the publisher: one pooled httpx client, gzip, ``Retry-After``, jittered backoff.

:class:`EventsClient` performs one POST of an ND-JSON batch and classifies the answer; the retry policy lives
in the publisher's sender loop, which uses :class:`Backoff` and :func:`parse_retry_after`.
"""

from __future__ import annotations

import email.utils
import random
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import httpx
import orjson

from ...contracts import SCHEMA_VERSIONS_HEADER

__all__ = [
    "Backoff",
    "EventsClient",
    "HeadersProvider",
    "Outcome",
    "PostResult",
    "gzip_bytes",
    "parse_retry_after",
]

#: Given the HTTP method and the URL, returns headers to add (OpTok/DPoP in production).
HeadersProvider = Callable[[str, str], Awaitable[dict[str, str]]]

#: Retry-After values above this are capped (a confused backend must not park the agent for a day).
MAX_RETRY_AFTER_SECONDS = 300.0


class Outcome(Enum):
    ACKED = "acked"  # 2xx
    BACKOFF = "backoff"  # 429 / 503: wait Retry-After (or backoff)
    RETRY = "retry"  # other 5xx, 408, connection errors, timeouts
    REJECTED = "rejected"  # 400 / 413 / 422: the batch itself is refused
    FATAL = "fatal"  # 401 / 403 / 404 …: configuration or auth; retried slowly, never dropped


@dataclass(frozen=True)
class PostResult:
    outcome: Outcome
    status: int | None
    retry_after: float | None = None
    schema_versions: str | None = None
    detail: str = ""
    latency_ms: float = 0.0
    #: lines of an accepted batch that the backend refused one by one: (0-based line index, reason)
    rejected: tuple[tuple[int, str], ...] = ()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or HTTP-date); None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def _line_rejections(body: bytes) -> tuple[tuple[int, str], ...]:
    """``rejected: [{index, error}]`` of an ingest answer (the reference backend stores the other lines)."""
    if b'"rejected"' not in body:
        return ()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ()
    items = data.get("rejected") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return ()
    out: list[tuple[int, str]] = []
    for item in items[:100_000]:
        if isinstance(item, dict) and isinstance(item.get("index"), int) and item["index"] >= 0:
            out.append((item["index"], str(item.get("error", ""))[:500]))
    return tuple(out)


class Backoff:
    """Exponential backoff, full jitter: ``uniform(0, min(cap, base * 2**attempt))``, at least ``floor``."""

    def __init__(
        self, base: float = 0.2, cap: float = 30.0, floor: float = 0.05, rng: random.Random | None = None
    ) -> None:
        self.base, self.cap, self.floor = base, cap, floor
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return max(self.floor, self._rng.uniform(0, ceiling))

    def reset(self) -> None:
        self.attempt = 0


def gzip_bytes(data: bytes, level: int = 1) -> bytes:
    """gzip member (RFC 1952) of ``data``; level 1 trades a little ratio for a lot of speed."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


class EventsClient:
    """POSTs ND-JSON batches to ``{base}{path}``."""

    def __init__(
        self,
        base_address: str,
        events_path: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        headers_provider: HeadersProvider | None = None,
        gzip: bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.url = base_address.rstrip("/") + events_path
        self.gzip = gzip
        self._own_client = http_client is None
        self._client = http_client or httpx.AsyncClient(
            http2=True, timeout=timeout, limits=httpx.Limits(max_connections=4, max_keepalive_connections=2)
        )
        self._headers_provider = headers_provider
        self.timeout = timeout

    def prepare(self, lines: Sequence[bytes], accept_versions: str) -> tuple[bytes, dict[str, str]]:
        """Body (ND-JSON, gzipped when configured) and headers of a batch; CPU only, no I/O."""
        body = b"\n".join(lines) + b"\n"
        headers = {
            "Content-Type": "application/x-ndjson",
            "Accept": "application/json",
            SCHEMA_VERSIONS_HEADER: accept_versions,
        }
        if self.gzip:
            body = gzip_bytes(body)
            headers["Content-Encoding"] = "gzip"
        return body, headers

    async def post(self, lines: Sequence[bytes], accept_versions: str) -> PostResult:
        return await self.post_prepared(*self.prepare(lines, accept_versions))

    async def post_prepared(self, body: bytes, headers: dict[str, str]) -> PostResult:
        headers = dict(headers)
        started = time.perf_counter()
        try:
            if self._headers_provider is not None:
                headers.update(await self._headers_provider("POST", self.url))
            response = await self._client.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            return PostResult(
                Outcome.RETRY,
                None,
                detail=f"{type(exc).__name__}: {exc}",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        latency = (time.perf_counter() - started) * 1000
        status = response.status_code
        schema = response.headers.get(SCHEMA_VERSIONS_HEADER)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        detail = response.text[:500] if status >= 300 else ""
        if 200 <= status < 300:
            outcome = Outcome.ACKED
        elif status in (429, 503):
            outcome = Outcome.BACKOFF
        elif status in (400, 413, 422):
            outcome = Outcome.REJECTED
        elif status >= 500 or status == 408:
            outcome = Outcome.RETRY
        else:
            outcome = Outcome.FATAL
        rejected = _line_rejections(response.content) if outcome is Outcome.ACKED else ()
        return PostResult(outcome, status, retry_after, schema, detail, latency, rejected)

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()
