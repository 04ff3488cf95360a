"""Fixtures for registry posture tests: the real distribution registry (session fixture ``registry``) with a
docker-pushed busybox image; each test copies it into its own repository (cross-repo blob mount) so signatures
and referrers of one test never leak into another."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import devstack
from tests.harness.devstack import signing
from tests.harness.real import start_real

from .ocifake import FakeRegistry

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_counter = itertools.count()


@dataclass
class Image:
    repo: str
    digest: str
    pusher: signing.OciPusher
    host: str

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repo}:1"

    @property
    def pinned(self) -> str:
        return f"{self.host}/{self.repo}@{self.digest}"


@pytest.fixture(scope="session")
def pushed(
    docker_engine: devstack.DockerEngine, registry: devstack.RegistryServer, busybox_image: str
) -> str:
    """``host/zastava/busybox@sha256:…`` pushed by docker."""
    return start_real(
        lambda: devstack.push_image(docker_engine, busybox_image, registry.host, "zastava/busybox:1")
    )


@pytest.fixture(scope="session")
def pusher(registry: devstack.RegistryServer) -> Iterator[signing.OciPusher]:
    p = signing.OciPusher(registry.url)
    yield p
    p.close()


def copy_image(
    pusher: signing.OciPusher, source_repo: str, digest: str, target_repo: str, tag: str = "1"
) -> None:
    response = pusher.http.get(f"/v2/{source_repo}/manifests/{digest}", headers={"Accept": DOCKER_MANIFEST})
    response.raise_for_status()
    manifest = response.json()
    for blob in [manifest["config"], *manifest["layers"]]:
        mount = pusher.http.post(
            f"/v2/{target_repo}/blobs/uploads/", params={"mount": blob["digest"], "from": source_repo}
        )
        assert mount.status_code == 201, mount.text
    pusher.manifest(target_repo, tag, response.content, response.headers["content-type"])


def synthetic_image(
    pusher: signing.OciPusher, repo: str, content: bytes, tag: str, arch: str = "amd64"
) -> str:
    """A small real OCI image (one tar layer) pushed by the OCI API; returns its digest."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer = pusher.blob(repo, buffer.getvalue(), "application/vnd.oci.image.layer.v1.tar")
    config = pusher.blob(
        repo,
        json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
                "config": {},
            }
        ).encode(),
        "application/vnd.oci.image.config.v1+json",
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    }
    return pusher.manifest(repo, tag, manifest, "application/vnd.oci.image.manifest.v1+json")


@pytest.fixture
def image(pushed: str, pusher: signing.OciPusher, registry: devstack.RegistryServer) -> Image:
    """The docker-pushed busybox image, copied into a fresh repository for this test."""
    source, digest = pushed.split("/", 1)[1].split("@")
    repo = f"zastava/t{next(_counter)}"
    copy_image(pusher, source, digest, repo)
    return Image(repo, digest, pusher, registry.host)


@pytest.fixture
def other_image(image: Image) -> Image:
    """A different image in the same repository (tag ``other``)."""
    digest = synthetic_image(image.pusher, image.repo, b"another image\n", "other")
    return Image(image.repo, digest, image.pusher, image.host)


@dataclass
class MultiArch:
    image: Image
    index_digest: str
    amd64: str
    arm64: str


@pytest.fixture
def multiarch(image: Image) -> MultiArch:
    """An OCI index (tag ``multi``): linux/amd64 → the docker-pushed image, linux/arm64 → a synthetic one."""
    arm = synthetic_image(image.pusher, image.repo, b"arm64 build\n", "arm", arch="arm64")
    sizes = {}
    for digest in (image.digest, arm):
        head = image.pusher.http.head(
            f"/v2/{image.repo}/manifests/{digest}",
            headers={"Accept": DOCKER_MANIFEST + ", application/vnd.oci.image.manifest.v1+json"},
        )
        sizes[digest] = (int(head.headers["content-length"]), head.headers["content-type"])
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": sizes[image.digest][1],
                "digest": image.digest,
                "size": sizes[image.digest][0],
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": sizes[arm][1],
                "digest": arm,
                "size": sizes[arm][0],
                "platform": {"os": "linux", "architecture": "arm64"},
            },
        ],
    }
    index_digest = image.pusher.manifest(image.repo, "multi", index, OCI_INDEX)
    return MultiArch(image, index_digest, image.digest, arm)


@pytest.fixture(scope="session")
def sigstore_instance(tmp_path_factory: pytest.TempPathFactory) -> tuple[signing.TestSigstore, Path]:
    instance = signing.TestSigstore()
    path = instance.write_trusted_root(tmp_path_factory.mktemp("trust") / "trusted_root.json")
    return instance, path


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    server = FakeRegistry().start()
    yield server
    server.stop()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
