"""A self-signed CA and a serving certificate for the webhook Service (local use and the deploy chart).

The serving certificate names ``<service>``, ``<service>.<namespace>``, ``<service>.<namespace>.svc`` and
``<service>.<namespace>.svc.cluster.local`` plus any extra DNS names / IP addresses. Keys are ECDSA P-256
and are written with mode 0600. ``caBundle`` for the ValidatingWebhookConfiguration is the base64 of the CA.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertBundle",
    "generate_ca",
    "generate_certs",
    "issue_serving_cert",
    "service_dns_names",
    "write_certs",
]


@dataclass(frozen=True)
class CertBundle:
    ca_cert_pem: bytes
    ca_key_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @property
    def ca_bundle(self) -> str:
        """``caBundle`` of the webhook configuration."""
        return base64.b64encode(self.ca_cert_pem).decode("ascii")


def service_dns_names(service: str, namespace: str) -> list[str]:
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def generate_ca(common_name: str = "zastava-webhook-ca", days: int = 3650) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a new self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue_serving_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    dns_names: list[str],
    ip_addresses: list[str] | None = None,
    days: int = 365,
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a serving certificate signed by the CA."""
    if not dns_names and not ip_addresses:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses or []]
    common = dns_names[0] if dns_names else str(ip_addresses[0] if ip_addresses else "")
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def generate_certs(
    service: str = "zastava-webhook",
    namespace: str = "stellaops",
    *,
    extra_dns: list[str] | None = None,
    ip_addresses: list[str] | None = None,
    days: int = 365,
) -> CertBundle:
    ca_cert, ca_key = generate_ca()
    names = service_dns_names(service, namespace) + list(extra_dns or [])
    cert, key = issue_serving_cert(ca_cert, ca_key, names, ip_addresses, days)
    return CertBundle(ca_cert, ca_key, cert, key)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically (rename) so a watching server never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.chmod(mode)
    tmp.replace(path)


def write_certs(bundle: CertBundle, directory: str | Path) -> dict[str, Path]:
    """Write ``ca.crt``, ``ca.key``, ``tls.crt``, ``tls.key`` (keys 0600); returns the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("ca.crt", "ca.key", "tls.crt", "tls.key")}
    _write(paths["ca.crt"], bundle.ca_cert_pem, 0o644)
    _write(paths["ca.key"], bundle.ca_key_pem, 0o600)
    _write(paths["tls.key"], bundle.key_pem, 0o600)
    _write(paths["tls.crt"], bundle.cert_pem, 0o644)
    return paths
