"""Shared fixtures. Real components (spec §11) are session-scoped: started once, stopped by PID at the end.

Fixtures: ``docker_engine`` (containerd + dockerd, private), ``cri`` (containerd with the CRI plugin),
``registry`` (distribution registry on loopback), ``postgres`` (PostgreSQL 15), and locally built images
``busybox_image``, ``dynamic_image``, ``cri_images`` (pause + busybox imported into CRI's containerd).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import devstack
from tests.harness.real import start_real


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[devstack.DockerEngine]:
    engine = start_real(lambda: devstack.DockerEngine().start())
    try:
        yield engine
    finally:
        engine.stop()
        engine.cleanup()


@pytest.fixture(scope="session")
def registry() -> Iterator[devstack.RegistryServer]:
    server = start_real(lambda: devstack.RegistryServer().start())
    try:
        yield server
    finally:
        server.stop()
        server.cleanup()


@pytest.fixture(scope="session")
def postgres() -> Iterator[devstack.PostgresServer]:
    server = start_real(lambda: devstack.PostgresServer().start())
    try:
        yield server
    finally:
        server.stop()
        server.cleanup()


@pytest.fixture(scope="session")
def busybox_image(docker_engine: devstack.DockerEngine) -> str:
    tag = "zastava-test/busybox:1"
    start_real(lambda: devstack.busybox_image(docker_engine, tag))
    return tag


@pytest.fixture(scope="session")
def dynamic_image(docker_engine: devstack.DockerEngine) -> str:
    tag = "zastava-test/dynamic:1"
    start_real(lambda: devstack.dynamic_image(docker_engine, tag))
    return tag


@pytest.fixture(scope="session")
def pause_image(docker_engine: devstack.DockerEngine) -> str:
    start_real(lambda: devstack.pause_image(docker_engine))
    return devstack.PAUSE_IMAGE


@pytest.fixture(scope="session")
def cri() -> Iterator[devstack.ContainerdService]:
    service = start_real(lambda: devstack.ContainerdService(cri=True).start())
    try:
        yield service
    finally:
        service.stop()
        service.cleanup()


@pytest.fixture(scope="session")
def cri_images(
    cri: devstack.ContainerdService,
    docker_engine: devstack.DockerEngine,
    pause_image: str,
    busybox_image: str,
) -> dict[str, str]:
    """The pause and busybox images, imported into the CRI containerd's ``k8s.io`` namespace."""
    for tag in (pause_image, busybox_image):
        cri.import_image(devstack.save_image(docker_engine, tag))
    return {"pause": pause_image, "busybox": f"docker.io/{busybox_image}"}


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
