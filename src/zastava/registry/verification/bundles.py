"""Sigstore bundles (v0.1–v0.3 JSON) attached as OCI referrers — cosign's new bundle format.

cosign ≥ 2.5 with ``--new-bundle-format`` (the default in cosign 3) stores a signature as a referrer
manifest with
``artifactType: application/vnd.dev.sigstore.bundle.v0.3+json`` whose single layer is the bundle; an image
signature is a DSSE-wrapped in-toto statement with predicate type ``https://sigstore.dev/cosign/sign/v1``
and the
image digest as subject; attestations are the same with their own predicate types (SLSA provenance,
CycloneDX…).

Keyless bundles (a Fulcio certificate) are verified by sigstore-python's :class:`sigstore.verify.Verifier`
against
the configured offline trusted root: chain at the signed time, SCT, Rekor inclusion proof + signed checkpoint,
inclusion promise, DSSE signature, log-entry consistency, and our identity policy. Bundles signed with a
public
key (``verificationMaterial.publicKey``) are not supported by sigstore-python; their DSSE signature is checked
with the trusted keys here, and their Rekor inclusion promise (when present) with :mod:`.transparency`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509

from .dsse import DsseError, Envelope, parse_envelope, parse_statement, predicate_kind
from .findings import Finding
from .keys import SupportedKey, verify_with_key
from .transparency import (
    EvidenceError,
    dsse_entry_consistent,
    leaf_hash,
    verify_fulcio_chain,
    verify_sct,
    verify_set,
)
from .trust import KeylessIdentity, TrustedSigners, TrustRoot, cert_identity

__all__ = ["BUNDLE_MEDIA_TYPES", "is_bundle_type", "verify_bundle"]

BUNDLE_MEDIA_TYPES = frozenset(
    {
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
    }
)


def is_bundle_type(media_type: str | None) -> bool:
    return media_type is not None and media_type.replace(" ", "") in BUNDLE_MEDIA_TYPES


class _IdentityPolicy:
    """sigstore ``VerificationPolicy``: the certificate matches any configured identity (exact or regex)."""

    def __init__(self, identities: Sequence[KeylessIdentity]) -> None:
        self.identities = identities
        self.matched: str | None = None

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError

        issuer, subjects = cert_identity(cert)
        for identity in self.identities:
            if identity.matches(issuer, subjects):
                self.matched = f"{subjects[0] if subjects else '?'} ({issuer})"
                return
        raise VerificationError(f"certificate identity {subjects} ({issuer}) is not trusted")


_VERIFIERS: dict[str, Any] = {}  # trusted-root fingerprint → sigstore Verifier (a handful at most)


def _verifier(root: TrustRoot) -> Any:
    from sigstore.verify import Verifier

    verifier = _VERIFIERS.get(root.fingerprint)
    if verifier is None:
        if len(_VERIFIERS) >= 16:
            _VERIFIERS.clear()
        verifier = _VERIFIERS[root.fingerprint] = Verifier(trusted_root=root.sigstore)
    return verifier


def _tlog_uuid(document: Mapping[str, Any]) -> str | None:
    try:
        body = document["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]
        return leaf_hash(base64.b64decode(body))
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error):
        return None


def _key_bundle_tlog(document: Mapping[str, Any], envelope: Envelope, policy: TrustedSigners) -> str | None:
    entries = (document.get("verificationMaterial") or {}).get("tlogEntries") or []
    if not entries or policy.trusted_root is None:
        if policy.require_tlog_for_keys:
            raise EvidenceError("no verifiable Rekor evidence, and the policy requires it for keys")
        return None
    entry = entries[0]
    try:
        evidence = verify_set(
            policy.trusted_root,
            entry["canonicalizedBody"],
            int(entry["integratedTime"]),
            int(entry["logIndex"]),
            base64.b64decode(entry["logId"]["keyId"]),
            base64.b64decode(entry["inclusionPromise"]["signedEntryTimestamp"]),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise EvidenceError(f"bundle log entry lacks an inclusion promise: {exc}") from None
    if not dsse_entry_consistent(evidence.body, envelope.payload):
        raise EvidenceError("the Rekor entry records a different payload")
    return evidence.uuid


#: Log entry kinds sigstore-python verifies (it refuses the integrated time of others, e.g. ``intoto`` 0.0.2,
#: which npm provenance and older cosign attestations use).
_SIGSTORE_KINDS = frozenset({"dsse", "hashedrekord"})


def _entry_kind(document: Mapping[str, Any]) -> str | None:
    try:
        kind = document["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"]
    except (KeyError, IndexError, TypeError):
        return None
    return kind if isinstance(kind, str) else None


def _bundle_certificates(material: Mapping[str, Any]) -> list[x509.Certificate]:
    try:
        if "certificate" in material:
            raws = [material["certificate"]["rawBytes"]]
        else:
            raws = [c["rawBytes"] for c in material["x509CertificateChain"]["certificates"]]
        return [x509.load_der_x509_certificate(base64.b64decode(raw)) for raw in raws[:10]]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise EvidenceError(f"bundle certificate is unreadable: {exc}") from None


def _keyless_with_promise(
    document: Mapping[str, Any], envelope: Envelope, policy: TrustedSigners
) -> tuple[str, str]:
    """(identity, Rekor uuid) of a keyless DSSE bundle whose log entry sigstore-python does not take
    (``intoto``): the same checks as for cosign's annotation layout — signed entry timestamp by a trusted
    Rekor key, certificate valid at the integrated time and chaining to the trusted Fulcio CAs, embedded SCT,
    identity, DSSE signature by the certificate's key, and the entry recording this payload."""
    root = policy.trusted_root
    assert root is not None
    material = document.get("verificationMaterial") or {}
    certs = _bundle_certificates(material)
    if not certs:
        raise EvidenceError("keyless bundle without a certificate")
    cert, intermediates = certs[0], certs[1:]
    try:
        entry = material["tlogEntries"][0]
        evidence = verify_set(
            root,
            entry["canonicalizedBody"],
            int(entry["integratedTime"]),
            int(entry["logIndex"]),
            base64.b64decode(entry["logId"]["keyId"]),
            base64.b64decode(entry["inclusionPromise"]["signedEntryTimestamp"]),
        )
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error) as exc:
        raise EvidenceError(f"bundle log entry lacks an inclusion promise: {exc}") from None
    at = evidence.integrated_time
    if not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
        raise EvidenceError("certificate was not valid when the entry was logged")
    chain = verify_fulcio_chain(cert, root, at, intermediates)
    verify_sct(cert, chain[0], root)
    issuer, subjects = cert_identity(cert)
    if not any(identity.matches(issuer, subjects) for identity in policy.identities):
        raise EvidenceError(f"certificate identity {subjects} ({issuer}) is not trusted")
    cert_key = cert.public_key()
    data = envelope.signed_bytes()
    if not isinstance(cert_key, SupportedKey) or not any(
        verify_with_key(cert_key, signature, data) for signature in envelope.signatures
    ):
        raise EvidenceError("DSSE signature does not verify with the certificate's key")
    if not dsse_entry_consistent(evidence.body, envelope.payload):
        raise EvidenceError("the Rekor entry records a different payload")
    return f"{subjects[0] if subjects else '?'} ({issuer})", evidence.uuid


