"""Digest pinning's JSONPatch (``zastava.webhook.pinning``): only tag-only images that are still exactly what
was reviewed are rewritten, each guarded by a ``test`` operation; paths follow RFC 6901."""

from __future__ import annotations

import base64
import json

from zastava.webhook.pinning import jsonpatch, pin_operations

DIGEST = "sha256:" + "c" * 64


def test_pin_operations_rewrite_the_reviewed_images_only() -> None:
    pod = {
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox:1.36"}],
            "containers": [
                {"name": "api", "image": "registry.example.com/a/api:1.4"},
                {"name": "side", "image": f"nginx@{DIGEST}"},
            ],
        }
    }
    ops = pin_operations(
        pod,
        [
            ("containers", "api", "registry.example.com/a/api:1.4", DIGEST),
            ("initContainers", "init", "busybox:1.36", DIGEST),
            ("containers", "side", f"nginx@{DIGEST}", DIGEST),  # already pinned: untouched
            ("containers", "gone", "x:1", DIGEST),  # no such container
            ("containers", "api", "registry.example.com/a/api:1.5", DIGEST),  # image changed since review
        ],
    )
    assert ops == [
        {"op": "test", "path": "/spec/containers/0/image", "value": "registry.example.com/a/api:1.4"},
        {
            "op": "replace",
            "path": "/spec/containers/0/image",
            "value": f"registry.example.com/a/api:1.4@{DIGEST}",
        },
        {"op": "test", "path": "/spec/initContainers/0/image", "value": "busybox:1.36"},
        {"op": "replace", "path": "/spec/initContainers/0/image", "value": f"busybox:1.36@{DIGEST}"},
    ]
    assert json.loads(base64.b64decode(jsonpatch(ops))) == ops
    assert pin_operations({"spec": "nope"}, [("containers", "api", "a:1", DIGEST)]) == []
