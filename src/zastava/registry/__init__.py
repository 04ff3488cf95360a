"""Registry posture: tag → digest resolution, OCI referrers (API and tag-schema fallback), cosign and sigstore
signature / attestation verification, and the posture summary both planes consume.

Typical use::

    async with RegistryClient(RegistryClientConfig(), CredentialStore.from_sources(...)) as client:
        posture = await client.check_posture("registry.example/app:1.2",
        TrustPolicy.from_files(["cosign.pub"]))
"""

from .auth import Credentials, CredentialStore
from .client import (
    Descriptor,
    DigestPolicy,
    Manifest,
    Platform,
    RegistryClient,
    RegistryClientConfig,
    ResolvedImage,
)
from .errors import (
    AuthenticationError,
    InvalidManifest,
    InvalidReference,
    ManifestNotFound,
    RegistryError,
    RegistryUnavailable,
    TooLarge,
    TrustConfigError,
)
from .findings import Finding
from .keys import PublicKey, load_public_key, load_public_key_file
from .posture import ImagePosture, check_posture
from .reference import ImageReference, parse_reference
from .referrers import SBOM_MEDIA_TYPES, Referrers
from .trust import KeylessIdentity, TrustPolicy, TrustRoot

__all__ = [
    "SBOM_MEDIA_TYPES",
    "AuthenticationError",
    "CredentialStore",
    "Credentials",
    "Descriptor",
    "DigestPolicy",
    "Finding",
    "ImagePosture",
    "ImageReference",
    "InvalidManifest",
    "InvalidReference",
    "KeylessIdentity",
    "Manifest",
    "ManifestNotFound",
    "Platform",
    "PublicKey",
    "Referrers",
    "RegistryClient",
    "RegistryClientConfig",
    "RegistryError",
    "RegistryUnavailable",
    "ResolvedImage",
    "TooLarge",
    "TrustConfigError",
    "TrustPolicy",
    "TrustRoot",
    "check_posture",
    "load_public_key",
    "load_public_key_file",
    "parse_reference",
]
