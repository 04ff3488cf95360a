"""OCI objects: media types, descriptors, manifests and indexes (parsed and digest-checked), platforms, and
what a reference resolves to. Pure data: nothing here talks to a registry."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidManifest, RegistryError
from ..reference import ImageReference, validate_digest

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "DigestPolicy",
    "Manifest",
    "Platform",
    "ResolvedImage",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

#: Which digest of a multi-platform image verification applies to:
#: ``index`` — the digest the reference resolves to (the index for a multi-platform tag; what
#: ``cosign sign IMAGE:TAG`` signs); ``platform`` — the platform manifest's digest; ``any`` — either suffices;
#: ``all`` — both must verify. For a single-platform image both are the same digest.
DigestPolicy = Literal["index", "platform", "any", "all"]


@dataclass(frozen=True, slots=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform must be os/arch[/variant], got {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, data: Mapping[str, Any]) -> bool:
        if data.get("os") != self.os or data.get("architecture") != self.architecture:
            return False
        return self.variant is None or data.get("variant") in (None, self.variant)

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, Mapping):
            raise InvalidManifest(f"{where}: not an object")
        media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise InvalidManifest(f"{where}: mediaType and digest must be strings")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidManifest(f"{where}: size must be a non-negative integer")
        try:
            validate_digest(digest)
        except RegistryError as exc:
            raise InvalidManifest(f"{where}: {exc}") from None
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise InvalidManifest(f"{where}: annotations must map strings to strings")
        artifact_type = data.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise InvalidManifest(f"{where}: artifactType must be a string")
        platform = data.get("platform")
        if platform is not None and not isinstance(platform, Mapping):
            raise InvalidManifest(f"{where}: platform must be an object")
        return cls(media_type, digest, size, artifact_type, dict(annotations), platform)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed manifest or index, with its exact bytes and their digest."""

    media_type: str
    digest: str
    raw: bytes
    data: Mapping[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def artifact_type(self) -> str | None:
        value = self.data.get("artifactType")
        if isinstance(value, str):
            return value
        config = self.data.get("config")
        return config.get("mediaType") if isinstance(config, Mapping) and not self.is_index else None

    @property
    def annotations(self) -> Mapping[str, str]:
        value = self.data.get("annotations") or {}
        return value if isinstance(value, Mapping) else {}

    @property
    def subject(self) -> Descriptor | None:
        value = self.data.get("subject")
        return None if value is None else Descriptor.from_json(value, "subject")

    @property
    def config(self) -> Descriptor | None:
        value = self.data.get("config")
        return None if value is None else Descriptor.from_json(value, "config")

    def layers(self) -> list[Descriptor]:
        value = self.data.get("layers") or []
        if not isinstance(value, list):
            raise InvalidManifest("layers must be a list")
        return [Descriptor.from_json(item, f"layers[{i}]") for i, item in enumerate(value)]

    def manifests(self) -> list[Descriptor]:
        value = self.data.get("manifests") or []
        if not isinstance(value, list):
            raise InvalidManifest("manifests must be a list")
        return [Descriptor.from_json(item, f"manifests[{i}]") for i, item in enumerate(value)]

    @classmethod
    def parse(cls, raw: bytes, content_type: str | None, expected_digest: str | None = None) -> Manifest:
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if expected_digest is not None:
            algorithm = expected_digest.split(":", 1)[0]
            actual = algorithm + ":" + hashlib.new(algorithm, raw).hexdigest()
            if actual != expected_digest:
                raise InvalidManifest(f"manifest digest mismatch: expected {expected_digest}, got {actual}")
            digest = expected_digest
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise InvalidManifest(f"manifest is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidManifest("manifest is not a JSON object")
        if data.get("schemaVersion") != 2:
            raise InvalidManifest(f"unsupported manifest schemaVersion {data.get('schemaVersion')!r}")
        header = (content_type or "").split(";", 1)[0].strip()
        media_type = data.get("mediaType") or header
        if not isinstance(media_type, str) or media_type not in (MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES):
            # An OCI manifest may omit mediaType; infer from the shape.
            if "manifests" in data and "layers" not in data:
                media_type = OCI_INDEX
            elif "layers" in data or "config" in data:
                media_type = OCI_MANIFEST
            else:
                raise InvalidManifest(f"unsupported manifest media type {str(media_type)[:100]!r}")
        return cls(media_type, digest, raw, data)


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """A reference resolved to digests. ``digest`` is the one :data:`DigestPolicy` ``index`` verifies."""

    reference: ImageReference
    digest: str  # what the reference names (index digest for a multi-platform tag)
    media_type: str
    platform_digest: str  # the platform manifest (== digest for a single-platform image)
    platform: str | None = None
    index_digest: str | None = None  # set only when the reference names an index

    @property
    def is_index(self) -> bool:
        return self.index_digest is not None

    @property
    def pinned(self) -> str:
        return f"{self.reference.name}@{self.digest}"

    def digests_for(self, policy: DigestPolicy) -> list[str]:
        """Digests whose signatures the policy consults (deduplicated, in order)."""
        if policy == "index":
            return [self.digest]
        if policy == "platform":
            return [self.platform_digest]
        return list(dict.fromkeys([self.digest, self.platform_digest]))

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "resolved": self.pinned,
            "digest": self.digest,
            "mediaType": self.media_type,
            "indexDigest": self.index_digest,
            "platformDigest": self.platform_digest,
            "platform": self.platform,
        }
