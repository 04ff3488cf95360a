"""Unit tests of the registry package: parsing, credentials, keys, DSSE, and offline signature
verification."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.harness.devstack import signing
from zastava.config import ConfigError, load_config
from zastava.registry import (
    CredentialStore,
    InvalidManifest,
    InvalidReference,
    KeylessIdentity,
    Manifest,
    TrustConfigError,
    TrustedSigners,
    TrustRoot,
    load_public_key,
    parse_reference,
)
from zastava.registry.errors import AuthenticationError
from zastava.registry.settings import default_signers
from zastava.registry.transport.auth import parse_challenge
from zastava.registry.transport.client import _retry_after
from zastava.registry.verification.bundles import verify_bundle
from zastava.registry.verification.cosign import LegacyLayer, simple_signing_digest, verify_legacy_layer
from zastava.registry.verification.dsse import pae, parse_envelope
from zastava.registry.verification.keys import verify_with_key

D = "sha256:" + "ab" * 32
D2 = "sha256:" + "cd" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox:1", "docker.io/library/busybox:1"),
        ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b:v1"),
        (f"localhost/app@{D}", f"localhost/app@{D}"),
        (f"ghcr.io/acme/api:1.2@{D}", f"ghcr.io/acme/api:1.2@{D}"),
    ],
)
def test_parse_reference(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


@pytest.mark.parametrize(
    "text", ["", "UPPER/x", "a b", "x@sha256:abc", "x:bad tag", "x@md5:" + "0" * 32, "/x"]
)
def test_parse_reference_rejects(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(text)


@given(st.text(max_size=300))
def test_parse_reference_never_crashes(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    assert parse_reference(str(ref)) == ref


def test_docker_config_and_pull_secret() -> None:
    store = CredentialStore()
    store.load_docker_config(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"u:p:with:colons").decode()},
                    "reg.example:5000": {"username": "a", "password": "b"},
                }
            }
        )
    )
    hub = store.get("docker.io")
    assert hub is not None and hub.password == "p:with:colons"
    assert store.get("reg.example:5000") is not None and "b" not in repr(store.get("reg.example:5000"))
    with pytest.raises(ValueError, match="not base64"):
        store.load_docker_config('{"auths": {"x": {"auth": "%%%"}}}')
    with pytest.raises(ValueError, match="not valid JSON"):
        store.load_docker_config("{")
    with pytest.raises(ValueError, match="not an image pull secret"):
        store.load_pull_secret({"type": "Opaque", "data": {}})
    store.load_pull_secret(
        {
            "type": "kubernetes.io/dockercfg",
            "stringData": {".dockercfg": '{"legacy.example": {"username": "l", "password": "q"}}'},
        }
    )
    assert store.get("legacy.example") is not None


def test_parse_challenge() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert c.scheme == "bearer" and c.params["scope"] == "repository:a/b:pull,push"
    assert parse_challenge('Basic realm="x"').scheme == "basic"
    with pytest.raises(AuthenticationError):
        parse_challenge("Negotiate abc")
    with pytest.raises(AuthenticationError):
        parse_challenge('Bearer realm="file:///etc/passwd"')


def test_retry_after() -> None:
    assert _retry_after("3", 10) == 3
    assert _retry_after("1000", 10) == 10
    assert _retry_after("garbage", 10) is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 10) == 0


def test_manifest_parse_errors() -> None:
    raw = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    )
    assert Manifest.parse(raw.encode(), None).is_index
    with pytest.raises(InvalidManifest, match="digest mismatch"):
        Manifest.parse(raw.encode(), None, D)
    with pytest.raises(InvalidManifest, match="not valid JSON"):
        Manifest.parse(b"\xff{", None)
    with pytest.raises(InvalidManifest, match="schemaVersion"):
        Manifest.parse(b'{"schemaVersion": 1}', None)
    bad = Manifest.parse(
        b'{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:1","size":1}]}', None
    )
    with pytest.raises(InvalidManifest):
        bad.manifests()


def test_simple_signing_digest() -> None:
    assert simple_signing_digest(signing.simple_signing_payload("r", D)) == D
    spec_example = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": "r"},
                "image": {"Docker-manifest-digest": D},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )
    assert simple_signing_digest(spec_example.encode()) == D
    ambiguous = spec_example.replace('"image": {', f'"image": {{"docker-manifest-digest": "{D2}", ')
    with pytest.raises(ValueError, match="ambiguous"):
        simple_signing_digest(ambiguous.encode())
    with pytest.raises(ValueError, match=r"critical\.type"):
        simple_signing_digest(b'{"critical": {"type": "other", "image": {}}}')


@pytest.mark.parametrize("kind", ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa"])
def test_key_types(kind: str) -> None:
    key = signing.KeyPair.generate(kind)  # type: ignore[arg-type]
    public = load_public_key(key.public_pem)
    assert verify_with_key(public.key, key.sign(b"data"), b"data")
    assert not verify_with_key(public.key, key.sign(b"data"), b"datA")
    assert not verify_with_key(public.key, b"\x00" * 8, b"data")


def test_bad_key_file(tmp_path: Path) -> None:
    with pytest.raises(TrustConfigError):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(TrustConfigError, match="cannot read"):
        TrustedSigners.from_files([tmp_path / "missing.pub"])


def test_dsse_pae_and_parse() -> None:
    assert pae("t", b"hello") == b"DSSEv1 1 t 5 hello"
    with pytest.raises(ValueError, match="signatures"):
        parse_envelope(b'{"payloadType": "x", "payload": "", "signatures": []}')


def test_identity_matching() -> None:
    exact = KeylessIdentity(issuer="https://i", subject="a@x")
    regex = KeylessIdentity(issuer="https://i", subject_regex=r".*@x")
    assert exact.matches("https://i", ["a@x"]) and not exact.matches("https://j", ["a@x"])
    assert regex.matches("https://i", ["b@x"]) and not regex.matches("https://i", ["b@x.evil"])
    with pytest.raises(TrustConfigError):
        KeylessIdentity(issuer="https://i")


def test_config_section() -> None:
    config = load_config(
        text="zastava:\n  registry:\n    digestPolicy: all\n    insecureRegistries: [r:5000]\n"
    )
    assert config.registry.digest_policy == "all"
    # keyless without a configured root: the Sigstore public-good root shipped with sigstore (offline)
    keyless = load_config(
        text="zastava:\n  registry:\n    trust:\n      keylessIdentities: [{issuer: a, subject: b}]\n"
    )
    root = default_signers(keyless.registry).trusted_root
    assert root is not None and "tuf-repo-cdn.sigstore.dev" in root.source
    with pytest.raises(ConfigError, match="digestPolicy"):
        load_config(text="zastava:\n  registry:\n    digestPolicy: newest\n")


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory: pytest.TempPathFactory) -> tuple[signing.TestSigstore, TrustRoot]:
    instance = signing.TestSigstore()
    path = instance.write_trusted_root(tmp_path_factory.mktemp("root") / "trusted_root.json")
    return instance, TrustRoot.load(path)


def _keyless(root: TrustRoot, subject: str = "dev@x.test") -> TrustedSigners:
    return TrustedSigners(
        identities=[KeylessIdentity(issuer="https://i.test", subject=subject)], trusted_root=root
    )


def test_keyless_bundle_offline(sigstore: tuple[signing.TestSigstore, TrustRoot]) -> None:
    instance, root = sigstore
    bundle = signing.dsse_bundle(
        signing.in_toto_statement(D, signing.COSIGN_SIGN_V1, {}),
        sigstore=instance,
        identity="dev@x.test",
        issuer="https://i.test",
    )
    raw = json.dumps(bundle).encode()
    assert verify_bundle(raw, D, _keyless(root), "s").verified
    assert "subject does not name" in str(verify_bundle(raw, D2, _keyless(root), "s").reason)
    assert not verify_bundle(raw, D, _keyless(root, "eve@x.test"), "s").verified
    other_root = signing.TestSigstore()
    tampered = dict(bundle)
    tampered["dsseEnvelope"] = dict(bundle["dsseEnvelope"])
    statement = signing.in_toto_statement(D, signing.COSIGN_SIGN_V1, {"x": 1})
    tampered["dsseEnvelope"]["payload"] = base64.b64encode(statement).decode()
    assert not verify_bundle(json.dumps(tampered).encode(), D, _keyless(root), "s").verified
    foreign = signing.dsse_bundle(
        signing.in_toto_statement(D, signing.COSIGN_SIGN_V1, {}),
        sigstore=other_root,
        identity="dev@x.test",
        issuer="https://i.test",
    )
    assert not verify_bundle(json.dumps(foreign).encode(), D, _keyless(root), "s").verified


def test_key_bundle(sigstore: tuple[signing.TestSigstore, TrustRoot]) -> None:
    key = signing.KeyPair.generate("ed25519")
    bundle = signing.dsse_bundle(signing.in_toto_statement(D, signing.COSIGN_SIGN_V1, {}), key=key)
    policy = TrustedSigners(keys=[load_public_key(key.public_pem, "k")])
    assert verify_bundle(json.dumps(bundle).encode(), D, policy, "s").verified
    strict = TrustedSigners(keys=policy.keys, require_tlog_for_keys=True)
    assert not verify_bundle(json.dumps(bundle).encode(), D, strict, "s").verified
    assert not verify_bundle(b"not json", D, policy, "s").verified


def test_legacy_keyless_evidence_checks(sigstore: tuple[signing.TestSigstore, TrustRoot]) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    instance, root = sigstore
    payload = signing.simple_signing_payload("r", D)
    eph, cert = instance.issue("dev@x.test", "https://i.test")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    sig = eph.sign(payload, ec.ECDSA(hashes.SHA256()))
    entry = instance.log(signing.hashedrekord_body(payload, sig, pem))
    layer = LegacyLayer(
        "sha256-x.sig",
        signing.SIMPLE_SIGNING,
        D2,
        payload,
        sig,
        pem.decode(),
        None,
        instance.cosign_annotation(entry),
    )
    assert verify_legacy_layer(layer, D, _keyless(root)).verified
    import dataclasses

    no_bundle = dataclasses.replace(layer, bundle=None)
    assert "without Rekor evidence" in str(verify_legacy_layer(no_bundle, D, _keyless(root)).reason)
    other_entry = instance.log(signing.hashedrekord_body(b"other", sig, pem))
    mismatched = dataclasses.replace(layer, bundle=instance.cosign_annotation(other_entry))
    assert "different payload" in str(verify_legacy_layer(mismatched, D, _keyless(root)).reason)
    forged = json.loads(layer.bundle or "{}")
    forged["Payload"]["integratedTime"] += 1
    assert "does not verify" in str(
        verify_legacy_layer(dataclasses.replace(layer, bundle=json.dumps(forged)), D, _keyless(root)).reason
    )
    _, no_sct_cert = instance.issue("dev@x.test", "https://i.test", with_sct=False)
    assert no_sct_cert is not None
    assert dt.timedelta(minutes=10) == cert.not_valid_after_utc - cert.not_valid_before_utc


def test_builtin_trusted_root_loads_offline() -> None:
    root = TrustRoot.load("sigstore-public-good")
    assert root.rekor_keys and root.ca_certs and root.ct_keys


async def test_bearer_realm_must_be_https_for_an_https_registry() -> None:
    """Protocol-level check with httpx.MockTransport standing in for a remote https registry (no real remote
    registry is reachable from this machine)."""
    import httpx

    from zastava.registry import RegistryClient

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="http://evil.example/token",service="x"'}
        )

    async with RegistryClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(AuthenticationError, match="plain-http token realm"):
            await client.head_manifest("registry.example/app:1")
    assert seen == ["https://registry.example/v2/app/manifests/1"]


@given(st.binary(max_size=2000))
def test_malformed_inputs_give_declared_errors(data: bytes) -> None:
    from zastava.registry.verification.dsse import DsseError

    for parse, errors in (
        (lambda: Manifest.parse(data, None), (InvalidManifest,)),
        (lambda: parse_envelope(data), (DsseError,)),
        (lambda: simple_signing_digest(data), (ValueError,)),
        (lambda: CredentialStore().load_docker_config(data), (ValueError,)),
    ):
        try:
            parse()
        except errors:
            pass


@given(st.text(max_size=300))
def test_challenge_parser_is_total(text: str) -> None:
    try:
        parse_challenge(text)
    except AuthenticationError:
        pass


def test_posture_contract_views() -> None:
    from zastava.registry import Finding, ImagePosture

    att = Finding(
        kind="sigstore-bundle", role="attestation", digest=D, source="s", verified=True, rekor_uuid="u1"
    )
    posture = ImagePosture(
        reference="r",
        signed=True,
        signed_by=["k"],
        sbom=True,
        sbom_media_types=["text/spdx"],
        attestations=[att],
        attestation_present=True,
        attestation_verified=True,
        rekor_uuid="u0",
    )
    view = posture.runtime_posture().model_dump(by_alias=True)
    assert view == {
        "imageSigned": True,
        "sbomReferrer": "present",
        "attestation": {"uuid": "u1", "verified": True},
    }
    signals = [(e.signal, e.value) for e in posture.evidence()]
    assert ("registry.referrers", "sbom: text/spdx") in signals and ("registry.rekor", "uuid: u0") in signals
    unknown = ImagePosture(reference="r", resolve="unknown").runtime_posture()
    assert unknown.image_signed is None and unknown.sbom_referrer == "unknown"
