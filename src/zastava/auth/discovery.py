"""OIDC / OAuth 2.0 Authorization Server discovery (OpenID Connect Discovery 1.0, RFC 8414)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from .errors import AuthorityError

__all__ = ["MetadataCache", "OidcMetadata", "check_issuer_url", "fetch_metadata", "normalize_issuer"]

MAX_DOCUMENT_BYTES = 256 * 1024
_WELL_KNOWN = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")


def normalize_issuer(issuer: str) -> str:
    return issuer.rstrip("/")


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def check_issuer_url(issuer: str) -> str:
    """The issuer must be an https URL; plain http only on loopback (a local development Authority).
    Raises ``ValueError`` otherwise: client secrets and tokens never cross a network in clear text."""
    parts = urlsplit(issuer)
    if parts.scheme == "https" and parts.hostname:
        return normalize_issuer(issuer)
    if parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK:
        return normalize_issuer(issuer)
    raise ValueError(f"issuer must be an https:// URL (plain http only on loopback): {issuer!r}")


@dataclass(frozen=True)
class OidcMetadata:
    issuer: str
    token_endpoint: str
    jwks_uri: str
    dpop_signing_alg_values_supported: tuple[str, ...] = ()
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    fetched_at: float = field(default_factory=time.time, compare=False)


async def get_json(client: httpx.AsyncClient, url: str, *, what: str) -> Any:
    """GET a bounded JSON document; :class:`AuthorityError` on transport errors, non-200 or bad JSON."""
    try:
        async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise AuthorityError(
                    f"{what} {url} answered {response.status_code}", status=response.status_code
                )
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise AuthorityError(f"{what} {url} is larger than {MAX_DOCUMENT_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise AuthorityError(f"{what} {url} unreachable: {type(exc).__name__}: {exc}") from exc
    try:
        return httpx.Response(200, content=body).json()
    except ValueError:
        raise AuthorityError(f"{what} {url} is not JSON") from None


async def fetch_metadata(client: httpx.AsyncClient, issuer: str) -> OidcMetadata:
    """Fetch and check the issuer's metadata: ``issuer`` must equal the configured issuer exactly (modulo a
    trailing slash), ``token_endpoint`` and ``jwks_uri`` must be present."""
    base = normalize_issuer(issuer)
    errors: list[str] = []
    for path in _WELL_KNOWN:
        try:
            document = await get_json(client, base + path, what="discovery document")
        except AuthorityError as exc:
            errors.append(str(exc))
            if exc.status is None:  # unreachable: the second well-known will not do better
                break
            continue
        if not isinstance(document, dict):
            raise AuthorityError(f"discovery document at {base + path} is not a JSON object")
        if normalize_issuer(str(document.get("issuer", ""))) != base:
            raise AuthorityError(
                f"discovery document issuer {document.get('issuer')!r} "
                f"does not match the configured {issuer!r}"
            )
        token_endpoint, jwks_uri = document.get("token_endpoint"), document.get("jwks_uri")
        if not isinstance(token_endpoint, str) or not isinstance(jwks_uri, str):
            raise AuthorityError(f"discovery document at {base + path} lacks token_endpoint or jwks_uri")
        return OidcMetadata(
            issuer=base,
            token_endpoint=token_endpoint,
            jwks_uri=jwks_uri,
            dpop_signing_alg_values_supported=tuple(document.get("dpop_signing_alg_values_supported") or ()),
            token_endpoint_auth_methods_supported=tuple(
                document.get("token_endpoint_auth_methods_supported") or ()
            ),
            raw=document,
        )
    raise AuthorityError("; ".join(errors) or f"no discovery document for {issuer}")


class MetadataCache:
    """Discovery metadata fetched once and re-fetched after ``ttl`` seconds (single-flight)."""

    def __init__(self, client: httpx.AsyncClient, issuer: str, ttl: float = 3600.0) -> None:
        self.client = client
        self.issuer = issuer
        self.ttl = ttl
        self._value: OidcMetadata | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> OidcMetadata:
        value = self._value
        if value is not None and time.time() - value.fetched_at < self.ttl:
            return value
        async with self._lock:
            value = self._value
            if value is not None and time.time() - value.fetched_at < self.ttl:
                return value
            try:
                self._value = await fetch_metadata(self.client, self.issuer)
            except AuthorityError:
                if value is not None:  # keep serving the last good metadata
                    return value
                raise
            return self._value
