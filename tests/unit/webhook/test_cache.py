"""The policy cache: single-flight, TTLs, revision keying, bounds. The fetch functions are in-process
callables standing for one backend round trip (the HTTP path is covered in tests/integration/webhook)."""

from __future__ import annotations

import asyncio

import pytest

from zastava.contracts import ImagePolicy, RuntimePolicyResponse
from zastava.webhook.cache import PolicyCache, PolicyContext, PolicyKey

from .reviews import DIGEST_A, DIGEST_B

PROD = PolicyContext.of("prod", {"app": "api", "env": "prod"})
A = PolicyKey(f"ghcr.io/acme/a@{DIGEST_A}", PROD)
B = PolicyKey(f"ghcr.io/acme/b@{DIGEST_B}", PROD)
PASS = ImagePolicy(signed=True, has_sbom=True, policy_verdict="pass")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    def __init__(self, *, ttl: int = 300, revision: str | None = "r1", delay: float = 0.0) -> None:
        self.ttl, self.revision, self.delay = ttl, revision, delay
        self.calls: list[list[PolicyKey]] = []
        self.fail: Exception | None = None

    async def __call__(self, keys: list[PolicyKey]) -> RuntimePolicyResponse:
        self.calls.append(keys)
        refs = [k.image for k in keys]
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return RuntimePolicyResponse(
            ttl_seconds=self.ttl, results={r: PASS for r in refs}, policy_revision=self.revision
        )


async def test_single_flight_for_concurrent_lookups() -> None:
    cache, backend = PolicyCache(), Backend(delay=0.05)
    results = await asyncio.gather(*(cache.get_many([A, B], backend) for _ in range(20)))
    assert backend.calls == [[A, B]]
    assert all(entries[A].result == PASS and entries[B].result == PASS for entries, _ in results)
    assert sum(hits for _, hits in results) == 0
    _, hits = await cache.get_many([A, B], backend)
    assert hits == 2 and len(backend.calls) == 1


async def test_partial_hit_fetches_only_the_misses() -> None:
    cache, backend = PolicyCache(), Backend()
    await cache.get_many([A], backend)
    _, hits = await cache.get_many([A, B], backend)
    assert hits == 1 and backend.calls == [[A], [B]]


async def test_ttl_from_backend_capped_by_config() -> None:
    clock = Clock()
    cache, backend = PolicyCache(clock=clock, max_ttl_seconds=300), Backend(ttl=60)
    await cache.get_many([A], backend)
    clock.now += 59
    assert cache.get(A) is not None
    clock.now += 2
    assert cache.get(A) is None
    backend.ttl = 10_000
    await cache.get_many([A], backend)
    assert cache.get(A) is not None and cache.get(A).ttl_seconds == 300  # type: ignore[union-attr]
    clock.now += 301
    assert cache.get(A) is None


async def test_zero_ttl_is_not_cached_and_tags_never_are() -> None:
    cache, backend = PolicyCache(), Backend(ttl=0)
    await cache.get_many([A], backend)
    assert len(cache) == 0
    backend.ttl = 300
    await cache.get_many([PolicyKey("ghcr.io/acme/a:1", PROD)], backend)
    assert len(cache) == 0


async def test_failures_cached_for_the_short_failure_ttl() -> None:
    clock = Clock()
    cache, backend = PolicyCache(clock=clock, failure_ttl_seconds=5), Backend()
    backend.fail = RuntimeError("backend policy answered HTTP 503")
    entries, _ = await cache.get_many([A], backend)
    assert entries[A].result is None and entries[A].error == "backend policy answered HTTP 503"
    backend.fail = None
    entries, _ = await cache.get_many([A], backend)
    assert entries[A].result is None and len(backend.calls) == 1  # still within the failure TTL
    clock.now += 6
    entries, _ = await cache.get_many([A], backend)
    assert entries[A].result == PASS and len(backend.calls) == 2


async def test_missing_result_is_a_failure() -> None:
    cache = PolicyCache()

    async def partial(keys: list[PolicyKey]) -> RuntimePolicyResponse:
        return RuntimePolicyResponse(ttl_seconds=60, results={A.image: PASS})

    entries, _ = await cache.get_many([A, B], partial)
    assert entries[A].result == PASS
    assert entries[B].error == f"backend returned no result for {B.image}"


async def test_new_policy_revision_drops_older_entries() -> None:
    cache, backend = PolicyCache(), Backend(revision="r1")
    await cache.get_many([A], backend)
    backend.revision = "r2"
    await cache.get_many([B], backend)
    assert cache.revision == "r2"
    assert cache.get(A) is None and cache.get(B) is not None


async def test_deadline_of_one_waiter_does_not_cancel_the_shared_call() -> None:
    cache, backend = PolicyCache(), Backend(delay=0.2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await cache.get_many([A], backend)
    entries, _ = await cache.get_many([A], backend)  # joins the call still in flight
    assert entries[A].result == PASS and len(backend.calls) == 1
    await cache.drain()


async def test_bounded() -> None:
    cache, backend = PolicyCache(max_entries=3), Backend()
    refs = [PolicyKey(f"ghcr.io/acme/x{i}@{DIGEST_A}", PROD) for i in range(5)]
    for ref in refs:
        await cache.get_many([ref], backend)
    assert len(cache) == 3 and cache.get(refs[0]) is None and cache.get(refs[-1]) is not None


async def test_the_context_is_part_of_the_key() -> None:
    """A verdict for the image in ``dev`` (or with other labels) is not the verdict in ``prod``."""
    cache, backend = PolicyCache(), Backend()
    image = A.image
    dev = PolicyKey(image, PolicyContext.of("dev", {"app": "api", "env": "prod"}))
    relabelled = PolicyKey(image, PolicyContext.of("prod", {"app": "api", "env": "dev"}))
    same = PolicyKey(image, PolicyContext.of("prod", {"env": "prod", "app": "api"}))  # label order
    await cache.get_many([A], backend)
    _, hits = await cache.get_many([dev], backend)
    assert hits == 0
    _, hits = await cache.get_many([relabelled], backend)
    assert hits == 0 and backend.calls == [[A], [dev], [relabelled]]
    assert same == A and cache.get_all([same]) is not None


async def test_close_cancels_inflight_calls() -> None:
    cache, backend = PolicyCache(), Backend(delay=10)
    waiter = asyncio.ensure_future(cache.get_many([A], backend))
    await asyncio.sleep(0.01)
    await cache.close()
    entries, _ = await waiter
    assert entries[A].error == "policy lookup cancelled"
