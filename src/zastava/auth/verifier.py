"""Server side: verify OpToks (JWT access tokens) bound with DPoP and/or mTLS and yield a :class:`Principal`.

Checks, in order, each failure with its own 401/403 and ``WWW-Authenticate`` reason: credentials present and
in the expected scheme; JWT signature against the issuer's JWKS (cached; an unknown ``kid`` triggers a
rate-limited re-fetch, which is how key rotation is followed); ``iss``; ``exp``/``nbf`` with a small leeway;
``aud`` containing the resource audience; the tenant (``tenant`` claim, which must also be in ``aud``, and in
the allowed tenants when configured); DPoP (proof signature, ``cnf.jkt``, ``htm``/``htu``, ``iat`` window,
``jti`` replay, ``ath``, optional server nonce); mTLS (``cnf.x5t#S256`` = thumbprint of the client certificate
of this connection); the scopes the endpoint requires.

The tenant comes from the token, never from the request body: :func:`require_tenant` is the check the backend
runs against the tenant named in a body.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .discovery import MetadataCache, check_issuer_url, get_json, normalize_issuer
from .dpop import NonceIssuer, ReplayCache, same_text, verify_proof
from .errors import AuthError, AuthorityError, insufficient_scope, invalid_token, missing_credentials
from .mtls import cert_thumbprint, peer_certificate_der

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ..config import ZastavaConfig

__all__ = [
    "SCOPE_POLICY_READ",
    "SCOPE_RUNTIME_WRITE",
    "JwksCache",
    "OpTokVerifier",
    "Principal",
    "VerifierSettings",
    "auth_error_handler",
    "require_tenant",
]

SCOPE_RUNTIME_WRITE = "api:scanner.runtime.write"
SCOPE_POLICY_READ = "api:scanner.policy.read"
TOKEN_ALGORITHMS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")
MAX_TOKEN_CHARS = 8192

Binding = Literal["dpop", "mtls", "dpop+mtls", "bearer"]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant and subject from the verified token, its scopes and how it was bound."""

    tenant: str
    subject: str
    scopes: frozenset[str]
    client_id: str | None = None
    token_id: str | None = None
    binding: Binding = "bearer"
    expires_at: float | None = None

    def has_scopes(self, *scopes: str) -> bool:
        return set(scopes) <= self.scopes


def require_tenant(principal: Principal, tenant: str | None) -> None:
    """Refuse (403) a request naming a tenant other than the token's — e.g. a batch of events whose
    ``tenant`` is not the caller's. ``None`` (no tenant named) is allowed: the caller's tenant applies."""
    if tenant is not None and tenant != principal.tenant:
        raise insufficient_scope(
            f"token is for tenant {principal.tenant!r} and may not act for tenant {tenant!r}",
        )


@dataclass
class VerifierSettings:
    """How an OpTok is verified. ``audience``: the resource's audience that every token must carry.
    ``tenants``: allowed tenants (None: any tenant the Authority vouches for). ``public_base_url``: the
    externally visible ``scheme://host[:port]`` that ``htu`` must name (default: the scheme and local address
    of the connection's socket). Never the ``Host`` header: a client chooses it, so a proof made for another
    host would pass with a spoofed ``Host``."""

    issuer: str
    audience: str = "scanner"
    tenants: frozenset[str] | None = None
    tenant_claim: str = "tenant"
    require_dpop: bool = True
    require_mutual_tls: bool = False
    allow_bearer: bool = False
    leeway_seconds: float = 30.0
    proof_max_age_seconds: float = 60.0
    proof_clock_skew_seconds: float = 5.0
    require_nonce: bool = False
    jwks_uri: str | None = None
    jwks_cache_seconds: float = 300.0
    jwks_min_refresh_seconds: float = 10.0
    public_base_url: str | None = None
    algorithms: tuple[str, ...] = TOKEN_ALGORITHMS
    ca_bundle_path: str | None = None
    replay_cache_entries: int = 100_000
    scope_map: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: ZastavaConfig, *, audience: str = "scanner", **overrides: Any
    ) -> VerifierSettings:
        """Settings for the reference backend from ``zastava.runtime.authority`` and ``zastava.backend``:
        events need ``api:scanner.runtime.write``, policy ``api:scanner.policy.read``."""
        authority = config.runtime.authority
        values: dict[str, Any] = {
            "issuer": authority.issuer,
            "audience": audience,
            "require_dpop": authority.require_dpop,
            "require_mutual_tls": authority.require_mutual_tls,
            "allow_bearer": not authority.require_dpop,
            "ca_bundle_path": authority.ca_bundle_path,
            "scope_map": {
                config.backend.events_path: (SCOPE_RUNTIME_WRITE,),
                config.backend.policy_path: (SCOPE_POLICY_READ,),
            },
        }
        values.update(overrides)
        return cls(**values)


