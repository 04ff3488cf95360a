"""Registry posture, in three layers: :mod:`.transport` (references, credentials, the OCI distribution client,
referrers with the tag-schema fallback) below :mod:`.verification` (keys, DSSE, transparency evidence, trusted
roots, sigstore bundles, cosign's layouts, trust policies — pure, never fetches) below :mod:`.posture` (fetch,
then verify; cached verification for admission and the backend). :mod:`.settings` builds them from the
configuration; :mod:`.cli` is ``zastava registry …`` and ``zastava verify``.

Typical use::

    async with RegistryClient(RegistryClientConfig(), CredentialStore.from_sources(...)) as client:
        posture = await check_posture(client, "registry.example/app:1.2",
                                      TrustedSigners.from_files(["cosign.pub"]))
"""

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
from .posture import ImagePosture, ImageVerifier, VerifyOutcome, check_posture
from .transport.auth import Credentials, CredentialStore
from .transport.client import RegistryClient, RegistryClientConfig
from .transport.manifest import Descriptor, DigestPolicy, Manifest, Platform, ResolvedImage
from .transport.reference import ImageReference, parse_reference
from .transport.referrers import SBOM_MEDIA_TYPES, Referrers
from .verification.findings import Finding
from .verification.keys import PublicKey, load_public_key, load_public_key_file
from .verification.policies import ImageVerdict, TrustPolicies, TrustPolicy
from .verification.trust import KeylessIdentity, TrustedSigners, TrustRoot

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
    "ImageVerdict",
    "ImageVerifier",
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
    "TrustPolicies",
    "TrustPolicy",
    "TrustRoot",
    "TrustedSigners",
    "VerifyOutcome",
    "check_posture",
    "load_public_key",
    "load_public_key_file",
    "parse_reference",
]
