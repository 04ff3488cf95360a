"""Registry posture: tag → digest resolution, OCI referrers (API and tag-schema fallback), cosign and sigstore
signature / attestation verification, and the posture summary both planes consume.

Typical use::

    async with RegistryClient(RegistryClientConfig(), CredentialStore.from_sources(...)) as client:
        posture = await client.check_posture("registry.example/app:1.2",
        TrustPolicy.from_files(["cosign.pub"]))

Attributes are imported on first use (PEP 562): ``zastava.config`` validates image patterns with
:mod:`.reference`, and importing this package eagerly would load the HTTP client and the cryptography stack
(+241 modules, +21.9 MiB RSS measured) into every process that reads the configuration, the observer too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "Credentials": ".auth",
    "CredentialStore": ".auth",
    "Descriptor": ".client",
    "DigestPolicy": ".client",
    "Manifest": ".client",
    "Platform": ".client",
    "RegistryClient": ".client",
    "RegistryClientConfig": ".client",
    "ResolvedImage": ".client",
    "AuthenticationError": ".errors",
    "InvalidManifest": ".errors",
    "InvalidReference": ".errors",
    "ManifestNotFound": ".errors",
    "RegistryError": ".errors",
    "RegistryUnavailable": ".errors",
    "TooLarge": ".errors",
    "TrustConfigError": ".errors",
    "Finding": ".findings",
    "PublicKey": ".keys",
    "load_public_key": ".keys",
    "load_public_key_file": ".keys",
    "ImagePosture": ".posture",
    "check_posture": ".posture",
    "ImageReference": ".reference",
    "parse_reference": ".reference",
    "SBOM_MEDIA_TYPES": ".referrers",
    "Referrers": ".referrers",
    "KeylessIdentity": ".trust",
    "TrustPolicy": ".trust",
    "TrustRoot": ".trust",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
