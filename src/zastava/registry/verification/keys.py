"""Public keys and signature checks for cosign's key-based signatures.

Supported: ECDSA P-256/P-384/P-521 (SHA-256, cosign's default ``--signature-digest-algorithm``, or the curve's
own hash), Ed25519 (pure), RSA ≥ 2048 bits (PKCS#1 v1.5 or PSS, SHA-256). Keys are PEM or DER
SubjectPublicKeyInfo (what ``cosign generate-key-pair`` writes to ``cosign.pub``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from ..errors import TrustConfigError

__all__ = [
    "PublicKey",
    "SupportedKey",
    "key_fingerprint",
    "load_public_key",
    "load_public_key_file",
    "verify_with_key",
]

SupportedKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def key_fingerprint(key: SupportedKey) -> str:
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo (also Rekor's log id scheme)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


@dataclass(frozen=True, slots=True)
class PublicKey:
    name: str
    key: SupportedKey = field(repr=False)
    fingerprint: str = ""

    @property
    def algorithm(self) -> str:
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            return f"ecdsa-{self.key.curve.name}"
        if isinstance(self.key, ed25519.Ed25519PublicKey):
            return "ed25519"
        return f"rsa-{self.key.key_size}"


def load_public_key(data: bytes, name: str = "key") -> PublicKey:
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TrustConfigError(f"{name}: not a PEM/DER public key: {exc}") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_HASH:
            raise TrustConfigError(f"{name}: unsupported curve {key.curve.name}")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise TrustConfigError(f"{name}: RSA keys shorter than 2048 bits are refused")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise TrustConfigError(f"{name}: unsupported key type {type(key).__name__}")
    return PublicKey(name, key, key_fingerprint(key))


def load_public_key_file(path: str | Path) -> PublicKey:
    path = Path(path)
    try:
        data = path.read_bytes()[:1_000_000]
    except OSError as exc:
        raise TrustConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return load_public_key(data, str(path))


def verify_with_key(key: SupportedKey, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` over ``data`` verifies with ``key``."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            candidates: list[type[hashes.HashAlgorithm]] = [hashes.SHA256]
            curve_hash = _CURVE_HASH.get(key.curve.name)
            if curve_hash is not None and curve_hash is not hashes.SHA256:
                candidates.append(curve_hash)
            for algorithm in candidates:
                try:
                    key.verify(signature, data, ec.ECDSA(algorithm()))
                    return True
                except InvalidSignature:
                    continue
            return False
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
        try:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            key.verify(
                signature,
                data,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                hashes.SHA256(),
            )
            return True
    except (InvalidSignature, ValueError):
        return False
