"""Collecting a Pod's images (parsing them is ``zastava.registry.reference``: tests/unit/registry)."""

from __future__ import annotations

import pytest

from zastava.webhook.images import ContainerImage, PodShapeError, changed_images, collect_images

from .reviews import POD, defaulted, pod_with


def test_collect_every_container_list_in_order() -> None:
    pod = pod_with(
        {"api": "api:1"},
        initContainers=[{"name": "init", "image": "init:1"}],
        ephemeralContainers=[{"name": "debug", "image": "busybox:1"}],
    )
    assert collect_images(defaulted(pod, "ns")) == [
        ContainerImage("initContainers", "init", "init:1"),
        ContainerImage("containers", "api", "api:1"),
        ContainerImage("ephemeralContainers", "debug", "busybox:1"),
    ]


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        (None, "object is missing"),
        ({"spec": []}, "object.spec is missing"),
        ({"spec": {"containers": {}}}, "spec.containers is not a list"),
        ({"spec": {"containers": ["x"]}}, "containers[0] is not an object"),
        ({"spec": {"containers": [{"image": "x"}]}}, "containers[0].name is missing"),
        ({"spec": {"initContainers": [{"name": "i", "image": 3}]}}, "initContainers[i].image is missing"),
    ],
)
def test_collect_names_the_bad_field(pod: object, message: str) -> None:
    with pytest.raises(PodShapeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        collect_images(pod)  # type: ignore[arg-type]


def test_changed_images_only_new_ones() -> None:
    old = defaulted(POD, "ns")
    new = defaulted(pod_with(None, ephemeralContainers=[{"name": "dbg", "image": "busybox:1"}]), "ns")
    assert changed_images(collect_images(new), old) == [
        ContainerImage("ephemeralContainers", "dbg", "busybox:1")
    ]
    assert changed_images(collect_images(old), old) == []
    retagged = defaulted(POD, "ns")
    retagged["spec"]["containers"][1]["image"] = "nginx:1.26"
    assert changed_images(collect_images(retagged), old) == [
        ContainerImage("containers", "sidecar", "nginx:1.26")
    ]
    # an unreadable old object means every image is gated
    assert changed_images(collect_images(old), {"spec": "broken"}) == collect_images(old)
