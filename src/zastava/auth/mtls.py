"""Mutual TLS: client TLS contexts for httpx, certificate thumbprints (``cnf.x5t#S256``, RFC 8705), and how
the peer certificate reaches an ASGI app served by uvicorn.

uvicorn (0.30–0.54) does not fill the ASGI TLS extension, so :class:`TlsH11Protocol` does: when a TLS
connection is made it reads the peer certificate from the transport's ``ssl_object`` and adds, to the scope of
every request on that connection, ``scope["extensions"]["tls"]`` as the ASGI spec defines it
(``client_cert_chain``: PEM strings, leaf first; ``tls_version``; ``cipher_suite``…). Run uvicorn with
``http=TlsH11Protocol`` (see :func:`uvicorn_tls_kwargs`) and read the certificate with
:func:`peer_certificate_der`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
from uvicorn.protocols.http.h11_impl import H11Protocol

from .dpop import b64url

__all__ = [
    "TlsH11Protocol",
    "build_http_client",
    "cert_thumbprint",
    "client_ssl_context",
    "peer_certificate_der",
    "uvicorn_tls_kwargs",
]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def cert_thumbprint(der: bytes) -> str:
    """``x5t#S256``: base64url(SHA-256(DER certificate))."""
    return b64url(hashlib.sha256(der).digest())


def client_ssl_context(
    *,
    ca_bundle_path: str | Path | None = None,
    client_cert_path: str | Path | None = None,
    client_key_path: str | Path | None = None,
) -> ssl.SSLContext:
    """A verifying client context (system CAs unless ``ca_bundle_path``), with a client certificate when
    ``client_cert_path`` is given (the key may be in the same PEM or in ``client_key_path``)."""
    context = ssl.create_default_context(cafile=str(ca_bundle_path) if ca_bundle_path else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert_path:
        context.load_cert_chain(str(client_cert_path), str(client_key_path) if client_key_path else None)
    elif client_key_path:
        raise ValueError("clientKeyPath is set but clientCertPath is not")
    return context


def build_http_client(
    *,
    ca_bundle_path: str | Path | None = None,
    client_cert_path: str | Path | None = None,
    client_key_path: str | Path | None = None,
    timeout: float = 5.0,
    http2: bool = False,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` presenting the configured client certificate and trusting ``ca_bundle_path``.
    Use the same client for the token endpoint and the backend so both see the certificate the token is bound
    to. Extra keyword arguments go to ``httpx.AsyncClient``."""
    context = client_ssl_context(
        ca_bundle_path=ca_bundle_path, client_cert_path=client_cert_path, client_key_path=client_key_path
    )
    return httpx.AsyncClient(verify=context, timeout=timeout, http2=http2, **kwargs)


def peer_certificate_der(scope: Scope) -> bytes | None:
    """The client's leaf certificate (DER) from the ASGI TLS extension, or None when none was presented."""
    tls = (scope.get("extensions") or {}).get("tls")
    if not tls:
        return None
    chain = tls.get("client_cert_chain") or ()
    if not chain:
        return None
    leaf = chain[0]
    if isinstance(leaf, bytes):
        return leaf
    return ssl.PEM_cert_to_DER_cert(leaf)


_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _tls_extension(transport: asyncio.Transport) -> dict[str, Any] | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
        "cipher_name": cipher[0] if cipher else None,
    }


class _WithTls:
    __slots__ = ("app", "tls")

    def __init__(self, app: ASGIApp, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            extensions = scope.get("extensions")
            scope["extensions"] = {**(extensions or {}), "tls": self.tls}
        await self.app(scope, receive, send)


class TlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, adding the ASGI TLS extension (peer certificate) to each request scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = _tls_extension(transport)
        if tls is not None:
            self.app = _WithTls(self.app, tls)


def uvicorn_tls_kwargs(
    *,
    certfile: str | Path,
    keyfile: str | Path,
    client_ca: str | Path | None = None,
    require_client_cert: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` serving HTTPS with (optional or required) client certificates
    visible to the app. Without ``client_ca`` no client certificate is requested."""
    kwargs: dict[str, Any] = {
        "http": TlsH11Protocol,
        "ssl_certfile": str(certfile),
        "ssl_keyfile": str(keyfile),
    }
    if client_ca:
        kwargs["ssl_ca_certs"] = str(client_ca)
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return kwargs
