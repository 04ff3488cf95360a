"""Collecting every image of a Pod (references are parsed by ``zastava.registry.reference``, the one model).

``collect_images`` reads ``initContainers``, ``containers`` and ``ephemeralContainers`` of a Pod dict
defensively: a Pod that is not shaped like one raises :class:`PodShapeError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTAINER_FIELDS", "ContainerImage", "PodShapeError", "changed_images", "collect_images"]

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
MAX_CONTAINERS = 1024


class PodShapeError(ValueError):
    """The Pod object is not shaped like a Pod (e.g. ``spec.containers`` is not a list)."""


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
