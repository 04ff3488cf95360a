"""Test support (not a product command): write signatures, attestations, bundles and referrers exactly in
cosign's and OCI's published formats, so tests and benchmarks can sign images pushed to a loopback registry.

No cosign binary can be installed here; this module produces what cosign produces:

* legacy layout (cosign < 3 default): ``sha256-<hex>.sig`` manifest, simple-signing payload layer
  (``application/vnd.dev.cosign.simplesigning.v1+json``), ``dev.cosignproject.cosign/signature`` annotation,
  keyless ``dev.sigstore.cosign/certificate``/``chain`` and ``dev.sigstore.cosign/bundle`` (Rekor SET);
  ``sha256-<hex>.att`` with DSSE envelope layers;
* new bundle format (cosign 3): a referrer manifest with ``artifactType`` / layer
  ``application/vnd.dev.sigstore.bundle.v0.3+json``, subject = the image, and the referrers tag-schema index
  maintained when the registry has no referrers API;
* SBOM referrers (``oras attach``-style artifact manifests with ``subject``).

:class:`TestSigstore` is a private sigstore instance: a Fulcio-like CA issuing leaf certificates with the OIDC
issuer extensions, SAN identity and an embedded SCT from a test CT log; a Rekor-like log producing entries
with
inclusion proofs, signed checkpoints and SETs; and the ``trusted_root.json`` that describes it all.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from zastava.contracts.canonical import canonical_bytes

__all__ = [
    "KeyPair",
    "OciPusher",
    "TestSigstore",
    "attach_bundle",
    "attach_cosign_sbom",
    "attach_referrer",
    "attach_sbom",
    "attest_legacy",
    "dsse_bundle",
    "in_toto_statement",
    "sign_legacy",
    "simple_signing_payload",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA = "application/vnd.dsse.envelope.v1+json"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO = "application/vnd.in-toto+json"
COSIGN_SIGN_V1 = "https://sigstore.dev/cosign/sign/v1"
_OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_SCT_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _utf8string(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + _der_len(len(raw)) + raw


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


# ------------------------------------------------------------------------------------------------ keys


@dataclass
class KeyPair:
    """A signing key as ``cosign generate-key-pair`` would make (public half as PEM SPKI)."""

    private: Any
    kind: str

    @classmethod
    def generate(cls, kind: Literal["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa"] = "ecdsa-p256") -> KeyPair:
        if kind == "ecdsa-p256":
            return cls(ec.generate_private_key(ec.SECP256R1()), kind)
        if kind == "ecdsa-p384":
            return cls(ec.generate_private_key(ec.SECP384R1()), kind)
        if kind == "ed25519":
            return cls(ed25519.Ed25519PrivateKey.generate(), kind)
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), kind)

    @property
    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def write_public(self, path: Path) -> Path:
        path.write_bytes(self.public_pem)
        return path

    def sign(self, data: bytes) -> bytes:
        key = self.private
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return bytes(key.sign(data, ec.ECDSA(hashes.SHA256())))
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return bytes(key.sign(data))
        return bytes(key.sign(data, padding.PKCS1v15(), hashes.SHA256()))


# ------------------------------------------------------------------------------------ private sigstore


def _mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _audit_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*_audit_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_audit_path(m - k, leaves[k:]), _mth(leaves[:k])]


@dataclass
class TestSigstore:
    """A private Fulcio CA + CT log + Rekor log, and the trusted root describing them."""

    origin: str = "rekor.zastava.test - 1"
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(microsecond=0))

    def __post_init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP384R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_id = hashlib.sha256(_spki(self.rekor_key.public_key())).digest()
        self.ct_id = hashlib.sha256(_spki(self.ct_key.public_key())).digest()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zastava.test"),
                x509.NameAttribute(NameOID.COMMON_NAME, "zastava-test-fulcio"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=365))
            .not_valid_after(self.now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(self.ca_key, hashes.SHA384())
        )
        self.leaves: list[bytes] = []

    # ------------------------------------------------------------------------------------- fulcio + CT

    def issue(
        self,
        identity: str,
        issuer: str,
        *,
        not_before: dt.datetime | None = None,
        lifetime: dt.timedelta = dt.timedelta(minutes=10),
        with_sct: bool = True,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """An ephemeral key and its Fulcio-style code-signing certificate for ``identity`` from ``issuer``."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or (self.now - dt.timedelta(minutes=1))
        san: x509.GeneralName = (
            x509.RFC822Name(identity)
            if "@" in identity and "://" not in identity
            else x509.UniformResourceIdentifier(identity)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + lifetime)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(_OIDC_ISSUER_V1, issuer.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(_OIDC_ISSUER_V2, _utf8string(issuer)), critical=False)
        )
        if not with_sct:
            return key, builder.sign(self.ca_key, hashes.SHA384())
        precert = builder.sign(self.ca_key, hashes.SHA384())
        tbs = precert.tbs_certificate_bytes
        timestamp = int(start.timestamp() * 1000)
        issuer_hash = hashlib.sha256(_spki(self.ca_key.public_key())).digest()
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)
            + issuer_hash
            + struct.pack("!I", len(tbs))[1:]
            + tbs
            + struct.pack("!H", 0)
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            b"\x00"
            + self.ct_id
            + struct.pack("!Q", timestamp)
            + struct.pack("!H", 0)
            + b"\x04\x03"
            + struct.pack("!H", len(signature))
            + signature
        )
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        value = b"\x04" + _der_len(len(sct_list)) + sct_list
        cert = builder.add_extension(x509.UnrecognizedExtension(_SCT_OID, value), critical=False).sign(
            self.ca_key, hashes.SHA384()
        )
        return key, cert

    # --------------------------------------------------------------------------------------- rekor

    def log(self, body: Mapping[str, Any], *, integrated_time: int | None = None) -> dict[str, Any]:
        """Append a canonical entry body; return the bundle ``tlogEntries`` item (proof, checkpoint, SET)."""
        raw = canonical_bytes(body)
        self.leaves.append(hashlib.sha256(b"\x00" + raw).digest())
        index = len(self.leaves) - 1
        size = len(self.leaves)
        root = _mth(self.leaves)
        note = f"{self.origin}\n{size}\n{_b64(root)}\n"
        note_sig = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 {self.origin.split(' ')[0]} {_b64(self.rekor_id[:4] + note_sig)}\n"
        when = integrated_time if integrated_time is not None else int(self.now.timestamp())
        set_payload = canonical_bytes(
            {"body": _b64(raw), "integratedTime": when, "logID": self.rekor_id.hex(), "logIndex": index}
        )
        set_sig = self.rekor_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        kind = str(body.get("kind"))
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.rekor_id)},
            "kindVersion": {"kind": kind, "version": str(body.get("apiVersion"))},
            "integratedTime": str(when),
            "inclusionPromise": {"signedEntryTimestamp": _b64(set_sig)},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in _audit_path(index, self.leaves)],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(raw),
        }

    @staticmethod
    def cosign_annotation(entry: Mapping[str, Any]) -> str:
        """cosign's ``dev.sigstore.cosign/bundle`` annotation for a log entry."""
        return json.dumps(
            {
                "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
                "Payload": {
                    "body": entry["canonicalizedBody"],
                    "integratedTime": int(entry["integratedTime"]),
                    "logIndex": int(entry["logIndex"]),
                    "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
                },
            }
        )

    # -------------------------------------------------------------------------------- trusted root

    def trusted_root(self) -> dict[str, Any]:
        start = (self.now - dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def log_instance(key: Any, key_id: bytes, url: str) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki(key.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": _b64(key_id)},
            }

        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log_instance(self.rekor_key, self.rekor_id, "https://rekor.zastava.test")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "zastava.test", "commonName": "zastava-test-fulcio"},
                    "uri": "https://fulcio.zastava.test",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(self.ca_cert.public_bytes(serialization.Encoding.DER))}
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
            "ctlogs": [log_instance(self.ct_key, self.ct_id, "https://ctfe.zastava.test")],
            "timestampAuthorities": [],
        }

    def write_trusted_root(self, path: Path) -> Path:
        path.write_text(json.dumps(self.trusted_root(), indent=2))
        return path


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def hashedrekord_body(payload: bytes, signature: bytes, signer_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
            "signature": {"content": _b64(signature), "publicKey": {"content": _b64(signer_pem)}},
        },
    }


