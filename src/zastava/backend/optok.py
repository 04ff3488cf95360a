"""The backend's authenticator when ``backendServer.auth: optok`` (issue 10): Authority OpToks verified with
``zastava.auth`` (JWKS, DPoP, mTLS binding), mapped onto the backend's :class:`~.auth.Principal`.

The tenant always comes from the token; handlers refuse events and queries for any other tenant.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ..auth import AuthError as TokenError
from ..auth import OpTokVerifier, VerifierSettings
from ..config import ZastavaConfig
from .auth import Authenticator, AuthError, Principal

__all__ = ["optok_authenticator"]


def optok_authenticator(config: ZastavaConfig, **overrides: Any) -> tuple[Authenticator, OpTokVerifier]:
    """An authenticator for :func:`~.app.create_app` and the verifier behind it (close it on shutdown)."""
    if config.backend_server.tenants:
        overrides.setdefault("tenants", frozenset(config.backend_server.tenants))
    overrides.setdefault("public_base_url", config.backend_server.public_base_url)
    settings = VerifierSettings.from_config(config, **overrides)
    verifier = OpTokVerifier(settings)

    async def authenticate(request: Request) -> Principal:
        try:
            # scopes are checked per endpoint and method by the handlers (Principal.require)
            verified = await verifier.authenticate(request, ())
        except TokenError as exc:
            headers = {"WWW-Authenticate": exc.www_authenticate()}
            if exc.nonce:
                headers["DPoP-Nonce"] = exc.nonce
            raise AuthError(exc.status, exc.description, headers=headers) from None
        return Principal(tenant=verified.tenant, subject=verified.subject, scopes=frozenset(verified.scopes))

    return authenticate, verifier
