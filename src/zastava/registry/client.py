"""Async OCI distribution client on httpx.

* anonymous, basic and bearer-token auth (the ``WWW-Authenticate`` challenge flow), credentials from
  :class:`~zastava.registry.auth.CredentialStore`;
* manifest ``HEAD`` with ``GET`` fallback; image indexes resolved to the platform's manifest, with an explicit
  :data:`DigestPolicy` saying which digest(s) verification applies to;
* a per-registry concurrency limit; 429/502/503/504 retried honouring ``Retry-After`` (capped) or exponential
  backoff with jitter; connect/read timeouts;
* immutable objects (manifests and blobs fetched by digest) cached by digest in a byte-bounded LRU, digests
  verified on every fetch; tag → digest answers cached for a short TTL (tags move);
* plain HTTP only for registries configured as insecure and for loopback hosts.

Every body is read with a size cap: nothing unbounded is ever buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import hashlib
import ipaddress
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx

from ..telemetry import fields
from .auth import Challenge, CredentialStore, parse_challenge
from .errors import (
    AuthenticationError,
    InvalidManifest,
    ManifestNotFound,
    RegistryError,
    RegistryUnavailable,
    TooLarge,
)
from .reference import ImageReference, parse_reference, validate_digest

if TYPE_CHECKING:
    from .posture import ImagePosture
    from .referrers import Referrers
    from .trust import TrustPolicy

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "DigestPolicy",
    "Manifest",
    "Platform",
    "RegistryClient",
    "RegistryClientConfig",
    "ResolvedImage",
]

log = logging.getLogger("zastava.registry")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
_ACCEPT = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
_RETRY_STATUS = frozenset({429, 502, 503, 504})

#: Which digest of a multi-platform image verification applies to:
#: ``index`` — the digest the reference resolves to (the index for a multi-platform tag; what
#: ``cosign sign IMAGE:TAG`` signs); ``platform`` — the platform manifest's digest; ``any`` — either suffices;
#: ``all`` — both must verify. For a single-platform image both are the same digest.
DigestPolicy = Literal["index", "platform", "any", "all"]


@dataclass(frozen=True, slots=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform must be os/arch[/variant], got {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, data: Mapping[str, Any]) -> bool:
        if data.get("os") != self.os or data.get("architecture") != self.architecture:
            return False
        return self.variant is None or data.get("variant") in (None, self.variant)

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, Mapping):
            raise InvalidManifest(f"{where}: not an object")
        media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise InvalidManifest(f"{where}: mediaType and digest must be strings")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidManifest(f"{where}: size must be a non-negative integer")
        try:
            validate_digest(digest)
        except RegistryError as exc:
            raise InvalidManifest(f"{where}: {exc}") from None
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise InvalidManifest(f"{where}: annotations must map strings to strings")
        artifact_type = data.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise InvalidManifest(f"{where}: artifactType must be a string")
        platform = data.get("platform")
        if platform is not None and not isinstance(platform, Mapping):
            raise InvalidManifest(f"{where}: platform must be an object")
        return cls(media_type, digest, size, artifact_type, dict(annotations), platform)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed manifest or index, with its exact bytes and their digest."""

    media_type: str
    digest: str
    raw: bytes
    data: Mapping[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def artifact_type(self) -> str | None:
        value = self.data.get("artifactType")
        if isinstance(value, str):
            return value
        config = self.data.get("config")
        return config.get("mediaType") if isinstance(config, Mapping) and not self.is_index else None

    @property
    def annotations(self) -> Mapping[str, str]:
        value = self.data.get("annotations") or {}
        return value if isinstance(value, Mapping) else {}

    @property
    def subject(self) -> Descriptor | None:
        value = self.data.get("subject")
        return None if value is None else Descriptor.from_json(value, "subject")

    @property
    def config(self) -> Descriptor | None:
        value = self.data.get("config")
        return None if value is None else Descriptor.from_json(value, "config")

    def layers(self) -> list[Descriptor]:
        value = self.data.get("layers") or []
        if not isinstance(value, list):
            raise InvalidManifest("layers must be a list")
        return [Descriptor.from_json(item, f"layers[{i}]") for i, item in enumerate(value)]

    def manifests(self) -> list[Descriptor]:
        value = self.data.get("manifests") or []
        if not isinstance(value, list):
            raise InvalidManifest("manifests must be a list")
        return [Descriptor.from_json(item, f"manifests[{i}]") for i, item in enumerate(value)]

    @classmethod
    def parse(cls, raw: bytes, content_type: str | None, expected_digest: str | None = None) -> Manifest:
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if expected_digest is not None:
            algorithm = expected_digest.split(":", 1)[0]
            actual = algorithm + ":" + hashlib.new(algorithm, raw).hexdigest()
            if actual != expected_digest:
                raise InvalidManifest(f"manifest digest mismatch: expected {expected_digest}, got {actual}")
            digest = expected_digest
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise InvalidManifest(f"manifest is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidManifest("manifest is not a JSON object")
        if data.get("schemaVersion") != 2:
            raise InvalidManifest(f"unsupported manifest schemaVersion {data.get('schemaVersion')!r}")
        header = (content_type or "").split(";", 1)[0].strip()
        media_type = data.get("mediaType") or header
        if not isinstance(media_type, str) or media_type not in (MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES):
            # An OCI manifest may omit mediaType; infer from the shape.
            if "manifests" in data and "layers" not in data:
                media_type = OCI_INDEX
            elif "layers" in data or "config" in data:
                media_type = OCI_MANIFEST
            else:
                raise InvalidManifest(f"unsupported manifest media type {str(media_type)[:100]!r}")
        return cls(media_type, digest, raw, data)


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """A reference resolved to digests. ``digest`` is the one :data:`DigestPolicy` ``index`` verifies."""

    reference: ImageReference
    digest: str  # what the reference names (index digest for a multi-platform tag)
    media_type: str
    platform_digest: str  # the platform manifest (== digest for a single-platform image)
    platform: str | None = None
    index_digest: str | None = None  # set only when the reference names an index

    @property
    def is_index(self) -> bool:
        return self.index_digest is not None

    @property
    def pinned(self) -> str:
        return f"{self.reference.name}@{self.digest}"

    def digests_for(self, policy: DigestPolicy) -> list[str]:
        """Digests whose signatures the policy consults (deduplicated, in order)."""
        if policy == "index":
            return [self.digest]
        if policy == "platform":
            return [self.platform_digest]
        return list(dict.fromkeys([self.digest, self.platform_digest]))

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "resolved": self.pinned,
            "digest": self.digest,
            "mediaType": self.media_type,
            "indexDigest": self.index_digest,
            "platformDigest": self.platform_digest,
            "platform": self.platform,
        }


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
            follow_redirects=True,
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
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "tag_cache_hits": 0}
        #: verdicts of signature checks (set up by :mod:`.posture`)
        self.verification_cache: Any = None

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
                    status, resp_headers, body = await self._send(
                        method, url, send_headers, content, max_bytes
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
        from .referrers import list_referrers

        ref = self._as_ref(ref_or_digest)
        if digest is None:
            digest = ref.digest or (await self.resolve(ref)).digest
        return await list_referrers(self, ref, digest, artifact_type)

    async def check_posture(
        self, ref: ImageReference | str, trust: TrustPolicy, *, credentials: CredentialStore | None = None
    ) -> ImagePosture:
        """Signature / SBOM / attestation posture of an image; see :func:`.posture.check_posture`.
        ``credentials`` (e.g. the pod's imagePullSecrets) replace the client's store for this call."""
        from .posture import check_posture

        with self.using_credentials(credentials):
            return await check_posture(self, ref, trust)
