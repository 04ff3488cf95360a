"""``zastava observer run|snapshot`` outside Kubernetes (spec §1.2 Docker hosts), and the start-up refusals
of the observer's host-facing keys: ``runtime.procfs``, ``security.mounts.*``, ``mode.observer``.

All through the CLI as subprocesses on the private ``docker_engine``. Another PID namespace and other mounts
are made with util-linux ``unshare`` (``--pid --mount-proc``: a procfs that shows only the observer's own
processes, as in a container started without ``--pid host``; ``--mount``: a bind mount of /proc at the
configured host-proc path, read-write or read-only), the same kernel mechanisms a container runtime uses.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.harness import devstack
from tests.integration.observer.agent.test_agent_backend_e2e import Agent, of, run_container, wait_stored
from tests.integration.observer.agent.test_observer_endpoint import wait_readyz
from tests.integration.observer.publisher.real_backend import BackendProcess

ZASTAVA = [sys.executable, "-m", "zastava"]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[BackendProcess]:
    server = BackendProcess(tmp_path / "backend")
    try:
        yield server
    finally:
        server.stop()


def snapshot_config(path: Path, docker: devstack.DockerEngine, **runtime: str) -> Path:
    lines = "".join(f"    {key}: {value}\n" for key, value in runtime.items())
    path.write_text(
        "zastava:\n"
        "  runtime:\n"
        "    engine: docker\n"
        "    authority: {requireMutualTls: false}\n"
        f"{lines}"
        "  observer:\n"
        "    nodeName: docker-host\n"
        f"    engines: {{dockerHost: '{docker.host}'}}\n"
    )
    return path


def snapshot(config: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *ZASTAVA, "observer", "snapshot", "--engine", "docker", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_snapshot_on_a_docker_host_reads_the_hosts_proc_when_the_configured_one_is_absent(
    docker_engine: devstack.DockerEngine, pushed_dynamic: str, tmp_path: Path
) -> None:
    """The configured host-proc path (the DaemonSet's /host/proc) does not exist on a Docker host: the
    observer says so and reads /proc, and the container's libraries are there, hashed."""
    absent = tmp_path / "host" / "proc"
    config = snapshot_config(tmp_path / "z.yaml", docker_engine, procfs=str(absent))
    container = run_container(docker_engine, pushed_dynamic)
    try:
        result = snapshot(config)
    finally:
        container.remove(force=True)
    assert result.returncode == 0, result.stderr
    event = next(
        e for e in orjson.loads(result.stdout) if e["workload"]["containerId"] == f"docker://{container.id}"
    )
    signals = {item["signal"] for item in event["evidence"]}
    assert not {"inspection.failed", "inspection.skipped", "inspection.unavailable"} & signals, signals
    libs = event["loadedLibs"]
    assert any("libc.so" in lib["path"] for lib in libs) and all(lib.get("sha256") for lib in libs)
    assert event["process"]["buildId"]
    assert "zastava.runtime.procfs" in result.stderr and str(absent) in result.stderr


def test_outside_the_host_pid_namespace_start_up_stops_naming_the_key(
    docker_engine: devstack.DockerEngine, tmp_path: Path
) -> None:
    """In a PID namespace of its own (a container without --pid host) neither the configured path nor /proc
    shows the engine's processes: snapshot and run exit 2 naming runtime.procfs instead of reporting
    containers without libraries."""
    config = snapshot_config(tmp_path / "z.yaml", docker_engine, procfs=str(tmp_path / "host" / "proc"))
    own_pid_namespace = ("unshare", "--pid", "--fork", "--mount-proc")
    result = snapshot(config, *own_pid_namespace)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "zastava.runtime.procfs" in result.stderr and "--pid host" in result.stderr
    assert "Traceback" not in result.stderr
    with config.open("a") as extra:  # what run needs beyond snapshot: where to publish, and buffer
        extra.write(
            "  backend: {baseAddress: 'http://127.0.0.1:9', allowInsecureHttp: true}\n"
            f"  publisher: {{bufferDir: '{tmp_path / 'buffer'}'}}\n"
        )
    run = subprocess.run(
        [*own_pid_namespace, *ZASTAVA, "observer", "run", "--listen", "", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "zastava.runtime.procfs" in run.stderr and "Traceback" not in run.stderr


def test_a_read_write_host_mount_refuses_start_up_and_a_read_only_one_observes(
    docker_engine: devstack.DockerEngine, pushed_dynamic: str, backend: BackendProcess, tmp_path: Path
) -> None:
    """security.mounts.proc names the host /proc mount (HOST:CONTAINER:ro): mounted read-write the observer
    refuses to start (spec §7); mounted read-only it observes through it."""
    host_proc = tmp_path / "hostproc"
    mounts = f"  security:\n    mounts: {{proc: '/proc:{host_proc}:ro'}}\n"
    writable = Agent(
        tmp_path / "rw",
        docker_engine,
        backend.url,
        procfs=str(host_proc),
        extra=mounts,
        mount_setup=f"mkdir -p {host_proc} && mount --bind /proc {host_proc}",
    )
    assert writable.proc.wait(60) == 2
    log = writable.log.read_text()
    assert f"zastava.security.mounts.proc: {host_proc} is mounted read-write" in log, log

    backend.start()
    read_only = Agent(
        tmp_path / "ro",
        docker_engine,
        backend.url,
        procfs=str(host_proc),
        extra=mounts,
        mount_setup=f"mkdir -p {host_proc} && mount --bind /proc {host_proc} "
        f"&& mount -o remount,bind,ro {host_proc}",
    )
    container = None
    try:
        wait_readyz(read_only, 200)
        container = run_container(docker_engine, pushed_dynamic)
        start = wait_stored(backend, of(container.id, "CONTAINER_START"), 15, read_only)
        assert start.loaded_libs and all(lib.sha256 for lib in start.loaded_libs)
    finally:
        if container is not None:
            container.remove(force=True)
        read_only.stop()


def test_mode_observer_false_refuses_start_up(tmp_path: Path) -> None:
    config = tmp_path / "z.yaml"
    config.write_text("zastava:\n  mode: {observer: false}\n")
    started = time.monotonic()
    result = subprocess.run(
        [*ZASTAVA, "observer", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "zastava.mode.observer: false: this configuration does not run the observer" in result.stderr
    assert time.monotonic() - started < 30
