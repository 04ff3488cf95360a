"""Rekor and CT evidence for cosign's pre-bundle (annotation) format, verified with ``cryptography``.

cosign's legacy layout carries the Rekor entry as the ``dev.sigstore.cosign/bundle`` annotation:
``{"SignedEntryTimestamp": b64, "Payload": {"body": b64, "integratedTime": int, "logIndex": int,
"logID": hex}}`` — a signed entry timestamp (SET) but no inclusion proof. sigstore-python only accepts log
entries that carry an inclusion proof with a checkpoint, so this module checks the same things sigstore
does for
a v0.1 bundle (SET signature by a trusted Rekor key over the RFC 8785 canonical entry, entry body
consistent with
the signature, Fulcio chain valid at the integrated time, embedded SCT signed by a trusted CT log) itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.certificate_transparency import LogEntryType
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ...contracts.canonical import canonical_bytes
from .keys import verify_with_key
from .trust import TrustRoot

__all__ = [
    "EvidenceError",
    "RekorEvidence",
    "dsse_entry_consistent",
    "hashedrekord_consistent",
    "leaf_hash",
    "verify_fulcio_chain",
    "verify_rekor_annotation",
    "verify_sct",
    "verify_set",
]


class EvidenceError(ValueError):
    """Transparency or certificate evidence that does not verify."""


def leaf_hash(body: bytes) -> str:
    """RFC 6962 leaf hash of a log entry body, hex: Rekor's entry UUID (without the tree-id prefix)."""
    return hashlib.sha256(b"\x00" + body).hexdigest()


@dataclass(frozen=True, slots=True)
class RekorEvidence:
    uuid: str
    log_index: int
    integrated_time: datetime
    body: Mapping[str, Any]


def verify_set(
    root: TrustRoot, body_b64: str, integrated_time: int, log_index: int, log_id: bytes, set_signature: bytes
) -> RekorEvidence:
    """Verify a Rekor signed entry timestamp (inclusion promise) against the trusted Rekor keys."""
    key = root.rekor_key(log_id)
    if key is None:
        raise EvidenceError(f"Rekor log {log_id.hex()[:16]}… is not in the trusted root")
    canonical = canonical_bytes(
        {"body": body_b64, "integratedTime": integrated_time, "logID": log_id.hex(), "logIndex": log_index}
    )
    if not verify_with_key(key.key, set_signature, canonical):
        raise EvidenceError("Rekor signed entry timestamp does not verify")
    when = datetime.fromtimestamp(integrated_time, UTC)
    if (key.valid_from and when < key.valid_from) or (key.valid_to and when > key.valid_to):
        raise EvidenceError("Rekor entry integrated outside the log key's validity")
    try:
        body = base64.b64decode(body_b64, validate=True)
        parsed = json.loads(body)
    except (ValueError, binascii.Error, RecursionError):
        raise EvidenceError("Rekor entry body is not base64 JSON") from None
    if not isinstance(parsed, dict):
        raise EvidenceError("Rekor entry body is not an object")
    return RekorEvidence(leaf_hash(body), log_index, when, parsed)


def verify_rekor_annotation(annotation: str, root: TrustRoot) -> RekorEvidence:
    """Verify cosign's ``dev.sigstore.cosign/bundle`` SET against the trusted Rekor keys."""
    try:
        document = json.loads(annotation)
        set_sig = base64.b64decode(document["SignedEntryTimestamp"], validate=True)
        payload = document["Payload"]
        body_b64 = str(payload["body"])
        integrated = int(payload["integratedTime"])
        log_index = int(payload["logIndex"])
        log_id = bytes.fromhex(payload["logID"])
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise EvidenceError(f"malformed Rekor bundle annotation: {exc}") from None
    return verify_set(root, body_b64, integrated, log_index, log_id, set_sig)


