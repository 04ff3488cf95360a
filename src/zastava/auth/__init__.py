"""Authority OpToks with DPoP (RFC 9449) and mTLS (RFC 8705): client, server-side verification, reference
Authority. One concept per module:

- :mod:`.discovery` — OIDC / RFC 8414 discovery.
- :mod:`.provider` — :class:`TokenProvider`: client credentials, cache + refresh, ``headers(method, url)``.
- :mod:`.dpop` — DPoP proof creation and verification, replay cache, server nonces.
- :mod:`.mtls` — client TLS contexts, ``x5t#S256``, the peer certificate inside uvicorn/ASGI.
- :mod:`.verifier` — :class:`OpTokVerifier` → :class:`Principal`; :func:`require_tenant`.
- :mod:`.errors` — :class:`AuthError` with its 401/403 and ``WWW-Authenticate`` challenge.
- :mod:`.authority` — the reference Authority server (``zastava authority serve``).
- :mod:`.backend_auth` — :func:`backend_auth`: every plane's client and headers for calling the backend.

Planes import this package; it imports nothing of theirs.
"""

from .backend_auth import BackendAuth, backend_auth
from .dpop import DpopKey, NonceIssuer, ReplayCache, normalize_htu, verify_proof
from .errors import AuthError, AuthorityError
from .mtls import TlsH11Protocol, build_http_client, cert_thumbprint, peer_certificate_der, uvicorn_tls_kwargs
from .provider import AccessToken, OpTokAuth, TokenProvider
from .verifier import (
    SCOPE_POLICY_READ,
    SCOPE_RUNTIME_WRITE,
    OpTokVerifier,
    Principal,
    VerifierSettings,
    auth_error_handler,
    require_tenant,
)

__all__ = [
    "SCOPE_POLICY_READ",
    "SCOPE_RUNTIME_WRITE",
    "AccessToken",
    "AuthError",
    "AuthorityError",
    "BackendAuth",
    "DpopKey",
    "NonceIssuer",
    "OpTokAuth",
    "OpTokVerifier",
    "Principal",
    "ReplayCache",
    "TlsH11Protocol",
    "TokenProvider",
    "VerifierSettings",
    "auth_error_handler",
    "backend_auth",
    "build_http_client",
    "cert_thumbprint",
    "normalize_htu",
    "peer_certificate_der",
    "require_tenant",
    "uvicorn_tls_kwargs",
    "verify_proof",
]
