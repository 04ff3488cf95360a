"""``zastava observer run`` seen from outside, as Prometheus, the kubelet and a log shipper see it.

Every part is real: the agent is the ``observer run`` subprocess on the private ``docker_engine``, publishing
to the reference backend (``zastava backend serve`` subprocess); containers run from an image pushed to the
``registry`` fixture. ``/metrics`` is scraped and parsed with prometheus-client's own parser; ``/readyz``
follows the engine (a socket that appears) and the disk buffer (a 1 MiB tmpfs in the agent's private mount
namespace); every line the agent writes is one JSON object with the deployment scope.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import devstack
from tests.integration.observer.agent.test_agent_backend_e2e import (
    Agent,
    of,
    run_container,
    wait_stored,
)
from tests.integration.observer.publisher.real_backend import BackendProcess


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[BackendProcess]:
    server = BackendProcess(tmp_path / "backend")
    try:
        yield server
    finally:
        server.stop()


def scrape(agent: Agent) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{agent.url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels`` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def readyz(agent: Agent) -> tuple[int, dict[str, object]]:
    try:
        response = httpx.get(f"{agent.url}/readyz", timeout=10)
    except httpx.TransportError as exc:
        return 0, {"error": str(exc)}
    return response.status_code, orjson.loads(response.content)


def wait_readyz(agent: Agent, status: int, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        got, body = readyz(agent)
        if got == status:
            return body
        assert agent.alive(), agent.log.read_text()[-4000:]
        assert time.monotonic() < deadline, f"/readyz stayed {got} {body}, wanted {status}"
        time.sleep(0.2)


def wait_metric(agent: Agent, name: str, minimum: float, timeout: float = 20, **labels: str) -> float:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = value(scrape(agent), name, **labels)
        except httpx.TransportError:  # not listening yet
            got = -1
        if got >= minimum:
            return got
        assert agent.alive(), agent.log.read_text()[-4000:]
        assert time.monotonic() < deadline, f"{name}{labels} = {got} < {minimum}"
        time.sleep(0.2)


def json_lines(agent: Agent) -> list[dict[str, object]]:
    lines = [line for line in agent.log.read_text().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return parsed


def test_metrics_count_what_the_agent_observes_and_publishes(
    docker_engine: devstack.DockerEngine, pushed_dynamic: str, backend: BackendProcess, tmp_path: Path
) -> None:
    backend.start()
    agent = Agent(tmp_path / "agent", docker_engine, backend.url)
    container = None
    try:
        assert wait_readyz(agent, 200) == {
            "ready": True,
            "checks": {"agent": "ok", "engine": "ok", "buffer": "ok"},
        }
        assert httpx.get(f"{agent.url}/healthz", timeout=5).text == "ok\n"
        before = scrape(agent)
        container = run_container(docker_engine, pushed_dynamic)
        wait_stored(backend, of(container.id, "CONTAINER_START"), 15, agent)
        container.stop(timeout=1)
        wait_stored(backend, of(container.id, "CONTAINER_STOP"), 15, agent)
        wait_metric(
            agent,
            "zastava_runtime_events_delivered_total",
            value(before, "zastava_runtime_events_delivered_total") + 2,
        )
        after = scrape(agent)
    finally:
        if container is not None:
            container.remove(force=True)
        agent.stop()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # spec §8, observer
    assert grew("zastava_runtime_events_total", kind="CONTAINER_START") == 1
    assert grew("zastava_runtime_events_total", kind="CONTAINER_STOP") == 1
    assert grew("zastava_runtime_backend_latency_ms_count", endpoint="events") >= 1
    assert grew("zastava_proc_maps_samples_total", result="ok") >= 1
    assert grew("zastava_entrytrace_depth_count") == 1  # one entrypoint traced
    # bash, libc, libtinfo… hashed (for this container, or already for another of the same image: the hash
    # cache is keyed by file identity, and the layers are shared)
    assert value(after, "zastava_hash_bytes_total") > 100_000
    assert value(after, "zastava_buffer_drops_total") == 0
    # the buffer and the publisher (spec §12): all delivered, nothing failed
    assert value(after, "zastava_buffer_pending_events") == 0
    assert value(after, "zastava_backend_failures_total", endpoint="events") == 0
    assert (
        value(after, "zastava_meter_info", component="observer", meter="StellaOps.Zastava", version="1.0.0")
        == 1
    )
    assert value(after, "process_resident_memory_bytes") > 0
    # one JSON object per line, each with the deployment scope (spec §6 runtime, §8 logs)
    lines = json_lines(agent)
    assert lines, "the agent wrote nothing"
    for line in lines:
        assert line["component"] == "observer" and line["plane"] == "runtime", line
        assert (line["tenant"], line["environment"], line["deployment"]) == (
            "tenant-01",
            "e2e",
            "local-docker",
        )
    started = next(line for line in lines if line["msg"] == "observer started")
    assert started["metrics"] == f"{agent.url}/metrics" and started["engine"] == "docker"
    # Docker declares full fidelity: pushed events, the init pid and the image config from the runtime
    assert started["capabilities"] == {"fidelity": "full", "events": True, "pid": True, "image_config": True}


def test_publish_failures_and_buffer_depth_while_the_backend_is_down(
    docker_engine: devstack.DockerEngine, pushed_dynamic: str, backend: BackendProcess, tmp_path: Path
) -> None:
    """An unreachable backend does not make the observer unready (it buffers, spec §12): it shows in the
    buffer depth and the publish failures until the backend is back."""
    agent = Agent(tmp_path / "agent", docker_engine, backend.url)  # nothing listens on the backend's port
    container = None
    try:
        wait_readyz(agent, 200)
        container = run_container(docker_engine, pushed_dynamic)
        wait_metric(agent, "zastava_buffer_pending_events", 1)
        wait_metric(agent, "zastava_backend_failures_total", 2, endpoint="events")
        assert readyz(agent)[0] == 200
        backend.start()
        wait_stored(backend, of(container.id, "CONTAINER_START"), 30, agent)
        deadline = time.monotonic() + 15
        while value(scrape(agent), "zastava_buffer_pending_events") != 0:
            assert time.monotonic() < deadline, "the buffer did not drain"
            time.sleep(0.2)
    finally:
        if container is not None:
            container.remove(force=True)
        agent.stop()


def test_readiness_waits_for_the_engine_socket(
    docker_engine: devstack.DockerEngine, backend: BackendProcess, tmp_path: Path
) -> None:
    socket_path = tmp_path / "engine" / "docker.sock"
    socket_path.parent.mkdir()
    agent = Agent(tmp_path / "agent", docker_engine, backend.url, docker_host=f"unix://{socket_path}")
    try:
        body = wait_readyz(agent, 503)
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert checks["buffer"] == "ok" and checks["agent"] == "ok"
        assert "docker socket" in str(checks["engine"]) and str(socket_path) in str(checks["engine"])
        socket_path.symlink_to(docker_engine.socket)  # the engine appears
        wait_readyz(agent, 200)
        changes = [line for line in json_lines(agent) if line["msg"] == "observer readiness changed"]
        assert changes and changes[-1]["ready"] is True
    finally:
        agent.stop()


def test_readiness_says_when_the_buffer_disk_is_full(
    docker_engine: devstack.DockerEngine, backend: BackendProcess, tmp_path: Path
) -> None:
    buffer = tmp_path / "agent" / "buffer"
    agent = Agent(
        tmp_path / "agent",
        docker_engine,
        backend.url,
        mount_setup=f"mkdir -p {buffer} && mount -t tmpfs -o size=1m zastava-test-buffer {buffer}",
    )
    try:
        body = wait_readyz(agent, 503)
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert checks["engine"] == "ok" and "bytes free" in str(checks["buffer"]), body
    finally:
        agent.stop()


def test_a_taken_listen_address_stops_start_up_naming_the_key(
    docker_engine: devstack.DockerEngine, tmp_path: Path
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    config = tmp_path / "observer.yaml"
    config.write_text(
        "zastava:\n"
        "  runtime: {engine: docker, procfs: /proc, authority: {requireMutualTls: false}}\n"
        f"  observer: {{listen: '127.0.0.1:{taken.getsockname()[1]}',\n"
        f"             engines: {{dockerHost: '{docker_engine.host}'}}}}\n"
        "  backend: {baseAddress: 'http://127.0.0.1:9', allowInsecureHttp: true}\n"
        f"  publisher: {{bufferDir: '{tmp_path / 'buffer'}'}}\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "zastava", "observer", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        taken.close()
    assert result.returncode == 2, result.stderr
    assert "zastava.observer.listen: cannot listen on 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr
