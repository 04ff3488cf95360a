"""End to end over real sockets: the reference Authority and a protected app (standing in for the backend
until integration, see conftest) served by uvicorn over HTTPS with client-certificate verification; a real
:class:`TokenProvider` doing client credentials, DPoP and mTLS. Every refusal is checked by status and by the
exact ``WWW-Authenticate`` error code and reason."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.integration.auth.conftest import EVENTS, POLICY, SECRETS, AuthStack
from tests.integration.auth.pki import Issued
from zastava.auth import (
    SCOPE_POLICY_READ,
    SCOPE_RUNTIME_WRITE,
    AuthorityError,
    DpopKey,
    TokenProvider,
    build_http_client,
    cert_thumbprint,
)

BATCH = {"tenant": "tenant-01", "events": [{"kind": "ContainerStart"}]}


@asynccontextmanager
async def client_for(
    stack: AuthStack,
    client_id: str,
    *,
    cert: Issued | bool | None = True,
    scopes: list[str] | None = None,
    **kwargs: Any,
) -> AsyncIterator[TokenProvider]:
    issued = stack.pki.client if cert is True else (cert or None)
    http = build_http_client(
        ca_bundle_path=stack.pki.ca,
        client_cert_path=issued.cert if issued else None,
        client_key_path=issued.key if issued else None,
    )
    options: dict[str, Any] = {"client_secret": SECRETS.get(client_id)}
    options.update(kwargs)
    provider = TokenProvider(
        issuer=stack.issuer,
        client_id=client_id,
        audience=["scanner", "zastava"] if client_id != "elsewhere" else ["elsewhere"],
        scopes=scopes if scopes is not None else [SCOPE_RUNTIME_WRITE],
        http_client=http,
        **options,
    )
    try:
        yield provider
    finally:
        await http.aclose()


async def post(
    provider: TokenProvider, url: str, body: Any = BATCH, headers: dict[str, str] | None = None
) -> httpx.Response:
    hdrs = headers if headers is not None else await provider.headers("POST", url)
    return await provider.http.post(url, json=body, headers=hdrs)


def challenge(response: httpx.Response) -> str:
    return response.headers.get("www-authenticate", "")


def assert_refused(response: httpx.Response, status: int, error: str, reason: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    www = challenge(response)
    assert www.startswith("DPoP "), www
    assert f'error="{error}"' in www, www
    assert reason in www, www
    assert response.json()["error"] == error


# ------------------------------------------------------------------------------------------- accepted


async def test_observer_posts_events_with_dpop_over_mtls(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer") as provider:
        response = await post(provider, auth_stack.base + "/strict" + EVENTS)
        assert response.status_code == 202, response.text
        assert response.json() == {
            "accepted": 1,
            "tenant": "tenant-01",
            "subject": "observer",
            "binding": "dpop+mtls",
        }
        # the token is cached: a second call reuses it
        assert (await post(provider, auth_stack.base + "/strict" + EVENTS)).status_code == 202
        assert provider.tokens_fetched == 1


async def test_webhook_reads_policy_with_its_read_scope(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "webhook", scopes=[SCOPE_POLICY_READ]) as provider:
        response = await post(provider, auth_stack.base + "/strict" + POLICY, body={"images": []})
        assert response.status_code == 200, response.text
        assert response.json() == {"tenant": "tenant-01", "binding": "dpop+mtls"}


async def test_private_key_jwt_client(auth_stack: AuthStack) -> None:
    async with client_for(
        auth_stack, "pkjwt", client_secret=None, private_key_pem=auth_stack.client_key_pem
    ) as provider:
        response = await post(provider, auth_stack.base + "/strict" + EVENTS)
        assert response.status_code == 202, response.text
        assert response.json()["subject"] == "pkjwt"


async def test_server_nonce_is_learnt_and_retried_by_httpx_auth(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer") as provider:
        url = auth_stack.base + "/nonce" + EVENTS
        first = await post(provider, url)
        assert_refused(first, 401, "use_dpop_nonce", "DPoP nonce missing")
        assert first.headers["dpop-nonce"]
        # httpx.Auth flow: the nonce is now known, and a stale one would be retried once automatically
        response = await provider.http.post(url, json=BATCH, auth=provider.auth())
        assert response.status_code == 202, response.text
    async with client_for(auth_stack, "observer") as fresh:
        response = await fresh.http.post(url, json=BATCH, auth=fresh.auth())
        assert response.status_code == 202, response.text  # 401 use_dpop_nonce, then retried with the nonce


# -------------------------------------------------------------------------------------------- refused


async def test_no_token(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer") as provider:
        response = await post(provider, auth_stack.base + "/strict" + EVENTS, headers={})
        assert response.status_code == 401
        assert challenge(response) == 'DPoP algs="ES256"'


async def test_bearer_scheme_refused_when_dpop_required(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer") as provider:
        url = auth_stack.base + "/strict" + EVENTS
        token = (await provider.token()).value
        response = await post(provider, url, headers={"Authorization": f"Bearer {token}"})
        assert_refused(response, 401, "invalid_token", "'Bearer' scheme refused")


async def test_expired_token(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer") as provider:
        url = auth_stack.base + "/strict" + EVENTS
        token = auth_stack.authority.mint(
            "observer",
            lifetime=60,
            now=time.time() - 120,
            jkt=provider.dpop.jkt,
            x5t=cert_thumbprint(auth_stack.pki.client.der),
        )
        headers = {
            "Authorization": f"DPoP {token}",
            "DPoP": provider.dpop.proof("POST", url, access_token=token),
        }
        assert_refused(
            await post(provider, url, headers=headers), 401, "invalid_token", "access token expired"
        )


async def test_wrong_audience(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "elsewhere") as provider:
        response = await post(provider, auth_stack.base + "/strict" + EVENTS)
        assert_refused(response, 401, "invalid_token", "audience does not include 'scanner'")


async def test_token_of_a_tenant_not_served_here(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "tenant2") as provider:
        response = await post(
            provider, auth_stack.base + "/strict" + EVENTS, body={**BATCH, "tenant": "tenant-02"}
        )
        assert_refused(response, 401, "invalid_token", "tenant 'tenant-02' is not served here")


async def test_missing_scope(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "webhook", scopes=[SCOPE_POLICY_READ]) as provider:
        response = await post(provider, auth_stack.base + "/strict" + EVENTS)
        assert_refused(response, 403, "insufficient_scope", f"token lacks scope {SCOPE_RUNTIME_WRITE}")
        assert f'scope="{SCOPE_RUNTIME_WRITE}"' in challenge(response)


async def test_events_for_another_tenant(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer") as provider:
        response = await post(
            provider, auth_stack.base + "/strict" + EVENTS, body={**BATCH, "tenant": "tenant-02"}
        )
        assert_refused(
            response,
            403,
            "insufficient_scope",
            "token is for tenant 'tenant-01' and may not act for tenant 'tenant-02'",
        )


async def test_replayed_proof(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer") as provider:
        url = auth_stack.base + "/strict" + EVENTS
        headers = await provider.headers("POST", url)
        assert (await post(provider, url, headers=headers)).status_code == 202
        assert_refused(await post(provider, url, headers=headers), 401, "invalid_dpop_proof", "replayed")


async def test_proof_for_another_url_or_method(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer") as provider:
        events = auth_stack.base + "/strict" + EVENTS
        other_url = await provider.headers("POST", auth_stack.base + "/strict" + POLICY)
        assert_refused(
            await post(provider, events, headers=other_url), 401, "invalid_dpop_proof", "htu does not match"
        )
        other_method = await provider.headers("PUT", events)
        assert_refused(
            await post(provider, events, headers=other_method),
            401,
            "invalid_dpop_proof",
            "htm 'PUT' does not match",
        )


async def test_proof_signed_by_another_key(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer") as provider:
        url = auth_stack.base + "/strict" + EVENTS
        token = (await provider.token()).value
        stolen = {"Authorization": f"DPoP {token}", "DPoP": DpopKey().proof("POST", url, access_token=token)}
        assert_refused(
            await post(provider, url, headers=stolen),
            401,
            "invalid_dpop_proof",
            "does not match the token's cnf.jkt",
        )


async def test_proof_for_another_token(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer") as provider:
        url = auth_stack.base + "/strict" + EVENTS
        token = (await provider.token()).value
        headers = {
            "Authorization": f"DPoP {token}",
            "DPoP": provider.dpop.proof("POST", url, access_token="other"),
        }
        assert_refused(
            await post(provider, url, headers=headers), 401, "invalid_dpop_proof", "ath does not match"
        )


async def test_client_certificate_missing_when_required(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer", cert=None) as provider:
        response = await post(provider, auth_stack.base + "/strict" + EVENTS)
        assert_refused(
            response, 401, "invalid_token", "client certificate required (mutual TLS) but none was presented"
        )
        # the DPoP-only profile accepts the same client
        assert (await post(provider, auth_stack.base + "/dpop" + EVENTS)).status_code == 202


async def test_token_bound_to_another_certificate(auth_stack: AuthStack) -> None:
    async with (
        client_for(auth_stack, "observer") as bound,
        client_for(auth_stack, "observer", cert=auth_stack.pki.other_client) as other,
    ):
        url = auth_stack.base + "/dpop" + EVENTS
        token = (await bound.token()).value
        # a thief with another valid certificate (and the DPoP key) still fails the x5t#S256 check
        headers = {
            "Authorization": f"DPoP {token}",
            "DPoP": bound.dpop.proof("POST", url, access_token=token),
        }
        response = await other.http.post(url, json=BATCH, headers=headers)
        assert_refused(
            response, 401, "invalid_token", "client certificate does not match the token's cnf.x5t#S256"
        )


async def test_certificate_from_an_unknown_ca_is_rejected_by_tls(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer", cert=auth_stack.pki.rogue_client) as provider:
        with pytest.raises(AuthorityError, match="unreachable"):
            await provider.token()


async def test_authority_refuses_certonly_client_without_certificate(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "certonly", cert=None) as provider:
        with pytest.raises(AuthorityError, match="invalid_client") as info:
            await provider.token()
        assert info.value.status == 401
    async with client_for(auth_stack, "certonly") as provider:
        assert (await provider.token()).token_type == "DPoP"


async def test_authority_refuses_bad_secret_and_unknown_scope(auth_stack: AuthStack) -> None:
    async with client_for(auth_stack, "observer", client_secret="wrong") as provider:
        with pytest.raises(AuthorityError, match="client authentication failed"):
            await provider.token()
    async with client_for(auth_stack, "observer", scopes=[SCOPE_POLICY_READ]) as provider:
        with pytest.raises(AuthorityError, match="invalid_scope"):
            await provider.token()


# ---------------------------------------------------------------------------------- refresh, rotation


async def test_refresh_before_expiry_under_steady_load(auth_stack: AuthStack) -> None:
    """Tokens live 3 s and the verifier allows no leeway; four workers call for 7 s without a single failure
    while the provider refreshes 1 s before expiry (single-flight: one fetch per refresh)."""
    async with client_for(auth_stack, "short", refresh_skew_seconds=1.0) as provider:
        url = auth_stack.base + "/strict" + EVENTS
        statuses: list[int] = []
        deadline = time.monotonic() + 7.0

        async def worker() -> None:
            while time.monotonic() < deadline:
                statuses.append((await post(provider, url)).status_code)
                await asyncio.sleep(0.02)

        await asyncio.gather(*(worker() for _ in range(4)))
        assert len(statuses) > 40
        assert set(statuses) == {202}, [s for s in statuses if s != 202]
        # 7 s of ~3 s tokens refreshed 1 s early (every ~2 s): at least 3 tokens, and no stampede
        assert 3 <= provider.tokens_fetched <= 8


async def test_jwks_rotation(auth_stack: AuthStack) -> None:
    authority = auth_stack.authority
    verifier = auth_stack.verifiers["dpop"]
    url = auth_stack.base + "/dpop" + EVENTS
    async with client_for(auth_stack, "observer") as before:
        assert (await post(before, url)).status_code == 202
        fetches = verifier.jwks.fetches

        # 1. routine rotation: the next key was pre-published (no re-fetch needed); old tokens stay valid.
        authority.rotate_keys()
        async with client_for(auth_stack, "observer") as after:
            assert (await post(after, url)).status_code == 202
            assert verifier.jwks.fetches == fetches
        assert (await post(before, url)).status_code == 202

        # 2. emergency rotation, previous keys withdrawn: the unknown kid makes the verifier re-fetch,
        #    after which tokens of the withdrawn keys are refused.
        authority.rotate_keys(retire_previous=True)
        authority.rotate_keys(retire_previous=True)
        await asyncio.sleep(0.3)  # jwks_min_refresh_seconds of the test verifier
        async with client_for(auth_stack, "observer") as fresh:
            assert (await post(fresh, url)).status_code == 202
        assert verifier.jwks.fetches > fetches
        assert_refused(await post(before, url), 401, "invalid_token", "signed by unknown key")

        # 3. the provider drops a refused token and the httpx.Auth flow retries with a new one
        response = await before.http.post(url, json=BATCH, auth=before.auth())
        assert response.status_code == 202, response.text
