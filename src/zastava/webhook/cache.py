"""Per-image policy results: TTL from the backend, single-flight, short TTL for failures, revision-keyed.

An entry is keyed by everything the backend's verdict depends on (:class:`PolicyKey`): the pinned reference
``registry/repository@sha256:…`` (the digest, qualified by its repository because signatures and SBOM
referrers live per repository) and the request context the backend's rules read — the namespace and the
Pod's labels (rules select by ``namespaces``/``excludeNamespaces``/``labels``). Without the context an image
reviewed first in ``dev`` would be admitted in ``prod`` from the cache. Entries also carry the backend's
``policyRevision``: when a response carries a new revision every older entry stops matching (the revision is
learned from answers, so it qualifies entries rather than the lookup key). Concurrent lookups of one key
share a single backend call; the call runs in its own task, so a review that hits its
deadline does not cancel it for the others and its answer still warms the cache. Failures are cached for
``failure_ttl`` seconds so a down backend is not hammered by every review. The cache is bounded (oldest
entries are evicted first).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from ..contracts import ImagePolicy, RuntimePolicyResponse

__all__ = ["CacheEntry", "Fetch", "PolicyCache", "PolicyContext", "PolicyKey"]


class PolicyContext(NamedTuple):
    """The inputs of one review that the backend's rules may read, shared by all images of the Pod.

    Labels are kept whole (sorted ``(key, value)`` pairs): the webhook cannot know which labels the backend's
    rules select on. Verdicts that depend on more inputs (a trust-policy revision, …) add a field here (with
    a default), and the key follows. Named tuples, not dataclasses: building and hashing the key of a
    warm review costs ~1 µs instead of ~4 µs (docs/benchmarks.md).
    """

    namespace: str
    labels: tuple[tuple[str, str], ...] = ()
    #: the webhook's trust-policy revision (``admission.trustPolicies``): verdicts of a backend that reads the
    #: same section change with it, and its own revision is only learned from answers
    trust: str = ""

    @classmethod
    def of(cls, namespace: str | None, labels: Mapping[str, str]) -> PolicyContext:
        return cls(namespace or "", tuple(sorted(labels.items())))


class PolicyKey(NamedTuple):
    """A cached verdict's key: the image (pinned ``registry/repository@sha256:…``) in its context."""

    image: str
    context: PolicyContext


#: Fetches policy results for a list of keys of one context (one backend round trip).
Fetch = Callable[[list[PolicyKey]], Awaitable[RuntimePolicyResponse]]


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
        self._entries: OrderedDict[PolicyKey, CacheEntry] = OrderedDict()
        self._inflight: dict[PolicyKey, asyncio.Future[CacheEntry]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.fetches = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: PolicyKey) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock() or (entry.result is not None and entry.revision != self.revision):
            del self._entries[key]
            return None
        return entry

    def get_all(self, keys: Iterable[PolicyKey]) -> dict[PolicyKey, CacheEntry] | None:
        """Entries for every key when all are cached and fresh, else None (the synchronous warm path)."""
        found: dict[PolicyKey, CacheEntry] = {}
        for key in keys:
            entry = self.get(key)
            if entry is None:
                return None
            found[key] = entry
        return found

    def clear(self) -> None:
        self._entries.clear()

    def _store(self, key: PolicyKey, entry: CacheEntry) -> None:
        if entry.expires <= self.clock() or "@" not in key.image:
            return  # nothing to keep, or a mutable tag reference (never cached)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _failure(self, message: str) -> CacheEntry:
        return CacheEntry(None, message, self.clock() + self.failure_ttl, self.revision, 0)

    async def _run(
        self, keys: list[PolicyKey], fetch: Fetch, futures: dict[PolicyKey, asyncio.Future[CacheEntry]]
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
                result = response.results.get(key.image)
                if result is None:
                    entries[key] = self._failure(f"backend returned no result for {key.image}")
                else:
                    entries[key] = CacheEntry(result, None, now + ttl, self.revision, int(ttl))
                self._store(key, entries[key])
        finally:
            for key in keys:
                self._inflight.pop(key, None)
        self._settle(futures, entries)

    @staticmethod
    def _settle(
        futures: dict[PolicyKey, asyncio.Future[CacheEntry]], entries: dict[PolicyKey, CacheEntry]
    ) -> None:
        for key, future in futures.items():
            if not future.done():
                future.set_result(entries[key])

    async def get_many(
        self, keys: Iterable[PolicyKey], fetch: Fetch
    ) -> tuple[dict[PolicyKey, CacheEntry], int]:
        """Entries for ``keys`` (one backend call for all misses) and how many were cache hits.

        Cancelling the caller (deadline) leaves the shared backend call running.
        """
        found: dict[PolicyKey, CacheEntry] = {}
        waiting: dict[PolicyKey, asyncio.Future[CacheEntry]] = {}
        missing: list[PolicyKey] = []
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
