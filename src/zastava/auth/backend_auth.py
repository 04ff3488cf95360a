"""One way for every plane to call the backend with the configured credentials (spec §5.2: "OpTok
caching, DPoP enforcement, and telemetry behave identically" in observer and webhook).

:func:`backend_auth` returns the httpx client (with the client certificate the token is bound to) and the
per-request ``headers_provider`` for the publisher, the observer's posture client and the webhook's backend
client. Without Authority credentials in the config (development), calls go out unauthenticated and a
structured warning says so once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from ..config import ZastavaConfig
from ..telemetry.logging import event
from .provider import TokenProvider

__all__ = ["BackendAuth", "backend_auth", "has_credentials"]

log = logging.getLogger("zastava.auth")

HeadersProvider = Callable[[str, str], Awaitable[dict[str, str]]]


@dataclass
class BackendAuth:
    http_client: httpx.AsyncClient
    headers_provider: HeadersProvider | None
    provider: TokenProvider | None

    async def aclose(self) -> None:
        if self.provider is not None:
            await self.provider.aclose()
        await self.http_client.aclose()


def _has_credentials(config: ZastavaConfig) -> bool:
    authority = config.runtime.authority
    return bool(
        authority.client_secret_path
        or authority.private_key_jwt_path
        or (authority.allow_static_token_fallback and authority.static_token_path)
    )


def has_credentials(config: ZastavaConfig) -> bool:
    """Whether the config names Authority credentials (so :func:`backend_auth` will authenticate)."""
    return _has_credentials(config)


def backend_auth(config: ZastavaConfig, *, component: str) -> BackendAuth:
    timeout = config.backend.request_timeout_seconds
    authority = config.runtime.authority
    if not _has_credentials(config):
        event(
            log,
            logging.WARNING,
            "no Authority credentials configured: backend calls are unauthenticated",
            component=component,
            key="zastava.runtime.authority.clientSecretPath",
        )
        client = TokenProvider.http_client_from_config(authority, timeout=timeout)
        return BackendAuth(client, None, None)
    provider = TokenProvider.from_config(authority, tenant=config.runtime.tenant, timeout=timeout)
    return BackendAuth(provider.http, provider.headers, provider)
