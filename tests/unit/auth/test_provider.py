"""TokenProvider against the reference Authority app (in process through httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import httpx
import pytest

from tests.unit.auth.conftest import ISSUER, SECRET, SwitchableTransport, authority_config
from zastava.auth import AuthorityError, OpTokVerifier, TokenProvider, VerifierSettings
from zastava.auth.authority import ReferenceAuthority
from zastava.auth.provider import AccessToken
from zastava.config import Authority

URL = "https://backend.test/api/v1/scanner/runtime/events"


def provider(http: httpx.AsyncClient, **kwargs: object) -> TokenProvider:
    options: dict[str, object] = {
        "issuer": ISSUER,
        "client_id": "observer",
        "client_secret": SECRET,
        "audience": ["scanner", "zastava"],
        "scopes": ["api:scanner.runtime.write"],
        "http_client": http,
    }
    options.update(kwargs)
    return TokenProvider(**options)  # type: ignore[arg-type]


async def test_headers_verify_at_a_resource_server(http: httpx.AsyncClient) -> None:
    p = provider(http)
    headers = await p.headers("POST", URL)
    assert headers["Authorization"].startswith("DPoP ")
    verifier = OpTokVerifier(VerifierSettings(issuer=ISSUER), http_client=http)
    principal = await verifier.verify(
        method="POST", url=URL, authorization=headers["Authorization"], dpop=headers["DPoP"]
    )
    assert principal.tenant == "tenant-01" and principal.binding == "dpop"


async def test_single_flight_and_cache(http: httpx.AsyncClient, authority: ReferenceAuthority) -> None:
    p = provider(http)
    tokens = await asyncio.gather(*(p.token() for _ in range(25)))
    assert len({t.value for t in tokens}) == 1
    assert p.tokens_fetched == 1 and authority.tokens_issued == 1
    p.invalidate()
    assert (await p.token()).value != tokens[0].value


async def test_refresh_failure_keeps_valid_token_then_raises(
    http: httpx.AsyncClient, transport: SwitchableTransport, caplog: pytest.LogCaptureFixture
) -> None:
    p = provider(http, refresh_skew_seconds=3600)  # every call is "due" (half the lifetime rule applies)
    first = await p.token()
    object.__setattr__(first, "expires_at", first.expires_at - first.lifetime / 2 - 1)  # refresh due now
    transport.down = True
    with caplog.at_level(logging.WARNING, logger="zastava.auth"):
        assert (await p.token()).value == first.value
    assert any(
        getattr(r, "zastava_fields", {}).get("event") == "authority.refresh.failed" for r in caplog.records
    )
    p.invalidate()
    with pytest.raises(AuthorityError, match="unreachable"):
        await p.token()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_static_fallback_only_when_allowed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    static = tmp_path / "static.token"
    static.write_text("bootstrap-token\n")
    issuer = f"http://127.0.0.1:{closed_port()}"
    async with httpx.AsyncClient(timeout=2) as http:
        strict = TokenProvider(issuer=issuer, client_id="c", client_secret="s", http_client=http)
        with pytest.raises(AuthorityError, match="unreachable"):
            await strict.headers("POST", URL)
        relaxed = TokenProvider(
            issuer=issuer,
            client_id="c",
            client_secret="s",
            http_client=http,
            allow_static_token_fallback=True,
            static_token_path=static,
        )
        with caplog.at_level(logging.WARNING, logger="zastava.auth"):
            assert await relaxed.headers("POST", URL) == {"Authorization": "Bearer bootstrap-token"}
    warnings = [getattr(r, "zastava_fields", {}) for r in caplog.records]
    used = [w for w in warnings if w.get("event") == "authority.static_token.used"]
    assert used and used[0]["key"] == "zastava.runtime.authority.allowStaticTokenFallback"
    assert "bootstrap-token" not in caplog.text


async def test_bearer_refused_when_dpop_required(http: httpx.AsyncClient) -> None:
    # a provider that sends no proof gets a Bearer token from an Authority that does not insist on DPoP …
    lax = ReferenceAuthority(authority_config(requireDpop=False))
    async with httpx.AsyncClient(transport=SwitchableTransport(lax.app)) as lax_http:
        bearer = provider(lax_http, require_dpop=False)
        assert (await bearer.headers("GET", URL))["Authorization"].startswith("Bearer ")
        # … and the Authority refuses proof-less requests when it does
    with pytest.raises(AuthorityError, match="invalid_dpop_proof"):
        await provider(http, require_dpop=False).token()


async def test_nonce_at_token_endpoint(authority: ReferenceAuthority) -> None:
    strict = ReferenceAuthority(authority_config(requireNonce=True))
    transport = SwitchableTransport(strict.app)
    async with httpx.AsyncClient(transport=transport) as http:
        p = provider(http)
        assert (await p.token()).token_type == "DPoP"
        # discovery + (token → 400 use_dpop_nonce) + token again
        assert transport.requests == 3


async def test_private_key_assertion_and_authority_errors(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "c.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    config = authority_config(
        clients=[{"clientId": "rsa", "tenant": "tenant-01", "publicKeyPath": "c.pub", "scopes": ["a"]}]
    )
    authority = ReferenceAuthority(config, config_dir=tmp_path)
    async with httpx.AsyncClient(transport=SwitchableTransport(authority.app)) as http:
        p = provider(http, client_id="rsa", client_secret=None, private_key_pem=pem, scopes=["a"])
        assert (await p.token()).scope == "a"
        wrong = provider(http, client_id="rsa", client_secret="guess", scopes=["a"])
        with pytest.raises(AuthorityError, match="invalid_client"):
            await wrong.token()
        response = await http.post(ISSUER + "/token", data={"grant_type": "password"})
        assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"
        response = await http.post(
            ISSUER + "/token",
            content=b"x" * 20_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413
        response = await http.post(ISSUER + "/token", json={"grant_type": "client_credentials"})
        assert response.status_code == 400 and "form-urlencoded" in response.json()["error_description"]


def test_from_config(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    authority = Authority(issuer=ISSUER, clientSecretPath=str(secret), requireMutualTls=False)
    p = TokenProvider.from_config(authority, tenant="tenant-01")
    assert p.client_id == "zastava-observer" and p.require_dpop
    with pytest.raises(ValueError, match="requireMutualTls is true but clientCertPath"):
        TokenProvider.from_config(Authority(issuer=ISSUER, clientSecretPath=str(secret)))
    with pytest.raises(AuthorityError, match="cannot read clientSecretPath"):
        TokenProvider.from_config(
            Authority(issuer=ISSUER, clientSecretPath=str(tmp_path / "nope"), requireMutualTls=False)
        )


def test_refresh_due_never_past_half_life() -> None:
    token = AccessToken("t", "DPoP", expires_at=1000.0, lifetime=10.0)
    assert not token.refresh_due(994.9, skew=120)
    assert token.refresh_due(995.0, skew=120)
    assert not token.refresh_due(997.9, skew=2) and token.refresh_due(998.0, skew=2)


def test_issuer_must_be_https_except_on_loopback() -> None:
    for bad in ("http://authority.internal", "ftp://x", "authority.internal"):
        with pytest.raises(ValueError, match="https://"):
            TokenProvider(issuer=bad, client_id="c", client_secret="s")
        with pytest.raises(ValueError, match="https://"):
            OpTokVerifier(VerifierSettings(issuer=bad))
    TokenProvider(issuer="http://127.0.0.1:8080/", client_id="c", client_secret="s")


async def test_token_without_the_configured_tenant_audience_is_not_used(http: httpx.AsyncClient) -> None:
    assert (await provider(http, tenant="tenant-01").token()).token_type == "DPoP"
    with pytest.raises(AuthorityError, match="audience lacks tenant 'tenant-02'"):
        await provider(http, tenant="tenant-02").token()


async def test_static_only_provider_without_client_credentials(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    static = tmp_path / "static.token"
    static.write_text("bootstrap")
    p = provider(http, client_secret=None, allow_static_token_fallback=True, static_token_path=static)
    assert await p.headers("GET", URL) == {"Authorization": "Bearer bootstrap"}
    with pytest.raises(ValueError, match="client secret or a private key"):
        provider(http, client_secret=None)
