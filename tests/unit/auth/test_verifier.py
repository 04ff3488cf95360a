"""OpTokVerifier against the reference Authority's JWKS (in process). Transport-level paths (uvicorn, TLS
extension, client certificates) are covered end to end in tests/integration/auth."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt

from tests.unit.auth.conftest import ISSUER
from zastava.auth import (
    SCOPE_POLICY_READ,
    SCOPE_RUNTIME_WRITE,
    AuthError,
    DpopKey,
    OpTokVerifier,
    Principal,
    VerifierSettings,
    cert_thumbprint,
    require_tenant,
)
from zastava.auth.authority import ReferenceAuthority
from zastava.config import ZastavaConfig

URL = "https://backend.test/api/v1/scanner/runtime/events"


def verifier(http: httpx.AsyncClient, **overrides: Any) -> OpTokVerifier:
    options: dict[str, Any] = {"issuer": ISSUER, "audience": "scanner", "leeway_seconds": 5.0}
    options.update(overrides)
    return OpTokVerifier(VerifierSettings(**options), http_client=http)


def sign(authority: ReferenceAuthority, claims: dict[str, Any], **header: Any) -> str:
    key = authority.current_key
    return jwt.encode({"alg": "ES256", "kid": key.kid, **header}, claims, key.key, algorithms=["ES256"])


def base_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "observer",
        "aud": ["scanner", "tenant-01"],
        "tenant": "tenant-01",
        "scope": SCOPE_RUNTIME_WRITE,
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def forged_header(header: dict[str, Any]) -> str:
    def enc(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{enc(header)}.{enc(base_claims())}.c2ln"


async def check(v: OpTokVerifier, token: str, key: DpopKey | None = None, **kwargs: Any) -> Principal:
    options: dict[str, Any] = {"method": "POST", "url": URL, "required_scopes": (SCOPE_RUNTIME_WRITE,)}
    if key is not None:
        options["authorization"] = f"DPoP {token}"
        options["dpop"] = key.proof("POST", URL, access_token=token)
    else:
        options["authorization"] = f"Bearer {token}"
    options.update(kwargs)
    return await v.verify(**options)


async def refused(status: int, error: str | None, reason: str, coro: Any) -> AuthError:
    with pytest.raises(AuthError) as info:
        await coro
    exc = info.value
    assert (exc.status, exc.error) == (status, error), exc
    assert reason in exc.description, exc.description
    return exc


async def test_valid_dpop_token(authority: ReferenceAuthority, http: httpx.AsyncClient) -> None:
    key = DpopKey()
    token = authority.mint("observer", jkt=key.jkt)
    principal = await check(verifier(http), token, key)
    assert principal == Principal(
        tenant="tenant-01",
        subject="observer",
        scopes=frozenset({SCOPE_RUNTIME_WRITE}),
        client_id="observer",
        token_id=principal.token_id,
        binding="dpop",
        expires_at=principal.expires_at,
    )


async def test_claim_refusals(authority: ReferenceAuthority, http: httpx.AsyncClient) -> None:
    v = verifier(http, require_dpop=False, allow_bearer=True)
    cases = [
        ({"iss": "https://evil.test"}, "issuer 'https://evil.test' is not"),
        ({"exp": int(time.time()) - 60}, "access token expired"),
        ({"exp": None}, "access token has no exp"),
        ({"nbf": int(time.time()) + 60}, "not yet valid (nbf)"),
        ({"aud": ["zastava", "tenant-01"]}, "audience does not include 'scanner'"),
        ({"aud": ["scanner"]}, "audience does not include its tenant 'tenant-01'"),
        ({"tenant": None}, "names no tenant"),
        ({"aud": "scanner", "tenant": None}, "names no tenant"),
    ]
    for overrides, reason in cases:
        await refused(401, "invalid_token", reason, check(v, sign(authority, base_claims(**overrides))))
    await refused(
        403,
        "insufficient_scope",
        f"token lacks scope {SCOPE_RUNTIME_WRITE}",
        check(v, sign(authority, base_claims(scope=SCOPE_POLICY_READ))),
    )
    await refused(401, "invalid_token", "not a JWT", check(v, "garbage"))
    await refused(
        401, "invalid_token", "algorithm 'HS256' is not accepted", check(v, forged_header({"alg": "HS256"}))
    )
    await refused(
        401,
        "invalid_token",
        "signed by unknown key 'nope'",
        check(v, sign(authority, base_claims(), kid="nope")),
    )


async def test_tenant_from_aud_when_no_claim(authority: ReferenceAuthority, http: httpx.AsyncClient) -> None:
    v = verifier(http, require_dpop=False, allow_bearer=True, tenants=frozenset({"tenant-01", "tenant-02"}))
    principal = await check(v, sign(authority, base_claims(tenant=None)))
    assert principal.tenant == "tenant-01" and principal.binding == "bearer"
    ambiguous = base_claims(tenant=None, aud=["scanner", "tenant-01", "tenant-02"])
    await refused(401, "invalid_token", "names no tenant", check(v, sign(authority, ambiguous)))


async def test_scheme_and_binding_refusals(authority: ReferenceAuthority, http: httpx.AsyncClient) -> None:
    key = DpopKey()
    bound = authority.mint("observer", jkt=key.jkt)
    unbound = authority.mint("observer")
    v = verifier(http)
    exc = await refused(401, None, "no access token", v.verify(method="POST", url=URL, authorization=None))
    assert exc.www_authenticate() == 'DPoP algs="ES256"'
    await refused(401, "invalid_token", "'Bearer' scheme refused", check(v, bound))
    await refused(401, "invalid_token", "no cnf.jkt binding", check(v, unbound, key))
    await refused(
        401,
        "invalid_dpop_proof",
        "DPoP header missing",
        v.verify(method="POST", url=URL, authorization=f"DPoP {bound}"),
    )
    await refused(
        400,
        "invalid_request",
        "more than one Authorization header",
        v.verify(method="POST", url=URL, authorization=[f"DPoP {bound}", f"DPoP {bound}"]),
    )
    relaxed = verifier(http, require_dpop=False, allow_bearer=True)
    exc = await refused(401, "invalid_token", "cnf.jkt) but was sent with the Bearer", check(relaxed, bound))
    assert exc.www_authenticate().startswith('DPoP error="invalid_token"')
    assert ', Bearer error="invalid_token"' in exc.www_authenticate()
    assert (await check(relaxed, unbound)).binding == "bearer"


async def test_mtls_binding(authority: ReferenceAuthority, http: httpx.AsyncClient) -> None:
    key = DpopKey()
    cert, other = b"certificate-one", b"certificate-two"
    token = authority.mint("observer", jkt=key.jkt, x5t=cert_thumbprint(cert))
    v = verifier(http, require_mutual_tls=True)
    assert (await check(v, token, key, peer_cert_der=cert)).binding == "dpop+mtls"
    await refused(401, "invalid_token", "none was presented", check(v, token, key))
    await refused(
        401,
        "invalid_token",
        "does not match the token's cnf.x5t#S256",
        check(v, token, key, peer_cert_der=other),
    )
    unbound = authority.mint("observer", jkt=key.jkt)
    await refused(401, "invalid_token", "no cnf.x5t#S256", check(v, unbound, key, peer_cert_der=cert))
    # a cert-bound token is checked even where mTLS is not required
    await refused(401, "invalid_token", "none was presented", check(verifier(http), token, key))


async def test_replay_and_foreign_proof(authority: ReferenceAuthority, http: httpx.AsyncClient) -> None:
    key = DpopKey()
    token = authority.mint("observer", jkt=key.jkt)
    v = verifier(http)
    proof = key.proof("POST", URL, access_token=token)
    await v.verify(method="POST", url=URL, authorization=f"DPoP {token}", dpop=proof)
    await refused(
        401,
        "invalid_dpop_proof",
        "replayed",
        v.verify(method="POST", url=URL, authorization=f"DPoP {token}", dpop=proof),
    )
    await refused(401, "invalid_dpop_proof", "does not match the token's cnf.jkt", check(v, token, DpopKey()))


async def test_jwks_unreachable_is_503(
    authority: ReferenceAuthority, http: httpx.AsyncClient, transport: Any
) -> None:
    transport.down = True
    key = DpopKey()
    token = authority.mint("observer", jkt=key.jkt)
    v = verifier(http)
    await refused(503, "temporarily_unavailable", "cannot fetch the issuer's keys", check(v, token, key))
    # the next request within jwks_min_refresh_seconds does not hit the Authority again
    before = transport.requests
    await refused(503, "temporarily_unavailable", "last fetch failed", check(v, token, key))
    assert transport.requests == before


def test_require_tenant() -> None:
    principal = Principal(tenant="tenant-01", subject="s", scopes=frozenset())
    require_tenant(principal, "tenant-01")
    require_tenant(principal, None)
    with pytest.raises(AuthError) as info:
        require_tenant(principal, "tenant-02")
    assert info.value.status == 403
    assert info.value.response().status_code == 403
    assert 'error="insufficient_scope"' in info.value.headers()["WWW-Authenticate"]


def test_settings_from_config() -> None:
    config = ZastavaConfig()
    settings = VerifierSettings.from_config(config)
    assert settings.issuer == config.runtime.authority.issuer
    assert settings.scope_map == {
        "/api/v1/scanner/runtime/events": (SCOPE_RUNTIME_WRITE,),
        "/api/v1/scanner/policy/runtime": (SCOPE_POLICY_READ,),
    }
    assert settings.require_dpop and settings.require_mutual_tls and not settings.allow_bearer


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    authorization=st.one_of(st.none(), st.text(max_size=200), st.lists(st.text(max_size=50), max_size=3)),
    dpop=st.one_of(st.none(), st.text(max_size=200)),
)
def test_hostile_headers_only_raise_auth_errors(
    authority: ReferenceAuthority, authorization: Any, dpop: str | None
) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=authority.app)) as http:
            with pytest.raises(AuthError) as info:
                await verifier(http).verify(method="POST", url=URL, authorization=authorization, dpop=dpop)
            assert info.value.status in (400, 401)

    asyncio.run(run())
