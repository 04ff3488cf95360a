"""Image references (docker/distribution grammar, normalised) and collecting every image of a Pod.

``collect_images`` reads ``initContainers``, ``containers`` and ``ephemeralContainers`` of a Pod dict
defensively: a Pod that is not shaped like one raises :class:`PodShapeError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONTAINER_FIELDS",
    "ContainerImage",
    "ImageRef",
    "InvalidImageRef",
    "PodShapeError",
    "changed_images",
    "collect_images",
    "parse_image",
]

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
DEFAULT_REGISTRY = "docker.io"
MAX_REF_LENGTH = 4096
MAX_CONTAINERS = 1024

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::\d+)?$"
)


class InvalidImageRef(ValueError):
    """Not a valid image reference."""


class PodShapeError(ValueError):
    """The Pod object is not shaped like a Pod (e.g. ``spec.containers`` is not a list)."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed reference: ``registry/repository[:tag][@digest]`` with Docker's defaults applied."""

    original: str
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """``registry/repository`` (no tag, no digest)."""
        return f"{self.registry}/{self.repository}"

    @property
    def pinned(self) -> str | None:
        """``registry/repository@digest`` when the reference carries a digest."""
        return f"{self.name}@{self.digest}" if self.digest else None

    def with_digest(self, digest: str) -> str:
        return f"{self.name}@{digest}"


def parse_image(text: str) -> ImageRef:
    """Parse ``text`` as Kubernetes/containerd do (``nginx`` → ``docker.io/library/nginx``)."""
    if not isinstance(text, str) or not text or len(text) > MAX_REF_LENGTH or text != text.strip():
        raise InvalidImageRef(f"invalid image reference {text!r}")
    rest, at, digest = text.partition("@")
    if at and not _DIGEST_RE.match(digest):
        raise InvalidImageRef(f"invalid digest in image reference {text!r}")
    tag: str | None = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidImageRef(f"invalid tag in image reference {text!r}")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if not _HOST_RE.match(first):
            raise InvalidImageRef(f"invalid registry host in image reference {text!r}")
        registry, repository = first.lower(), remainder
    else:
        registry, repository = DEFAULT_REGISTRY, rest
        if "/" not in repository:
            repository = f"library/{repository}"
    if not _REPOSITORY_RE.match(repository):
        raise InvalidImageRef(f"invalid repository in image reference {text!r}")
    return ImageRef(text, registry, repository, tag, digest or None)


@dataclass(frozen=True, slots=True)
class ContainerImage:
    """One container's image, with where it was found (``containers``/``initContainers``/…)."""

    field: str
    container: str
    image: str

    @property
    def where(self) -> str:
        return f"{self.field}[{self.container}]"


def _spec(pod: Mapping[str, Any] | None, what: str) -> Mapping[str, Any]:
    if not isinstance(pod, Mapping):
        raise PodShapeError(f"{what} is missing or not an object")
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        raise PodShapeError(f"{what}.spec is missing or not an object")
    return spec


def collect_images(pod: Mapping[str, Any] | None, what: str = "object") -> list[ContainerImage]:
    """Every container image, in ``initContainers``, ``containers``, ``ephemeralContainers`` order."""
    spec = _spec(pod, what)
    out: list[ContainerImage] = []
    for field in CONTAINER_FIELDS:
        items = spec.get(field)
        if items is None:
            continue
        if not isinstance(items, list):
            raise PodShapeError(f"{what}.spec.{field} is not a list")
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise PodShapeError(f"{what}.spec.{field}[{index}] is not an object")
            name = item.get("name")
            image = item.get("image")
            if not isinstance(name, str) or not name:
                raise PodShapeError(f"{what}.spec.{field}[{index}].name is missing")
            if not isinstance(image, str) or not image:
                raise PodShapeError(f"{what}.spec.{field}[{name}].image is missing")
            out.append(ContainerImage(field, name, image))
            if len(out) > MAX_CONTAINERS:
                raise PodShapeError(f"{what} has more than {MAX_CONTAINERS} containers")
    return out


def changed_images(new: list[ContainerImage], old_pod: Mapping[str, Any] | None) -> list[ContainerImage]:
    """Images of ``new`` that the old Pod did not already run in the same container (for UPDATE).

    An UPDATE that changes no image (labels, annotations, …) needs no gate: those images were admitted.
    """
    try:
        old = set(collect_images(old_pod, "oldObject"))
    except PodShapeError:
        return new
    return [item for item in new if item not in old]
