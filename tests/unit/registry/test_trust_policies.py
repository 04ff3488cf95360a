"""Trust policies evaluated by the pure verifier (``zastava.registry.verification.policies``): no registry, no
transport. The signatures are made by the tests' own signer (``tests.harness.devstack.signing``, cosign's
published formats, captured in memory), and by cosign/Sigstore (public test data: tests/data/sigstore)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness.devstack import signing
from zastava.registry import (
    InvalidReference,
    KeylessIdentity,
    TrustConfigError,
    TrustedSigners,
    TrustRoot,
    load_public_key,
)
from zastava.registry.reference import normalise_pattern
from zastava.registry.verification.cosign import LegacyLayer
from zastava.registry.verification.policies import (
    DEFAULT_POLICY_NAME,
    Authority,
    BundleBlob,
    ImageGlob,
    Material,
    TrustPolicies,
    TrustPolicy,
    compile_glob,
    evaluate,
)

from . import cosign_real as real

DATA = Path(__file__).parents[2] / "data" / "sigstore"
DIGEST = "sha256:" + hashlib.sha256(b"image-a").hexdigest()
OTHER = "sha256:" + hashlib.sha256(b"image-b").hexdigest()
NAME = "registry.example.com/team-a/api"
SLSA = "https://slsa.dev/provenance/v1"
ISSUER = "https://issuer.zastava.test"


class MemoryPusher:
    """The test signer's output captured in memory instead of pushed (same bytes, same annotations)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], dict[str, Any]] = {}

    def blob(self, repo: str, data: bytes, media_type: str) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def manifest(self, repo: str, reference: str, document: Any, media_type: str) -> str:
        self.manifests[(repo, reference)] = document
        return "sha256:" + hashlib.sha256(json.dumps(document).encode()).hexdigest()

    def get_manifest(self, repo: str, reference: str) -> dict[str, Any] | None:
        return self.manifests.get((repo, reference))

    def layers(self, digest: str, suffix: str) -> tuple[LegacyLayer, ...]:
        tag = digest.replace(":", "-") + suffix
        manifest = self.manifests.get(("r", tag))
        out = []
        for layer in (manifest or {}).get("layers", []):
            notes = layer.get("annotations", {})
            out.append(
                LegacyLayer(
                    tag=tag,
                    media_type=layer["mediaType"],
                    layer_digest=layer["digest"],
                    payload=self.blobs[layer["digest"]],
                    signature=base64.b64decode(notes.get("dev.cosignproject.cosign/signature", "")),
                    certificate=notes.get("dev.sigstore.cosign/certificate"),
                    chain=notes.get("dev.sigstore.cosign/chain"),
                    bundle=notes.get("dev.sigstore.cosign/bundle"),
                )
            )
        return tuple(out)

    def material(self, digest: str = DIGEST) -> Material:
        return Material(digest, legacy=self.layers(digest, ".sig") + self.layers(digest, ".att"))


def glob(pattern: str) -> ImageGlob:
    """As ``zastava.registry.settings`` compiles a policy's glob: normalised by the one reference model."""
    try:
        normalised = normalise_pattern(pattern)
    except InvalidReference as exc:
        raise TrustConfigError(str(exc)) from None
    return compile_glob(pattern, normalised)


def key_authority(name: str, key: signing.KeyPair) -> Authority:
    return Authority(name, TrustedSigners(keys=[load_public_key(key.public_pem, name)]))


def policy(authorities: list[Authority], **kwargs: Any) -> TrustPolicies:
    images = kwargs.pop("images", ["registry.example.com/team-a/**"])
    return TrustPolicies(
        (TrustPolicy("team-a", tuple(glob(g) for g in images), tuple(authorities), **kwargs),),
        revision="r1",
    )


@pytest.fixture(scope="module")
def keys() -> dict[str, signing.KeyPair]:
    return {name: signing.KeyPair.generate() for name in ("alice", "bob", "carol")}


def test_globs_match_normalised_names() -> None:
    assert glob("registry.example.com/team-a/**").matches("registry.example.com/team-a/x/y")
    assert not glob("registry.example.com/team-a/*").matches("registry.example.com/team-a/x/y")
    assert glob("registry.example.com/team-a/*").matches("registry.example.com/team-a/x")
    assert not glob("registry.example.com/team-a/**").matches("registry.example.com/team-b/x")
    assert glob("nginx").matches("docker.io/library/nginx")
    assert glob("index.docker.io/library/nginx").matches("docker.io/library/nginx")
    assert glob("Registry.Example.COM:5000/app").matches("registry.example.com:5000/app")
    assert glob("*.example.com/**").matches("eu.example.com/a/b")
    assert glob("**").matches("anything.io/at/all")
    for bad in ("", " x/y", "a/b:tag", "a/b@sha256:00", "a/***", "a//b", "a/b/", "a/B C", "a/[bc]"):
        with pytest.raises(TrustConfigError):
            glob(bad)


