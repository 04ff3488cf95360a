"""inspect_process of a container started through the CRI (containerd with the CRI plugin)."""

from __future__ import annotations

import time

import pytest

from tests.harness import devstack
from tests.harness.devstack.cri import CriClient
from zastava.observer.inspect import inspect_process

pytestmark = pytest.mark.real


def test_cri_container_identity_and_objects(
    cri: devstack.ContainerdService, cri_images: dict[str, str]
) -> None:
    with CriClient(cri.socket) as client:
        sandbox_id, config = client.run_pod("inspect-pod", namespace="inspect")
        try:
            container_id = client.run_container(sandbox_id, config, "sleeper", cri_images["busybox"])
            pid = client.container_pid(container_id)
            assert pid > 0
            deadline = time.monotonic() + 10
            while open(f"/proc/{pid}/cmdline").read().split("\0")[0] != "sleep":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            result = inspect_process(pid)
            with open(f"/proc/{pid}/cgroup") as handle:
                cgroup = handle.read()
        finally:
            client.remove_pod(sandbox_id)
    assert result.identity is not None, cgroup
    assert result.identity.container_id == container_id, cgroup
    assert (result.identity.engine, result.identity.uri) == ("containerd", f"containerd://{container_id}")
    assert [lib.path for lib in result.loaded_libs] == ["/bin/busybox"]
    assert result.loaded_libs[0].sha256 is not None
    assert result.process.entrypoint == ["sleep"]
