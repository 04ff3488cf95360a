"""Per-request cost of OpToks with DPoP: server-side verification (JWT signature + claims + DPoP proof +
replay cache) against the baseline of verifying the JWT signature alone (joserfc, same key, same run); and the
client's per-request header cost (one fresh ES256 proof) against signing one JWT."""

from __future__ import annotations

import asyncio
import time

import httpx
from joserfc import jwt

from bench.common import median, pct, timeit, us
from zastava.auth import DpopKey, OpTokVerifier, VerifierSettings
from zastava.auth.authority import AuthorityConfig, ReferenceAuthority, hash_secret

ISSUER = "https://authority.bench"
URL = "https://backend.bench/api/v1/scanner/runtime/events"


def main(quick: bool = False) -> list[str]:
    config = AuthorityConfig.model_validate(
        {
            "issuer": ISSUER,
            "tenants": ["tenant-01"],
            "clients": [
                {
                    "clientId": "observer",
                    "tenant": "tenant-01",
                    "secretSha256": hash_secret("x"),
                    "scopes": ["api:scanner.runtime.write"],
                }
            ],
        }
    )
    authority = ReferenceAuthority(config)
    key = DpopKey()
    token = authority.mint("observer", jkt=key.jkt)
    repeat = 300 if quick else 3000
    loop = asyncio.new_event_loop()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=authority.app))
    verifier = OpTokVerifier(VerifierSettings(issuer=ISSUER), http_client=http)
    try:
        proofs = iter([key.proof("POST", URL, access_token=token) for _ in range(repeat + 10)])

        async def full_samples() -> list[float]:
            samples = []
            for i in range(repeat + 3):
                proof = next(proofs)
                start = time.perf_counter()
                await verifier.verify(
                    method="POST",
                    url=URL,
                    authorization=f"DPoP {token}",
                    dpop=proof,
                    required_scopes=("api:scanner.runtime.write",),
                )
                if i >= 3:  # warm-up: JWKS fetch, key cache
                    samples.append(time.perf_counter() - start)
            return samples

        keyset = loop.run_until_complete(verifier.jwks.keys_for(None))

        def baseline() -> None:
            jwt.decode(token, keyset, algorithms=["ES256"])

        verify_full = loop.run_until_complete(full_samples())
        verify_base = timeit(baseline, repeat=repeat)
        proof = timeit(lambda: key.proof("POST", URL, access_token=token), repeat=repeat)
        signing = authority.current_key.key
        sign_base = timeit(
            lambda: jwt.encode({"alg": "ES256"}, {"a": 1}, signing, algorithms=["ES256"]), repeat=repeat
        )
    finally:
        loop.run_until_complete(http.aclose())
        loop.close()
    return [
        f"server: full OpTok+DPoP verification {us(median(verify_full))} median, "
        f"p99 {us(pct(verify_full, 99))}",
        f"server baseline: JWT signature only {us(median(verify_base))} median",
        f"ratio full / baseline: {median(verify_full) / median(verify_base):.2f}x "
        f"(≈ {1 / median(verify_full):.0f} verified requests/s per core)",
        f"client: one DPoP proof {us(median(proof))} median; "
        f"baseline one JWT signature {us(median(sign_base))}; "
        f"ratio {median(proof) / median(sign_base):.2f}x",
    ]
