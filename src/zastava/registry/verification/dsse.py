"""DSSE envelopes and in-toto statements (attestations: SLSA provenance, CycloneDX/SPDX, cosign sign/v1)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .keys import PublicKey, verify_with_key

__all__ = [
    "COSIGN_SIGN_PREDICATE",
    "CYCLONEDX_PREDICATE",
    "DSSE_MEDIA_TYPE",
    "INTOTO_PAYLOAD_TYPE",
    "SLSA_PREDICATES",
    "SPDX_PREDICATE",
    "DsseError",
    "Envelope",
    "Statement",
    "pae",
    "parse_envelope",
    "parse_statement",
    "predicate_kind",
]

DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
CYCLONEDX_PREDICATE = "https://cyclonedx.org/bom"
SPDX_PREDICATE = "https://spdx.dev/Document"
SLSA_PREDICATES = frozenset(
    {
        "https://slsa.dev/provenance/v0.1",
        "https://slsa.dev/provenance/v0.2",
        "https://slsa.dev/provenance/v1",
    }
)
_STATEMENT_TYPES = frozenset({"https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1"})
_MAX_SIGNATURES = 16


class DsseError(ValueError):
    """Malformed envelope or statement."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True, slots=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: Sequence[bytes]
    keyids: Sequence[str] = field(default_factory=tuple)

    def signed_bytes(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def verify(self, keys: Sequence[PublicKey]) -> PublicKey | None:
        """The first trusted key that verifies any signature, or None."""
        data = self.signed_bytes()
        for signature in self.signatures:
            for key in keys:
                if verify_with_key(key.key, signature, data):
                    return key
        return None


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise DsseError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise DsseError(f"{what} is not base64") from None


def parse_envelope(data: bytes | Mapping[str, Any]) -> Envelope:
    document: Any = data
    if isinstance(data, bytes):
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise DsseError(f"envelope is not JSON: {exc}") from None
    if not isinstance(document, Mapping):
        raise DsseError("envelope is not a JSON object")
    payload_type = document.get("payloadType")
    if not isinstance(payload_type, str) or not payload_type:
        raise DsseError("envelope has no payloadType")
    payload = _b64(document.get("payload"), "payload")
    signatures = document.get("signatures")
    if not isinstance(signatures, list) or not signatures or len(signatures) > _MAX_SIGNATURES:
        raise DsseError(f"envelope must carry 1–{_MAX_SIGNATURES} signatures")
    sigs, keyids = [], []
    for i, item in enumerate(signatures):
        if not isinstance(item, Mapping):
            raise DsseError(f"signatures[{i}] is not an object")
        sigs.append(_b64(item.get("sig"), f"signatures[{i}].sig"))
        keyids.append(str(item.get("keyid") or ""))
    return Envelope(payload_type, payload, tuple(sigs), tuple(keyids))


@dataclass(frozen=True, slots=True)
class Statement:
    predicate_type: str
    subjects: Sequence[tuple[str, Mapping[str, str]]]
    predicate: Any

    def names_digest(self, digest: str) -> bool:
        algorithm, _, hexpart = digest.partition(":")
        return any(d.get(algorithm, "").lower() == hexpart for _name, d in self.subjects)


def parse_statement(envelope: Envelope) -> Statement:
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise DsseError(f"payloadType {envelope.payload_type!r} is not an in-toto statement")
    try:
        document = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DsseError(f"statement is not JSON: {exc}") from None
    if not isinstance(document, Mapping) or document.get("_type") not in _STATEMENT_TYPES:
        raise DsseError("payload is not an in-toto Statement")
    predicate_type = document.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise DsseError("statement has no predicateType")
    subjects_raw = document.get("subject")
    if not isinstance(subjects_raw, list) or not subjects_raw:
        raise DsseError("statement has no subject")
    subjects = []
    for item in subjects_raw[:1000]:
        if not isinstance(item, Mapping) or not isinstance(item.get("digest"), Mapping):
            raise DsseError("statement subject without a digest map")
        digests = {str(k): str(v) for k, v in item["digest"].items()}
        subjects.append((str(item.get("name", "")), digests))
    return Statement(predicate_type, tuple(subjects), document.get("predicate"))


def predicate_kind(predicate_type: str) -> str:
    """``signature`` | ``slsa-provenance`` | ``sbom-cyclonedx`` | ``sbom-spdx`` | ``other``."""
    if predicate_type == COSIGN_SIGN_PREDICATE:
        return "signature"
    if predicate_type in SLSA_PREDICATES:
        return "slsa-provenance"
    if predicate_type.startswith(CYCLONEDX_PREDICATE):
        return "sbom-cyclonedx"
    if predicate_type.startswith(SPDX_PREDICATE):
        return "sbom-spdx"
    return "other"
