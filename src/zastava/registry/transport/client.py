"""Async OCI distribution client on httpx.

* anonymous, basic and bearer-token auth (the ``WWW-Authenticate`` challenge flow), credentials from
  :class:`~zastava.registry.transport.auth.CredentialStore`;
* manifest ``HEAD`` with ``GET`` fallback; image indexes resolved to the platform's manifest (the digest(s)
  verification applies to are chosen by :data:`~.manifest.DigestPolicy`);
* a per-registry concurrency limit; 429/502/503/504 retried honouring ``Retry-After`` (capped) or exponential
  backoff with jitter; connect/read timeouts;
* immutable objects (manifests and blobs fetched by digest) cached by digest in a byte-bounded LRU, digests
  verified on every fetch; tag → digest answers cached for a short TTL (tags move);
* plain HTTP only for registries configured as insecure and for loopback hosts;
* redirects followed by the client itself, only for manifest/blob GET/HEAD, at most 5 hops, never to an
  internal address the registry is not itself on, never https → http, the registry's ``Authorization``
  never sent to another origin (:mod:`.redirects`).

Every body is read with a size cap: nothing unbounded is ever buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import hashlib
import ipaddress
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from ...telemetry import fields
from ..errors import (
    AuthenticationError,
    InvalidManifest,
    ManifestNotFound,
    RedirectRefused,
    RegistryError,
    RegistryUnavailable,
    TooLarge,
)
from ..reference import ImageReference, parse_reference, validate_digest
from .auth import Challenge, CredentialStore, parse_challenge
from .manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    DigestPolicy,
    Manifest,
    Platform,
    ResolvedImage,
)
from .redirects import MAX_HOPS, REDIRECT_STATUS, RedirectPolicy
from .referrers import Referrers, list_referrers

__all__ = ["RegistryClient", "RegistryClientConfig"]

log = logging.getLogger("zastava.registry")

_ACCEPT = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
_RETRY_STATUS = frozenset({429, 502, 503, 504})


@dataclass(slots=True)
class RegistryClientConfig:
    insecure_registries: Sequence[str] = ()
    concurrency_per_registry: int = 8
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 10.0
    max_retries: int = 3
    backoff_base_seconds: float = 0.2
    max_retry_after_seconds: float = 10.0
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_blob_bytes: int = 4 * 1024 * 1024
    cache_max_bytes: int = 64 * 1024 * 1024
    tag_cache_ttl_seconds: float = 30.0
    platform: Platform = field(default_factory=Platform)
    digest_policy: DigestPolicy = "index"
    user_agent: str = "zastava-registry"
    #: ``zastava.registry.redirectAllowedInternal``: internal CIDRs/host names redirects may go to anyway
    redirect_allowed_internal: Sequence[str] = ()


class _LRU:
    """Byte-bounded LRU of immutable bytes keyed by digest."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.items: OrderedDict[str, tuple[bytes, str | None]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[bytes, str | None] | None:
        item = self.items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.items.move_to_end(key)
        self.hits += 1
        return item

    def put(self, key: str, raw: bytes, content_type: str | None) -> None:
        if len(raw) > self.max_bytes or key in self.items:
            return
        self.items[key] = (raw, content_type)
        self.size += len(raw)
        while self.size > self.max_bytes:
            _, (old, _ct) = self.items.popitem(last=False)
            self.size -= len(old)


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1 : host.index("]")]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _retry_after(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, cap))


#: Credentials for the current call chain (e.g. one pod's imagePullSecrets), overriding the client's store.
_CALL_CREDENTIALS: contextvars.ContextVar[CredentialStore | None] = contextvars.ContextVar(
    "zastava_registry_credentials", default=None
)


