"""Collecting every image of a Pod (references are parsed by ``zastava.registry.reference``, the one model).

``collect_images`` reads ``initContainers``, ``containers``, ``ephemeralContainers`` and the image volumes
(``spec.volumes[].image.reference``, Kubernetes ImageVolume: an OCI image mounted as a volume, pulled by the
kubelet like a container image) of a Pod dict defensively: a Pod that is not shaped like one raises
:class:`PodShapeError` naming the field. An image volume is recognised by its ``image`` source being an
object; it goes through every gate, verification and pinning a container image goes through — otherwise
``volumes: [{name: x, image: {reference: evil.io/payload:1}}]`` would mount an unverified image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "CONTAINER_FIELDS",
    "VOLUMES",
    "ContainerImage",
    "PodShapeError",
    "changed_images",
    "collect_images",
]

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
#: ``ContainerImage.field`` of an image volume (``spec.volumes[].image.reference``)
VOLUMES = "volumes"
MAX_CONTAINERS = 1024  # containers and image volumes together
MAX_VOLUMES = 4096  # volumes of any source walked (the API server's own limit is the 3 MiB object)


class PodShapeError(ValueError):
    """The Pod object is not shaped like a Pod (e.g. ``spec.containers`` is not a list)."""


class ContainerImage(NamedTuple):
    """One container's (or image volume's) image, with where it was found (``containers``/…/``volumes``).

    A named tuple: built for every container of every review, and part of the warm answers' key; a frozen
    dataclass cost ~1 µs more per container to build and hash."""

    field: str
    container: str
    image: str

    @property
    def where(self) -> str:
        return f"{self.field}[{self.container}]"


# `type(x) is dict` first: isinstance against Mapping (an ABC) costs ~0.5 µs, and a parsed Pod is all dicts


def _spec(pod: Mapping[str, Any] | None, what: str) -> Mapping[str, Any]:
    if type(pod) is not dict and not isinstance(pod, Mapping):
        raise PodShapeError(f"{what} is missing or not an object")
    spec = pod.get("spec")
    if type(spec) is not dict and not isinstance(spec, Mapping):
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
            if type(item) is not dict and not isinstance(item, Mapping):
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
    out.extend(_image_volumes(spec, what, MAX_CONTAINERS - len(out)))
    return out


def _image_volumes(spec: Mapping[str, Any], what: str, room: int) -> list[ContainerImage]:
    volumes = spec.get(VOLUMES)
    if volumes is None:
        return []
    if not isinstance(volumes, list):
        raise PodShapeError(f"{what}.spec.volumes is not a list")
    if len(volumes) > MAX_VOLUMES:
        raise PodShapeError(f"{what} has more than {MAX_VOLUMES} volumes")
    out: list[ContainerImage] = []
    for index, item in enumerate(volumes):
        if type(item) is not dict and not isinstance(item, Mapping):
            raise PodShapeError(f"{what}.spec.volumes[{index}] is not an object")
        source = item.get("image")
        if type(source) is not dict and not isinstance(source, Mapping):
            continue  # not an image volume (the API server admits one volume source per volume)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise PodShapeError(f"{what}.spec.volumes[{index}].name is missing")
        reference = source.get("reference")
        if not isinstance(reference, str) or not reference:
            raise PodShapeError(f"{what}.spec.volumes[{name}].image.reference is missing")
        out.append(ContainerImage(VOLUMES, name, reference))
        if len(out) > room:
            raise PodShapeError(f"{what} has more than {MAX_CONTAINERS} containers and image volumes")
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