def test_k_of_n(keys: dict[str, signing.KeyPair]) -> None:
    authorities = [key_authority(n, k) for n, k in keys.items()]
    pusher = MemoryPusher()
    signing.sign_legacy(pusher, "r", DIGEST, key=keys["alice"])  # type: ignore[arg-type]
    one = evaluate(policy(authorities, threshold=2), NAME, [pusher.material()])
    assert not one.satisfied and not one.signed and one.results[0].signed_by == ("alice",)
    assert one.reasons() == [
        "trust policy team-a: 1 of 2 required signature(s) verified (bob: signature does not verify with any "
        "trusted key; carol: signature does not verify with any trusted key)"
    ]
    signing.sign_legacy(pusher, "r", DIGEST, key=keys["carol"])  # type: ignore[arg-type]
    two = evaluate(policy(authorities, threshold=2), NAME, [pusher.material()])
    assert two.satisfied and two.signed and two.signed_by == ("alice", "carol")
    assert two.reasons() == ["trust policy team-a: verified (alice, carol)"]
    # the same key signing twice counts once
    signing.sign_legacy(pusher, "r", DIGEST, key=keys["alice"])  # type: ignore[arg-type]
    assert not evaluate(policy(authorities, threshold=3), NAME, [pusher.material()]).satisfied


def test_attestations_present_absent_wrong_predicate(keys: dict[str, signing.KeyPair]) -> None:
    authorities = [key_authority("alice", keys["alice"])]
    trust = policy(authorities, attestations=(SLSA,))
    pusher = MemoryPusher()
    signing.sign_legacy(pusher, "r", DIGEST, key=keys["alice"])  # type: ignore[arg-type]
    absent = evaluate(trust, NAME, [pusher.material()])
    assert absent.signed and not absent.satisfied
    assert absent.results[0].missing == (f"attestation {SLSA}: 0 of 1 required verified",)
    signing.attest_legacy(pusher, "r", DIGEST, "https://slsa.dev/provenance/v0.2", {}, key=keys["alice"])  # type: ignore[arg-type]
    wrong = evaluate(trust, NAME, [pusher.material()])
    assert not wrong.satisfied and wrong.results[0].attested == {SLSA: ()}
    signing.attest_legacy(pusher, "r", DIGEST, SLSA, {"buildType": "x"}, key=keys["bob"])  # type: ignore[arg-type]
    by_stranger = evaluate(trust, NAME, [pusher.material()])
    assert not by_stranger.satisfied
    signing.attest_legacy(pusher, "r", DIGEST, SLSA, {"buildType": "x"}, key=keys["alice"])  # type: ignore[arg-type]
    present = evaluate(trust, NAME, [pusher.material()])
    assert present.satisfied and present.results[0].attested == {SLSA: ("alice",)}
    # an attestation whose statement names another image does not count
    other = MemoryPusher()
    signing.sign_legacy(other, "r", DIGEST, key=keys["alice"])  # type: ignore[arg-type]
    signing.attest_legacy(other, "r", DIGEST, SLSA, {}, key=keys["alice"], subject_digest=OTHER)  # type: ignore[arg-type]
    assert not evaluate(trust, NAME, [other.material()]).satisfied


def test_signature_replayed_from_another_image(keys: dict[str, signing.KeyPair]) -> None:
    """A valid signature of image B copied to image A's ``.sig`` tag does not sign A."""
    pusher = MemoryPusher()
    signing.sign_legacy(pusher, "r", OTHER, key=keys["alice"])  # type: ignore[arg-type]
    replayed = Material(DIGEST, legacy=pusher.layers(OTHER, ".sig"))
    verdict = evaluate(policy([key_authority("alice", keys["alice"])]), NAME, [replayed])
    assert not verdict.signed
    assert f"payload signs {OTHER}, not {DIGEST}" in verdict.reasons()[0]
    assert evaluate(policy([key_authority("alice", keys["alice"])]), NAME, [pusher.material(OTHER)]).signed


def test_warn_mode_and_unmatched_images(keys: dict[str, signing.KeyPair]) -> None:
    warn = evaluate(policy([key_authority("alice", keys["alice"])], mode="warn"), NAME, [Material(DIGEST)])
    assert warn.matched and warn.reasons() == [
        "trust policy team-a (warn): 0 of 1 required signature(s) verified (no signature found)"
    ]
    pusher = MemoryPusher()
    signing.sign_legacy(pusher, "r", DIGEST, key=keys["bob"])  # type: ignore[arg-type]
    default = TrustPolicies(
        policy([key_authority("alice", keys["alice"])]).policies,
        TrustedSigners(keys=[load_public_key(keys["bob"].public_pem, "bob.pub")]),
        "r2",
    )
    unmatched = evaluate(default, "docker.io/library/nginx", [pusher.material()])
    assert not unmatched.matched and unmatched.signed
    assert unmatched.results[0].policy == DEFAULT_POLICY_NAME and unmatched.signed_by == ("bob.pub",)
    nothing = evaluate(TrustPolicies(), "docker.io/library/nginx", [pusher.material()])
    assert not nothing.signed and "no default signers" in nothing.reasons()[0]