def dsse_body(envelope: Mapping[str, Any], signer_pem: bytes) -> dict[str, Any]:
    payload = base64.b64decode(envelope["payload"])
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [
                {"signature": s["sig"], "verifier": _b64(signer_pem)} for s in envelope["signatures"]
            ],
        },
    }


# ---------------------------------------------------------------------------------------- payloads


def simple_signing_payload(
    docker_reference: str, digest: str, optional: Mapping[str, Any] | None = None
) -> bytes:
    """cosign's simple-signing payload, byte-for-byte in cosign's key order."""
    document = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": dict(optional) if optional else None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def in_toto_statement(digest: str, predicate_type: str, predicate: Any, name: str = "") -> bytes:
    algorithm, _, hexpart = digest.partition(":")
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {algorithm: hexpart}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        },
        separators=(",", ":"),
    ).encode()


def _pae(payload_type: str, payload: bytes) -> bytes:
    return b"DSSEv1 %d %b %d %b" % (len(payload_type), payload_type.encode(), len(payload), payload)


def dsse_envelope(payload: bytes, sign: Any, payload_type: str = INTOTO) -> dict[str, Any]:
    return {
        "payloadType": payload_type,
        "payload": _b64(payload),
        "signatures": [{"keyid": "", "sig": _b64(sign(_pae(payload_type, payload)))}],
    }


