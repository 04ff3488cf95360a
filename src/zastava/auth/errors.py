"""Authentication failures and their HTTP form: status and ``WWW-Authenticate`` challenge
(RFC 6750 §3, RFC 9449 §7).

Error codes: ``invalid_request`` (400), ``invalid_token`` (401), ``insufficient_scope`` (403) from RFC 6750;
``invalid_dpop_proof`` and ``use_dpop_nonce`` (401) from RFC 9449. A request without any credentials gets a
bare challenge (no error code), as RFC 6750 §3.1 requires.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "AuthError",
    "AuthorityError",
    "challenge",
    "insufficient_scope",
    "invalid_dpop_proof",
    "invalid_token",
    "missing_credentials",
    "use_dpop_nonce",
]

DPOP_ALGS = ("ES256",)
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def _quote(value: str) -> str:
    """A quoted-string holding only the characters RFC 6750 allows in error_description / scope."""
    return '"' + _UNSAFE.sub("'", value)[:512] + '"'


def challenge(
    scheme: str,
    *,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    realm: str | None = None,
    algs: tuple[str, ...] = DPOP_ALGS,
) -> str:
    """One ``WWW-Authenticate`` challenge, e.g.
    ``DPoP error="invalid_token", error_description="…", algs="ES256"``."""
    params: list[str] = []
    if realm:
        params.append(f"realm={_quote(realm)}")
    if error:
        params.append(f"error={_quote(error)}")
    if description:
        params.append(f"error_description={_quote(description)}")
    if scope:
        params.append(f"scope={_quote(scope)}")
    if scheme == "DPoP" and algs:
        params.append(f"algs={_quote(' '.join(algs))}")
    return scheme + (" " + ", ".join(params) if params else "")


class AuthError(Exception):
    """A refused request: ``status`` (400/401/403), RFC error code and a precise description.

    ``schemes`` are the challenges offered (``("DPoP",)`` when DPoP is required, ``("DPoP", "Bearer")`` when
    either is accepted); ``nonce`` is sent as ``DPoP-Nonce`` (RFC 9449 §8/§9).
    """

    def __init__(
        self,
        status: int,
        error: str | None,
        description: str,
        *,
        scope: str | None = None,
        nonce: str | None = None,
        schemes: tuple[str, ...] = ("DPoP",),
    ) -> None:
        super().__init__(f"{status} {error or 'unauthenticated'}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.scope = scope
        self.nonce = nonce
        self.schemes = schemes

    def with_schemes(self, schemes: tuple[str, ...]) -> AuthError:
        self.schemes = schemes
        return self

    def www_authenticate(self) -> str:
        # Without credentials: bare challenges (RFC 6750 §3.1); otherwise the error on each offered scheme.
        return ", ".join(
            challenge(
                s,
                error=self.error,
                description=self.description if self.error else None,
                scope=self.scope,
            )
            for s in self.schemes
        )

    def headers(self) -> dict[str, str]:
        out = {"WWW-Authenticate": self.www_authenticate(), "Cache-Control": "no-store"}
        if self.nonce:
            out["DPoP-Nonce"] = self.nonce
        return out

    def body(self) -> dict[str, Any]:
        return {"error": self.error or "unauthenticated", "error_description": self.description}

    def response(self) -> Any:
        """A Starlette ``JSONResponse`` carrying the status, the challenge and the JSON error body."""
        from starlette.responses import JSONResponse

        return JSONResponse(self.body(), status_code=self.status, headers=self.headers())


class AuthorityError(Exception):
    """The Authority refused or could not be reached when asking for a token (client side)."""

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


def missing_credentials(description: str = "no access token in the request") -> AuthError:
    return AuthError(401, None, description)


def invalid_token(description: str) -> AuthError:
    return AuthError(401, "invalid_token", description)


def insufficient_scope(description: str, scope: str | None = None) -> AuthError:
    return AuthError(403, "insufficient_scope", description, scope=scope)


def invalid_dpop_proof(description: str) -> AuthError:
    return AuthError(401, "invalid_dpop_proof", description)


def use_dpop_nonce(nonce: str, description: str = "a DPoP nonce from the server is required") -> AuthError:
    return AuthError(401, "use_dpop_nonce", description, nonce=nonce)
