"""The backend client of the operator CLIs (``catalog import``, ``runtime policy test``, ``events send``,
``events tail``): the credentials and TLS of ``--config`` exactly as the agents use them.

With Authority credentials in ``zastava.runtime.authority`` (client secret, private-key JWT or static token)
every call carries an OpTok (DPoP-bound, and bound to the client certificate when one is configured), with
one retry on a DPoP nonce or a refused token (:class:`~.provider.OpTokAuth`). Without credentials the calls go
out unauthenticated but still with ``caBundlePath`` and the client certificate, for a backend that checks
none (development, ``backendServer.auth: static`` on loopback).

The backend URL: ``--backend``, else ``$ZASTAVA_BACKEND_URL``, else ``zastava.backend.baseAddress`` when a
``--config`` is given, else ``http://127.0.0.1:8080``. Plain ``http://`` is accepted for loopback only,
unless the operator passes ``--allow-insecure-http``: OpToks are credentials.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..config import ConfigError, ZastavaConfig, load_config
from .backend_auth import BackendAuth, backend_auth, has_credentials
from .mtls import build_http_client

__all__ = [
    "DEFAULT_BACKEND_URL",
    "OperatorClient",
    "OperatorConfigError",
    "operator_client",
    "operator_config",
]

#: The backend without ``--backend``, ``$ZASTAVA_BACKEND_URL`` or ``--config``.
DEFAULT_BACKEND_URL = "http://127.0.0.1:8080"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class OperatorConfigError(ValueError):
    """The configuration or the backend URL cannot be used; the message says what to change."""


def operator_config(
    config_path: Path | str | None, backend: str | None, *, allow_insecure_http: bool = False
) -> ZastavaConfig:
    """The validated config with ``backend.baseAddress`` set as the module docstring says."""
    try:
        config = load_config(config_path, warn=False)
    except ConfigError as exc:
        raise OperatorConfigError(str(exc)) from None
    url = backend or os.environ.get("ZASTAVA_BACKEND_URL")
    if url is None:
        url = config.backend.base_address if config_path is not None else DEFAULT_BACKEND_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OperatorConfigError(f"--backend must be an http(s) URL, got {url!r}")
    if parts.scheme == "http" and not allow_insecure_http and parts.hostname not in _LOOPBACK:
        raise OperatorConfigError(
            f"the backend {url} is plain http to a non-loopback host: "
            "use https, or pass --allow-insecure-http"
        )
    backend_section = config.backend.model_copy(
        update={"base_address": url.rstrip("/"), "allow_insecure_http": parts.scheme == "http"}
    )
    return config.model_copy(update={"backend": backend_section})


@dataclass
class OperatorClient:
    config: ZastavaConfig
    http: httpx.AsyncClient
    auth: BackendAuth | None

    @property
    def base_url(self) -> str:
        return self.config.backend.base_address

    @property
    def authenticated(self) -> bool:
        return self.auth is not None and self.auth.provider is not None

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``method`` on ``base_url + path``; OpTok/DPoP headers when the config has credentials."""
        if self.auth is not None and self.auth.provider is not None:
            kwargs["auth"] = self.auth.provider.auth()
        return await self.http.request(method, self.base_url + path, **kwargs)

    def refusal_hint(self, response: httpx.Response) -> str:
        """What to do about a 401/403, for the CLI's error message."""
        if response.status_code == 401 and not self.authenticated:
            return (
                " (the backend wants an OpTok: pass --config with zastava.runtime.authority credentials, "
                "e.g. clientSecretPath)"
            )
        if response.status_code == 403:
            scopes = " ".join(self.config.runtime.authority.scopes)
            return f" (the token's scopes: {scopes}; the client needs the scope the backend names)"
        return ""


@asynccontextmanager
async def operator_client(config: ZastavaConfig, *, component: str) -> AsyncIterator[OperatorClient]:
    """The client for ``config`` (see the module docstring); closed on exit. ``ValueError``/``OSError``
    when the credentials or certificates named in the config cannot be used."""
    authority = config.runtime.authority
    timeout = config.backend.request_timeout_seconds
    auth = None
    if has_credentials(config):
        auth = backend_auth(config, component=component)
        http = auth.http_client
    else:
        http = build_http_client(
            ca_bundle_path=authority.ca_bundle_path,
            client_cert_path=authority.client_cert_path,
            client_key_path=authority.client_key_path,
            timeout=timeout,
        )
    try:
        yield OperatorClient(config, http, auth)
    finally:
        if auth is not None:
            await auth.aclose()
        else:
            await http.aclose()