class RegistryClient:
    """One client per process; share it. Use as ``async with RegistryClient(...) as client``.

    Per-call credentials (a pod's imagePullSecrets) are given with :meth:`using_credentials`; cached tokens
    and tag resolutions are keyed by the credential set, so one namespace's secret never serves another's
    request.
    Objects fetched by digest are shared across credential sets (content-addressed, verified by digest).
    """

    def __init__(
        self,
        config: RegistryClientConfig | None = None,
        credentials: CredentialStore | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config or RegistryClientConfig()
        self.credentials = credentials or CredentialStore()
        timeout = httpx.Timeout(self.config.read_timeout_seconds, connect=self.config.connect_timeout_seconds)
        self._http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,  # followed by _send_following, under RedirectPolicy
            headers={"User-Agent": self.config.user_agent},
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        # (host, scope, credential fingerprint) → (header, expiry)
        self._auth: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._challenges: dict[str, Challenge] = {}
        self._cache = _LRU(self.config.cache_max_bytes)
        self._tags: dict[tuple[str, str, str, str], tuple[Descriptor, float]] = {}
        self._insecure = {h.lower() for h in self.config.insecure_registries}
        self._redirects = RedirectPolicy.from_entries(self.config.redirect_allowed_internal)
        self.stats: dict[str, int] = {
            "requests": 0,
            "retries": 0,
            "tag_cache_hits": 0,
            "redirects_followed": 0,
            "redirects_refused": 0,
        }

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    @property
    def cache(self) -> _LRU:
        return self._cache

    def clear_caches(self) -> None:
        self._cache = _LRU(self.config.cache_max_bytes)
        self._tags.clear()

    # ---------------------------------------------------------------------------------------- transport

    @contextlib.contextmanager
    def using_credentials(self, credentials: CredentialStore | None) -> Iterator[None]:
        """Within the block (and tasks started in it), authenticate with ``credentials`` instead of the
        client's own store."""
        token = _CALL_CREDENTIALS.set(credentials)
        try:
            yield
        finally:
            _CALL_CREDENTIALS.reset(token)

    def _store(self) -> CredentialStore:
        return _CALL_CREDENTIALS.get() or self.credentials

    def plain_http_allowed(self, host: str) -> bool:
        return host.lower() in self._insecure or _is_loopback(host)

    def base_url(self, host: str) -> str:
        return f"{'http' if self.plain_http_allowed(host) else 'https'}://{host}"

    def _semaphore(self, host: str) -> asyncio.Semaphore:
        sem = self._semaphores.get(host)
        if sem is None:
            sem = self._semaphores[host] = asyncio.Semaphore(max(1, self.config.concurrency_per_registry))
        return sem

    async def _token(self, host: str, challenge: Challenge, scope: str) -> str:
        params = {"service": challenge.params.get("service", "")} if challenge.params.get("service") else {}
        wanted = challenge.params.get("scope") or scope
        if wanted:
            params["scope"] = wanted
        headers = {}
        if not challenge.realm.lower().startswith("https://") and not self.plain_http_allowed(host):
            raise AuthenticationError(f"{host}: refusing a plain-http token realm for an https registry")
        try:
            # the realm is chosen by the registry, like a redirect target: no internal address it is not on
            realm = httpx.URL(challenge.realm)
            classes = await self._redirects.registry_classes(host)
            await self._redirects.check(httpx.URL(self.base_url(host)), realm, classes, "token realm")
        except (RedirectRefused, httpx.InvalidURL) as exc:
            self.stats["redirects_refused"] += 1
            reason = str(exc) if isinstance(exc, RedirectRefused) else "malformed token realm"
            log.warning("registry token realm refused", extra=fields(host=host, reason=reason))
            raise RedirectRefused(f"{host}: {reason}") from None
        creds = self._store().get(host)
        if creds is not None and (creds.username or creds.password):
            headers["Authorization"] = creds.basic_header()
        try:
            response = await self._http.get(challenge.realm, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"token endpoint {challenge.realm}: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise AuthenticationError(f"token endpoint refused the credentials ({response.status_code})")
        if response.status_code != 200 or len(response.content) > 1_000_000:
            raise AuthenticationError(f"token endpoint answered {response.status_code}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            expires = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise AuthenticationError("token endpoint answered something that is not a token") from None
        if not isinstance(token, str) or not token:
            raise AuthenticationError("token endpoint answered without a token")
        header = f"Bearer {token}"
        self._remember_auth(host, scope, header, time.monotonic() + max(1.0, expires - 5))
        return header

    async def _authorize(self, host: str, challenge: Challenge, scope: str) -> str:
        if challenge.scheme == "basic":
            creds = self._store().get(host)
            if creds is None:
                raise AuthenticationError(f"{host} requires basic auth and no credentials are configured")
            header = creds.basic_header()
            self._remember_auth(host, scope, header, float("inf"))
            return header
        return await self._token(host, challenge, scope)

    def _cached_auth(self, host: str, scope: str) -> str | None:
        key = (host, scope, self._store().fingerprint)
        item = self._auth.get(key)
        if item is None:
            return None
        header, expiry = item
        if expiry < time.monotonic():
            self._auth.pop(key, None)
            return None
        return header

    def _remember_auth(self, host: str, scope: str, header: str, expiry: float) -> None:
        if len(self._auth) > 10_000:
            self._auth.clear()
        self._auth[(host, scope, self._store().fingerprint)] = (header, expiry)

    async def request(
        self,
        method: str,
        host: str,
        path: str,
        *,
        repository: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        max_bytes: int,
        push: bool = False,
    ) -> tuple[int, httpx.Headers, bytes]:
        """One registry API call with auth, retries and a size-capped body. Returns (status, headers, body);
        4xx other than 401/429 are returned to the caller, 5xx after retries raise RegistryUnavailable."""
        url = self.base_url(host) + path
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        attempt = 0
        authed_after_challenge = False
        async with self._semaphore(host):
            while True:
                send_headers = dict(headers or {})
                auth = self._cached_auth(host, scope)
                if auth:
                    send_headers["Authorization"] = auth
                self.stats["requests"] += 1
                try:
                    status, resp_headers, body = await self._send_following(
                        method, host, url, send_headers, content, max_bytes
                    )
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    if attempt >= self.config.max_retries:
                        raise RegistryUnavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from None
                    attempt += 1
                    self.stats["retries"] += 1
                    await asyncio.sleep(self._backoff(attempt, None))
                    continue
                if status == 401:
                    if authed_after_challenge:
                        raise AuthenticationError(f"{host}: credentials rejected for {repository}")
                    challenge_header = resp_headers.get("www-authenticate")
                    if not challenge_header:
                        raise AuthenticationError(f"{host}: 401 without a WWW-Authenticate challenge")
                    challenge = parse_challenge(challenge_header)
                    self._challenges[host] = challenge
                    await self._authorize(host, challenge, scope)
                    authed_after_challenge = True
                    continue
                if status in _RETRY_STATUS:
                    if attempt >= self.config.max_retries:
                        raise RegistryUnavailable(
                            f"{method} {url}: {status} after {attempt} retries"
                            + (" (throttled)" if status == 429 else "")
                        )
                    attempt += 1
                    self.stats["retries"] += 1
                    delay = self._backoff(attempt, resp_headers.get("retry-after"))
                    log.info(
                        "registry retry",
                        extra=fields(host=host, status=status, attempt=attempt, delay_s=round(delay, 3)),
                    )
                    await asyncio.sleep(delay)
                    continue
                if status == 403:
                    raise AuthenticationError(f"{host}: access to {repository} denied (403)")
                return status, resp_headers, body

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        hinted = _retry_after(retry_after, self.config.max_retry_after_seconds)
        if hinted is not None:
            return hinted
        base = self.config.backoff_base_seconds * (2 ** (attempt - 1))
        return float(min(base * (0.5 + random.random()), self.config.max_retry_after_seconds))

    async def _send_following(
        self,
        method: str,
        host: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        max_bytes: int,
    ) -> tuple[int, httpx.Headers, bytes]:
        """:meth:`_send`, following a manifest/blob GET/HEAD's redirects under the :class:`RedirectPolicy`.
        Any other request's 3xx is returned as it is (the caller sees an unexpected status)."""
        result = await self._send(method, url, headers, content, max_bytes)
        if (
            result[0] not in REDIRECT_STATUS
            or method not in ("GET", "HEAD")
            or not ("/manifests/" in url or "/blobs/" in url)
        ):
            return result
        origin = httpx.URL(url)
        current = origin
        registry_classes: frozenset[str] | None = None
        hops = 0
        while result[0] in REDIRECT_STATUS:
            location = result[1].get("location")
            if not location:
                return result
            try:
                target = current.join(location)
                if hops >= MAX_HOPS:
                    raise RedirectRefused(f"more than {MAX_HOPS} redirects")
                if registry_classes is None:
                    registry_classes = await self._redirects.registry_classes(host)
                await self._redirects.check(current, target, registry_classes)
            except (RedirectRefused, httpx.InvalidURL) as exc:
                self.stats["redirects_refused"] += 1
                # the target's host and the reason only: the query string may carry a presigned credential
                reason = str(exc) if isinstance(exc, RedirectRefused) else "malformed Location"
                log.warning(
                    "registry redirect refused", extra=fields(host=host, path=origin.path, reason=reason)
                )
                raise RedirectRefused(f"{host}: {reason}") from None
            hops += 1
            self.stats["redirects_followed"] += 1
            same_origin = (target.scheme, target.host, target.port) == (
                origin.scheme,
                origin.host,
                origin.port,
            )
            # the registry's credentials are for the registry: a storage host gets its own presigned URL
            hop_headers = {
                k: v
                for k, v in headers.items()
                if same_origin or k.lower() not in ("authorization", "cookie")
            }
            current = target
            result = await self._send(method, str(target), hop_headers, None, max_bytes)
        return result

    async def _send(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None, max_bytes: int
    ) -> tuple[int, httpx.Headers, bytes]:
        request = self._http.build_request(method, url, headers=headers, content=content)
        response = await self._http.send(request, stream=True)
        try:
            declared = response.headers.get("content-length")
            if method != "HEAD" and declared and declared.isdigit() and int(declared) > max_bytes:
                if response.status_code < 300:
                    raise TooLarge(f"{url}: body of {declared} bytes exceeds the {max_bytes}-byte bound")
                return response.status_code, response.headers, b""
            chunks: list[bytes] = []
            total = 0
            if method != "HEAD":
                async for chunk in response.aiter_raw():
                    total += len(chunk)
                    if total > max_bytes:
                        if response.status_code < 300:
                            raise TooLarge(f"{url}: body exceeds the {max_bytes}-byte bound")
                        break
                    chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)
        finally:
            await response.aclose()

    # ----------------------------------------------------------------------------------------- manifests

    @staticmethod
    def _as_ref(ref: ImageReference | str) -> ImageReference:
        return parse_reference(ref) if isinstance(ref, str) else ref

    async def head_manifest(self, ref: ImageReference | str) -> Descriptor | None:
        """Descriptor of the manifest a reference names (HEAD, with GET fallback), or None on 404."""
        ref = self._as_ref(ref)
        path = f"/v2/{ref.repository}/manifests/{ref.identifier}"
        status, headers, _ = await self.request(
            "HEAD", ref.api_host, path, repository=ref.repository, headers={"Accept": _ACCEPT}, max_bytes=0
        )
        if status == 404:
            return None
        digest = headers.get("docker-content-digest")
        media_type = (headers.get("content-type") or "").split(";", 1)[0].strip()
        size = headers.get("content-length")
        if status == 200 and digest and media_type and (ref.digest is None or digest == ref.digest):
            try:
                validate_digest(digest)
                return Descriptor(media_type, digest, int(size) if size and size.isdigit() else 0)
            except RegistryError:
                pass  # a garbled header: fall back to GET and hash the body ourselves
        manifest = await self.find_manifest(ref)
        if manifest is None:
            return None
        return Descriptor(manifest.media_type, manifest.digest, len(manifest.raw))

    async def find_manifest(self, ref: ImageReference | str) -> Manifest | None:
        """The manifest, or None when the registry answers 404."""
        return await self._get_manifest(self._as_ref(ref), allow_missing=True)

    async def manifest(self, ref: ImageReference | str) -> Manifest:
        """The manifest (digest-verified, cached by digest); ManifestNotFound on 404."""
        manifest = await self._get_manifest(self._as_ref(ref), allow_missing=False)
        assert manifest is not None
        return manifest

    async def _get_manifest(self, ref: ImageReference, *, allow_missing: bool) -> Manifest | None:
        if ref.digest:
            cached = self._cache.get(ref.digest)
            if cached is not None:
                return Manifest.parse(cached[0], cached[1], ref.digest)
        path = f"/v2/{ref.repository}/manifests/{ref.identifier}"
        status, headers, body = await self.request(
            "GET",
            ref.api_host,
            path,
            repository=ref.repository,
            headers={"Accept": _ACCEPT},
            max_bytes=self.config.max_manifest_bytes,
        )
        if status == 404:
            if allow_missing:
                return None
            raise ManifestNotFound(f"manifest {ref} not found")
        if status != 200:
            raise RegistryError(f"GET manifest {ref}: unexpected status {status}")
        content_type = headers.get("content-type")
        expected = ref.digest
        if expected is None:
            header_digest = headers.get("docker-content-digest")
            if header_digest:
                try:
                    expected = validate_digest(header_digest)
                except RegistryError:
                    raise InvalidManifest(f"registry sent a malformed digest header for {ref}") from None
        manifest = Manifest.parse(body, content_type, expected)
        self._cache.put(manifest.digest, body, content_type)
        return manifest

    async def get_blob(
        self, ref: ImageReference | str, digest: str, *, max_bytes: int | None = None
    ) -> bytes:
        """A blob by digest (verified; cached)."""
        ref = self._as_ref(ref)
        validate_digest(digest)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached[0]
        limit = max_bytes if max_bytes is not None else self.config.max_blob_bytes
        status, _headers, body = await self.request(
            "GET",
            ref.api_host,
            f"/v2/{ref.repository}/blobs/{digest}",
            repository=ref.repository,
            max_bytes=limit,
        )
        if status == 404:
            raise ManifestNotFound(f"blob {digest} not found in {ref.name}")
        if status != 200:
            raise RegistryError(f"GET blob {digest}: unexpected status {status}")
        algorithm = digest.split(":", 1)[0]
        actual = algorithm + ":" + hashlib.new(algorithm, body).hexdigest()
        if actual != digest:
            raise InvalidManifest(f"blob digest mismatch: expected {digest}, got {actual}")
        self._cache.put(digest, body, None)
        return body

    # ------------------------------------------------------------------------------------------ resolve

    async def _tag_descriptor(self, ref: ImageReference) -> Descriptor:
        key = (ref.registry, ref.repository, ref.tag or "latest", self._store().fingerprint)
        ttl = self.config.tag_cache_ttl_seconds
        if ttl > 0:
            cached = self._tags.get(key)
            if cached is not None and cached[1] > time.monotonic():
                self.stats["tag_cache_hits"] += 1
                return cached[0]
        descriptor = await self.head_manifest(ref)
        if descriptor is None:
            raise ManifestNotFound(f"{ref} not found")
        if ttl > 0:
            if len(self._tags) > 10_000:
                self._tags.clear()
            self._tags[key] = (descriptor, time.monotonic() + ttl)
        return descriptor

    async def resolve(self, ref: ImageReference | str, *, platform: Platform | None = None) -> ResolvedImage:
        """Tag or digest → :class:`ResolvedImage` (index digest and the platform's manifest digest)."""
        ref = self._as_ref(ref)
        platform = platform or self.config.platform
        if ref.digest:
            manifest = await self.manifest(ref)
            top = Descriptor(manifest.media_type, manifest.digest, len(manifest.raw))
        else:
            top = await self._tag_descriptor(ref)
            manifest = None
        if top.media_type in MANIFEST_MEDIA_TYPES:
            return ResolvedImage(ref, top.digest, top.media_type, top.digest)
        if top.media_type not in INDEX_MEDIA_TYPES:
            manifest = manifest or await self.manifest(ref.with_digest(top.digest))
            if not manifest.is_index:
                return ResolvedImage(ref, manifest.digest, manifest.media_type, manifest.digest)
        index = manifest or await self.manifest(ref.with_digest(top.digest))
        chosen = None
        for entry in index.manifests():
            if (
                entry.platform
                and platform.matches(entry.platform)
                and entry.media_type in MANIFEST_MEDIA_TYPES
            ):
                chosen = entry
                break
        if chosen is None:
            raise ManifestNotFound(f"{ref}: the index {index.digest} has no manifest for platform {platform}")
        return ResolvedImage(
            ref, index.digest, index.media_type, chosen.digest, str(platform), index_digest=index.digest
        )

    async def referrers(
        self,
        ref_or_digest: ImageReference | str,
        artifact_type: str | None = None,
        *,
        digest: str | None = None,
    ) -> Referrers:
        """Referrers of a manifest: the OCI 1.1 API, else the tag-schema fallback. See :mod:`.referrers`."""
        ref = self._as_ref(ref_or_digest)
        if digest is None:
            digest = ref.digest or (await self.resolve(ref)).digest
        return await list_referrers(self, ref, digest, artifact_type)
