"""Registry posture, in three layers: :mod:`.transport` (references, credentials, the OCI distribution client,
referrers with the tag-schema fallback) below :mod:`.verification` (keys, DSSE, transparency evidence, trusted
roots, sigstore bundles, cosign's layouts, trust policies — pure, never fetches) below :mod:`.posture` (fetch,
then verify; cached verification for admission and the backend). :mod:`.settings` builds them from the
configuration; :mod:`.cli` is ``zastava registry …`` and ``zastava verify``.

Typical use::

    async with RegistryClient(RegistryClientConfig(), CredentialStore.from_sources(...)) as client:
        posture = await check_posture(client, "registry.example/app:1.2",
                                      TrustedSigners.from_files(["cosign.pub"]))

Attributes are imported on first use (PEP 562): ``zastava.config`` validates image patterns with
:mod:`.reference`, and importing this package eagerly would load the HTTP client and the
cryptography stack (+241 modules, +21.9 MiB RSS measured) into every process that reads the configuration,
the observer too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        AuthenticationError,
        InvalidManifest,
        InvalidReference,
        ManifestNotFound,
        RedirectRefused,
        RegistryError,
        RegistryUnavailable,
        TooLarge,
        TrustConfigError,
    )
    from .posture import ImagePosture, ImageVerifier, VerifyOutcome, check_posture
    from .reference import ImageReference, parse_reference
    from .transport.auth import Credentials, CredentialStore
    from .transport.client import RegistryClient, RegistryClientConfig
    from .transport.manifest import Descriptor, DigestPolicy, Manifest, Platform, ResolvedImage
    from .transport.referrers import SBOM_MEDIA_TYPES, Referrers
    from .verification.findings import Finding
    from .verification.keys import PublicKey, load_public_key, load_public_key_file
    from .verification.policies import ImageVerdict, TrustPolicies, TrustPolicy
    from .verification.trust import KeylessIdentity, TrustedSigners, TrustRoot

_EXPORTS = {
    "AuthenticationError": ".errors",
    "InvalidManifest": ".errors",
    "InvalidReference": ".errors",
    "ManifestNotFound": ".errors",
    "RedirectRefused": ".errors",
    "RegistryError": ".errors",
    "RegistryUnavailable": ".errors",
    "TooLarge": ".errors",
    "TrustConfigError": ".errors",
    "ImagePosture": ".posture",
    "ImageVerifier": ".posture",
    "VerifyOutcome": ".posture",
    "check_posture": ".posture",
    "Credentials": ".transport.auth",
    "CredentialStore": ".transport.auth",
    "RegistryClient": ".transport.client",
    "RegistryClientConfig": ".transport.client",
    "Descriptor": ".transport.manifest",
    "DigestPolicy": ".transport.manifest",
    "Manifest": ".transport.manifest",
    "Platform": ".transport.manifest",
    "ResolvedImage": ".transport.manifest",
    "ImageReference": ".reference",
    "parse_reference": ".reference",
    "SBOM_MEDIA_TYPES": ".transport.referrers",
    "Referrers": ".transport.referrers",
    "Finding": ".verification.findings",
    "PublicKey": ".verification.keys",
    "load_public_key": ".verification.keys",
    "load_public_key_file": ".verification.keys",
    "ImageVerdict": ".verification.policies",
    "TrustPolicies": ".verification.policies",
    "TrustPolicy": ".verification.policies",
    "KeylessIdentity": ".verification.trust",
    "TrustedSigners": ".verification.trust",
    "TrustRoot": ".verification.trust",
}

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
    "RedirectRefused",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
