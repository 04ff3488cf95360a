"""Local rate limit with coalescing (spec §6 ``zastava.limits``).

Events within the token bucket (``eventsPerSecond``, ``burst``) pass straight through. Past it, events wait
in a bounded queue (``perNodeQueue`` entries) that drains at the configured rate; an event identical to one
still waiting (same content apart from ``eventId``, ``when`` and ``count``) is folded into it, and the
released event carries ``count`` = how many were folded (contract v1.1). When the queue is full a new
distinct event is refused and counted — the bound keeps memory fixed under an event storm.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ...contracts import RuntimeEvent, canonical_id

__all__ = ["Admission", "Coalescer", "TokenBucket", "coalesce_key"]


class TokenBucket:
    """Classic token bucket; ``clock`` is injectable for tests."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._stamp = now

    def try_take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until one token is available."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate


def coalesce_key(event: RuntimeEvent) -> str:
    """Identity of an event for coalescing: its canonical id without ``eventId``, ``when``, ``count``."""
    body = event.wire()
    for key in ("eventId", "when", "count"):
        body.pop(key, None)
    return canonical_id(body)


@dataclass
class _Waiting:
    event: RuntimeEvent
    count: int


class Admission:
    """Outcome of :meth:`Coalescer.offer`."""

    ACCEPT = "accept"  # publish now
    QUEUED = "queued"
    COALESCED = "coalesced"
    DROPPED = "dropped"  # queue full


class Coalescer:
    """The bounded waiting queue behind the token bucket."""

    def __init__(self, bucket: TokenBucket, max_queue: int) -> None:
        self.bucket = bucket
        self.max_queue = max_queue
        self._waiting: OrderedDict[str, _Waiting] = OrderedDict()
        self.coalesced_total = 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def offer(self, event: RuntimeEvent) -> str:
        """Admit ``event``: ACCEPT (publish it now), QUEUED, COALESCED or DROPPED."""
        if not self._waiting and self.bucket.try_take():
            return Admission.ACCEPT
        key = coalesce_key(event)
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.count += event.count or 1
            self.coalesced_total += 1
            return Admission.COALESCED
        if len(self._waiting) >= self.max_queue:
            self.dropped_total += 1
            return Admission.DROPPED
        self._waiting[key] = _Waiting(event, event.count or 1)
        return Admission.QUEUED

    def release(self) -> list[RuntimeEvent]:
        """Waiting events the bucket lets through now, oldest first, with ``count`` and a new ``eventId``."""
        out: list[RuntimeEvent] = []
        while self._waiting and self.bucket.try_take():
            _key, waiting = self._waiting.popitem(last=False)
            out.append(_finish(waiting))
        return out

    def drain(self) -> list[RuntimeEvent]:
        """Everything waiting, regardless of the rate (used on shutdown: persisting loses nothing)."""
        out = [_finish(w) for w in self._waiting.values()]
        self._waiting.clear()
        return out

    def wait_time(self) -> float:
        return self.bucket.wait_time() if self._waiting else 0.0


def _finish(waiting: _Waiting) -> RuntimeEvent:
    if waiting.count <= 1 and waiting.event.count is None:
        return waiting.event
    return waiting.event.model_copy(update={"count": waiting.count}).with_computed_id()
