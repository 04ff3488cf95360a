from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, OctKey

from zastava.auth.dpop import (
    DpopKey,
    NonceIssuer,
    ReplayCache,
    access_token_hash,
    normalize_htu,
    verify_proof,
)
from zastava.auth.errors import AuthError

URL = "https://backend.test/api/v1/scanner/runtime/events"


def claims_of(proof: str) -> dict[str, object]:
    part = proof.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def refused(reason: str, proof: str, **kwargs: object) -> AuthError:
    options: dict[str, object] = {"method": "POST", "url": URL}
    options.update(kwargs)
    with pytest.raises(AuthError) as info:
        verify_proof(proof, **options)  # type: ignore[arg-type]
    assert reason in info.value.description, info.value.description
    return info.value


def test_proof_claims_and_roundtrip() -> None:
    key = DpopKey()
    proof = key.proof("post", URL + "?q=1#f", access_token="tok", nonce="n1")
    claims = claims_of(proof)
    assert claims["htm"] == "POST"
    assert claims["htu"] == URL
    assert claims["ath"] == access_token_hash("tok")
    assert claims["nonce"] == "n1"
    assert abs(int(claims["iat"]) - time.time()) < 5  # type: ignore[call-overload]
    verified = verify_proof(proof, method="POST", url=URL, access_token="tok")
    assert verified.jkt == key.jkt
    assert key.proof("POST", URL) != key.proof("POST", URL)  # fresh jti each time
    assert "d" not in key.public_jwk


def test_ath_is_sha256_base64url() -> None:
    # RFC 9449 §7.1 example: token "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU" → ath below
    assert (
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
        == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    )


def test_refusals() -> None:
    key = DpopKey()
    refused("htm 'GET' does not match method POST", key.proof("GET", URL))
    refused("htu does not match", key.proof("POST", URL + "/other"))
    refused("htu does not match", key.proof("POST", "https://evil.test/api/v1/scanner/runtime/events"))
    refused("older than 60s", key.proof("POST", URL, now=time.time() - 120))
    refused("in the future", key.proof("POST", URL, now=time.time() + 60))
    refused("ath does not match", key.proof("POST", URL, access_token="a"), access_token="b")
    refused("ath does not match", key.proof("POST", URL), access_token="b")
    proof = key.proof("POST", URL)
    head, _body, sig = proof.split(".")
    forged = dict(claims_of(proof), htu=URL)
    forged_body = (
        base64.urlsafe_b64encode(json.dumps({**forged, "jti": "x" * 20}).encode()).rstrip(b"=").decode()
    )
    refused("signature does not verify", f"{head}.{forged_body}.{sig}")
    refused("not a compact JWS", "a.b")
    refused("not a JWS", "!!!.b.c")
    refused("too large", "a" * 9000)


def _sign(header: dict[str, object], claims: dict[str, object], key: object, alg: str) -> str:
    return jws.serialize_compact(header, json.dumps(claims), key, algorithms=[alg])  # type: ignore[arg-type]


def test_header_refusals() -> None:
    private = ECKey.generate_key("P-256", private=True)
    public = private.as_dict(private=False)
    claims = {"jti": "abcdefghijk", "htm": "POST", "htu": URL, "iat": int(time.time())}
    refused(
        "typ must be dpop+jwt", _sign({"typ": "JWT", "alg": "ES256", "jwk": public}, claims, private, "ES256")
    )
    refused("lacks an EC public jwk", _sign({"typ": "dpop+jwt", "alg": "ES256"}, claims, private, "ES256"))
    refused(
        "contains a private key",
        _sign(
            {"typ": "dpop+jwt", "alg": "ES256", "jwk": private.as_dict(private=True)},
            claims,
            private,
            "ES256",
        ),
    )
    secret = OctKey.generate_key(256)
    refused(
        "alg must be one of ES256",
        _sign({"typ": "dpop+jwt", "alg": "HS256", "jwk": public}, claims, secret, "HS256"),
    )
    other = ECKey.generate_key("P-256", private=True)
    refused(
        "signature does not verify",
        _sign({"typ": "dpop+jwt", "alg": "ES256", "jwk": public}, claims, other, "ES256"),
    )
    refused(
        "jti missing",
        _sign({"typ": "dpop+jwt", "alg": "ES256", "jwk": public}, {**claims, "jti": 1}, private, "ES256"),
    )


def test_replay_cache() -> None:
    key = DpopKey()
    cache = ReplayCache(ttl=65)
    proof = key.proof("POST", URL)
    verify_proof(proof, method="POST", url=URL, replay=cache)
    refused("replayed", proof, replay=cache)
    # after the ttl the id is forgotten (the proof itself is then too old anyway)
    small = ReplayCache(ttl=10, max_entries=2)
    assert small.add("a", now=0) and small.add("b", now=1)
    with pytest.raises(AuthError, match="saturated"):
        small.add("c", now=2)
    assert small.add("c", now=10.5)  # "a" expired and was dropped
    assert not small.add("b", now=10.6)
    assert len(small) == 2


def test_nonces() -> None:
    issuer = NonceIssuer(secret=b"k" * 32, window_seconds=100)
    nonce = issuer.issue(now=1000)
    assert issuer.valid(nonce, now=1099) and issuer.valid(nonce, now=1150)
    assert not issuer.valid(nonce, now=1250)
    assert not NonceIssuer(secret=b"x" * 32, window_seconds=100).valid(nonce, now=1000)
    key = DpopKey()
    err = refused("DPoP nonce missing", key.proof("POST", URL, now=1000), nonces=issuer, now=1000.0)
    assert err.error == "use_dpop_nonce" and err.nonce == nonce
    assert err.headers()["DPoP-Nonce"] == nonce
    refused("stale or invalid", key.proof("POST", URL, nonce="bogus", now=1000), nonces=issuer, now=1000.0)
    verify_proof(
        key.proof("POST", URL, nonce=nonce, now=1000), method="POST", url=URL, nonces=issuer, now=1000.0
    )


def test_normalize_htu() -> None:
    assert normalize_htu("HTTPS://Backend.Test:443/a?b#c") == "https://backend.test/a"
    assert normalize_htu("http://h:80") == "http://h/"
    assert normalize_htu("https://h:8443/x") == "https://h:8443/x"
    assert normalize_htu("https://[::1]:8443/x") == "https://[::1]:8443/x"
    for bad in ("ftp://h/x", "/relative", "https:///nohost"):
        with pytest.raises(ValueError):
            normalize_htu(bad)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: base64.urlsafe_b64encode(b).decode()))
def test_hostile_proofs_only_raise_auth_errors(garbage: str) -> None:
    for candidate in (garbage, f"{garbage}.{garbage}.{garbage}", f"eyJ0eXAiOiJkcG9wK2p3dCJ9.{garbage}.x"):
        with pytest.raises(AuthError):
            verify_proof(candidate, method="POST", url=URL)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["http", "https", "HTTPS"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    st.one_of(st.none(), st.integers(1, 65535)),
    st.from_regex(r"(/[A-Za-z0-9._~-]{0,10}){0,4}", fullmatch=True),
)
def test_normalize_htu_is_idempotent(scheme: str, host: str, port: int | None, path: str) -> None:
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}?x=1"
    once = normalize_htu(url)
    assert normalize_htu(once) == once
    assert "?" not in once
