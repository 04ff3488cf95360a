"""Client side: the OpTok provider shared by the publisher, the posture client and the webhook.

:class:`TokenProvider` discovers the Authority (``runtime.authority.issuer``), obtains tokens with the
client-credentials grant (client secret or private-key JWT, RFC 7523), bound to the process's DPoP key
(RFC 9449) and, when the HTTP client presents a certificate, to that certificate (RFC 8705). Tokens are cached
and refreshed ``refreshSkewSeconds`` before expiry, one refresh at a time.
``await provider.headers(method, url)`` is the ``headers_provider`` the publisher and webhook clients take;
:meth:`TokenProvider.auth` is the same as an ``httpx.Auth`` that also retries once
on a server ``DPoP-Nonce`` challenge or a rejected token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from ..telemetry.logging import fields
from .discovery import MetadataCache, check_issuer_url
from .dpop import DpopKey
from .errors import AuthorityError
from .mtls import build_http_client

if TYPE_CHECKING:
    from ..config import Authority

__all__ = ["AccessToken", "OpTokAuth", "TokenProvider"]

log = logging.getLogger("zastava.auth")

MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class AccessToken:
    value: str
    token_type: str  # "DPoP" or "Bearer"
    expires_at: float  # wall clock (time.time())
    lifetime: float
    scope: str = ""
    static: bool = False

    def refresh_due(self, now: float, skew: float) -> bool:
        # Never wait past half the lifetime: a skew longer than the lifetime would refresh on every call.
        return now >= self.expires_at - min(skew, self.lifetime / 2)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """Claims of a JWT access token read without verification — only to schedule refresh and to check the
    tenant audience before use; the backend verifies. None for opaque tokens."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _jwt_exp(claims: dict[str, Any] | None) -> float | None:
    exp = claims.get("exp") if claims else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _read_secret(path: str | Path, what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AuthorityError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not value:
        raise AuthorityError(f"{what} {path} is empty")
    return value


class TokenProvider:
    """OpToks for one client. Thread-unsafe but task-safe: use it from one event loop."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        audience: list[str] | tuple[str, ...] = (),
        scopes: list[str] | tuple[str, ...] = (),
        client_secret: str | None = None,
        private_key_pem: str | bytes | None = None,
        refresh_skew_seconds: float = 120.0,
        require_dpop: bool = True,
        allow_static_token_fallback: bool = False,
        static_token_path: str | Path | None = None,
        http_client: httpx.AsyncClient | None = None,
        dpop_key: DpopKey | None = None,
        tenant: str | None = None,
    ) -> None:
        if client_secret is None and private_key_pem is None and not allow_static_token_fallback:
            raise ValueError("a client secret or a private key (private-key JWT) is required")
        if allow_static_token_fallback and not static_token_path:
            raise ValueError("allowStaticTokenFallback needs staticTokenPath")
        self.issuer = check_issuer_url(issuer)
        self.client_id = client_id
        self.audience = list(audience)
        self.scopes = list(scopes)
        self._client_secret = client_secret
        self._private_key: ECKey | RSAKey | None = None
        self._assertion_alg = "ES256"
        if private_key_pem is not None:
            try:
                self._private_key = ECKey.import_key(private_key_pem)
            except (JoseError, ValueError, TypeError):
                self._private_key = RSAKey.import_key(private_key_pem)
                self._assertion_alg = "RS256"
        self.refresh_skew = refresh_skew_seconds
        self.require_dpop = require_dpop
        self.allow_static = allow_static_token_fallback
        self.static_token_path = static_token_path
        self._own_client = http_client is None
        self.http = http_client or httpx.AsyncClient(timeout=5.0)
        self.dpop = dpop_key or DpopKey()
        self.tenant = tenant
        self._metadata = MetadataCache(self.http, issuer)
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()
        self._nonces: dict[str, str] = {}
        self.tokens_fetched = 0

    @classmethod
    def from_config(
        cls,
        authority: Authority,
        *,
        http_client: httpx.AsyncClient | None = None,
        tenant: str | None = None,
        timeout: float = 5.0,
    ) -> TokenProvider:
        """A provider from ``zastava.runtime.authority``. Without ``http_client`` one is built with the
        configured client certificate and CA bundle (:meth:`http_client_from_config`); pass the same client
        to the publisher/webhook so the backend sees the certificate the token is bound to."""
        secret = (
            _read_secret(authority.client_secret_path, "clientSecretPath")
            if authority.client_secret_path
            else None
        )
        key = (
            _read_secret(authority.private_key_jwt_path, "privateKeyJwtPath")
            if authority.private_key_jwt_path
            else None
        )
        own = http_client is None
        if http_client is None:
            http_client = cls.http_client_from_config(authority, timeout=timeout)
        provider = cls(
            issuer=authority.issuer,
            client_id=authority.client_id,
            audience=authority.audience,
            scopes=authority.scopes,
            client_secret=secret,
            private_key_pem=key,
            refresh_skew_seconds=authority.refresh_skew_seconds,
            require_dpop=authority.require_dpop,
            allow_static_token_fallback=authority.allow_static_token_fallback,
            static_token_path=authority.static_token_path,
            http_client=http_client,
            tenant=tenant,
        )
        provider._own_client = own
        return provider

    @staticmethod
    def http_client_from_config(
        authority: Authority, *, timeout: float = 5.0, **kwargs: Any
    ) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` with ``clientCertPath``/``clientKeyPath``/``caBundlePath``. Refuses to
        build a client without a certificate when ``requireMutualTls`` is true."""
        if authority.require_mutual_tls and not authority.client_cert_path:
            raise ValueError("requireMutualTls is true but clientCertPath is not set")
        return build_http_client(
            ca_bundle_path=authority.ca_bundle_path,
            client_cert_path=authority.client_cert_path,
            client_key_path=authority.client_key_path,
            timeout=timeout,
            **kwargs,
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self.http.aclose()

    async def __aenter__(self) -> TokenProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --------------------------------------------------------------------------------------- tokens

    async def token(self) -> AccessToken:
        """A valid token: the cached one, or a fresh one when within the refresh skew of expiry."""
        now = time.time()
        current = self._token
        if current is not None and not current.refresh_due(now, self.refresh_skew):
            return current
        async with self._lock:
            now = time.time()
            current = self._token
            if current is not None and not current.refresh_due(now, self.refresh_skew):
                return current
            try:
                fresh = await self._fetch()
            except AuthorityError as exc:
                if current is not None and not current.static and now < current.expires_at - 1:
                    log.warning(
                        "token refresh failed; using the current token until it expires",
                        extra=fields(
                            event="authority.refresh.failed",
                            client_id=self.client_id,
                            error=str(exc),
                            expires_in=round(current.expires_at - now, 1),
                        ),
                    )
                    return current
                if self.allow_static:
                    fresh = self._static_token(str(exc))
                else:
                    raise
            self._token = fresh
            return fresh

    def invalidate(self) -> None:
        """Forget the cached token (e.g. the server said it is invalid)."""
        self._token = None

    def _static_token(self, reason: str) -> AccessToken:
        assert self.static_token_path is not None
        value = _read_secret(self.static_token_path, "staticTokenPath")
        log.warning(
            "authority unavailable; using the static bootstrap token (allowStaticTokenFallback=true)",
            extra=fields(
                event="authority.static_token.used",
                key="zastava.runtime.authority.allowStaticTokenFallback",
                client_id=self.client_id,
                tenant=self.tenant,
                reason=reason,
            ),
        )
        # Re-try the Authority after a minute.
        return AccessToken(value, "Bearer", time.time() + 60, 60.0, static=True)

    def _client_auth(self, token_endpoint: str) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        if self._private_key is not None:
            now = int(time.time())
            assertion = jwt.encode(
                {"alg": self._assertion_alg, "typ": "JWT"},
                {
                    "iss": self.client_id,
                    "sub": self.client_id,
                    "aud": token_endpoint,
                    "jti": secrets.token_urlsafe(18),
                    "iat": now,
                    "exp": now + 60,
                },
                self._private_key,
                algorithms=[self._assertion_alg],
            )
            return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}, None
        if self._client_secret is None:
            raise AuthorityError("no client credentials configured (clientSecretPath or privateKeyJwtPath)")
        return {}, httpx.BasicAuth(self.client_id, self._client_secret)

    async def _fetch(self) -> AccessToken:
        metadata = await self._metadata.get()
        endpoint = metadata.token_endpoint
        algs = metadata.dpop_signing_alg_values_supported
        if self.require_dpop and algs and "ES256" not in algs:
            raise AuthorityError(
                f"the Authority does not accept ES256 DPoP proofs (it lists {', '.join(algs)})"
            )
        nonce = self._nonces.get(_origin(endpoint))
        for attempt in range(2):
            form: dict[str, Any] = {"grant_type": "client_credentials"}
            if self.scopes:
                form["scope"] = " ".join(self.scopes)
            if self.audience:
                form["audience"] = self.audience
            extra, basic = self._client_auth(endpoint)
            form.update(extra)
            headers = {"Accept": "application/json"}
            if self.require_dpop:
                headers["DPoP"] = self.dpop.proof("POST", endpoint, nonce=nonce)
            try:
                response = await self.http.post(
                    endpoint, data=form, headers=headers, auth=basic or httpx.USE_CLIENT_DEFAULT
                )
            except httpx.HTTPError as exc:
                raise AuthorityError(
                    f"token endpoint {endpoint} unreachable: {type(exc).__name__}: {exc}"
                ) from exc
            if len(response.content) > MAX_TOKEN_RESPONSE_BYTES:
                raise AuthorityError("token response too large", status=response.status_code)
            try:
                body = response.json()
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            server_nonce = response.headers.get("dpop-nonce")
            if server_nonce:
                self._nonces[_origin(endpoint)] = server_nonce
            if (
                response.status_code == 400
                and body.get("error") == "use_dpop_nonce"
                and server_nonce
                and attempt == 0
            ):
                nonce = server_nonce
                continue
            if response.status_code != 200:
                raise AuthorityError(
                    f"token endpoint refused: {response.status_code} {body.get('error', '')}: "
                    f"{body.get('error_description', '')}".rstrip(": "),
                    error=body.get("error"),
                    status=response.status_code,
                )
            return self._parse(body)
        raise AuthorityError("token endpoint kept asking for a new DPoP nonce")  # pragma: no cover

    def _parse(self, body: dict[str, Any]) -> AccessToken:
        value, token_type, expires_in = (
            body.get("access_token"),
            body.get("token_type"),
            body.get("expires_in"),
        )
        if not isinstance(value, str) or not value or not value.isascii():
            raise AuthorityError("token response has no access_token")
        if not isinstance(token_type, str) or token_type.lower() not in ("dpop", "bearer"):
            raise AuthorityError(f"token response has unsupported token_type {token_type!r}")
        if self.require_dpop and token_type.lower() != "dpop":
            raise AuthorityError("Authority issued a Bearer token but requireDpop is true")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
            raise AuthorityError("token response has no positive expires_in")
        self.tokens_fetched += 1
        now = time.time()
        expires_at = now + float(expires_in)
        claims = _jwt_claims(value)
        if self.tenant is not None and claims is not None and "aud" in claims:
            aud = claims["aud"]
            audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if self.tenant not in audiences:
                # spec §7 guardrail: a token without aud:<tenant> is never used
                raise AuthorityError(
                    f"the Authority issued a token whose audience lacks tenant {self.tenant!r}"
                )
        jwt_exp = _jwt_exp(claims)
        if jwt_exp is not None:  # a JWT's own exp wins when earlier (whole seconds, transit time)
            expires_at = min(expires_at, jwt_exp)
        return AccessToken(
            value=value,
            token_type="DPoP" if token_type.lower() == "dpop" else "Bearer",
            expires_at=expires_at,
            lifetime=max(expires_at - now, 0.0),
            scope=str(body.get("scope", "")),
        )

    # -------------------------------------------------------------------------------------- headers

    async def headers(self, method: str, url: str) -> dict[str, str]:
        """The auth headers for one request: ``Authorization: DPoP <token>`` + ``DPoP: <proof>`` (with the
        server's last ``DPoP-Nonce`` for that origin), or ``Authorization: Bearer <token>``."""
        token = await self.token()
        if token.token_type == "Bearer":  # noqa: S105 - a scheme name
            return {"Authorization": f"Bearer {token.value}"}
        proof = self.dpop.proof(method, url, access_token=token.value, nonce=self._nonces.get(_origin(url)))
        return {"Authorization": f"DPoP {token.value}", "DPoP": proof}

    def observe_response(self, response: httpx.Response) -> bool:
        """Learn from a backend response: remember its ``DPoP-Nonce``; drop the cached token when the server
        called it invalid. True when a retry of the request should succeed (nonce or token renewed)."""
        url = str(response.request.url)
        nonce = response.headers.get("dpop-nonce")
        if nonce:
            self._nonces[_origin(url)] = nonce
        if response.status_code != 401:
            return False
        challenge = response.headers.get("www-authenticate", "")
        if 'error="use_dpop_nonce"' in challenge:
            return bool(nonce)
        if 'error="invalid_token"' in challenge:
            self.invalidate()
            return True
        return False

    def auth(self) -> OpTokAuth:
        return OpTokAuth(self)


class OpTokAuth(httpx.Auth):
    """``httpx.Auth`` adding OpTok headers, retrying once on ``use_dpop_nonce`` or ``invalid_token``."""

    requires_request_body = False

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers.update(await self.provider.headers(request.method, str(request.url)))
        response = yield request
        if self.provider.observe_response(response):
            request.headers.update(await self.provider.headers(request.method, str(request.url)))
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Any:  # pragma: no cover - async only
        raise RuntimeError("OpTokAuth works with httpx.AsyncClient only")
