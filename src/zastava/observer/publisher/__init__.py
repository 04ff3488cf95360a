"""Durable runtime-event publisher (spec §3.3, §12): rate limit/coalescing, disk ring buffer, batching, gzip.

Modules: :mod:`.buffer` (segment files, checksums, cap, replay, reclaim), :mod:`.ratelimit` (token bucket,
coalescing, ``perNodeQueue``), :mod:`.client` (pooled httpx, ``Retry-After``, backoff), :mod:`.publisher`
(the async pipeline, :class:`EventPublisher`), :mod:`.cli` (``zastava events send|tail``).
"""

from .buffer import BufferRecord, DiskBuffer, Gap
from .client import Backoff, EventsClient, Outcome, PostResult, parse_retry_after
from .publisher import EventPublisher, PublisherClosed, gap_warning_event
from .ratelimit import Coalescer, TokenBucket, coalesce_key

__all__ = [
    "Backoff",
    "BufferRecord",
    "Coalescer",
    "DiskBuffer",
    "EventPublisher",
    "EventsClient",
    "Gap",
    "Outcome",
    "PostResult",
    "PublisherClosed",
    "TokenBucket",
    "coalesce_key",
    "gap_warning_event",
    "parse_retry_after",
]