def dsse_bundle(
    statement: bytes,
    *,
    key: KeyPair | None = None,
    sigstore: TestSigstore | None = None,
    identity: str = "",
    issuer: str = "",
    cert_lifetime: dt.timedelta = dt.timedelta(minutes=10),
    cert_not_before: dt.datetime | None = None,
    tlog: bool = True,
) -> dict[str, Any]:
    """A sigstore bundle v0.3 with a DSSE envelope: keyless (``sigstore`` + identity/issuer) or keyed."""
    material: dict[str, Any] = {}
    if sigstore is not None:
        eph, cert = sigstore.issue(identity, issuer, lifetime=cert_lifetime, not_before=cert_not_before)
        envelope = dsse_envelope(statement, lambda d: eph.sign(d, ec.ECDSA(hashes.SHA256())))
        material["certificate"] = {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))}
        material["tlogEntries"] = [sigstore.log(dsse_body(envelope, _cert_pem(cert)))]
    else:
        assert key is not None
        envelope = dsse_envelope(statement, key.sign)
        material["publicKey"] = {"hint": hashlib.sha256(key.public_pem).hexdigest()}
        material["tlogEntries"] = []
    return {"mediaType": BUNDLE_V03, "verificationMaterial": material, "dsseEnvelope": envelope}


# ------------------------------------------------------------------------------------------ pushing