def test_keyless_authority_with_the_test_sigstore(tmp_path: Path) -> None:
    sigstore = signing.TestSigstore()
    root = TrustRoot.load(sigstore.write_trusted_root(tmp_path / "trusted_root.json"))
    pusher = MemoryPusher()
    signing.sign_legacy(pusher, "r", DIGEST, sigstore=sigstore, identity="ci@zastava.test", issuer=ISSUER)  # type: ignore[arg-type]

    def keyless(subject: str | None = None, regex: str | None = None) -> Authority:
        identity = KeylessIdentity(issuer=ISSUER, subject=subject, subject_regex=regex)
        return Authority(str(identity), TrustedSigners(identities=[identity], trusted_root=root))

    assert evaluate(policy([keyless("ci@zastava.test")]), NAME, [pusher.material()]).satisfied
    assert evaluate(policy([keyless(regex=r"ci@.*\.test")]), NAME, [pusher.material()]).satisfied
    both = keyless("ci@zastava.test", r"dev@.*")  # subject and subjectRegExp given: both must hold
    assert not evaluate(policy([both]), NAME, [pusher.material()]).signed
    stranger = evaluate(policy([keyless("eve@zastava.test")]), NAME, [pusher.material()])
    assert not stranger.signed and "is not trusted" in stranger.reasons()[0]


def test_digest_policy_all_needs_every_digest(keys: dict[str, signing.KeyPair]) -> None:
    pusher = MemoryPusher()
    signing.sign_legacy(pusher, "r", DIGEST, key=keys["alice"])  # type: ignore[arg-type]
    trust = policy([key_authority("alice", keys["alice"])])
    materials = [pusher.material(DIGEST), pusher.material(OTHER)]
    assert evaluate(trust, NAME, materials, combine="any").signed
    assert not evaluate(trust, NAME, materials, combine="all").signed


def test_real_cosign_key_signature_satisfies_a_policy() -> None:
    """The published Dangerzone image signature, made by the real cosign (see cosign_real.py)."""
    layer = LegacyLayer(
        tag=real.IMAGE_DIGEST.replace(":", "-") + ".sig",
        media_type="application/vnd.dev.cosign.simplesigning.v1+json",
        layer_digest=real.LAYER_DIGEST,
        payload=real.PAYLOAD,
        signature=base64.b64decode(real.SIGNATURE),
        certificate=None,
        chain=None,
        bundle=real.BUNDLE_ANNOTATION,
    )
    authority = Authority(
        "dangerzone",
        TrustedSigners(
            keys=[load_public_key(real.PUBLIC_KEY, "dangerzone")],
            trusted_root=TrustRoot.load("sigstore-public-good"),
            require_tlog_for_keys=True,
        ),
    )
    trust = policy([authority], images=["ghcr.io/freedomofpress/dangerzone/*"])
    verdict = evaluate(trust, "ghcr.io/freedomofpress/dangerzone/v1", [Material(real.IMAGE_DIGEST, (layer,))])
    assert verdict.satisfied and verdict.rekor_uuid, verdict.reasons()
    assert not evaluate(trust, "ghcr.io/freedomofpress/dangerzone/v1", [Material(OTHER, (layer,))]).signed


def test_real_keyless_sigstore_attestation() -> None:
    """A production keyless SLSA provenance attestation (GitHub Actions identity, public-good Fulcio and
    Rekor; tests/data/sigstore/README.md), verified offline with the root shipped in the sigstore package."""
    raw = (DATA / "sigstore-3.1.0.sigstore.json").read_bytes()
    assert (
        hashlib.sha256(raw).hexdigest() == "ec47e8d5a9804173596eafcbead2f248ae0442f8ab4aa66b51c88bd85f5fd4a1"
    )
    statement = json.loads(base64.b64decode(json.loads(raw)["dsseEnvelope"]["payload"]))
    digest = "sha512:" + statement["subject"][0]["digest"]["sha512"]
    root = TrustRoot.load("sigstore-public-good")

    def authority(subject: str) -> Authority:
        identity = KeylessIdentity(issuer="https://token.actions.githubusercontent.com", subject=subject)
        return Authority("release", TrustedSigners(identities=[identity], trusted_root=root))

    workflow = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"
    material = [Material(digest, bundles=(BundleBlob("npm", raw),))]
    good = evaluate(policy([authority(workflow)], attestations=(SLSA,)), NAME, material)
    assert good.results[0].attested == {SLSA: ("release",)}, good.findings
    assert good.results[0].missing == ("0 of 1 required signature(s) verified (release: no signature by it)",)
    finding = good.findings[0]
    assert finding.verified and finding.signer_kind == "keyless" and finding.rekor_uuid
    stranger = evaluate(
        policy([authority("https://github.com/evil/x")], attestations=(SLSA,)), NAME, material
    )
    assert stranger.results[0].attested == {SLSA: ()}
    assert "is not trusted" in (stranger.findings[0].reason or "")
    tampered = bytearray(raw)
    tampered[raw.index(b'"sig": "MEQCIFBj') + 12] ^= 1
    bad = evaluate(
        policy([authority(workflow)], attestations=(SLSA,)),
        NAME,
        [Material(digest, bundles=(BundleBlob("n", bytes(tampered)),))],
    )
    assert bad.results[0].attested == {SLSA: ()}
