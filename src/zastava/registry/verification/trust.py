"""What to trust: public keys, keyless identities (OIDC issuer + subject, exact or regex), a trusted root.

The trusted root is a sigstore ``trusted_root.json`` (media type
``application/vnd.dev.sigstore.trustedroot+json;version=0.1``): Fulcio CA chains, Rekor (transparency log)
keys,
CT log keys, TSAs. It is loaded offline — from a file, or sigstore-python's bundled public-good root
(``sigstore-public-good``) — and never refreshed over the network by Zastava.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ObjectIdentifier

from ..errors import TrustConfigError
from .keys import PublicKey, SupportedKey, load_public_key_file

__all__ = [
    "BUILTIN_ROOT",
    "KeylessIdentity",
    "TrustRoot",
    "TrustedSigners",
    "cert_identity",
]

BUILTIN_ROOT = "sigstore-public-good"
OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SIGSTORE_OTHERNAME = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
_MAX_ROOT_BYTES = 5_000_000


@dataclass(frozen=True, slots=True)
class KeylessIdentity:
    """A Fulcio certificate identity: at least one of issuer/issuer_regex and at least one of
    subject/subject_regex; when both forms are given, both must hold. Regexes must match the whole value
    (``re.fullmatch``)."""

    issuer: str | None = None
    subject: str | None = None
    issuer_regex: str | None = None
    subject_regex: str | None = None

    def __post_init__(self) -> None:
        if self.issuer is None and self.issuer_regex is None:
            raise TrustConfigError("keyless identity needs an issuer or issuerRegex")
        if self.subject is None and self.subject_regex is None:
            raise TrustConfigError("keyless identity needs a subject or subjectRegex")
        for pattern in (self.issuer_regex, self.subject_regex):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise TrustConfigError(f"invalid regex {pattern!r}: {exc}") from None

    def matches(self, issuer: str | None, subjects: Iterable[str]) -> bool:
        if issuer is None:
            return False
        if self.issuer is not None and issuer != self.issuer:
            return False
        if self.issuer_regex is not None and re.fullmatch(self.issuer_regex, issuer) is None:
            return False
        for subject in subjects:
            if self.subject is not None and subject != self.subject:
                continue
            if self.subject_regex is not None and re.fullmatch(self.subject_regex, subject) is None:
                continue
            return True
        return False

    def __str__(self) -> str:
        issuer = self.issuer if self.issuer is not None else f"~{self.issuer_regex}"
        subject = self.subject if self.subject is not None else f"~{self.subject_regex}"
        return f"{subject} ({issuer})"


def _der_utf8(value: bytes) -> str:
    # DER UTF8String: tag 0x0c, short or long length form
    if len(value) >= 2 and value[0] == 0x0C:
        length = value[1]
        offset = 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(value[2 : 2 + n], "big")
            offset = 2 + n
        return value[offset : offset + length].decode()
    raise ValueError("not a DER UTF8String")


def cert_identity(cert: x509.Certificate) -> tuple[str | None, list[str]]:
    """(OIDC issuer, SAN identities) of a Fulcio certificate."""
    issuer = None
    for ext in cert.extensions:
        if ext.oid == OIDC_ISSUER_V2 and isinstance(ext.value, x509.UnrecognizedExtension):
            try:
                issuer = _der_utf8(ext.value.value)
            except (ValueError, UnicodeDecodeError):
                issuer = None
            break
        if ext.oid == OIDC_ISSUER_V1 and isinstance(ext.value, x509.UnrecognizedExtension):
            try:
                issuer = ext.value.value.decode()
            except UnicodeDecodeError:
                issuer = None
    subjects: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return issuer, subjects
    subjects += san.get_values_for_type(x509.RFC822Name)
    subjects += san.get_values_for_type(x509.UniformResourceIdentifier)
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == SIGSTORE_OTHERNAME:
            try:
                subjects.append(_der_utf8(other.value))
            except (ValueError, UnicodeDecodeError):
                continue
    return issuer, subjects


@dataclass(frozen=True, slots=True)
class LogKey:
    key_id: bytes  # sha256 of DER SPKI (Rekor logID / CT log id)
    key: SupportedKey
    valid_from: datetime | None
    valid_to: datetime | None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _log_keys(entries: Any, where: str) -> list[LogKey]:
    out = []
    for i, entry in enumerate(entries or []):
        try:
            raw = base64.b64decode(entry["publicKey"]["rawBytes"])
            key = serialization.load_der_public_key(raw)
            valid = entry["publicKey"].get("validFor") or {}
            declared = entry.get("logId", {}).get("keyId")
        except (KeyError, TypeError, ValueError) as exc:
            raise TrustConfigError(f"trusted root {where}[{i}]: {exc}") from None
        key_id = base64.b64decode(declared) if declared else hashlib.sha256(raw).digest()
        out.append(LogKey(key_id, key, _parse_time(valid.get("start")), _parse_time(valid.get("end"))))  # type: ignore[arg-type]
    return out


class TrustRoot:
    """A sigstore trusted root: the sigstore-python object plus the parsed keys our legacy-format
    verifier needs (cosign's pre-bundle annotations cannot be fed to sigstore-python: see cosign.py)."""

    def __init__(self, document: Mapping[str, Any], source: str, sigstore_root: Any) -> None:
        self.source = source
        self.sigstore = sigstore_root
        try:
            self.ca_certs = [
                x509.load_der_x509_certificate(base64.b64decode(cert["rawBytes"]))
                for ca in document.get("certificateAuthorities") or []
                for cert in ca["certChain"]["certificates"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise TrustConfigError(f"trusted root {source}: certificateAuthorities: {exc}") from None
        self.rekor_keys = _log_keys(document.get("tlogs"), "tlogs")
        self.ct_keys = _log_keys(document.get("ctlogs"), "ctlogs")
        self.fingerprint = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    @classmethod
    def load(cls, path: str | Path) -> TrustRoot:
        from sigstore.models import TrustedRoot

        if str(path) == BUILTIN_ROOT:
            import sigstore

            bundled = (
                Path(sigstore.__file__).parent / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
            ) / "trusted_root.json"
            path = bundled
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TrustConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if len(data) > _MAX_ROOT_BYTES:
            raise TrustConfigError(f"{path}: larger than {_MAX_ROOT_BYTES} bytes")
        try:
            document = json.loads(data)
            inner = TrustedRoot.from_file(str(path))
        except Exception as exc:  # sigstore raises assorted types for malformed roots
            raise TrustConfigError(f"{path}: not a usable sigstore trusted root: {exc}") from None
        return cls(document, str(path), inner)

    def rekor_key(self, key_id: bytes) -> LogKey | None:
        return next((k for k in self.rekor_keys if k.key_id == key_id), None)

    def ct_key(self, key_id: bytes) -> LogKey | None:
        return next((k for k in self.ct_keys if k.key_id == key_id), None)


@dataclass(slots=True)
class TrustedSigners:
    """Who may sign. A signature verifies when it checks out against any key or any identity."""

    keys: Sequence[PublicKey] = ()
    identities: Sequence[KeylessIdentity] = ()
    trusted_root: TrustRoot | None = None
    #: Key-based signatures must also carry verified Rekor evidence (cosign's default when it uploads).
    require_tlog_for_keys: bool = False
    fingerprint: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if self.identities and self.trusted_root is None:
            raise TrustConfigError("keyless identities need a trusted root (trustedRootPath)")
        parts = [k.fingerprint for k in self.keys] + [repr(i) for i in self.identities]
        parts += [self.trusted_root.fingerprint if self.trusted_root else "", str(self.require_tlog_for_keys)]
        self.fingerprint = hashlib.sha256("\n".join(parts).encode()).hexdigest()

    @property
    def empty(self) -> bool:
        return not self.keys and not self.identities

    @classmethod
    def from_files(
        cls,
        key_files: Iterable[str | Path] = (),
        identities: Iterable[KeylessIdentity] = (),
        trusted_root: str | Path | None = None,
        *,
        require_tlog_for_keys: bool = False,
    ) -> TrustedSigners:
        return cls(
            keys=[load_public_key_file(p) for p in key_files],
            identities=list(identities),
            trusted_root=TrustRoot.load(trusted_root) if trusted_root else None,
            require_tlog_for_keys=require_tlog_for_keys,
        )