class OciPusher:
    """Minimal synchronous OCI distribution writer (blob upload, manifest PUT), with optional basic auth."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, auth=auth, timeout=30)

    def close(self) -> None:
        self.http.close()

    def blob(self, repo: str, data: bytes, media_type: str) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.http.head(f"/v2/{repo}/blobs/{digest}").status_code != 200:
            start = self.http.post(f"/v2/{repo}/blobs/uploads/")
            start.raise_for_status()
            location = start.headers["location"]
            sep = "&" if "?" in location else "?"
            done = self.http.put(
                f"{location}{sep}digest={digest}",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            done.raise_for_status()
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def manifest(
        self, repo: str, reference: str, document: Mapping[str, Any] | bytes, media_type: str
    ) -> str:
        raw = document if isinstance(document, bytes) else json.dumps(document).encode()
        response = self.http.put(
            f"/v2/{repo}/manifests/{reference}", content=raw, headers={"Content-Type": media_type}
        )
        response.raise_for_status()
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def get_manifest(self, repo: str, reference: str) -> dict[str, Any] | None:
        response = self.http.get(
            f"/v2/{repo}/manifests/{reference}", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"}
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def has_referrers_api(self, repo: str, digest: str) -> bool:
        response = self.http.get(f"/v2/{repo}/referrers/{digest}", headers={"Accept": OCI_INDEX})
        return response.status_code == 200


def _cosign_config(layers: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "architecture": "",
            "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        },
        separators=(",", ":"),
    ).encode()


def _put_cosign_manifest(pusher: OciPusher, repo: str, tag: str, layer: dict[str, Any]) -> str:
    existing = pusher.get_manifest(repo, tag)
    layers = [*(existing or {}).get("layers", []), layer]
    config = pusher.blob(repo, _cosign_config(layers), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
    return pusher.manifest(repo, tag, manifest, OCI_MANIFEST)


def sign_legacy(
    pusher: OciPusher,
    repo: str,
    digest: str,
    *,
    key: KeyPair | None = None,
    sigstore: TestSigstore | None = None,
    identity: str = "",
    issuer: str = "",
    docker_reference: str | None = None,
    tlog: bool = False,
    cert_lifetime: dt.timedelta = dt.timedelta(minutes=10),
    cert_not_before: dt.datetime | None = None,
    payload: bytes | None = None,
    tamper_payload: bool = False,
) -> str:
    """``cosign sign`` in the legacy layout: appends a layer to ``sha256-<hex>.sig``; returns its digest."""
    payload = payload or simple_signing_payload(docker_reference or f"registry/{repo}", digest)
    annotations: dict[str, str] = {}
    if sigstore is not None:
        eph, cert = sigstore.issue(identity, issuer, lifetime=cert_lifetime, not_before=cert_not_before)
        signature = eph.sign(payload, ec.ECDSA(hashes.SHA256()))
        annotations["dev.sigstore.cosign/certificate"] = _cert_pem(cert).decode()
        annotations["dev.sigstore.cosign/chain"] = _cert_pem(sigstore.ca_cert).decode()
        entry = sigstore.log(hashedrekord_body(payload, signature, _cert_pem(cert)))
        annotations["dev.sigstore.cosign/bundle"] = sigstore.cosign_annotation(entry)
    else:
        assert key is not None
        signature = key.sign(payload)
        if tlog:
            raise ValueError("pass sigstore= to log a key-based signature")
    annotations["dev.cosignproject.cosign/signature"] = _b64(signature)
    if tamper_payload:
        payload = payload.replace(b'"optional":null', b'"optional":{"tampered":true}')
    layer = pusher.blob(repo, payload, SIMPLE_SIGNING)
    layer["annotations"] = annotations
    return _put_cosign_manifest(pusher, repo, digest.replace(":", "-") + ".sig", layer)


def sign_legacy_key_logged(
    pusher: OciPusher, repo: str, digest: str, key: KeyPair, sigstore: TestSigstore
) -> str:
    """Key-based legacy signature with a Rekor entry (cosign's default when it uploads to the log)."""
    payload = simple_signing_payload(f"registry/{repo}", digest)
    signature = key.sign(payload)
    entry = sigstore.log(hashedrekord_body(payload, signature, key.public_pem))
    layer = pusher.blob(repo, payload, SIMPLE_SIGNING)
    layer["annotations"] = {
        "dev.cosignproject.cosign/signature": _b64(signature),
        "dev.sigstore.cosign/bundle": sigstore.cosign_annotation(entry),
    }
    return _put_cosign_manifest(pusher, repo, digest.replace(":", "-") + ".sig", layer)


def attest_legacy(
    pusher: OciPusher,
    repo: str,
    digest: str,
    predicate_type: str,
    predicate: Any,
    *,
    key: KeyPair | None = None,
    sigstore: TestSigstore | None = None,
    identity: str = "",
    issuer: str = "",
    subject_digest: str | None = None,
) -> str:
    """``cosign attest`` in the legacy layout (``sha256-<hex>.att`` with a DSSE layer); keyless attestations
    carry the certificate, chain and an ``intoto`` v0.0.2 Rekor entry, as cosign writes them."""
    statement = in_toto_statement(subject_digest or digest, predicate_type, predicate)
    annotations = {"dev.cosignproject.cosign/signature": "", "predicateType": predicate_type}
    if sigstore is not None:
        eph, cert = sigstore.issue(identity, issuer)
        envelope = dsse_envelope(statement, lambda d: eph.sign(d, ec.ECDSA(hashes.SHA256())))
        body = {
            "apiVersion": "0.0.2",
            "kind": "intoto",
            "spec": {
                "content": {
                    "hash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
                    },
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(statement).hexdigest()},
                },
                "publicKey": _b64(_cert_pem(cert)),
            },
        }
        entry = sigstore.log(body)
        annotations["dev.sigstore.cosign/certificate"] = _cert_pem(cert).decode()
        annotations["dev.sigstore.cosign/chain"] = _cert_pem(sigstore.ca_cert).decode()
        annotations["dev.sigstore.cosign/bundle"] = sigstore.cosign_annotation(entry)
    else:
        assert key is not None
        envelope = dsse_envelope(statement, key.sign)
    layer = pusher.blob(repo, json.dumps(envelope).encode(), DSSE_MEDIA)
    layer["annotations"] = annotations
    return _put_cosign_manifest(pusher, repo, digest.replace(":", "-") + ".att", layer)


