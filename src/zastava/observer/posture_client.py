"""Image posture for the observer: the backend's ``/policy/runtime`` answer per image digest, cached.

:class:`BackendPosture` asks ``POST {backend.baseAddress}{backend.policyPath}`` (spec §5.2) about one image
reference pinned by digest and caches the :class:`ImagePolicy` per (digest, namespace, labels) — the backend's
rules select by namespace and labels, so a verdict for one workload is not another's — for
``min(ttlSeconds, configured TTL)``; a changed ``policyRevision`` in any answer drops the cache.
``usage_paths`` reads the image's usage SBOM view from ``GET {base}/api/v1/scanner/catalog/images/{digest}``
(file paths of its components) for library drift. Failures never raise into the agent: they return None,
count ``zastava_backend_failures_total`` and are reported as evidence by the caller. Authentication is the
injected ``httpx.AsyncClient``'s business.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ..contracts import ImagePolicy, RuntimePolicyRequest, RuntimePolicyResponse
from ..registry.errors import InvalidReference
from ..registry.reference import parse_reference, validate_digest
from ..telemetry.logging import fields
from ..telemetry.metrics import ZastavaMetrics

__all__ = ["BackendPosture", "PostureAnswer", "digest_of"]

log = logging.getLogger("zastava.observer.posture")

_MAX_BODY = 8 << 20
_MAX_CACHE = 4096
CATALOG_PATH = "/api/v1/scanner/catalog/images/{digest}"


def digest_of(image_ref: str) -> str | None:
    """``repo@sha256:…`` or ``sha256:…`` → ``sha256:…`` (parsed by the one reference model)."""
    try:
        bare = image_ref.startswith("sha")
        digest = validate_digest(image_ref) if bare else parse_reference(image_ref).digest
    except InvalidReference:
        return None
    return digest if digest is not None and digest.startswith("sha256:") else None


#: (digest or reference, namespace, sorted labels): what the backend's verdict depends on
CacheKey = tuple[str, str, tuple[tuple[str, str], ...]]


def _key(image_ref: str, namespace: str | None, labels: Mapping[str, str] | None) -> CacheKey:
    return (digest_of(image_ref) or image_ref, namespace or "", tuple(sorted((labels or {}).items())))


@dataclass(frozen=True, slots=True)
class PostureAnswer:
    policy: ImagePolicy
    policy_revision: str | None
    fetched_at: float


class BackendPosture:
    def __init__(
        self,
        base_address: str,
        *,
        policy_path: str = "/api/v1/scanner/policy/runtime",
        client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        cache_ttl: float = 300.0,
        metrics: ZastavaMetrics | None = None,
        headers_provider: Callable[[str, str], Awaitable[dict[str, str]]] | None = None,
    ) -> None:
        self.base = base_address.rstrip("/")
        self.headers_provider = headers_provider
        self.policy_path = policy_path
        self._client = client
        self._own_client = client is None
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.metrics = metrics
        self._cache: dict[CacheKey, tuple[float, PostureAnswer]] = {}
        self._usage: dict[str, tuple[float, frozenset[str] | None]] = {}
        self.policy_revision: str | None = None
        self.last_error: str | None = None

    async def _auth(self, method: str, url: str) -> dict[str, str]:
        return await self.headers_provider(method, url) if self.headers_provider is not None else {}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    def _failed(self, endpoint: str, error: str) -> None:
        self.last_error = error[:500]
        if self.metrics is not None:
            self.metrics.backend_failures.labels(endpoint=endpoint).inc()
        log.warning("backend call failed", extra=fields(endpoint=endpoint, error=self.last_error))

    def _latency(self, endpoint: str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.backend_latency_ms.labels(endpoint=endpoint).observe(
                (time.monotonic() - started) * 1000
            )

    def cached(
        self, image_ref: str, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> PostureAnswer | None:
        hit = self._cache.get(_key(image_ref, namespace, labels))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    async def lookup(
        self, image_ref: str, *, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> PostureAnswer | None:
        """The backend's verdict on ``image_ref`` for the workload's namespace and labels (cached per digest
        and that context); None when it cannot be had."""
        hit = self.cached(image_ref, namespace, labels)
        if hit is not None:
            return hit
        request = RuntimePolicyRequest(namespace=namespace, labels=dict(labels or {}), images=[image_ref])
        started = time.monotonic()
        try:
            url = self.base + self.policy_path
            response = await self._http().post(
                url,
                content=orjson.dumps(request.wire()),
                headers={"content-type": "application/json", **(await self._auth("POST", url))},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            self._failed("policy", f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self._latency("policy", started)
        if response.status_code != 200:
            self._failed("policy", f"HTTP {response.status_code}")
            return None
        if len(response.content) > _MAX_BODY:
            self._failed("policy", "response too large")
            return None
        try:
            parsed = RuntimePolicyResponse.model_validate(orjson.loads(response.content))
        except (ValueError, orjson.JSONDecodeError) as exc:
            self._failed("policy", f"malformed response: {str(exc)[:200]}")
            return None
        if parsed.policy_revision != self.policy_revision:
            if self.policy_revision is not None:
                self._cache.clear()
            self.policy_revision = parsed.policy_revision
        policy = parsed.results.get(image_ref)
        if policy is None and len(parsed.results) == 1:
            policy = next(iter(parsed.results.values()))
        if policy is None:
            self._failed("policy", "no result for the image asked about")
            return None
        answer = PostureAnswer(policy=policy, policy_revision=parsed.policy_revision, fetched_at=time.time())
        ttl = min(float(parsed.ttl_seconds), self.cache_ttl)
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
        if ttl > 0:
            self._cache[_key(image_ref, namespace, labels)] = (time.monotonic() + ttl, answer)
        self.last_error = None
        return answer

    def invalidate(self, image_ref: str | None = None) -> None:
        """Forget the verdicts on ``image_ref`` (in every context), or all."""
        if image_ref is None:
            self._cache.clear()
        else:
            subject = digest_of(image_ref) or image_ref
            for key in [k for k in self._cache if k[0] == subject]:
                del self._cache[key]

    async def usage_paths(self, digest: str) -> frozenset[str] | None:
        """File paths of the image's SBOM components (the usage view); None when unknown."""
        hit = self._usage.get(digest)
        if hit is not None and hit[0] >= time.monotonic():
            return hit[1]
        started = time.monotonic()
        try:
            url = self.base + CATALOG_PATH.format(digest=digest)
            response = await self._http().get(url, headers=await self._auth("GET", url), timeout=self.timeout)
        except httpx.HTTPError as exc:
            self._failed("catalog", f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self._latency("catalog", started)
        paths: frozenset[str] | None = None
        if response.status_code == 200 and len(response.content) <= _MAX_BODY:
            try:
                paths = component_paths(orjson.loads(response.content))
            except orjson.JSONDecodeError:
                self._failed("catalog", "malformed catalog entry")
        elif response.status_code != 404:
            self._failed("catalog", f"HTTP {response.status_code}")
            return None
        if len(self._usage) >= _MAX_CACHE:
            self._usage.clear()
        self._usage[digest] = (time.monotonic() + self.cache_ttl, paths)
        return paths

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def component_paths(document: Any, *, limit: int = 200_000) -> frozenset[str] | None:
    """File paths of the image's SBOM components from the backend's catalog entry (contract
    ``zastava.catalog.entry``: ``components[].paths``). None when the document is not a catalog entry."""
    from pydantic import ValidationError

    from ..contracts import CatalogEntry

    try:
        entry = CatalogEntry.model_validate(document)
    except ValidationError:
        return None
    out: set[str] = set()
    for component in entry.components[:limit]:
        for path in component.paths:
            if path.startswith("/") and len(out) < limit:
                out.add(path)
    return frozenset(out)
