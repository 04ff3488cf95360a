"""Per-image policy results: TTL from the backend, single-flight, short TTL for failures, revision-keyed.

Entries are keyed by the pinned reference ``registry/repository@sha256:…`` (the digest, qualified by its
repository because signatures and SBOM referrers live per repository) and by the backend's
``policyRevision``: when a response carries a new revision every older entry stops matching. Concurrent
lookups of one key share a single backend call; the call runs in its own task, so a review that hits its
deadline does not cancel it for the others and its answer still warms the cache. Failures are cached for
``failure_ttl`` seconds so a down backend is not hammered by every review. The cache is bounded (oldest
entries are evicted first).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from ..contracts import ImagePolicy, RuntimePolicyResponse

__all__ = ["CacheEntry", "Fetch", "PolicyCache"]

#: Fetches policy results for a list of image references (one backend round trip).
Fetch = Callable[[list[str]], Awaitable[RuntimePolicyResponse]]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    result: ImagePolicy | None
    error: str | None
    expires: float
    revision: str | None
    ttl_seconds: int


class PolicyCache:
    def __init__(
        self,
        *,
        max_ttl_seconds: float = 300,
        failure_ttl_seconds: float = 5,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_ttl = max_ttl_seconds
        self.failure_ttl = failure_ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self.revision: str | None = None
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[CacheEntry]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.fetches = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock() or (entry.result is not None and entry.revision != self.revision):
            del self._entries[key]
            return None
        return entry

    def get_all(self, keys: Iterable[str]) -> dict[str, CacheEntry] | None:
        """Entries for every key when all are cached and fresh, else None (the synchronous warm path)."""
        found: dict[str, CacheEntry] = {}
        for key in keys:
            entry = self.get(key)
            if entry is None:
                return None
            found[key] = entry
        return found

    def clear(self) -> None:
        self._entries.clear()

    def _store(self, key: str, entry: CacheEntry) -> None:
        if entry.expires <= self.clock() or "@" not in key:
            return  # nothing to keep, or a mutable tag reference (never cached)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _failure(self, message: str) -> CacheEntry:
        return CacheEntry(None, message, self.clock() + self.failure_ttl, self.revision, 0)

    async def _run(
        self, keys: list[str], fetch: Fetch, futures: dict[str, asyncio.Future[CacheEntry]]
    ) -> None:
        try:
            self.fetches += 1
            response = await fetch(keys)
        except asyncio.CancelledError:
            for key in keys:
                self._inflight.pop(key, None)
            self._settle(futures, {key: self._failure("policy lookup cancelled") for key in keys})
            raise
        except Exception as exc:  # every failure is an answer: the admitter applies fail-open/closed
            message = str(exc) or type(exc).__name__
            entries = {key: self._failure(message) for key in keys}
            for key, entry in entries.items():
                self._store(key, entry)
        else:
            if response.policy_revision != self.revision:
                self.revision = response.policy_revision
                self._entries.clear()
            ttl = min(float(response.ttl_seconds), self.max_ttl)
            now = self.clock()
            entries = {}
            for key in keys:
                result = response.results.get(key)
                if result is None:
                    entries[key] = self._failure(f"backend returned no result for {key}")
                else:
                    entries[key] = CacheEntry(result, None, now + ttl, self.revision, int(ttl))
                self._store(key, entries[key])
        finally:
            for key in keys:
                self._inflight.pop(key, None)
        self._settle(futures, entries)

    @staticmethod
    def _settle(futures: dict[str, asyncio.Future[CacheEntry]], entries: dict[str, CacheEntry]) -> None:
        for key, future in futures.items():
            if not future.done():
                future.set_result(entries[key])

    async def get_many(self, keys: Iterable[str], fetch: Fetch) -> tuple[dict[str, CacheEntry], int]:
        """Entries for ``keys`` (one backend call for all misses) and how many were cache hits.

        Cancelling the caller (deadline) leaves the shared backend call running.
        """
        found: dict[str, CacheEntry] = {}
        waiting: dict[str, asyncio.Future[CacheEntry]] = {}
        missing: list[str] = []
        hits = 0
        for key in dict.fromkeys(keys):
            entry = self.get(key)
            if entry is not None:
                found[key] = entry
                hits += 1
            elif key in self._inflight:
                waiting[key] = self._inflight[key]
            else:
                missing.append(key)
        if missing:
            loop = asyncio.get_running_loop()
            futures = {key: loop.create_future() for key in missing}
            self._inflight.update(futures)
            task = loop.create_task(self._run(missing, fetch, futures))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            waiting.update(futures)
        for key, future in waiting.items():
            found[key] = await asyncio.shield(future)
        return found, hits

    async def drain(self) -> None:
        """Wait for the backend calls still running (tests)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel the backend calls still running (shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await self.drain()
