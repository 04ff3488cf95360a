"""Fixtures of the observer agent's real-engine tests (session fixtures come from tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest

from tests.harness import devstack
from tests.harness.real import start_real

T = TypeVar("T")


@pytest.fixture(scope="session")
def pushed_busybox(
    docker_engine: devstack.DockerEngine, registry: devstack.RegistryServer, busybox_image: str
) -> str:
    """The busybox test image pushed to the loopback registry: ``<registry>/observer/busybox@sha256:…``."""
    start_real(lambda: None)
    return devstack.push_image(docker_engine, busybox_image, registry.host, "observer/busybox:1")


@pytest.fixture(scope="session")
def pushed_dynamic(
    docker_engine: devstack.DockerEngine, registry: devstack.RegistryServer, dynamic_image: str
) -> str:
    """The dynamically linked test image (bash + sleep + their libraries) pushed: ``…@sha256:…``."""
    start_real(lambda: None)
    return devstack.push_image(docker_engine, dynamic_image, registry.host, "observer/dynamic:1")


async def next_matching(events: AsyncIterator[T], predicate: Callable[[T], bool], timeout: float) -> T:  # noqa: ASYNC109
    """The first item of ``events`` that satisfies ``predicate``, within ``timeout`` seconds."""

    async def scan() -> T:
        async for item in events:
            if predicate(item):
                return item
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(scan(), timeout)
