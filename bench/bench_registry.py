"""Registry posture: signature verification per signature (cold vs cached) and tag resolution (uncached
HEAD vs
tag cache), against the real distribution registry on loopback. Baselines are measured in the same run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from tests.harness import devstack
from tests.harness.devstack import signing

from bench.common import median, ms, us
from zastava.registry import (
    KeylessIdentity,
    RegistryClient,
    RegistryClientConfig,
    TrustedSigners,
    TrustRoot,
    check_posture,
    load_public_key,
)
from zastava.registry.posture import VerificationCache
from zastava.registry.posture.fetch import fetch_legacy
from zastava.registry.verification.bundles import verify_bundle
from zastava.registry.verification.cosign import verify_legacy_layer
from zastava.registry.verification.policies import BundleBlob

ISSUER = "https://issuer.bench"
WHO = "ci@bench"


def _time(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


async def _atime(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return samples


def main(quick: bool) -> list[str]:
    repeat = 20 if quick else 200
    registry = devstack.RegistryServer().start()
    try:
        return asyncio.run(_run(registry, repeat))
    finally:
        registry.stop()
        registry.cleanup()


async def _run(registry: devstack.RegistryServer, repeat: int) -> list[str]:
    pusher = signing.OciPusher(registry.url)
    config = pusher.blob(
        "bench/app", b'{"os":"linux","architecture":"amd64"}', "application/vnd.oci.image.config.v1+json"
    )
    digest = pusher.manifest(
        "bench/app",
        "1",
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": [],
        },
        "application/vnd.oci.image.manifest.v1+json",
    )
    key = signing.KeyPair.generate()
    sigstore = signing.TestSigstore()
    root_path = sigstore.write_trusted_root(Path(tempfile.mkdtemp()) / "trusted_root.json")
    root = TrustRoot.load(root_path)
    signing.sign_legacy(pusher, "bench/app", digest, key=key)
    signing.sign_legacy(pusher, "bench/app", digest, sigstore=sigstore, identity=WHO, issuer=ISSUER)
    bundle = signing.dsse_bundle(
        signing.in_toto_statement(digest, signing.COSIGN_SIGN_V1, {}),
        sigstore=sigstore,
        identity=WHO,
        issuer=ISSUER,
    )
    signing.attach_bundle(pusher, "bench/app", digest, bundle)
    pusher.close()
    ref = f"{registry.host}/bench/app:1"
    policy = TrustedSigners(
        keys=[load_public_key(key.public_pem, "k")],
        identities=[KeylessIdentity(issuer=ISSUER, subject=WHO)],
        trusted_root=root,
    )
    lines: list[str] = []

    async with RegistryClient() as client:
        layers = await fetch_legacy(client, client._as_ref(ref), digest, ".sig")
    key_layer, keyless_layer = layers
    raw_bundle = json.dumps(bundle).encode()
    key_only = dataclasses.replace(policy, identities=[], trusted_root=None)
    cpu = {
        "cosign key (ECDSA P-256)": median(
            _time(lambda: verify_legacy_layer(key_layer, digest, key_only), repeat)
        ),
        "cosign keyless legacy (cert+SCT+SET)": median(
            _time(lambda: verify_legacy_layer(keyless_layer, digest, policy), repeat)
        ),
        "sigstore bundle keyless (sigstore-python)": median(
            _time(lambda: verify_bundle(raw_bundle, digest, policy, "b"), repeat)
        ),
    }
    for name, value in cpu.items():
        lines.append(f"verify one signature, cold, {name}: {us(value)}")
    # cached: the verdict cache check_posture consults before verifying (key: signature material digest,
    # image digest, trust-policy fingerprint)
    cache = VerificationCache()
    blob = BundleBlob("sha256:" + "1" * 64, raw_bundle)
    cache.check(blob, digest, policy)
    cached = median(_time(lambda: cache.check(blob, digest, policy), repeat * 10))
    lines.append(f"verify one signature, cached verdict: {us(cached)}")
    cold_bundle = cpu["sigstore bundle keyless (sigstore-python)"]
    lines.append(f"ratio cold sigstore bundle / cached: {cold_bundle / cached:.0f}×")

    async def cold() -> None:
        async with RegistryClient() as fresh:
            posture = await check_posture(fresh, ref, policy)
            assert posture.signed and len(posture.signatures) == 3

    warm_client = RegistryClient(RegistryClientConfig(tag_cache_ttl_seconds=3600))
    await check_posture(warm_client, ref, policy)

    async def warm() -> None:
        posture = await check_posture(warm_client, ref, policy)
        assert posture.signed

    cold_s = median(await _atime(cold, max(5, repeat // 10)))
    warm_s = median(await _atime(warm, repeat))
    lines.append(f"check_posture, 3 signatures, cold client (no caches): {ms(cold_s)}")
    lines.append(f"check_posture, 3 signatures, warm client (verdict + object cache): {ms(warm_s)}")
    lines.append(f"ratio cold / cached posture: {cold_s / warm_s:.1f}×")

    uncached_client = RegistryClient(RegistryClientConfig(tag_cache_ttl_seconds=0))
    cached_client = RegistryClient(RegistryClientConfig(tag_cache_ttl_seconds=3600))
    await uncached_client.resolve(ref)
    await cached_client.resolve(ref)
    uncached = median(await _atime(lambda: uncached_client.resolve(ref), repeat))
    cached = median(await _atime(lambda: cached_client.resolve(ref), repeat))
    lines.append(f"resolve tag, uncached (HEAD to the registry): {us(uncached)}")
    lines.append(f"resolve tag, cached (tag TTL cache): {us(cached)}")
    lines.append(f"ratio uncached / cached: {uncached / cached:.0f}×")
    for c in (warm_client, uncached_client, cached_client):
        await c.close()
    return lines
