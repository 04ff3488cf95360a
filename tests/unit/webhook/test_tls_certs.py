from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from zastava.webhook.certs import generate_certs, issue_serving_cert, service_dns_names, write_certs
from zastava.webhook.tls import CertReloader


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> bytes:
    """A TLS handshake in memory; returns the PEM certificate the server presented."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_client = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    tls_server = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", tls_client), ("server", tls_server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            der = tls_client.getpeercert(binary_form=True)
            assert der is not None
            return ssl.DER_cert_to_PEM_cert(der).encode()
    raise AssertionError("handshake did not complete")


def test_generated_chain_verifies_for_the_service_names(tmp_path: Path) -> None:
    bundle = generate_certs("gate", "guard", extra_dns=["gate.example"], ip_addresses=["10.0.0.1"], days=30)
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    ca = x509.load_pem_x509_certificate(bundle.ca_cert_pem)
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [*service_dns_names("gate", "guard"), "gate.example"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert base64.b64decode(bundle.ca_bundle) == bundle.ca_cert_pem
    paths = write_certs(bundle, tmp_path / "out")
    assert (
        paths["tls.key"].stat().st_mode & 0o777 == 0o600 and paths["ca.key"].stat().st_mode & 0o777 == 0o600
    )
    # a client trusting the CA accepts the serving cert for the service DNS name, and only for it
    reloader = CertReloader(paths["tls.crt"], paths["tls.key"])
    client = ssl.create_default_context(cafile=str(paths["ca.crt"]))
    assert handshake(reloader.context, client, "gate.guard.svc") == bundle.cert_pem
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(reloader.context, client, "other.guard.svc")
    with pytest.raises(ValueError, match="at least one"):
        issue_serving_cert(bundle.ca_cert_pem, bundle.ca_key_pem, [])


def test_reloader_swaps_only_complete_pairs(tmp_path: Path) -> None:
    bundle = generate_certs(ip_addresses=["127.0.0.1"])
    paths = write_certs(bundle, tmp_path)
    reloader = CertReloader(paths["tls.crt"], paths["tls.key"], interval=0.1)
    first = reloader.current
    assert reloader.check() is False and reloader.current is first
    cert, key = issue_serving_cert(bundle.ca_cert_pem, bundle.ca_key_pem, ["localhost"])
    paths["tls.crt"].write_bytes(cert)  # certificate first: the pair does not match yet
    assert reloader.check() is False and reloader.current is first and reloader.failures == 1
    paths["tls.key"].write_bytes(key)
    assert reloader.check() is True and reloader.current is not first and reloader.reloads == 1
    client = ssl.create_default_context(cafile=str(paths["ca.crt"]))
    presented = handshake(reloader.context, client, "localhost")
    assert x509.load_pem_x509_certificate(presented) == x509.load_pem_x509_certificate(cert)
    assert reloader.fingerprint.startswith("sha256:")
    paths["tls.crt"].write_text("not a certificate")
    assert reloader.check() is False and reloader.failures == 2


def test_missing_files_fail_at_start(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        CertReloader(tmp_path / "none.crt", tmp_path / "none.key")
