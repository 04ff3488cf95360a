"""Real servers for the auth suite: the reference Authority and a protected app, each served by uvicorn over
HTTPS on loopback in its own thread (own event loop), with client certificates verified against a test CA.

The protected app stands in for the reference backend until the backend (issue 5) wires
:class:`zastava.auth.OpTokVerifier` into its authenticator seam: it exposes the backend's two paths
(``/api/v1/scanner/runtime/events`` needing ``api:scanner.runtime.write``, ``/api/v1/scanner/policy/runtime``
needing ``api:scanner.policy.read``) under three verifier profiles:

- ``/strict``: DPoP and mTLS required (``cnf.jkt`` and ``cnf.x5t#S256``), tenants {tenant-01}, no leeway;
- ``/dpop``: DPoP required, mTLS not required;
- ``/nonce``: like ``/dpop`` plus a server DPoP nonce (RFC 9449 §9).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.harness.servers import ThreadedServer
from tests.integration.auth.pki import Pki, make_pki
from zastava.auth import (
    SCOPE_POLICY_READ,
    SCOPE_RUNTIME_WRITE,
    AuthError,
    OpTokVerifier,
    VerifierSettings,
    auth_error_handler,
    require_tenant,
    uvicorn_tls_kwargs,
)
from zastava.auth.authority import AuthorityConfig, ReferenceAuthority, hash_secret

EVENTS = "/api/v1/scanner/runtime/events"
POLICY = "/api/v1/scanner/policy/runtime"
SECRETS = {
    "observer": "observer-secret-1",
    "webhook": "webhook-secret-1",
    "tenant2": "tenant2-secret-1",
    "elsewhere": "elsewhere-secret-1",
    "short": "short-secret-1",
    "certonly": "certonly-secret-1",
}


@dataclass
class AuthStack:
    pki: Pki
    authority: ReferenceAuthority
    issuer: str
    base: str  # protected app base URL
    verifiers: dict[str, OpTokVerifier]
    client_key_pem: bytes


def _protected_app(verifiers: dict[str, OpTokVerifier]) -> Starlette:
    routes: list[Route] = []
    for prefix, verifier in verifiers.items():
        write = verifier.authenticator(SCOPE_RUNTIME_WRITE)
        read = verifier.authenticator(SCOPE_POLICY_READ)

        async def events(request: Request, authenticate: Any = write) -> JSONResponse:
            principal = await authenticate(request)
            body = await request.json()
            require_tenant(principal, body.get("tenant"))
            return JSONResponse(
                {
                    "accepted": len(body.get("events", [])),
                    "tenant": principal.tenant,
                    "subject": principal.subject,
                    "binding": principal.binding,
                },
                status_code=202,
            )

        async def policy(request: Request, authenticate: Any = read) -> JSONResponse:
            principal = await authenticate(request)
            return JSONResponse({"tenant": principal.tenant, "binding": principal.binding})

        routes.append(Route(f"/{prefix}{EVENTS}", events, methods=["POST"]))
        routes.append(Route(f"/{prefix}{POLICY}", policy, methods=["POST"]))
    return Starlette(routes=routes, exception_handlers={AuthError: auth_error_handler})


@pytest.fixture(scope="session")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    directory: Path = tmp_path_factory.mktemp("auth")
    pki = make_pki(directory / "pki")
    client_key = ec.generate_private_key(ec.SECP256R1())
    (directory / "pkjwt.pub.pem").write_bytes(
        client_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    client_key_pem = client_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    tls = uvicorn_tls_kwargs(certfile=pki.server.cert, keyfile=pki.server.key, client_ca=pki.ca)
    authority_server = ThreadedServer(None, **tls)
    issuer = f"https://127.0.0.1:{authority_server.port}"

    def client(client_id: str, secret: str | None, **extra: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"clientId": client_id, "tenant": "tenant-01", **extra}
        if secret is not None:
            entry["secretSha256"] = hash_secret(secret)
        return entry

    config = AuthorityConfig.model_validate(
        {
            "issuer": issuer,
            "tokenLifetimeSeconds": 300,
            "tenants": ["tenant-01", "tenant-02"],
            "clients": [
                client("observer", SECRETS["observer"], scopes=[SCOPE_RUNTIME_WRITE]),
                client(
                    "webhook", SECRETS["webhook"], scopes=[SCOPE_POLICY_READ, "api:scanner.admission.write"]
                ),
                client(
                    "tenant2",
                    SECRETS["tenant2"],
                    tenant="tenant-02",
                    scopes=[SCOPE_RUNTIME_WRITE, SCOPE_POLICY_READ],
                ),
                client(
                    "elsewhere", SECRETS["elsewhere"], audiences=["elsewhere"], scopes=[SCOPE_RUNTIME_WRITE]
                ),
                client("short", SECRETS["short"], scopes=[SCOPE_RUNTIME_WRITE], tokenLifetimeSeconds=3),
                client("certonly", SECRETS["certonly"], scopes=[SCOPE_RUNTIME_WRITE], requireMutualTls=True),
                client("pkjwt", None, publicKeyPath="pkjwt.pub.pem", scopes=[SCOPE_RUNTIME_WRITE]),
            ],
        }
    )
    authority = ReferenceAuthority(config, config_dir=directory)
    authority_server.app = authority.app
    authority_server.start()

    common: dict[str, Any] = {
        "issuer": issuer,
        "audience": "scanner",
        "tenants": frozenset({"tenant-01"}),
        "ca_bundle_path": str(pki.ca),
        "leeway_seconds": 0.0,
        "jwks_min_refresh_seconds": 0.2,
    }
    verifiers = {
        "strict": OpTokVerifier(VerifierSettings(**common, require_dpop=True, require_mutual_tls=True)),
        "dpop": OpTokVerifier(VerifierSettings(**common, require_dpop=True, require_mutual_tls=False)),
        "nonce": OpTokVerifier(VerifierSettings(**common, require_nonce=True)),
    }
    protected = ThreadedServer(_protected_app(verifiers), **tls).start()
    try:
        yield AuthStack(
            pki=pki,
            authority=authority,
            issuer=issuer,
            base=f"https://127.0.0.1:{protected.port}",
            verifiers=verifiers,
            client_key_pem=client_key_pem,
        )
    finally:
        protected.stop()
        authority_server.stop()
