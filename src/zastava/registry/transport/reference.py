"""Image references: ``[registry/]repository[:tag][@digest]`` parsed and normalised like the docker CLI.

``busybox`` → ``docker.io/library/busybox:latest``; a first component with a ``.`` or ``:`` or equal to
``localhost`` is a registry host. Digests are validated (``sha256`` = 64 hex, ``sha512`` = 128 hex).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidReference

__all__ = [
    "DEFAULT_REGISTRY",
    "ImageReference",
    "fallback_tag",
    "parse_reference",
    "validate_digest",
]

DEFAULT_REGISTRY = "docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_MAX_REFERENCE = 4096
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_DIGEST_HEX = {"sha256": 64, "sha512": 128}


def validate_digest(digest: str) -> str:
    """``algorithm:hex`` with a known algorithm and lowercase hex of the right length, else
    InvalidReference."""
    algorithm, sep, hexpart = digest.partition(":")
    length = _DIGEST_HEX.get(algorithm)
    if not sep or length is None or len(hexpart) != length or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise InvalidReference(f"invalid digest {digest[:100]!r}")
    return digest


def fallback_tag(digest: str, suffix: str = "") -> str:
    """The tag-schema name of a digest: ``sha256:abc…`` → ``sha256-abc…`` (+ ``.sig``/``.att``/…)."""
    validate_digest(digest)
    return digest.replace(":", "-", 1) + suffix


@dataclass(frozen=True, slots=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Host to talk to (Docker Hub's API lives at ``registry-1.docker.io``)."""
        return "registry-1.docker.io" if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, None, validate_digest(digest))

    def with_tag(self, tag: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, tag, None)

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest when known, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str, *, default_registry: str = DEFAULT_REGISTRY) -> ImageReference:
    """Parse and normalise; a reference with neither tag nor digest gets ``latest``."""
    if not isinstance(text, str) or not text or len(text) > _MAX_REFERENCE:
        raise InvalidReference("image reference must be a non-empty string of at most 4096 characters")
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise InvalidReference(f"image reference {text[:200]!r} contains whitespace")
    rest = text
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        validate_digest(digest)
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"invalid tag {tag[:200]!r} in {text[:200]!r}")
    parts = rest.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry = first
        path = parts[1:]
        if not _HOST.fullmatch(registry):
            raise InvalidReference(f"invalid registry host {registry[:200]!r}")
    else:
        registry = default_registry
        path = parts
    if registry in _DOCKER_HUB_ALIASES:
        registry = DEFAULT_REGISTRY
        if len(path) == 1:
            path = ["library", *path]
    if not path or not all(_COMPONENT.fullmatch(p) for p in path):
        raise InvalidReference(f"invalid repository name in {text[:200]!r} (lowercase components only)")
    repository = "/".join(path)
    if len(repository) > 255:
        raise InvalidReference("repository name longer than 255 characters")
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(registry=registry, repository=repository, tag=tag, digest=digest)
