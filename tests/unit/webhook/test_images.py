from __future__ import annotations

import pytest

from zastava.webhook.images import (
    ContainerImage,
    InvalidImageRef,
    PodShapeError,
    changed_images,
    collect_images,
    parse_image,
)

from .reviews import DIGEST_A, POD, defaulted, pod_with


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("acme/api:v1", "docker.io", "acme/api", "v1", None),
        ("ghcr.io/acme/api:1.2.3", "ghcr.io", "acme/api", "1.2.3", None),
        (f"ghcr.io/acme/api@{DIGEST_A}", "ghcr.io", "acme/api", None, DIGEST_A),
        (f"ghcr.io/acme/api:1@{DIGEST_A}", "ghcr.io", "acme/api", "1", DIGEST_A),
        ("localhost/x", "localhost", "x", None, None),
        ("127.0.0.1:5000/team/x:9", "127.0.0.1:5000", "team/x", "9", None),
        ("Registry.Example.COM:443/a/b", "registry.example.com:443", "a/b", None, None),
        ("[::1]:5000/a:b", "[::1]:5000", "a", "b", None),
    ],
)
def test_parse_image(text: str, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
    ref = parse_image(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.name == f"{registry}/{repository}"
    assert ref.pinned == (f"{registry}/{repository}@{digest}" if digest else None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " nginx",
        "nginx ",
        "UPPER/case",
        "a:b:c",
        "nginx@sha256:short",
        "x@",
        "a//b",
        "-a/b",
        "a/b:" + "t" * 200,
    ],
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidImageRef):
        parse_image(text)


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
