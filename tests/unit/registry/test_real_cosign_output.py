"""Verification of a signature produced by the real cosign tool (see cosign_real.py), offline, against the
public-good trusted root bundled with sigstore-python."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

from zastava.registry import TrustedSigners, TrustRoot, load_public_key
from zastava.registry.verification.cosign import SIMPLE_SIGNING_MEDIA_TYPE, LegacyLayer, verify_legacy_layer
from zastava.registry.verification.transparency import leaf_hash

from . import cosign_real as real


def layer(**changes: object) -> LegacyLayer:
    base = LegacyLayer(
        tag=real.IMAGE_DIGEST.replace(":", "-") + ".sig",
        media_type=SIMPLE_SIGNING_MEDIA_TYPE,
        layer_digest=real.LAYER_DIGEST,
        payload=real.PAYLOAD,
        signature=base64.b64decode(real.SIGNATURE),
        certificate=None,
        chain=None,
        bundle=real.BUNDLE_ANNOTATION,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_payload_is_the_published_layer() -> None:
    assert "sha256:" + hashlib.sha256(real.PAYLOAD).hexdigest() == real.LAYER_DIGEST


def test_real_cosign_key_signature_verifies() -> None:
    policy = TrustedSigners(keys=[load_public_key(real.PUBLIC_KEY, "dangerzone")])
    finding = verify_legacy_layer(layer(), real.IMAGE_DIGEST, policy)
    assert finding.verified and finding.signer == "dangerzone", finding.reason


def test_real_rekor_evidence_verifies_against_public_good_root() -> None:
    policy = TrustedSigners(
        keys=[load_public_key(real.PUBLIC_KEY, "dangerzone")],
        trusted_root=TrustRoot.load("sigstore-public-good"),
        require_tlog_for_keys=True,
    )
    finding = verify_legacy_layer(layer(), real.IMAGE_DIGEST, policy)
    body = base64.b64decode(json.loads(real.BUNDLE_ANNOTATION)["Payload"]["body"])
    assert finding.verified and finding.rekor_uuid == leaf_hash(body), finding.reason
    forged = json.loads(real.BUNDLE_ANNOTATION)
    forged["Payload"]["logIndex"] += 1
    assert not verify_legacy_layer(layer(bundle=json.dumps(forged)), real.IMAGE_DIGEST, policy).verified
    assert not verify_legacy_layer(layer(bundle=None), real.IMAGE_DIGEST, policy).verified


def test_real_signature_rejected_for_other_digest_or_key() -> None:
    from tests.harness.devstack.signing import KeyPair

    policy = TrustedSigners(keys=[load_public_key(real.PUBLIC_KEY, "dangerzone")])
    other = "sha256:" + "0" * 64
    assert "payload signs" in str(verify_legacy_layer(layer(), other, policy).reason)
    wrong = TrustedSigners(keys=[load_public_key(KeyPair.generate().public_pem)])
    assert not verify_legacy_layer(layer(), real.IMAGE_DIGEST, wrong).verified