def verify_bundle(raw: bytes, digest: str, policy: TrustedSigners, source: str) -> Finding:
    """Check one bundle (the referrer layer's bytes) against ``digest`` and the policy."""
    base: dict[str, Any] = {"kind": "sigstore-bundle", "digest": digest, "source": source}
    try:
        document = json.loads(raw)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return Finding(**base, role="signature", verified=False, reason=f"bundle is not JSON: {exc}")
    material = document.get("verificationMaterial") or {}
    envelope_doc = document.get("dsseEnvelope")
    if envelope_doc is None:
        return Finding(
            **base,
            role="signature",
            verified=False,
            reason="message-signature bundle: no payload binds it to an image digest",
        )
    try:
        envelope = parse_envelope(envelope_doc)
        statement = parse_statement(envelope)
    except DsseError as exc:
        return Finding(**base, role="signature", verified=False, reason=str(exc))
    kind = predicate_kind(statement.predicate_type)
    base["role"] = "signature" if kind == "signature" else "attestation"
    base["predicate_type"] = statement.predicate_type
    if not statement.names_digest(digest):
        return Finding(**base, verified=False, reason=f"the statement's subject does not name {digest}")
    if policy.empty:
        return Finding(**base, verified=False, reason="no trusted keys or identities are configured")
    keyless = isinstance(material, Mapping) and (
        "certificate" in material or "x509CertificateChain" in material
    )
    if keyless:
        if policy.trusted_root is None or not policy.identities:
            return Finding(
                **base,
                verified=False,
                reason="keyless bundle, but no trusted root / identities are configured",
            )
        if _entry_kind(document) not in _SIGSTORE_KINDS:
            try:
                signer, entry_uuid = _keyless_with_promise(document, envelope, policy)
            except EvidenceError as exc:
                return Finding(**base, verified=False, reason=str(exc))
            return Finding(**base, verified=True, signer=signer, signer_kind="keyless", rekor_uuid=entry_uuid)
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import Bundle

        identity = _IdentityPolicy(policy.identities)
        try:
            bundle = Bundle.from_json(raw)
            payload_type, payload = _verifier(policy.trusted_root).verify_dsse(bundle, identity)
        except SigstoreError as exc:
            return Finding(**base, verified=False, reason=f"sigstore: {exc}")
        except (ValueError, TypeError, KeyError) as exc:
            return Finding(**base, verified=False, reason=f"malformed bundle: {exc}")
        if payload != envelope.payload or payload_type != envelope.payload_type:
            return Finding(**base, verified=False, reason="verified payload differs from the envelope")
        return Finding(
            **base,
            verified=True,
            signer=identity.matched,
            signer_kind="keyless",
            rekor_uuid=_tlog_uuid(document),
        )
    key = envelope.verify(policy.keys)
    if key is None:
        return Finding(**base, verified=False, reason="DSSE signature does not verify with any trusted key")
    note = None
    try:
        uuid = _key_bundle_tlog(document, envelope, policy)
    except EvidenceError as exc:
        if policy.require_tlog_for_keys:
            return Finding(**base, verified=False, reason=str(exc))
        uuid, note = None, f"Rekor evidence not used: {exc}"
    return Finding(**base, verified=True, signer=key.name, signer_kind="key", rekor_uuid=uuid, reason=note)