def attach_referrer(
    pusher: OciPusher,
    repo: str,
    subject: Mapping[str, Any],
    artifact_type: str,
    blob: bytes,
    layer_media_type: str,
    *,
    annotations: Mapping[str, str] | None = None,
    update_fallback: bool = True,
) -> str:
    """Push an artifact manifest whose ``subject`` is the image, then (for registries without the referrers
    API) add it to the ``sha256-<hex>`` tag-schema index, as the OCI spec asks clients to do."""
    empty = pusher.blob(repo, b"{}", OCI_EMPTY)
    layer = pusher.blob(repo, blob, layer_media_type)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty,
        "layers": [layer],
        "subject": dict(subject),
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    raw = json.dumps(manifest).encode()
    digest = pusher.manifest(repo, "sha256:" + hashlib.sha256(raw).hexdigest(), raw, OCI_MANIFEST)
    if update_fallback and not pusher.has_referrers_api(repo, subject["digest"]):
        tag = subject["digest"].replace(":", "-")
        index = pusher.get_manifest(repo, tag) or {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
        }
        entry: dict[str, Any] = {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(raw),
            "artifactType": artifact_type,
        }
        if annotations:
            entry["annotations"] = dict(annotations)
        index["manifests"] = [*index.get("manifests", []), entry]
        pusher.manifest(repo, tag, index, OCI_INDEX)
    return digest


def attach_cosign_sbom(pusher: OciPusher, repo: str, digest: str, sbom: bytes, media_type: str) -> str:
    """``cosign attach sbom`` (legacy): a ``sha256-<hex>.sbom`` manifest whose layer is the SBOM."""
    layer = pusher.blob(repo, sbom, media_type)
    config = pusher.blob(repo, _cosign_config([layer]), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}
    return pusher.manifest(repo, digest.replace(":", "-") + ".sbom", manifest, OCI_MANIFEST)


def subject_descriptor(pusher: OciPusher, repo: str, digest: str) -> dict[str, Any]:
    response = pusher.http.head(
        f"/v2/{repo}/manifests/{digest}",
        headers={
            "Accept": ", ".join(
                [
                    OCI_INDEX,
                    OCI_MANIFEST,
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                ]
            )
        },
    )
    response.raise_for_status()
    return {
        "mediaType": response.headers["content-type"].split(";")[0],
        "digest": digest,
        "size": int(response.headers["content-length"]),
    }


def attach_sbom(
    pusher: OciPusher, repo: str, digest: str, sbom: bytes, media_type: str = "application/vnd.cyclonedx+json"
) -> str:
    """``oras attach --artifact-type <sbom media type>``."""
    return attach_referrer(
        pusher, repo, subject_descriptor(pusher, repo, digest), media_type, sbom, media_type
    )


def attach_bundle(pusher: OciPusher, repo: str, digest: str, bundle: Mapping[str, Any]) -> str:
    """cosign 3's new-bundle-format attachment of a sigstore bundle to an image."""
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    annotations = {
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": statement.get("predicateType", ""),
        "org.opencontainers.image.created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    return attach_referrer(
        pusher,
        repo,
        subject_descriptor(pusher, repo, digest),
        BUNDLE_V03,
        json.dumps(bundle).encode(),
        BUNDLE_V03,
        annotations=annotations,
    )
