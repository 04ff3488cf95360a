"""Each real-component fixture proven by using it (issue: foundation, test harness)."""

from __future__ import annotations

import time

import httpx

from tests.harness import devstack
from tests.harness.devstack.cri import CriClient


def _maps_paths(pid: int) -> set[str]:
    paths = set()
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/"):
                paths.add(parts[5].strip())
    return paths


def test_docker_engine_runs_a_container_whose_maps_are_readable(
    docker_engine: devstack.DockerEngine, dynamic_image: str
) -> None:
    container = docker_engine.client().containers.run(dynamic_image, detach=True, network_mode="none")
    try:
        deadline = time.monotonic() + 10
        while True:
            container.reload()
            pid = container.attrs["State"]["Pid"]
            if pid and open(f"/proc/{pid}/cmdline").read().startswith("/usr/bin/sleep"):
                break
            assert time.monotonic() < deadline, "entrypoint did not exec sleep"
            time.sleep(0.05)
        paths = _maps_paths(pid)
        assert "/usr/bin/sleep" in paths
        assert any("libc.so.6" in p for p in paths)
        # paths in maps are container paths: the file exists under the container's root
        assert all(
            (open(f"/proc/{pid}/root{p}", "rb").read(4) == b"\x7fELF") for p in paths if p.endswith(".so.6")
        )
    finally:
        container.remove(force=True)


def test_busybox_entrypoint_execs_long_running_process(
    docker_engine: devstack.DockerEngine, busybox_image: str
) -> None:
    container = docker_engine.client().containers.run(busybox_image, detach=True, network_mode="none")
    try:
        deadline = time.monotonic() + 10
        while True:
            container.reload()
            pid = container.attrs["State"]["Pid"]
            if pid and open(f"/proc/{pid}/cmdline").read().split("\0")[0] == "sleep":
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _maps_paths(pid) == {"/bin/busybox"}  # static: nothing else mapped
    finally:
        container.remove(force=True)


def test_push_and_read_back_manifest(
    docker_engine: devstack.DockerEngine, registry: devstack.RegistryServer, busybox_image: str
) -> None:
    ref = devstack.push_image(docker_engine, busybox_image, registry.host, repository="harness/busybox:1")
    repo, digest = ref.split("@")
    name = repo.split("/", 1)[1]
    response = httpx.get(
        f"{registry.url}/v2/{name}/manifests/{digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.json()["schemaVersion"] == 2
    tag = httpx.get(
        f"{registry.url}/v2/{name}/manifests/1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert tag.headers["Docker-Content-Digest"] == digest


def test_cri_host_network_pod(cri: devstack.ContainerdService, cri_images: dict[str, str]) -> None:
    with CriClient(cri.socket) as client:
        assert client.version().runtime_api_version == "v1"
        sandbox_id, config = client.run_pod("harness-pod", namespace="harness")
        container_id = client.run_container(sandbox_id, config, "sleeper", cri_images["busybox"])
        pid = client.container_pid(container_id)
        assert pid > 0
        deadline = time.monotonic() + 10
        while open(f"/proc/{pid}/cmdline").read().split("\0")[0] != "sleep":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "/bin/busybox" in _maps_paths(pid)
        pods = {p.metadata.name for p in client.list_pods()}
        assert "harness-pod" in pods
        client.remove_pod(sandbox_id)
        assert "harness-pod" not in {p.metadata.name for p in client.list_pods()}


def test_postgres_answers_queries(postgres: devstack.PostgresServer) -> None:
    url = postgres.create_database("harness")
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("create table t (id int primary key, v text)")
        conn.execute("insert into t values (1, 'x'), (2, 'y')")
        assert conn.execute("select count(*), max(v) from t").fetchone() == (2, "y")
        assert conn.execute("show server_version").fetchone()[0].startswith("15")
