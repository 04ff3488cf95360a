"""The observer agent end to end, every part real: ``zastava observer run --config …`` as a subprocess on the
``docker_engine`` fixture, publishing through its durable publisher to the real backend (``zastava backend
serve`` subprocess over SQLite); containers run from an image pushed to the ``registry`` fixture.

No stand-ins: EntryTrace, inspection, posture and the publisher are the agent's own. What the backend stored
is read from its SQLite store (read-only) and checked field by field."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.harness import devstack
from tests.integration.observer.publisher.real_backend import BackendProcess
from zastava.contracts import RuntimeEvent, parse_runtime_envelope

REPO = Path(__file__).resolve().parents[4]


class Agent:
    """``zastava observer run`` as a subprocess; stopped by its PID (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        directory: Path,
        docker: devstack.DockerEngine,
        backend_url: str,
        *,
        runtime_extra: str = "",
        extra: str = "",
        procfs: str = "/proc",
        activity_tracking: bool = True,
        docker_host: str | None = None,
        mount_setup: str | None = None,
    ) -> None:
        """``runtime_extra``/``extra``: YAML lines under ``runtime:``/``zastava:``; ``mount_setup``: shell
        commands run first in a private mount namespace of the agent (``unshare --mount``), e.g. a small
        tmpfs for the buffer."""
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "observer.log"
        self.config = directory / "observer.yaml"
        self.metrics_port = devstack.free_port()
        self.config.write_text(
            f"""\
zastava:
  runtime:
    tenant: tenant-01
    environment: e2e
    deployment: local-docker
    engine: docker
    procfs: {procfs}
    logging: {{level: INFO, format: json, includeActivityTracking: {str(activity_tracking).lower()}}}
    authority: {{requireMutualTls: false}}  # development: no Authority credentials, plain http on loopback
{runtime_extra}  observer:
    nodeName: e2e-node
    listen: 127.0.0.1:{self.metrics_port}
    engines:
      dockerHost: {docker_host or docker.host}
      reconnectMaxSeconds: 1
    drift: {{enabled: false}}
  backend:
    baseAddress: {backend_url}
    allowInsecureHttp: true
    requestTimeoutSeconds: 3
  publisher:
    bufferDir: {directory / "buffer"}
    flushIntervalSeconds: 0.2
{extra}"""
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")}
        argv = [sys.executable, "-m", "zastava", "observer", "run", "--config", str(self.config)]
        if mount_setup is not None:
            shell = ["sh", "-c", f'{mount_setup} && exec "$@"', "sh"]
            argv = ["unshare", "--mount", "--propagation", "private", *shell, *argv]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def stored(backend: BackendProcess) -> list[RuntimeEvent]:
    return [parse_runtime_envelope(orjson.loads(row[5]))[1] for row in backend.rows()]


def wait_stored(
    backend: BackendProcess, predicate: Callable[[RuntimeEvent], bool], within: float, agent: Agent
) -> RuntimeEvent:
    deadline = time.monotonic() + within
    while True:
        for event in stored(backend):
            if predicate(event):
                return event
        assert agent.alive(), agent.log.read_text()[-4000:]
        assert time.monotonic() < deadline, (
            f"not stored in {within} s; agent log:\n{agent.log.read_text()[-4000:]}"
        )
        time.sleep(0.1)


def of(container_id: str, kind: str) -> Callable[[RuntimeEvent], bool]:
    return lambda e: e.kind == kind and e.workload.container_id == f"docker://{container_id}"


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[BackendProcess]:
    server = BackendProcess(tmp_path / "backend")
    try:
        yield server
    finally:
        server.stop()


def run_container(docker: devstack.DockerEngine, image: str) -> Any:
    return docker.client().containers.run(image, detach=True, network_mode="none")


def test_start_and_stop_are_stored_with_pid_digest_libraries_and_build_id(
    docker_engine: devstack.DockerEngine, pushed_dynamic: str, backend: BackendProcess, tmp_path: Path
) -> None:
    backend.start()
    agent = Agent(tmp_path / "agent", docker_engine, backend.url)
    container = None
    try:
        time.sleep(2.0)  # the agent lists the engine and subscribes to its events
        assert agent.alive(), agent.log.read_text()
        container = run_container(docker_engine, pushed_dynamic)
        started = time.monotonic()
        start = wait_stored(backend, of(container.id, "CONTAINER_START"), 10, agent)
        assert time.monotonic() - started < 10
        assert start.tenant == "tenant-01" and start.node == "e2e-node"
        assert start.process is not None and start.process.pid > 0
        assert start.process.build_id and len(start.process.build_id) >= 16  # GNU build-id of /proc/<pid>/exe
        digest = pushed_dynamic.split("@", 1)[1]
        assert start.workload.image_ref is not None and digest in start.workload.image_ref
        libs = start.loaded_libs or []
        assert any("libc.so" in lib.path for lib in libs), [lib.path for lib in libs]
        assert all(lib.sha256 and len(lib.sha256) == 64 for lib in libs)
        container.stop(timeout=1)
        stop = wait_stored(backend, of(container.id, "CONTAINER_STOP"), 15, agent)
        assert stop.when >= start.when
    finally:
        if container is not None:
            container.remove(force=True)
        agent.stop()


def test_backend_down_at_start_the_agent_buffers_and_delivers_once_it_is_up(
    docker_engine: devstack.DockerEngine, pushed_dynamic: str, backend: BackendProcess, tmp_path: Path
) -> None:
    agent = Agent(tmp_path / "agent", docker_engine, backend.url)  # the backend's port: nothing listening yet
    container = None
    try:
        time.sleep(2.0)
        container = run_container(docker_engine, pushed_dynamic)
        time.sleep(4.0)  # observed while the backend is down: buffered on disk
        assert agent.alive(), agent.log.read_text()
        segments = list((tmp_path / "agent" / "buffer").glob("seg-*.log"))
        assert segments and sum(s.stat().st_size for s in segments) > 0
        backend.start()
        start = wait_stored(backend, of(container.id, "CONTAINER_START"), 30, agent)
        assert start.process is not None and start.process.pid > 0
        container.stop(timeout=1)
        wait_stored(backend, of(container.id, "CONTAINER_STOP"), 15, agent)
    finally:
        if container is not None:
            container.remove(force=True)
        agent.stop()
