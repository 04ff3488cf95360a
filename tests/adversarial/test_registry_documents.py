"""Issue 21, the parsers on the registry path: a registry (or whoever answers in its place) serving deeply
nested JSON as a manifest, a signature payload, a DSSE envelope or a Rekor annotation gets the parser's own
error, never a ``RecursionError`` escaping into the webhook or the observer."""

from __future__ import annotations

import pytest

from zastava.registry.errors import InvalidManifest
from zastava.registry.transport.manifest import Manifest
from zastava.registry.verification.cosign import simple_signing_digest
from zastava.registry.verification.dsse import DsseError, Envelope, parse_envelope, parse_statement
from zastava.registry.verification.transparency import EvidenceError, verify_rekor_annotation

DEEP = b"[" * 200_000 + b"]" * 200_000  # 400 KB: well inside the 4 MiB manifest limit


def test_a_deeply_nested_manifest_is_an_invalid_manifest() -> None:
    with pytest.raises(InvalidManifest, match="not valid JSON"):
        Manifest.parse(DEEP, "application/vnd.oci.image.manifest.v1+json")


def test_deeply_nested_signature_documents_are_refused_by_their_parsers() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        simple_signing_digest(DEEP)
    with pytest.raises(DsseError):
        parse_envelope(DEEP)
    envelope = Envelope(payload_type="application/vnd.in-toto+json", payload=DEEP, signatures=[])
    with pytest.raises(DsseError):
        parse_statement(envelope)
    with pytest.raises(EvidenceError):
        verify_rekor_annotation(DEEP.decode(), None)  # type: ignore[arg-type]
