"""A small reference Authority (OIDC/OAuth 2.0 server) for development and tests: ``zastava authority serve``.

Serves discovery (``/.well-known/openid-configuration``), a JWKS with key rotation (``/jwks``) and a
client-credentials token endpoint (``/token``) issuing ES256 JWT OpToks bound to the client's DPoP key
(``cnf.jkt``) and, when the client presented a TLS certificate, to that certificate (``cnf.x5t#S256``).
Clients (secret or private-key JWT), their tenant, audiences and scopes come from a YAML file. Every token's
``aud`` holds the requested audiences plus the client's tenant, and its ``tenant`` claim names the tenant.

Production points ``zastava.runtime.authority.issuer`` at the operator's OIDC provider instead (docs/auth.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..telemetry.logging import fields
from ..telemetry.metrics import ZastavaMetrics
from .discovery import normalize_issuer
from .dpop import DPOP_ALGORITHMS, NonceIssuer, ReplayCache, verify_proof
from .errors import AuthError
from .mtls import cert_thumbprint, peer_certificate_der

__all__ = [
    "AuthorityClientConfig",
    "AuthorityConfig",
    "ReferenceAuthority",
    "SigningKey",
    "hash_secret",
    "load_authority_config",
    "write_dev_setup",
]

log = logging.getLogger("zastava.auth.authority")

MAX_FORM_BYTES = 16 * 1024
#: the ``client`` label of token requests naming no configured client: a client id is caller-chosen text, so
#: only configured ids (bounded by the YAML) become label values
UNKNOWN_CLIENT = "unknown"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class AuthorityClientConfig(_Model):
    """One client. Authenticates with ``secretSha256`` (hex SHA-256 of the secret), ``secretFile`` (a file
    holding the secret) or ``publicKeyPath`` (PEM public key for private-key JWT assertions)."""

    client_id: str = Field(min_length=1, max_length=200)
    tenant: str = Field(min_length=1, max_length=253)
    secret_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    secret_file: str | None = None
    public_key_path: str | None = None
    audiences: list[str] = Field(default_factory=lambda: ["scanner", "zastava"])
    scopes: list[str] = Field(default_factory=list)
    token_lifetime_seconds: int | None = Field(None, ge=1, le=86400)
    require_mutual_tls: bool = False

    @model_validator(mode="after")
    def _auth(self) -> AuthorityClientConfig:
        if not (self.secret_sha256 or self.secret_file or self.public_key_path):
            raise ValueError(f"client {self.client_id!r} needs secretSha256, secretFile or publicKeyPath")
        return self


class AuthorityConfig(_Model):
    issuer: str
    token_lifetime_seconds: int = Field(300, ge=1, le=86400)
    key_rotation_seconds: int = Field(0, ge=0)
    key_grace_seconds: int | None = Field(None, ge=0)
    require_dpop: bool = True
    require_nonce: bool = False
    tenants: list[str] = Field(min_length=1)
    clients: list[AuthorityClientConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> AuthorityConfig:
        ids = [c.client_id for c in self.clients]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate clientId {', '.join(duplicates)}")
        for client in self.clients:
            if client.tenant not in self.tenants:
                raise ValueError(f"client {client.client_id!r}: tenant {client.tenant!r} is not in tenants")
            overlap = set(client.audiences) & set(self.tenants)
            if overlap:
                raise ValueError(
                    f"client {client.client_id!r}: audiences may not name tenants "
                    f"({', '.join(sorted(overlap))});"
                    " the client's own tenant is added to every token"
                )
        return self


def load_authority_config(path: str | Path) -> AuthorityConfig:
    """Read the YAML (root key ``authority``); ``ValueError`` with every problem on invalid input."""
    text = Path(path).read_text(encoding="utf-8")
    document = yaml.safe_load(text) or {}
    if not isinstance(document, dict) or set(document) != {"authority"}:
        raise ValueError(f"{path}: the document must be a mapping with the single root key 'authority'")
    try:
        return AuthorityConfig.model_validate(document["authority"])
    except ValidationError as exc:
        problems = "; ".join(
            f"authority.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ValueError(f"{path}: {problems}") from None


@dataclass
class SigningKey:
    kid: str
    key: ECKey
    created: float
    retire_at: float | None = None


class _OAuthError(Exception):
    def __init__(
        self, status: int, error: str, description: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.headers = status, error, description, headers or {}
        #: the client the refused request named (its metrics label), once the form is read
        self.client_id: str | None = None

    def response(self) -> Response:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers={"Cache-Control": "no-store", **self.headers},
        )


class ReferenceAuthority:
    """The Authority as a Starlette app (``authority.app``). Keys live in memory only (a restart invalidates
    issued tokens; resource servers re-fetch the JWKS on an unknown ``kid``)."""

    def __init__(
        self,
        config: AuthorityConfig,
        *,
        config_dir: Path | None = None,
        metrics: ZastavaMetrics | None = None,
    ) -> None:
        """``metrics``: where token counts and latencies go and what ``/metrics`` serves (``zastava authority
        serve`` passes the process-wide metrics with the common tags); a private registry by default."""
        self.config = config
        self.metrics = metrics or ZastavaMetrics()
        self.issuer = normalize_issuer(config.issuer)
        self.token_endpoint = self.issuer + "/token"
        self.jwks_uri = self.issuer + "/jwks"
        self._clients = {c.client_id: c for c in config.clients}
        self._config_dir = config_dir or Path.cwd()
        self._client_keys: dict[str, ECKey | RSAKey] = {}
        self._secrets: dict[str, bytes] = {}
        for client in config.clients:
            self._load_client_credentials(client)
        self._keys: list[SigningKey] = []
        self._next: SigningKey | None = None
        self.rotate_keys(retire_previous=True)
        self.replay = ReplayCache(ttl=120.0)
        self.assertions = ReplayCache(ttl=120.0)
        self.nonces = NonceIssuer() if config.require_nonce else None
        self.tokens_issued = 0
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery, methods=["GET"]),
                Route("/.well-known/oauth-authorization-server", self._discovery, methods=["GET"]),
                Route("/jwks", self._jwks, methods=["GET"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/metrics", self._metrics, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    def _path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self._config_dir / path

    def _load_client_credentials(self, client: AuthorityClientConfig) -> None:
        if client.secret_sha256:
            self._secrets[client.client_id] = bytes.fromhex(client.secret_sha256)
        elif client.secret_file:
            secret = self._path(client.secret_file).read_text(encoding="utf-8").strip()
            self._secrets[client.client_id] = hashlib.sha256(secret.encode()).digest()
        if client.public_key_path:
            pem = self._path(client.public_key_path).read_bytes()
            try:
                self._client_keys[client.client_id] = ECKey.import_key(pem)
            except (JoseError, ValueError, TypeError):
                self._client_keys[client.client_id] = RSAKey.import_key(pem)

    # ------------------------------------------------------------------------------------------ keys

    @property
    def grace_seconds(self) -> float:
        if self.config.key_grace_seconds is not None:
            return float(self.config.key_grace_seconds)
        longest = max(
            [c.token_lifetime_seconds or 0 for c in self.config.clients]
            + [self.config.token_lifetime_seconds]
        )
        return float(longest + 60)

    @property
    def current_key(self) -> SigningKey:
        return self._keys[-1]

    def _new_key(self, now: float) -> SigningKey:
        kid = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{secrets.token_hex(4)}"
        return SigningKey(kid, ECKey.generate_key("P-256", private=True, parameters={"kid": kid}), now)

    def rotate_keys(self, *, retire_previous: bool = False) -> SigningKey:
        """The pre-published next key becomes current and a new next key is published. Keys that signed
        before stay in the JWKS for the grace period (tokens they signed stay verifiable), or leave it at once
        with ``retire_previous``. Publishing the next key a rotation ahead lets resource servers that
        re-fetch the JWKS at least once per rotation period know a key before any token uses it."""
        now = time.time()
        for old in self._keys:
            if retire_previous:
                old.retire_at = now
            elif old.retire_at is None:
                old.retire_at = now + self.grace_seconds
        self._keys = [k for k in self._keys if k.retire_at is None or k.retire_at > now]
        current = self._next or self._new_key(now)
        self._keys.append(current)
        self._next = self._new_key(now)
        log.info(
            "authority signing key rotated",
            extra=fields(event="authority.key.rotated", kid=current.kid, next_kid=self._next.kid),
        )
        return current

    def published_keys(self) -> list[SigningKey]:
        now = time.time()
        live = [k for k in self._keys if k.retire_at is None or k.retire_at > now]
        return live + ([self._next] if self._next else [])

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {**k.key.as_dict(private=False), "kid": k.kid, "use": "sig", "alg": "ES256"}
                for k in self.published_keys()
            ]
        }

    # ---------------------------------------------------------------------------------------- tokens

    def mint(
        self,
        client_id: str,
        *,
        audiences: list[str] | None = None,
        scopes: list[str] | None = None,
        lifetime: float | None = None,
        jkt: str | None = None,
        x5t: str | None = None,
        tenant: str | None = None,
        now: float | None = None,
    ) -> str:
        """Sign a token for ``client_id`` without a request (tests, operators). The token endpoint uses this
        after authenticating the client; ``tenant`` overrides the client's (tests of refusals only)."""
        client = self._clients[client_id]
        t = time.time() if now is None else now
        life = (
            lifetime
            if lifetime is not None
            else client.token_lifetime_seconds or self.config.token_lifetime_seconds
        )
        tenant = tenant or client.tenant
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client_id,
            "client_id": client_id,
            "aud": [*(audiences if audiences is not None else client.audiences), tenant],
            "tenant": tenant,
            "scope": " ".join(scopes if scopes is not None else client.scopes),
            "iat": int(t),
            "nbf": int(t),
            "exp": int(t) + int(life),
            "jti": secrets.token_urlsafe(16),
        }
        cnf = {k: v for k, v in (("jkt", jkt), ("x5t#S256", x5t)) if v}
        if cnf:
            claims["cnf"] = cnf
        key = self.current_key
        self.tokens_issued += 1
        return jwt.encode(
            {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, claims, key.key, algorithms=["ES256"]
        )

    def _authenticate_client(self, request: Request, form: dict[str, str]) -> AuthorityClientConfig:
        import base64

        auth = request.headers.get("authorization", "")
        client_id = form.get("client_id")
        secret: str | None = form.get("client_secret")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise _OAuthError(401, "invalid_client", "malformed Basic credentials") from None
            from urllib.parse import unquote

            user, _, password = decoded.partition(":")
            client_id, secret = unquote(user), unquote(password)
        assertion = form.get("client_assertion")
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise _OAuthError(400, "invalid_request", "unsupported client_assertion_type")
            return self._assertion_client(assertion, client_id)
        client = self._clients.get(client_id or "")
        expected = self._secrets.get(client_id or "")
        if client is None or expected is None or secret is None:
            raise _OAuthError(401, "invalid_client", "unknown client or no client credentials")
        if not hmac.compare_digest(hashlib.sha256(secret.encode()).digest(), expected):
            raise _OAuthError(401, "invalid_client", "client authentication failed")
        return client

    def _assertion_client(self, assertion: str, claimed: str | None) -> AuthorityClientConfig:
        import base64
        import json

        try:
            payload = assertion.split(".")[1]
            iss = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("iss")
        except (ValueError, IndexError, AttributeError, UnicodeDecodeError):
            raise _OAuthError(401, "invalid_client", "client_assertion is not a JWT") from None
        if claimed is not None and claimed != iss:
            raise _OAuthError(401, "invalid_client", "client_id does not match the assertion issuer")
        key = self._client_keys.get(str(iss))
        client = self._clients.get(str(iss))
        if key is None or client is None:
            raise _OAuthError(401, "invalid_client", "unknown client or no registered key")
        try:
            claims = jwt.decode(assertion, key, algorithms=["ES256", "RS256", "PS256"]).claims
        except (JoseError, ValueError, TypeError):
            raise _OAuthError(401, "invalid_client", "client_assertion signature does not verify") from None
        now = time.time()
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if claims.get("sub") != iss or not ({self.token_endpoint, self.issuer} & set(audiences)):
            raise _OAuthError(401, "invalid_client", "client_assertion sub/aud mismatch")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp < now - 5 or exp > now + 600:
            raise _OAuthError(401, "invalid_client", "client_assertion expired or too long-lived")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not self.assertions.add(f"{iss}:{jti}", now):
            raise _OAuthError(401, "invalid_client", "client_assertion replayed or without jti")
        return client

    async def _form(self, request: Request) -> dict[str, str]:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise _OAuthError(
                400, "invalid_request", "token requests must be application/x-www-form-urlencoded"
            )
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise _OAuthError(413, "invalid_request", "token request too large")
        try:
            parsed = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise _OAuthError(400, "invalid_request", "token request is not ASCII form data") from None
        form: dict[str, str] = {}
        for key, values in parsed.items():
            if key == "audience":
                form[key] = " ".join(" ".join(values).split())
            elif len(values) > 1:
                raise _OAuthError(400, "invalid_request", f"parameter {key!r} repeated")
            else:
                form[key] = values[0]
        return form

    @staticmethod
    def _claimed_client(request: Request, form: dict[str, str]) -> str | None:
        """The client id a token request names (Basic user, ``client_id``, or the assertion's ``iss``),
        before it is authenticated: only the label of a refusal, never trusted."""
        import base64
        import json
        from urllib.parse import unquote

        auth = request.headers.get("authorization", "")
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            if auth.lower().startswith("basic "):
                return unquote(base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")[0])
        if "client_id" in form:
            return form["client_id"]
        with contextlib.suppress(ValueError, IndexError, AttributeError, UnicodeDecodeError):
            payload = form.get("client_assertion", "").split(".")[1]
            iss = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("iss")
            return iss if isinstance(iss, str) else None
        return None

    async def _token(self, request: Request) -> Response:
        started = time.perf_counter()
        client_id: str | None
        try:
            response, client_id = await self._issue(request)
            result = "issued"
        except _OAuthError as exc:
            log.info(
                "token request refused",
                extra=fields(event="authority.token.refused", error=exc.error, reason=exc.description),
            )
            response, client_id, result = exc.response(), exc.client_id, exc.error
        # configured ids only: the label set stays (clients + 1) × (OAuth error codes + 1)
        label = client_id if client_id in self._clients else UNKNOWN_CLIENT
        self.metrics.authority_tokens.labels(client=label, result=result).inc()
        self._observe("token", started)
        return response

    def _observe(self, endpoint: str, started: float) -> None:
        self.metrics.authority_latency_ms.labels(endpoint=endpoint).observe(
            (time.perf_counter() - started) * 1000
        )

    async def _issue(self, request: Request) -> tuple[Response, str]:
        form = await self._form(request)
        try:
            return self._grant(request, form)
        except _OAuthError as exc:
            exc.client_id = self._claimed_client(request, form)
            raise

    def _grant(self, request: Request, form: dict[str, str]) -> tuple[Response, str]:
        """The token response and the client it was issued to."""
        if form.get("grant_type") != "client_credentials":
            raise _OAuthError(400, "unsupported_grant_type", "only client_credentials is supported")
        client = self._authenticate_client(request, form)

        requested_scopes = form.get("scope", "").split() or client.scopes
        extra_scopes = sorted(set(requested_scopes) - set(client.scopes))
        if extra_scopes:
            raise _OAuthError(
                400, "invalid_scope", f"scope not allowed for this client: {' '.join(extra_scopes)}"
            )
        requested_aud = form.get("audience", "").split() or client.audiences
        extra_aud = sorted(set(requested_aud) - set(client.audiences))
        if extra_aud:
            raise _OAuthError(
                400, "invalid_target", f"audience not allowed for this client: {' '.join(extra_aud)}"
            )

        proofs = request.headers.getlist("dpop")
        jkt: str | None = None
        if len(proofs) > 1:
            raise _OAuthError(400, "invalid_dpop_proof", "more than one DPoP header")
        if proofs:
            try:
                proof = verify_proof(
                    proofs[0], method="POST", url=self.token_endpoint, replay=self.replay, nonces=self.nonces
                )
            except AuthError as exc:
                headers = {"DPoP-Nonce": exc.nonce} if exc.nonce else {}
                raise _OAuthError(400, exc.error or "invalid_dpop_proof", exc.description, headers) from None
            jkt = proof.jkt
        elif self.config.require_dpop:
            raise _OAuthError(400, "invalid_dpop_proof", "a DPoP proof is required")

        der = peer_certificate_der(request.scope)
        if client.require_mutual_tls and der is None:
            raise _OAuthError(401, "invalid_client", "this client must present its TLS client certificate")
        x5t = cert_thumbprint(der) if der is not None else None

        lifetime = client.token_lifetime_seconds or self.config.token_lifetime_seconds
        token = self.mint(
            client.client_id, audiences=requested_aud, scopes=requested_scopes, jkt=jkt, x5t=x5t
        )
        log.info(
            "token issued",
            extra=fields(
                event="authority.token.issued",
                client_id=client.client_id,
                tenant=client.tenant,
                dpop_bound=jkt is not None,
                mtls_bound=x5t is not None,
            ),
        )
        body = {
            "access_token": token,
            "token_type": "DPoP" if jkt else "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(requested_scopes),
        }
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        return JSONResponse(body, headers=headers), client.client_id

    # ----------------------------------------------------------------------------------- documents

    def discovery(self) -> dict[str, Any]:
        scopes = sorted({s for c in self.config.clients for s in c.scopes})
        return {
            "issuer": self.issuer,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": self.jwks_uri,
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "PS256"],
            "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
            "tls_client_certificate_bound_access_tokens": True,
            "scopes_supported": scopes,
        }

    async def _discovery(self, request: Request) -> Response:
        started = time.perf_counter()
        response = JSONResponse(self.discovery(), headers={"Cache-Control": "max-age=300"})
        self._observe("discovery", started)
        return response

    async def _jwks(self, request: Request) -> Response:
        started = time.perf_counter()
        response = JSONResponse(self.jwks(), headers={"Cache-Control": "max-age=60"})
        self._observe("jwks", started)
        return response

    async def _metrics(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        task: asyncio.Task[None] | None = None
        if self.config.key_rotation_seconds > 0:
            task = asyncio.create_task(self._rotate_forever(self.config.key_rotation_seconds))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _rotate_forever(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self.rotate_keys()


def hash_secret(secret: str) -> str:
    """The ``secretSha256`` value for a client secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def write_dev_setup(directory: Path, *, issuer: str, tenant: str = "tenant-01") -> dict[str, Path]:
    """Write a development Authority setup into ``directory``: ``authority.yaml`` with an observer client
    (``api:scanner.runtime.write`` + policy/catalog reads) and a webhook client (``api:scanner.policy.read``
    + ``api:scanner.admission.write``) and an operator client (reads, catalog writes) of ``tenant``, and
    their random secrets (mode 0600). Existing files
    are not overwritten (``FileExistsError``)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "config": directory / "authority.yaml",
        "observer_secret": directory / "observer.secret",
        "webhook_secret": directory / "webhook.secret",
        "operator_secret": directory / "operator.secret",
    }
    for path in paths.values():
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwriting")
    for name in ("observer_secret", "webhook_secret", "operator_secret"):
        path = paths[name]
        with path.open("x", encoding="utf-8") as handle:
            path.chmod(0o600)
            handle.write(secrets.token_urlsafe(32) + "\n")
    document = {
        "authority": {
            "issuer": issuer,
            "tokenLifetimeSeconds": 300,
            "keyRotationSeconds": 86400,
            "requireDpop": True,
            "tenants": [tenant],
            "clients": [
                {
                    "clientId": "zastava-observer",
                    "tenant": tenant,
                    "secretFile": "observer.secret",
                    "audiences": ["scanner", "zastava"],
                    # events, plus the posture (policy) and usage-view (catalog) reads the observer makes
                    "scopes": [
                        "api:scanner.runtime.write",
                        "api:scanner.policy.read",
                        "api:scanner.catalog.read",
                    ],
                },
                {
                    "clientId": "zastava-webhook",
                    "tenant": tenant,
                    "secretFile": "webhook.secret",
                    "audiences": ["scanner", "zastava"],
                    # policy reads, plus posting its admission decision records
                    "scopes": ["api:scanner.policy.read", "api:scanner.admission.write"],
                },
                {
                    # a person at the CLI: `zastava events tail`, `catalog import`, `runtime policy test`
                    "clientId": "zastava-operator",
                    "tenant": tenant,
                    "secretFile": "operator.secret",
                    "audiences": ["scanner", "zastava"],
                    "scopes": [
                        "api:scanner.runtime.read",
                        "api:scanner.policy.read",
                        "api:scanner.catalog.read",
                        "api:scanner.catalog.write",
                        "api:scanner.admission.read",
                        "api:scanner.policy.simulate",  # the console's and the CLI's policy simulation
                    ],
                },
            ],
        }
    }
    AuthorityConfig.model_validate(document["authority"])
    paths["config"].write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return paths
