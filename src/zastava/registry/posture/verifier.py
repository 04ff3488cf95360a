"""Verification of image digests against the trust policies, as admission and the backend need it: fetch the
material, evaluate, cache.

:class:`ImageVerifier` answers one :class:`VerifyOutcome` per image: the verdict, or why there is none (the
registry could not be reached → ``unavailable``, the caller applies fail-open/closed; the digest does not
exist → an error that denies). Outcomes are cached per (repository, digest, trust-policy revision) for
``ttl_seconds`` (signatures can be added or deleted in the registry, so even a digest's verdict is not
forever), failures for ``failure_ttl_seconds``. Concurrent requests for one digest share one verification,
which runs in its own task: a caller that hits its deadline stops waiting but does not cancel it, so its
answer still warms the cache. The verifier is bounded: at most ``max_entries`` outcomes are kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from ...telemetry import fields
from ..errors import (
    AuthenticationError,
    InvalidManifest,
    ManifestNotFound,
    RegistryError,
    RegistryUnavailable,
)
from ..reference import ImageReference
from ..transport.client import RegistryClient
from ..transport.manifest import MANIFEST_MEDIA_TYPES, Descriptor, DigestPolicy, ResolvedImage
from ..verification.policies import Combine, ImageVerdict, TrustPolicies, evaluate
from .fetch import fetch_material
from .summary import VerificationCache

__all__ = ["ImageVerifier", "VerificationKey", "VerifyOutcome"]

log = logging.getLogger("zastava.registry.verifier")


class VerificationKey(NamedTuple):
    """Everything a verification outcome depends on."""

    name: str  # registry/repository: signatures and referrers live per repository
    digest: str
    revision: str  # trust-policy revision


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    key: VerificationKey
    verdict: ImageVerdict | None
    error: str | None = None
    #: the registry could not be reached (fail-open/closed applies); else ``error`` denies
    unavailable: bool = False
    expires: float = 0.0

    @property
    def pinned(self) -> str:
        return f"{self.key.name}@{self.key.digest}"


#: An index with more runnable manifests than this is refused: each is fetched and verified (up to 32
#: signature layers and 32 bundles apiece, against every authority), and the evaluation runs in a thread that
#: a timeout does not stop. Official multi-platform images carry 2–10 platforms (golang: 10), plus as many
#: attestation manifests, which are not counted.
MAX_PLATFORMS = 16


def _combine(policy: DigestPolicy, platforms: int) -> Combine:
    """How the per-digest results combine: ``index`` — the one digest; ``platform`` — every platform
    manifest; ``all`` — the index and every platform; ``any`` — the index, or else every platform."""
    if policy == "any" and platforms:
        return "index-or-each"
    return "all" if policy in ("all", "platform") else "any"


def _runnable(entry: Descriptor) -> bool:
    """A manifest of an index that a node may pull and run. Only the platform decides, as it does for the
    runtime (containerd matches the descriptor's platform; one without a platform matches every node): a
    buildx attestation manifest is ``unknown/unknown`` and is skipped, but an annotation alone
    (``vnd.docker.reference.type: attestation-manifest`` on a ``linux/arm64`` entry) must not exempt a
    manifest an arm64 node would run."""
    platform = entry.platform or {}
    return not (platform.get("os") == "unknown" and platform.get("architecture") == "unknown")


class ImageVerifier:
    def __init__(
        self,
        client: RegistryClient,
        policies: TrustPolicies,
        *,
        digest_policy: DigestPolicy | None = None,
        ttl_seconds: float = 300.0,
        failure_ttl_seconds: float = 5.0,
        max_entries: int = 10_000,
        timeout_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.policies = policies
        self.digest_policy: DigestPolicy = digest_policy or client.config.digest_policy
        self.ttl = ttl_seconds
        self.failure_ttl = failure_ttl_seconds
        self.max_entries = max_entries
        #: one verification's bound (``registry.verifyTimeoutSeconds``); admission waits less when its
        #: deadline is nearer, and then the verification still ends by this bound
        self.timeout = timeout_seconds
        self.clock = clock
        self.findings = VerificationCache()
        self._outcomes: OrderedDict[VerificationKey, VerifyOutcome] = OrderedDict()
        self._inflight: dict[VerificationKey, asyncio.Future[VerifyOutcome]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.verifications = 0

    @property
    def revision(self) -> str:
        return self.policies.revision

    def key(self, ref: ImageReference) -> VerificationKey:
        assert ref.digest is not None, "verification is keyed by digest"
        return VerificationKey(ref.name, ref.digest, self.policies.revision)

    def cached(self, ref: ImageReference) -> VerifyOutcome | None:
        """The fresh outcome for a pinned reference, without waiting (the warm path)."""
        if ref.digest is None:
            return None
        key = self.key(ref)
        outcome = self._outcomes.get(key)
        if outcome is None:
            return None
        if outcome.expires <= self.clock():
            del self._outcomes[key]
            return None
        return outcome

    async def verify(self, ref: ImageReference) -> VerifyOutcome:
        """The outcome for ``ref`` (a tag is resolved to its digest first); never raises for registry
        trouble. Cancelling the caller leaves the shared verification running."""
        if ref.digest is None:
            try:
                async with asyncio.timeout(self.timeout):
                    resolved = await self.client.resolve(ref)
            except RegistryError as exc:
                return self._failure(VerificationKey(ref.name, "", self.revision), exc)
            except TimeoutError:
                message = f"registry unavailable: the tag did not resolve within {self.timeout:g} s"
                key = VerificationKey(ref.name, "", self.revision)
                return VerifyOutcome(key, None, message, True, self.clock() + self.failure_ttl)
            ref = ref.with_digest(resolved.digest)
        hit = self.cached(ref)
        if hit is not None:
            return hit
        key = self.key(ref)
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
            task = asyncio.get_running_loop().create_task(self._run(ref, key, future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(future)

    async def _run(
        self, ref: ImageReference, key: VerificationKey, future: asyncio.Future[VerifyOutcome]
    ) -> None:
        try:
            outcome = await self._compute(ref, key)
        except asyncio.CancelledError:
            if not future.done():
                future.set_result(VerifyOutcome(key, None, "verification cancelled", unavailable=True))
            raise
        except Exception as exc:  # a bug must not leave waiters hanging; it is answered as unavailable
            log.exception("verification failed unexpectedly", extra=fields(image=str(ref)))
            outcome = VerifyOutcome(
                key, None, f"verification failed: {type(exc).__name__}", True, self.clock() + self.failure_ttl
            )
        finally:
            self._inflight.pop(key, None)
        self._store(outcome)
        if not future.done():
            future.set_result(outcome)

    async def _compute(self, ref: ImageReference, key: VerificationKey) -> VerifyOutcome:
        self.verifications += 1
        try:
            # a registry that trickles bytes (each read within readTimeoutSeconds) cannot hold a
            # verification, nor the task and connection behind it, for longer than the bound
            async with asyncio.timeout(self.timeout):
                return await self._fetch_and_evaluate(ref, key)
        except TimeoutError:
            message = f"registry unavailable: verification did not finish within {self.timeout:g} s"
            log.warning("image verification timed out", extra=fields(image=key.name, digest=key.digest))
            return VerifyOutcome(key, None, message, True, self.clock() + self.failure_ttl)

    async def _fetch_and_evaluate(self, ref: ImageReference, key: VerificationKey) -> VerifyOutcome:
        try:
            resolved = await self.client.resolve(ref)
            digests, platforms = await self._digests(ref, resolved)
            materials = await asyncio.gather(*(fetch_material(self.client, ref, d) for d in digests))
        except RegistryError as exc:
            return self._failure(key, exc)
        verdict = await asyncio.to_thread(
            evaluate,
            self.policies,
            ref.name,
            materials,
            combine=_combine(self.digest_policy, platforms),
            check=self.findings.check,
        )
        return VerifyOutcome(key, verdict, expires=self.clock() + self.ttl)

    async def _digests(self, ref: ImageReference, resolved: ResolvedImage) -> tuple[list[str], int]:
        """The digests the digest policy consults, and how many of them are platform manifests. For an index,
        ``platform``, ``any`` and ``all`` consult *every* runnable manifest of it: the Pod is pinned to the
        index, and a node of any architecture pulls its own platform's manifest — an unsigned arm64 build
        in an index whose amd64 build is signed must not pass because the webhook runs on amd64."""
        policy = self.digest_policy
        if policy == "index" or not resolved.is_index:
            return resolved.digests_for(policy), 0
        index = await self.client.manifest(ref.with_digest(resolved.digest))
        entries = [e for e in index.manifests() if _runnable(e)]
        nested = next((e for e in entries if e.media_type not in MANIFEST_MEDIA_TYPES), None)
        if nested is not None:
            # containerd walks nested indexes: a signed manifest beside an unsigned nested index must not
            # pass; an index of indexes (or of unknown manifest types) is refused, not half-verified
            raise InvalidManifest(
                f"{ref}: the index {resolved.digest} lists {nested.digest} of media type {nested.media_type} "
                "(nested indexes and non-image manifests are not verified per platform)"
            )
        platforms = list(dict.fromkeys(e.digest for e in entries))
        if not platforms:
            raise ManifestNotFound(f"{ref}: the index {resolved.digest} has no runnable manifest")
        if len(platforms) > MAX_PLATFORMS:
            raise InvalidManifest(
                f"{ref}: the index {resolved.digest} has {len(platforms)} manifests (at most {MAX_PLATFORMS})"
            )
        if policy == "platform":
            return platforms, len(platforms)
        return [resolved.digest, *platforms], len(platforms)

    def _failure(self, key: VerificationKey, exc: RegistryError) -> VerifyOutcome:
        unavailable = isinstance(exc, RegistryUnavailable | AuthenticationError)
        message = f"registry {'unavailable' if unavailable else 'error'}: {str(exc) or type(exc).__name__}"
        log.warning(
            "image verification failed", extra=fields(image=key.name, digest=key.digest, error=message)
        )
        return VerifyOutcome(key, None, message, unavailable, self.clock() + self.failure_ttl)

    def _store(self, outcome: VerifyOutcome) -> None:
        if outcome.expires <= self.clock() or not outcome.key.digest:
            return
        self._outcomes[outcome.key] = outcome
        self._outcomes.move_to_end(outcome.key)
        while len(self._outcomes) > self.max_entries:
            self._outcomes.popitem(last=False)

    def clear(self) -> None:
        self._outcomes.clear()

    async def drain(self) -> None:
        """Wait for the verifications still running (tests, benchmarks)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel the verifications still running (shutdown); the client is closed by its owner."""
        for task in list(self._tasks):
            task.cancel()
        await self.drain()
