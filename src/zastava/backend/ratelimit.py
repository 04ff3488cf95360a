"""Per-tenant and per-node rate caps on ingested events: token buckets, all-or-nothing per request.

A request is admitted when every bucket it touches holds at least ``min(n, burst)`` tokens; it then takes all
``n`` (a bucket may go negative, so a batch larger than the burst is admitted when the bucket is full and then
pays its debt). When refused, nothing is taken and the caller gets the seconds to wait (``Retry-After``).
Buckets are per process; idle ones are evicted past ``max_keys``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["RateLimiter", "TokenBucket"]


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, n: float) -> float:
        need = min(n, self.burst) - self.tokens
        return 0.0 if need <= 0 else need / self.rate


class RateLimiter:
    def __init__(
        self,
        tenant: tuple[float, float],
        node: tuple[float, float],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.tenant_rate, self.tenant_burst = tenant
        self.node_rate, self.node_burst = node
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[tuple[str, ...], TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, key: tuple[str, ...], rate: float, burst: float, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(rate, burst, burst, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.refill(now)
        return bucket

    def acquire(self, tenant: str, per_node: Mapping[str, int]) -> float | None:
        """Take the tokens, or return the seconds to wait (nothing taken)."""
        total = sum(per_node.values())
        if total <= 0:
            return None
        with self._lock:
            now = self.clock()
            wanted = [(self._bucket(("t", tenant), self.tenant_rate, self.tenant_burst, now), total)]
            wanted += [
                (self._bucket(("n", tenant, node), self.node_rate, self.node_burst, now), count)
                for node, count in per_node.items()
            ]
            wait = max(bucket.wait_for(n) for bucket, n in wanted)
            if wait > 0:
                return wait
            for bucket, n in wanted:
                bucket.tokens -= n
            return None

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
