"""The Zastava image, built here from the Dockerfile on a locally debootstrapped Debian base (no registry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import devstack
from tests.harness.devstack.baseimage import build_wheelhouse, debian_base_image
from tests.harness.real import start_real

ROOT = Path(__file__).resolve().parents[3]
IMAGE = "zastava-test/zastava:dev"
#: The first test that needs the image pays for building it (debootstrapped base, wheelhouse, docker build):
#: ~4 min alone on this 2-core machine, over 5 min when the machine is shared — more than the suite's 300 s.
IMAGE_TEST_TIMEOUT = 1200


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "zastava_image" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(IMAGE_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def zastava_image(docker_engine: devstack.DockerEngine) -> str:
    def build() -> str:
        build_wheelhouse(ROOT)
        base = debian_base_image(docker_engine)
        docker_engine.docker(
            "build",
            "--quiet",
            "--tag",
            IMAGE,
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--build-arg",
            "PIP_NO_INDEX=1",
            "--build-arg",
            "PIP_FIND_LINKS=/src/.wheelhouse",
            str(ROOT),
            timeout=900,
        )
        return IMAGE

    return start_real(build)
