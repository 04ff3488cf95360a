"""cosign's legacy (tag-based) layout: ``sha256-<hex>.sig`` signatures and ``sha256-<hex>.att`` attestations.

A ``.sig`` manifest has one layer per signature: the simple-signing payload blob
(``application/vnd.dev.cosign.simplesigning.v1+json``) whose ``critical.image.docker-manifest-digest`` must be
the image digest, the base64 signature in the ``dev.cosignproject.cosign/signature`` annotation, and for
keyless
signatures the Fulcio certificate/chain (``dev.sigstore.cosign/certificate``/``chain``) and the Rekor entry
(``dev.sigstore.cosign/bundle``). A ``.att`` manifest has DSSE envelope layers
(``application/vnd.dsse.envelope.v1+json``) whose in-toto statement must name the image digest.

Key-based signatures are checked with ``cryptography``; keyless ones with :mod:`.transparency` against the
trusted root (sigstore-python cannot take these annotations: it requires an inclusion proof + checkpoint).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from .dsse import DSSE_MEDIA_TYPE, DsseError, parse_envelope, parse_statement
from .findings import Finding
from .keys import SupportedKey, verify_with_key
from .transparency import (
    EvidenceError,
    dsse_entry_consistent,
    hashedrekord_consistent,
    verify_fulcio_chain,
    verify_rekor_annotation,
    verify_sct,
)
from .trust import TrustedSigners, cert_identity

__all__ = [
    "BUNDLE_ANNOTATION",
    "CERTIFICATE_ANNOTATION",
    "CHAIN_ANNOTATION",
    "SIGNATURE_ANNOTATION",
    "SIMPLE_SIGNING_MEDIA_TYPE",
    "SIMPLE_SIGNING_TYPE",
    "LegacyLayer",
    "simple_signing_digest",
    "verify_legacy_layer",
]

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIMPLE_SIGNING_TYPE = "cosign container image signature"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
_MAX_LAYERS = 32
_MAX_PAYLOAD = 256 * 1024


@dataclass(frozen=True, slots=True)
class LegacyLayer:
    tag: str
    media_type: str
    layer_digest: str
    payload: bytes
    signature: bytes
    certificate: str | None
    chain: str | None
    bundle: str | None


def _ci_get(obj: Mapping[str, Any], key: str) -> Any:
    """Case-insensitive key lookup (Go's encoding/json, which cosign uses, matches keys that way);
    two keys differing only in case make the document ambiguous and are refused."""
    found = [k for k in obj if isinstance(k, str) and k.lower() == key]
    if len(found) > 1:
        raise ValueError(f"ambiguous keys {found!r}")
    return obj.get(found[0]) if found else None


def simple_signing_digest(payload: bytes) -> str:
    """``critical.image.docker-manifest-digest`` of a simple-signing payload (ValueError when malformed)."""
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"payload is not JSON: {exc}") from None
    if not isinstance(document, Mapping):
        raise ValueError("payload is not a JSON object")
    critical = _ci_get(document, "critical")
    if not isinstance(critical, Mapping):
        raise ValueError("payload has no 'critical' section")
    kind = _ci_get(critical, "type")
    if kind != SIMPLE_SIGNING_TYPE:
        raise ValueError(f"critical.type is {kind!r}, not {SIMPLE_SIGNING_TYPE!r}")
    image = _ci_get(critical, "image")
    digest = _ci_get(image, "docker-manifest-digest") if isinstance(image, Mapping) else None
    if not isinstance(digest, str):
        raise ValueError("payload has no critical.image.docker-manifest-digest")
    return digest


def _keyless(
    layer: LegacyLayer, signed: bytes, signature: bytes, policy: TrustedSigners, attestation: bool
) -> tuple[str, str]:
    """(identity, rekor uuid) of a verified keyless signature; EvidenceError otherwise."""
    root = policy.trusted_root
    if root is None or not policy.identities:
        raise EvidenceError("keyless signature, but no trusted root / identities are configured")
    assert layer.certificate is not None
    try:
        cert = x509.load_pem_x509_certificate(layer.certificate.encode())
        chain = x509.load_pem_x509_certificates(layer.chain.encode()) if layer.chain else []
    except ValueError as exc:
        raise EvidenceError(f"certificate annotation is not PEM: {exc}") from None
    if layer.bundle is None:
        raise EvidenceError("keyless signature without Rekor evidence (dev.sigstore.cosign/bundle)")
    evidence = verify_rekor_annotation(layer.bundle, root)
    at = evidence.integrated_time
    if not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
        raise EvidenceError(
            f"certificate was not valid when the signature was logged ({at:%Y-%m-%dT%H:%M:%SZ}; valid "
            f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}–{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ})"
        )
    verified_chain = verify_fulcio_chain(cert, root, at, chain)
    verify_sct(cert, verified_chain[0], root)
    issuer, subjects = cert_identity(cert)
    if not any(identity.matches(issuer, subjects) for identity in policy.identities):
        raise EvidenceError(f"certificate identity {subjects} ({issuer}) is not trusted")
    cert_key = cert.public_key()
    if not isinstance(cert_key, SupportedKey) or not verify_with_key(cert_key, signature, signed):
        raise EvidenceError("signature does not verify with the certificate's key")
    if attestation:
        consistent = dsse_entry_consistent(evidence.body, layer_payload_of(layer))
    else:
        consistent = hashedrekord_consistent(evidence.body, signed, signature, layer.certificate.encode())
    if not consistent:
        raise EvidenceError("the Rekor entry records a different payload, signature or signer")
    return f"{subjects[0] if subjects else '?'} ({issuer})", evidence.uuid


def layer_payload_of(layer: LegacyLayer) -> bytes:
    try:
        return parse_envelope(layer.payload).payload
    except DsseError:
        return b""


def _key_tlog(
    layer: LegacyLayer,
    signed: bytes,
    signature: bytes,
    key_pem: bytes,
    policy: TrustedSigners,
    attestation: bool,
) -> str | None:
    """Rekor uuid for a key-based signature when evidence is present and verifiable."""
    if layer.bundle is None or policy.trusted_root is None:
        if policy.require_tlog_for_keys:
            raise EvidenceError("no verifiable Rekor evidence, and the policy requires it for keys")
        return None
    evidence = verify_rekor_annotation(layer.bundle, policy.trusted_root)
    ok = (
        dsse_entry_consistent(evidence.body, layer_payload_of(layer))
        if attestation
        else hashedrekord_consistent(evidence.body, signed, signature, key_pem)
    )
    if not ok:
        raise EvidenceError("the Rekor entry records a different payload, signature or signer")
    return evidence.uuid


def verify_legacy_layer(layer: LegacyLayer, digest: str, policy: TrustedSigners) -> Finding:
    """Check one ``.sig``/``.att`` layer against ``digest`` and the trust policy."""
    from cryptography.hazmat.primitives import serialization

    attestation = layer.tag.endswith(".att")
    base = {
        "kind": "cosign-attestation" if attestation else "cosign-signature",
        "role": "attestation" if attestation else "signature",
        "digest": digest,
        "source": f"{layer.tag}:{layer.layer_digest}",
    }
    predicate_type = None
    try:
        if attestation:
            if layer.media_type != DSSE_MEDIA_TYPE:
                raise EvidenceError(f"layer media type {layer.media_type!r} is not a DSSE envelope")
            envelope = parse_envelope(layer.payload)
            statement = parse_statement(envelope)
            predicate_type = statement.predicate_type
            if not statement.names_digest(digest):
                raise EvidenceError(f"the attestation's subject does not name {digest}")
            signed, signatures = envelope.signed_bytes(), list(envelope.signatures)
        else:
            if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE:
                raise EvidenceError(f"layer media type {layer.media_type!r} is not simple signing")
            try:
                claimed = simple_signing_digest(layer.payload)
            except ValueError as exc:
                raise EvidenceError(f"simple-signing payload: {exc}") from None
            if claimed != digest:
                raise EvidenceError(f"payload signs {claimed}, not {digest}")
            if not layer.signature:
                raise EvidenceError("no signature annotation")
            signed, signatures = layer.payload, [layer.signature]
    except (EvidenceError, DsseError) as exc:
        return Finding(**base, verified=False, predicate_type=predicate_type, reason=str(exc))
    if policy.empty:
        return Finding(
            **base,
            verified=False,
            predicate_type=predicate_type,
            reason="no trusted keys or identities are configured",
        )
    problems: list[str] = []
    for signature in signatures:
        if layer.certificate is not None:
            try:
                signer, uuid = _keyless(layer, signed, signature, policy, attestation)
            except EvidenceError as exc:
                problems.append(str(exc))
                continue
            return Finding(
                **base,
                verified=True,
                signer=signer,
                signer_kind="keyless",
                predicate_type=predicate_type,
                rekor_uuid=uuid,
            )
        for key in policy.keys:
            if verify_with_key(key.key, signature, signed):
                pem = key.key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                note = None
                try:
                    key_uuid = _key_tlog(layer, signed, signature, pem, policy, attestation)
                except EvidenceError as exc:
                    if policy.require_tlog_for_keys:
                        problems.append(str(exc))
                        continue
                    # the key signature stands on its own; unverifiable log evidence is reported, not trusted
                    key_uuid, note = None, f"Rekor evidence not used: {exc}"
                return Finding(
                    **base,
                    verified=True,
                    signer=key.name,
                    signer_kind="key",
                    predicate_type=predicate_type,
                    rekor_uuid=key_uuid,
                    reason=note,
                )
        if layer.certificate is None:
            problems.append("signature does not verify with any trusted key")
    return Finding(
        **base,
        verified=False,
        predicate_type=predicate_type,
        reason="; ".join(dict.fromkeys(problems)) or "no signature",
    )
