"""Registry posture against the real distribution registry (Debian docker-registry 2.8: no referrers API)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.harness.devstack import signing
from zastava.registry import (
    InvalidManifest,
    KeylessIdentity,
    RegistryClient,
    RegistryClientConfig,
    TrustedSigners,
    TrustRoot,
    check_posture,
    load_public_key,
)
from zastava.registry.transport.manifest import Platform

from .conftest import Image, MultiArch

pytestmark = pytest.mark.real

ISSUER = "https://issuer.zastava.test"
DEV = "dev@zastava.test"


def key_policy(*keys: signing.KeyPair, **kw: object) -> TrustedSigners:
    return TrustedSigners(keys=[load_public_key(k.public_pem, f"key{i}") for i, k in enumerate(keys)], **kw)  # type: ignore[arg-type]


def keyless_policy(root_path: object, **identity: str) -> TrustedSigners:
    return TrustedSigners(
        identities=[KeylessIdentity(issuer=ISSUER, **identity)], trusted_root=TrustRoot.load(root_path)
    )  # type: ignore[arg-type]


async def posture(image: Image, policy: TrustedSigners, ref: str | None = None, **config: object):  # type: ignore[no-untyped-def]
    async with RegistryClient(RegistryClientConfig(**config)) as client:  # type: ignore[arg-type]
        return await check_posture(client, ref or image.ref, policy)


async def test_resolve_tag_to_pushed_digest_and_cache(image: Image) -> None:
    async with RegistryClient() as client:
        first = await client.resolve(image.ref)
        requests = client.stats["requests"]
        second = await client.resolve(image.ref)
        assert first.digest == second.digest == image.digest
        assert first.platform_digest == image.digest and not first.is_index
        assert client.stats["requests"] == requests and client.stats["tag_cache_hits"] == 1
    async with RegistryClient(RegistryClientConfig(tag_cache_ttl_seconds=0)) as client:
        await client.resolve(image.ref)
        await client.resolve(image.ref)
        assert client.stats["tag_cache_hits"] == 0


@pytest.mark.parametrize("kind", ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa"])
async def test_legacy_key_signature_verifies(image: Image, kind: str) -> None:
    key = signing.KeyPair.generate(kind)  # type: ignore[arg-type]
    signing.sign_legacy(image.pusher, image.repo, image.digest, key=key)
    result = await posture(image, key_policy(key))
    assert result.signed, result.reasons
    assert result.signed_by == ["key0"]
    assert result.digest == image.digest and result.resolve == "ok"
    assert "missing SBOM" in result.reasons


async def test_unsigned_image(image: Image) -> None:
    result = await posture(image, key_policy(signing.KeyPair.generate()))
    assert not result.signed and "unsigned: no signature found" in result.reasons


async def test_wrong_key(image: Image) -> None:
    signing.sign_legacy(image.pusher, image.repo, image.digest, key=signing.KeyPair.generate())
    result = await posture(image, key_policy(signing.KeyPair.generate()))
    assert not result.signed
    assert any("does not verify with any trusted key" in r for r in result.reasons)


async def test_tampered_payload(image: Image) -> None:
    key = signing.KeyPair.generate()
    signing.sign_legacy(image.pusher, image.repo, image.digest, key=key, tamper_payload=True)
    result = await posture(image, key_policy(key))
    assert not result.signed
    assert result.signatures and not result.signatures[0].verified


async def test_payload_for_another_digest(image: Image, other_image: Image) -> None:
    key = signing.KeyPair.generate()
    payload = signing.simple_signing_payload(image.repo, other_image.digest)
    signing.sign_legacy(image.pusher, image.repo, image.digest, key=key, payload=payload)
    result = await posture(image, key_policy(key))
    assert not result.signed
    assert any(f"payload signs {other_image.digest}, not {image.digest}" in r for r in result.reasons)


async def test_signature_copied_from_another_image(image: Image, other_image: Image) -> None:
    key = signing.KeyPair.generate()
    signing.sign_legacy(image.pusher, image.repo, other_image.digest, key=key)
    other_sig = other_image.digest.replace(":", "-") + ".sig"
    manifest = image.pusher.http.get(
        f"/v2/{image.repo}/manifests/{other_sig}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    image.pusher.manifest(
        image.repo,
        image.digest.replace(":", "-") + ".sig",
        manifest.content,
        "application/vnd.oci.image.manifest.v1+json",
    )
    assert (await posture(other_image, key_policy(key), ref=other_image.pinned)).signed
    result = await posture(image, key_policy(key))
    assert not result.signed
    assert any("payload signs" in r for r in result.reasons)


async def test_sbom_through_fallback_and_referrers_filter(image: Image) -> None:
    signing.attach_sbom(image.pusher, image.repo, image.digest, b'{"bomFormat":"CycloneDX"}')
    signing.attach_sbom(
        image.pusher, image.repo, image.digest, b'{"spdxVersion":"SPDX-2.3"}', "application/spdx+json"
    )
    async with RegistryClient() as client:
        found = await client.referrers(image.ref)
        assert found.source == "fallback" and len(found) == 2 and not found.rejected
        only = await client.referrers(image.ref, "application/spdx+json")
        assert [d.artifact_type for d in only] == ["application/spdx+json"]
    result = await posture(image, key_policy(signing.KeyPair.generate()))
    assert result.sbom and set(result.sbom_media_types) == {
        "application/vnd.cyclonedx+json",
        "application/spdx+json",
    }
    assert result.referrers_source == "fallback"


async def test_fallback_tag_that_is_not_an_index(image: Image, other_image: Image) -> None:
    # someone pushes an image manifest under the fallback tag
    raw = image.pusher.http.get(
        f"/v2/{image.repo}/manifests/other", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    ).content
    image.pusher.manifest(
        image.repo, image.digest.replace(":", "-"), raw, "application/vnd.oci.image.manifest.v1+json"
    )
    async with RegistryClient() as client:
        with pytest.raises(InvalidManifest, match="not an image index"):
            await client.referrers(image.ref)
    result = await posture(image, key_policy(signing.KeyPair.generate()))
    assert not result.sbom
    assert any("not an image index" in r for r in result.reasons)


async def test_fallback_entry_with_foreign_subject_is_rejected(image: Image, other_image: Image) -> None:
    signing.attach_sbom(image.pusher, image.repo, other_image.digest, b"{}")
    # copy other's fallback index under image's fallback tag: the entry's subject is not image.digest
    index = image.pusher.get_manifest(image.repo, other_image.digest.replace(":", "-"))
    assert index is not None
    image.pusher.manifest(
        image.repo, image.digest.replace(":", "-"), index, "application/vnd.oci.image.index.v1+json"
    )
    async with RegistryClient() as client:
        found = await client.referrers(image.ref)
    assert len(found) == 0 and found.rejected and "subject is not" in found.rejected[0]


async def test_index_vs_platform_digest_policy(multiarch: MultiArch) -> None:
    image = multiarch.image
    ref = f"{image.host}/{image.repo}:multi"
    async with RegistryClient() as client:
        resolved = await client.resolve(ref)
        assert resolved.digest == resolved.index_digest == multiarch.index_digest
        assert resolved.platform_digest == multiarch.amd64
        arm = await client.resolve(ref, platform=Platform("linux", "arm64"))
        assert arm.platform_digest == multiarch.arm64
    key = signing.KeyPair.generate()
    signing.sign_legacy(image.pusher, image.repo, multiarch.amd64, key=key)  # only the platform manifest
    policy = key_policy(key)
    outcomes = {}
    for mode in ("index", "platform", "any", "all"):
        outcomes[mode] = (await posture(image, policy, ref=ref, digest_policy=mode)).signed
    assert outcomes == {"index": False, "platform": True, "any": True, "all": False}
    signing.sign_legacy(image.pusher, image.repo, multiarch.index_digest, key=key)
    assert (await posture(image, policy, ref=ref, digest_policy="all")).signed


async def test_keyless_legacy_signature(image: Image, sigstore_instance: tuple) -> None:  # type: ignore[type-arg]
    sigstore, root = sigstore_instance
    signing.sign_legacy(
        image.pusher, image.repo, image.digest, sigstore=sigstore, identity=DEV, issuer=ISSUER
    )
    result = await posture(image, keyless_policy(root, subject=DEV))
    assert result.signed and result.signed_by == [f"{DEV} ({ISSUER})"], result.reasons
    assert result.rekor_uuid and len(result.rekor_uuid) == 64
    assert (await posture(image, keyless_policy(root, subject_regex=r".*@zastava\.test"))).signed
    wrong = await posture(image, keyless_policy(root, subject="eve@zastava.test"))
    assert not wrong.signed and any("is not trusted" in r for r in wrong.reasons)


async def test_keyless_expired_certificate(image: Image, sigstore_instance: tuple) -> None:  # type: ignore[type-arg]
    sigstore, root = sigstore_instance
    signing.sign_legacy(
        image.pusher,
        image.repo,
        image.digest,
        sigstore=sigstore,
        identity=DEV,
        issuer=ISSUER,
        cert_not_before=sigstore.now - dt.timedelta(hours=2),
    )
    result = await posture(image, keyless_policy(root, subject=DEV))
    assert not result.signed
    assert any("not valid when the signature was logged" in r for r in result.reasons)


async def test_bundle_referrer_keyless_and_attestations(image: Image, sigstore_instance: tuple) -> None:  # type: ignore[type-arg]
    sigstore, root = sigstore_instance
    sign = signing.dsse_bundle(
        signing.in_toto_statement(image.digest, signing.COSIGN_SIGN_V1, {}),
        sigstore=sigstore,
        identity=DEV,
        issuer=ISSUER,
    )
    signing.attach_bundle(image.pusher, image.repo, image.digest, sign)
    provenance = signing.dsse_bundle(
        signing.in_toto_statement(image.digest, "https://slsa.dev/provenance/v1", {"buildDefinition": {}}),
        sigstore=sigstore,
        identity=DEV,
        issuer=ISSUER,
    )
    signing.attach_bundle(image.pusher, image.repo, image.digest, provenance)
    result = await posture(image, keyless_policy(root, subject=DEV))
    assert result.signed and result.signatures[0].kind == "sigstore-bundle", result.reasons
    assert result.attestation_present and result.attestation_verified
    assert [a.predicate_type for a in result.attestations] == ["https://slsa.dev/provenance/v1"]
    expected_uuid = json.loads(json.dumps(sign))["verificationMaterial"]["tlogEntries"][0]
    assert result.rekor_uuid is not None and expected_uuid
    wrong = await posture(image, keyless_policy(root, subject="eve@zastava.test"))
    assert not wrong.signed and not wrong.attestation_verified


async def test_bundle_expired_certificate_rejected_by_sigstore(
    image: Image, sigstore_instance: tuple
) -> None:  # type: ignore[type-arg]
    sigstore, root = sigstore_instance
    bundle = signing.dsse_bundle(
        signing.in_toto_statement(image.digest, signing.COSIGN_SIGN_V1, {}),
        sigstore=sigstore,
        identity=DEV,
        issuer=ISSUER,
        cert_not_before=sigstore.now - dt.timedelta(hours=1),
    )
    signing.attach_bundle(image.pusher, image.repo, image.digest, bundle)
    result = await posture(image, keyless_policy(root, subject=DEV))
    assert not result.signed
    assert any("sigstore:" in r and "not valid" in r for r in result.reasons)


async def test_legacy_attestation_with_key(image: Image, other_image: Image) -> None:
    key = signing.KeyPair.generate()
    signing.attest_legacy(
        image.pusher, image.repo, image.digest, "https://slsa.dev/provenance/v0.2", {}, key=key
    )
    result = await posture(image, key_policy(key))
    assert result.attestation_present and result.attestation_verified
    assert result.attestations[0].kind == "cosign-attestation"
    # an attestation about another image, stored under this image's .att tag
    signing.attest_legacy(
        image.pusher,
        image.repo,
        other_image.digest,
        "https://cyclonedx.org/bom",
        {},
        key=key,
        subject_digest=other_image.digest,
    )
    raw = image.pusher.http.get(
        f"/v2/{image.repo}/manifests/{other_image.digest.replace(':', '-')}.att",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).content
    image.pusher.manifest(
        image.repo, image.digest.replace(":", "-") + ".att", raw, "application/vnd.oci.image.manifest.v1+json"
    )
    result = await posture(image, key_policy(key))
    assert not result.attestation_verified
    assert any("subject does not name" in r for r in result.reasons)


async def test_key_signature_with_rekor_entry(image: Image, sigstore_instance: tuple) -> None:  # type: ignore[type-arg]
    sigstore, root = sigstore_instance
    key = signing.KeyPair.generate()
    signing.sign_legacy_key_logged(image.pusher, image.repo, image.digest, key, sigstore)
    policy = key_policy(key, trusted_root=TrustRoot.load(root), require_tlog_for_keys=True)
    result = await posture(image, policy)
    assert result.signed and result.rekor_uuid, result.reasons
    plain = Image(image.repo, image.digest, image.pusher, image.host)
    signing.sign_legacy(plain.pusher, plain.repo, image.digest, key=signing.KeyPair.generate())
    assert (await posture(image, policy)).signed  # the logged one still verifies


async def test_real_cosign_signature_through_the_registry(image: Image) -> None:
    """The real cosign output of tests/unit/registry/cosign_real.py, stored in cosign's layout in the real
    registry, read back through the client and verified with the public-good trusted root."""
    from tests.unit.registry import cosign_real as real

    layer = image.pusher.blob(image.repo, real.PAYLOAD, "application/vnd.dev.cosign.simplesigning.v1+json")
    assert layer["digest"] == real.LAYER_DIGEST
    layer["annotations"] = {
        "dev.cosignproject.cosign/signature": real.SIGNATURE,
        "dev.sigstore.cosign/bundle": real.BUNDLE_ANNOTATION,
    }
    config = image.pusher.blob(image.repo, b"{}", "application/vnd.oci.image.config.v1+json")
    image.pusher.manifest(
        image.repo,
        real.IMAGE_DIGEST.replace(":", "-") + ".sig",
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": [layer],
        },
        "application/vnd.oci.image.manifest.v1+json",
    )
    from zastava.registry.posture.fetch import fetch_legacy
    from zastava.registry.verification.cosign import verify_legacy_layer

    policy = TrustedSigners(
        keys=[load_public_key(real.PUBLIC_KEY, "dangerzone")],
        trusted_root=TrustRoot.load("sigstore-public-good"),
        require_tlog_for_keys=True,
    )
    async with RegistryClient() as client:
        layers = await fetch_legacy(client, client._as_ref(image.ref), real.IMAGE_DIGEST, ".sig")
    assert len(layers) == 1
    finding = verify_legacy_layer(layers[0], real.IMAGE_DIGEST, policy)
    assert finding.verified and finding.rekor_uuid, finding.reason


async def test_keyless_legacy_attestation_and_cosign_sbom(image: Image, sigstore_instance: tuple) -> None:  # type: ignore[type-arg]
    sigstore, root = sigstore_instance
    signing.attest_legacy(
        image.pusher,
        image.repo,
        image.digest,
        "https://cyclonedx.org/bom",
        {"components": []},
        sigstore=sigstore,
        identity=DEV,
        issuer=ISSUER,
    )
    signing.attach_cosign_sbom(
        image.pusher, image.repo, image.digest, b"SPDXVersion: SPDX-2.3\n", "text/spdx"
    )
    result = await posture(image, keyless_policy(root, subject=DEV))
    assert result.attestation_verified, result.reasons
    assert result.attestations[0].signer_kind == "keyless" and result.attestations[0].rekor_uuid
    # a verified CycloneDX attestation counts as an SBOM; an unverified one does not
    assert result.sbom and result.sbom_media_types == ["text/spdx", "attestation:https://cyclonedx.org/bom"]
    other = await posture(image, keyless_policy(root, subject_regex=r"ci@.*"))
    assert not other.attestation_verified and other.sbom_media_types == ["text/spdx"]


def test_cli_keyless_verify(image: Image, sigstore_instance: tuple) -> None:  # type: ignore[type-arg]
    from typer.testing import CliRunner

    from zastava.cli import app

    sigstore, root = sigstore_instance
    signing.sign_legacy(
        image.pusher, image.repo, image.digest, sigstore=sigstore, identity=DEV, issuer=ISSUER
    )
    runner = CliRunner()
    base = ["verify", image.ref, "--trusted-root", str(root)]
    ok = runner.invoke(app, [*base, "--identity", DEV, "--issuer", ISSUER])
    assert ok.exit_code == 0 and f"signed by: {DEV} ({ISSUER})" in ok.output, ok.output
    regex = runner.invoke(
        app, [*base, "--identity-regexp", r".*@zastava\.test", "--issuer-regexp", "https://.*"]
    )
    assert regex.exit_code == 0, regex.output
    wrong = runner.invoke(app, [*base, "--identity", "eve@zastava.test", "--issuer", ISSUER])
    assert wrong.exit_code == 1 and "is not trusted" in wrong.output
    incomplete = runner.invoke(app, ["verify", image.ref, "--identity", DEV])
    assert incomplete.exit_code == 2