class JwksCache:
    """The issuer's signing keys: fetched from ``jwks_uri`` (from discovery unless configured), kept
    ``cache_seconds``, re-fetched early when a token names an unknown ``kid`` — at most once per
    ``min_refresh_seconds`` so a flood of forged ``kid``s cannot hammer the Authority."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        issuer: str,
        *,
        jwks_uri: str | None = None,
        cache_seconds: float = 300.0,
        min_refresh_seconds: float = 10.0,
    ) -> None:
        self.client = client
        self.jwks_uri = jwks_uri
        self.cache_seconds = cache_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._metadata = MetadataCache(client, issuer)
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = 0.0
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def _refresh(self) -> None:
        uri = self.jwks_uri or (await self._metadata.get()).jwks_uri
        document = await get_json(self.client, uri, what="JWKS")
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise AuthorityError(f"JWKS at {uri} has no keys array")
        usable = [k for k in document["keys"] if isinstance(k, dict) and k.get("use", "sig") == "sig"]
        try:
            keys = KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError, TypeError) as exc:
            raise AuthorityError(f"JWKS at {uri} holds an invalid key: {exc}") from None
        self._keys = keys
        self._kids = frozenset(str(k.kid) for k in keys.keys if k.kid)
        self._fetched_at = time.monotonic()
        self.fetches += 1

    async def keys_for(self, kid: str | None) -> KeySet:
        """The key set, refreshed if stale or if ``kid`` is unknown (rate-limited)."""
        if self._due(kid):
            async with self._lock:
                if self._due(kid):
                    self._attempted_at = time.monotonic()
                    try:
                        await self._refresh()
                    except AuthorityError:
                        if self._keys is None:
                            raise
        if self._keys is None:
            raise AuthorityError("the issuer's JWKS is unavailable (last fetch failed; retrying shortly)")
        return self._keys

    def _due(self, kid: str | None) -> bool:
        """A fetch is due when the keys are stale or ``kid`` is unknown — but never twice within
        ``min_refresh_seconds`` (failed attempts count), so neither forged ``kid``s nor an Authority outage
        turn every request into a JWKS fetch."""
        now = time.monotonic()
        if now - self._attempted_at < self.min_refresh_seconds:
            return False
        stale = self._keys is None or now - self._fetched_at > self.cache_seconds
        return stale or (kid is not None and kid not in self._kids)

    def knows(self, kid: str) -> bool:
        return kid in self._kids


def _header_of(token: str) -> dict[str, Any]:
    import base64

    try:
        head = token.split(".", 1)[0]
        value = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError, IndexError):
        raise invalid_token("access token is not a JWT") from None
    if not isinstance(value, dict):
        raise invalid_token("access token is not a JWT")
    return value


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return list(aud)
    return []


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    scope = claims.get("scope", claims.get("scp"))
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scope, list):
        return frozenset(s for s in scope if isinstance(s, str))
    return frozenset()


class OpTokVerifier:
    """Verifies the OpTok on a request. Use :meth:`authenticate` (Starlette request), :meth:`authenticator`
    (a per-endpoint callable), ``await verifier(request)`` (scopes from ``settings.scope_map`` by path), or
    the transport-independent :meth:`verify`. Raises :class:`AuthError`; answer it with ``exc.response()`` or
    install :func:`auth_error_handler`."""

    def __init__(
        self,
        settings: VerifierSettings,
        *,
        http_client: httpx.AsyncClient | None = None,
        replay_cache: ReplayCache | None = None,
        nonce_issuer: NonceIssuer | None = None,
    ) -> None:
        check_issuer_url(settings.issuer)
        self.settings = settings
        self._own_client = http_client is None
        if http_client is None:
            from .mtls import client_ssl_context

            http_client = httpx.AsyncClient(
                verify=client_ssl_context(ca_bundle_path=settings.ca_bundle_path), timeout=5.0
            )
        self.http = http_client
        self.jwks = JwksCache(
            http_client,
            settings.issuer,
            jwks_uri=settings.jwks_uri,
            cache_seconds=settings.jwks_cache_seconds,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
        )
        self.replay = replay_cache or ReplayCache(
            settings.proof_max_age_seconds + settings.proof_clock_skew_seconds,
            settings.replay_cache_entries,
        )
        self.nonces = nonce_issuer or (NonceIssuer() if settings.require_nonce else None)
        self._schemes: tuple[str, ...] = ("DPoP", "Bearer") if settings.allow_bearer else ("DPoP",)

    async def aclose(self) -> None:
        if self._own_client:
            await self.http.aclose()

    # ----------------------------------------------------------------------------------- entry points

    async def __call__(self, request: Request) -> Principal:
        return await self.authenticate(request, self.settings.scope_map.get(request.url.path, ()))

    def authenticator(self, *scopes: str) -> Callable[[Request], Awaitable[Principal]]:
        """A callable ``request -> Principal`` requiring ``scopes`` (one per endpoint)."""

        async def authenticate(request: Request) -> Principal:
            return await self.authenticate(request, scopes)

        return authenticate

    async def authenticate(self, request: Request, required_scopes: Iterable[str] = ()) -> Principal:
        url = self._request_url(request)
        return await self.verify(
            method=request.method,
            url=url,
            authorization=request.headers.getlist("authorization"),
            dpop=request.headers.getlist("dpop"),
            peer_cert_der=peer_certificate_der(request.scope),
            required_scopes=required_scopes,
        )

    def _request_url(self, request: Request) -> str:
        base = self.settings.public_base_url
        path = str(request.scope.get("root_path", "")) + str(request.scope["path"])
        if base:
            return base.rstrip("/") + path
        server = request.scope.get("server")
        if not server or server[1] is None:
            raise AuthError(
                401, "invalid_dpop_proof", "the server's public URL is unknown: configure publicBaseUrl"
            )
        host, port = server
        host = f"[{host}]" if ":" in host else host
        return f"{request.scope.get('scheme', 'http')}://{host}:{port}{path}"

    async def verify(
        self,
        *,
        method: str,
        url: str,
        authorization: list[str] | str | None,
        dpop: list[str] | str | None = None,
        peer_cert_der: bytes | None = None,
        required_scopes: Iterable[str] = (),
        now: float | None = None,
    ) -> Principal:
        try:
            return await self._verify(
                method=method,
                url=url,
                authorization=authorization,
                dpop=dpop,
                peer_cert_der=peer_cert_der,
                required_scopes=tuple(required_scopes),
                now=time.time() if now is None else now,
            )
        except AuthError as exc:
            if exc.schemes == ("DPoP",):
                exc.schemes = self._schemes
            raise

    async def _verify(
        self,
        *,
        method: str,
        url: str,
        authorization: list[str] | str | None,
        dpop: list[str] | str | None,
        peer_cert_der: bytes | None,
        required_scopes: tuple[str, ...],
        now: float,
    ) -> Principal:
        s = self.settings
        headers = [authorization] if isinstance(authorization, str) else list(authorization or [])
        if not headers:
            raise missing_credentials()
        if len(headers) > 1:
            raise AuthError(400, "invalid_request", "more than one Authorization header")
        scheme, _, token = headers[0].strip().partition(" ")
        token = token.strip()
        scheme = scheme.lower()
        if scheme not in ("dpop", "bearer") or not token:
            raise missing_credentials("Authorization header is not 'DPoP <token>' or 'Bearer <token>'")
        if len(token) > MAX_TOKEN_CHARS:
            raise invalid_token("access token too large")
        if scheme == "bearer" and s.require_dpop:
            raise invalid_token("DPoP-bound token required; 'Bearer' scheme refused")
        claims = await self._claims(token, now)
        tenant = self._tenant(claims)
        cnf_claim = claims.get("cnf")
        cnf: dict[str, Any] = cnf_claim if isinstance(cnf_claim, dict) else {}
        jkt, x5t = cnf.get("jkt"), cnf.get("x5t#S256")

        # DPoP binding
        proofs = [dpop] if isinstance(dpop, str) else list(dpop or [])
        dpop_bound = False
        if scheme == "dpop" or jkt is not None:
            if scheme != "dpop":
                raise invalid_token("token is DPoP-bound (cnf.jkt) but was sent with the Bearer scheme")
            if not isinstance(jkt, str):
                raise invalid_token("token sent with the DPoP scheme has no cnf.jkt binding")
            if not proofs:
                raise AuthError(401, "invalid_dpop_proof", "DPoP header missing")
            if len(proofs) > 1:
                raise AuthError(401, "invalid_dpop_proof", "more than one DPoP header")
            proof = verify_proof(
                proofs[0],
                method=method,
                url=url,
                access_token=token,
                replay=None,
                nonces=self.nonces,
                max_age=s.proof_max_age_seconds,
                clock_skew=s.proof_clock_skew_seconds,
                now=now,
            )
            if not same_text(proof.jkt, jkt):
                raise AuthError(
                    401, "invalid_dpop_proof", "DPoP proof key does not match the token's cnf.jkt"
                )
            if not self.replay.add(f"{proof.jkt}:{proof.jti}", now):
                raise AuthError(401, "invalid_dpop_proof", "DPoP proof replayed (jti already used)")
            dpop_bound = True

        # mTLS binding (RFC 8705)
        mtls_bound = False
        if x5t is not None or s.require_mutual_tls:
            if peer_cert_der is None:
                raise invalid_token("client certificate required (mutual TLS) but none was presented")
            if not isinstance(x5t, str):
                raise invalid_token("token is not bound to a client certificate (no cnf.x5t#S256)")
            if not same_text(cert_thumbprint(peer_cert_der), x5t):
                raise invalid_token("client certificate does not match the token's cnf.x5t#S256")
            mtls_bound = True

        scopes = _scopes(claims)
        missing = [x for x in required_scopes if x not in scopes]
        if missing:
            raise insufficient_scope(
                f"token lacks scope {' '.join(missing)}", scope=" ".join(required_scopes)
            )
        binding: Binding = (
            "dpop+mtls"
            if dpop_bound and mtls_bound
            else "dpop"
            if dpop_bound
            else "mtls"
            if mtls_bound
            else "bearer"
        )
        client_id = claims.get("client_id") if isinstance(claims.get("client_id"), str) else None
        exp = claims.get("exp")
        return Principal(
            tenant=tenant,
            subject=str(claims.get("sub") or client_id or ""),
            scopes=scopes,
            client_id=client_id,
            token_id=claims.get("jti") if isinstance(claims.get("jti"), str) else None,
            binding=binding,
            expires_at=float(exp) if isinstance(exp, int | float) else None,
        )

    async def _claims(self, token: str, now: float) -> dict[str, Any]:
        s = self.settings
        header = _header_of(token)
        alg = header.get("alg")
        if alg not in s.algorithms:
            raise invalid_token(f"access token algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        kid = kid if isinstance(kid, str) else None
        try:
            keys = await self.jwks.keys_for(kid)
        except AuthorityError as exc:
            raise AuthError(
                503, "temporarily_unavailable", f"cannot fetch the issuer's keys: {exc}"
            ) from None
        if kid is not None and not self.jwks.knows(kid):
            raise invalid_token(f"access token signed by unknown key {kid!r}")
        try:
            decoded = jwt.decode(token, keys, algorithms=list(s.algorithms))
        except JoseError as exc:
            raise invalid_token(f"access token signature does not verify ({exc.error})") from None
        except (ValueError, TypeError):
            raise invalid_token("access token is malformed") from None
        claims = decoded.claims
        if normalize_issuer(str(claims.get("iss", ""))) != normalize_issuer(s.issuer):
            raise invalid_token(f"access token issuer {claims.get('iss')!r} is not {s.issuer!r}")
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise invalid_token("access token has no exp")
        if now > exp + s.leeway_seconds:
            raise invalid_token("access token expired")
        if isinstance(nbf, int | float) and not isinstance(nbf, bool) and now + s.leeway_seconds < nbf:
            raise invalid_token("access token not yet valid (nbf)")
        if s.audience not in _audiences(claims):
            raise invalid_token(f"access token audience does not include {s.audience!r}")
        return dict(claims)

    def _tenant(self, claims: Mapping[str, Any]) -> str:
        s = self.settings
        audiences = _audiences(claims)
        tenant = claims.get(s.tenant_claim)
        if tenant is None and s.tenants is not None:
            named = [a for a in audiences if a in s.tenants]
            tenant = named[0] if len(named) == 1 else None
        if not isinstance(tenant, str) or not tenant:
            raise invalid_token(f"access token names no tenant ({s.tenant_claim!r} claim)")
        if tenant not in audiences:
            raise invalid_token(f"access token audience does not include its tenant {tenant!r}")
        if s.tenants is not None and tenant not in s.tenants:
            raise invalid_token(f"tenant {tenant!r} is not served here")
        return tenant


async def auth_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: ``Starlette(exception_handlers={AuthError: auth_error_handler})``."""
    assert isinstance(exc, AuthError)
    response: Response = exc.response()
    return response
