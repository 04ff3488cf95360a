"""Digest pinning (``/mutate``): a JSONPatch that rewrites each tag-only image of a Pod to the digest that was
resolved and verified, so the kubelet pulls exactly what was admitted even when the tag moves later (what
Sigstore policy-controller, Kyverno's ``mutateDigest`` and Connaisseur's mutation do).

The image keeps its spelling and gains the digest (``nginx:1.25`` → ``nginx:1.25@sha256:…``): the container
runtime pulls by digest when one is present, and the tag still tells a reader which version was meant.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

#: ``images.VOLUMES``: the field of an image volume (a peer module of the same layer, not imported)
VOLUMES = "volumes"

__all__ = ["jsonpatch", "pin_operations"]


def _escape(token: str) -> str:
    """RFC 6901 reference token."""
    return token.replace("~", "~0").replace("/", "~1")


def pin_operations(
    pod: Mapping[str, Any], pinned: Iterable[tuple[str, str, str, str]]
) -> list[dict[str, Any]]:
    """JSONPatch operations for ``(field, container name, image as written, digest)``: each container of that
    name in ``spec.<field>`` whose image is still exactly the one reviewed gets ``image@digest`` (for an image
    volume, ``field`` is ``volumes`` and ``spec.volumes[].image.reference`` is rewritten). A ``test``
    operation before each ``replace`` makes the API server refuse the patch if the image changed meanwhile."""
    spec = pod.get("spec") if isinstance(pod, Mapping) else None
    if not isinstance(spec, Mapping):
        return []
    ops: list[dict[str, Any]] = []
    for field, name, image, digest in pinned:
        items = spec.get(field)
        if not isinstance(items, list) or "@" in image:
            continue
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or item.get("name") != name:
                continue
            if field == VOLUMES:
                source = item.get("image")
                written = source.get("reference") if isinstance(source, Mapping) else None
                suffix = "image/reference"
            else:
                written, suffix = item.get("image"), "image"
            if written == image:
                path = f"/spec/{_escape(field)}/{index}/{suffix}"
                ops.append({"op": "test", "path": path, "value": image})
                ops.append({"op": "replace", "path": path, "value": f"{image}@{digest}"})
                break
    return ops


def jsonpatch(ops: list[dict[str, Any]]) -> str:
    """The base64 ``patch`` of an AdmissionResponse."""
    return base64.b64encode(orjson.dumps(ops)).decode()
