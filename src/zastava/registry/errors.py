"""Errors of the registry client and verifiers. Every failure a caller may act on has its own class."""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "InvalidManifest",
    "InvalidReference",
    "ManifestNotFound",
    "RedirectRefused",
    "RegistryError",
    "RegistryUnavailable",
    "TooLarge",
    "TrustConfigError",
]


class RegistryError(Exception):
    """Base class: anything that went wrong talking to a registry."""


class InvalidReference(RegistryError, ValueError):
    """An image reference that does not parse (``registry/repo[:tag][@digest]``)."""


class ManifestNotFound(RegistryError):
    """The registry answered 404 for a manifest or blob."""


class AuthenticationError(RegistryError):
    """401/403 after the challenge flow, or a token endpoint that refused the credentials."""


class RegistryUnavailable(RegistryError):
    """Transport error, timeout, or throttling that outlasted the retry budget."""


class RedirectRefused(RegistryUnavailable):
    """A registry redirected a download somewhere the client does not go (an internal address, https → http,
    a non-http scheme, more than 5 hops). Handled as "registry unavailable": fail-open/closed applies."""


class InvalidManifest(RegistryError):
    """A manifest/index/blob that is not what it claims (bad JSON, wrong media type, digest mismatch)."""


class TooLarge(InvalidManifest):
    """A body larger than the configured bound; it was not read further."""


class TrustConfigError(ValueError):
    """Unusable trust material: unreadable key file, unsupported key type, bad trusted root, bad image glob.
    ``path`` is the configuration key it came from (``zastava.admission.trustPolicies[0].…``) when known."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