def dsse_entry_consistent(body: Mapping[str, Any], payload: bytes) -> bool:
    """A ``dsse``/``intoto`` log entry records this envelope payload's hash."""
    wanted = hashlib.sha256(payload).hexdigest()
    try:
        spec = body["spec"]
        if body.get("kind") == "dsse":
            return bool(spec["payloadHash"]["value"] == wanted)
        if body.get("kind") == "intoto":
            return bool(spec["content"]["payloadHash"]["value"] == wanted)
    except (KeyError, TypeError):
        return False
    return False


def hashedrekord_consistent(
    body: Mapping[str, Any], payload: bytes, signature: bytes, signer_pem: bytes
) -> bool:
    """The log entry records exactly this payload hash, signature and signer (cf. CVE-2022-36056)."""
    try:
        if body.get("kind") != "hashedrekord":
            return False
        spec = body["spec"]
        data_hash = spec["data"]["hash"]
        logged_sig = base64.b64decode(spec["signature"]["content"])
        logged_signer = base64.b64decode(spec["signature"]["publicKey"]["content"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        return False
    if (
        data_hash.get("algorithm") != "sha256"
        or data_hash.get("value") != hashlib.sha256(payload).hexdigest()
    ):
        return False
    if logged_sig != signature:
        return False
    return _same_signer(logged_signer, signer_pem)


def _same_signer(a: bytes, b: bytes) -> bool:
    def der(blob: bytes) -> bytes:
        if b"CERTIFICATE" in blob:
            return x509.load_pem_x509_certificate(blob).public_bytes(serialization.Encoding.DER)
        if b"PUBLIC KEY" in blob:
            return serialization.load_pem_public_key(blob).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return blob

    try:
        return der(a) == der(b)
    except ValueError:
        return False


def verify_fulcio_chain(
    cert: x509.Certificate, root: TrustRoot, at: datetime, intermediates: list[x509.Certificate] | None = None
) -> list[x509.Certificate]:
    """Path-validate a Fulcio leaf to the trusted root's CAs at time ``at``; code-signing EKU required."""
    if not root.ca_certs:
        raise EvidenceError("the trusted root has no certificate authorities")
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(root.ca_certs))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        chain = verifier.verify(cert, intermediates or []).chain[1:]
    except (VerificationError, x509.UnsupportedGeneralNameType) as exc:
        raise EvidenceError(
            f"certificate does not chain to the trusted root at {at:%Y-%m-%dT%H:%M:%SZ}: {exc}"
        ) from None
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise EvidenceError("certificate lacks key usage / extended key usage") from None
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku or not usage.digital_signature:
        raise EvidenceError("certificate is not a code-signing certificate")
    return chain


def verify_sct(cert: x509.Certificate, issuer: x509.Certificate, root: TrustRoot) -> None:
    """The certificate's embedded precertificate SCT is signed by a CT log of the trusted root (RFC 6962)."""
    try:
        scts = cert.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        raise EvidenceError("certificate has no embedded SCT") from None
    if len(scts) != 1:
        raise EvidenceError(f"expected one SCT, found {len(scts)}")
    sct = scts[0]
    if sct.entry_type != LogEntryType.PRE_CERTIFICATE:
        raise EvidenceError("SCT is not for a precertificate")
    key = root.ct_key(sct.log_id)
    if key is None:
        raise EvidenceError("SCT's CT log is not in the trusted root")
    issuer_key = issuer.public_key()
    if not isinstance(issuer_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise EvidenceError("issuer key type unsupported for SCT")
    issuer_key_hash = hashlib.sha256(
        issuer_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).digest()
    tbs = cert.tbs_precertificate_bytes
    entry = issuer_key_hash + struct.pack("!I", len(tbs))[1:] + tbs
    timestamp = int(sct.timestamp.replace(tzinfo=UTC).timestamp() * 1000)
    ext = sct.extension_bytes
    signed = (
        struct.pack("!BBQH", sct.version.value, 0, timestamp, 1) + entry + struct.pack("!H", len(ext)) + ext
    )
    if not isinstance(sct.signature_hash_algorithm, hashes.SHA256):
        raise EvidenceError("SCT hash algorithm is not SHA-256")
    if not verify_with_key(key.key, sct.signature, signed):
        raise EvidenceError("SCT signature does not verify")
