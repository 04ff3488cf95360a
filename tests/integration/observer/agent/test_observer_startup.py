"""``zastava observer run`` when its container engine is slow at start-up (issue 16: a CPU-throttled
observer's first CRI ``Version`` timed out, it settled for the log tail for good or exited 0).

The CRI socket first belongs to a stalling server of this test (a unix socket that accepts connections and
never answers: a runtime too slow for ``connectTimeoutSeconds``); then the path is pointed at the real
containerd (``cri`` fixture). The agent is the real ``observer run`` subprocess (``--stdout``, no backend).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.harness import devstack
from tests.harness.devstack.cri import CriClient

REPO = Path(__file__).resolve().parents[4]


class StallingSocket:
    """A unix socket that accepts every connection and never writes a byte (held until :meth:`close`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(64)
        self.held: list[socket.socket] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def close(self) -> None:
        # shutdown wakes the accept() of the thread on Linux; close alone does not
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self._thread.join(5)
        for conn in self.held:
            conn.close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def stalled(tmp_path: Path) -> Iterator[StallingSocket]:
    server = StallingSocket(tmp_path / "containerd.sock")
    try:
        yield server
    finally:
        server.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        response = httpx.get(url, timeout=5)
    except httpx.TransportError as exc:
        return 0, str(exc).encode()
    return response.status_code, response.content


def test_slow_cri_at_start_up_endpoint_serves_then_switches_to_containerd(
    cri: devstack.ContainerdService,
    cri_images: dict[str, str],
    stalled: StallingSocket,
    tmp_path: Path,
) -> None:
    logs = tmp_path / "containers"  # the log-tail fallback's directory: present, empty
    logs.mkdir()
    port = devstack.free_port()
    config = tmp_path / "observer.yaml"
    config.write_text(
        f"""\
zastava:
  runtime:
    tenant: tenant-01
    engine: auto
    procfs: /proc
    logging: {{level: INFO, format: json}}
    authority: {{requireMutualTls: false}}
  observer:
    nodeName: startup-node
    listen: 127.0.0.1:{port}
    engines:
      containerdSocket: {stalled.path}
      crioSocket: {tmp_path / "no-crio.sock"}
      dockerHost: unix://{tmp_path / "no-docker.sock"}
      logDir: {logs}
      connectTimeoutSeconds: 1
      reconnectInitialSeconds: 0.5
      reconnectMaxSeconds: 1
    drift: {{enabled: false}}
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")}
    out, err = tmp_path / "stdout.ndjson", tmp_path / "observer.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        agent = subprocess.Popen(
            [sys.executable, "-m", "zastava", "observer", "run", "--stdout", "--config", str(config)],
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=REPO,
        )
    client = CriClient(cri.socket)
    sandbox = ""
    url = f"http://127.0.0.1:{port}"
    try:

        def wait(what: str, check: Callable[[], bool], within: float) -> None:
            deadline = time.monotonic() + within
            while not check():
                tail = err.read_text()[-4000:]
                assert agent.poll() is None, f"observer exited {agent.returncode}:\n{tail}"
                assert time.monotonic() < deadline, f"{what} not seen in {within} s:\n{tail}"
                time.sleep(0.2)

        # (1) the endpoint answers while the engine does not: /metrics 200, /readyz 503 with the reason
        wait("/metrics", lambda: _get(f"{url}/metrics")[0] == 200, 20)
        status, body = _get(f"{url}/readyz")
        assert status == 503, body
        engine_check = orjson.loads(body)["checks"]["engine"]
        assert engine_check != "ok", body
        # the slow socket was kept as the engine to wait for, served through the log tail meanwhile
        wait("the log-tail fallback", lambda: b"on the logtail fallback" in _get(f"{url}/readyz")[1], 15)
        assert stalled.accepted >= 1
        time.sleep(2)  # several reconnect attempts (backoff max 1 s): still running, still not ready
        assert agent.poll() is None, err.read_text()[-4000:]
        status, body = _get(f"{url}/readyz")
        assert status == 503 and b"fallback" in body, body
        metrics = _get(f"{url}/metrics")[1].decode()
        assert "zastava_observer_engine_fallback{" in metrics and "logtail" in metrics

        # (2) the runtime answers at that path now: the agent switches back and observes a container
        stalled.close()
        stalled.path.symlink_to(cri.socket)
        name = f"startup-{uuid.uuid4().hex[:6]}"
        sandbox, pod_config = client.run_pod(name, "payments", {"app": name})
        container_id = client.run_container(sandbox, pod_config, "app", cri_images["busybox"])

        def started() -> bool:
            for line in out.read_bytes().splitlines():
                event = orjson.loads(line)
                if event.get("kind") == "CONTAINER_START" and container_id in orjson.dumps(event).decode():
                    return True
            return False

        wait("the container's CONTAINER_START", started, 30)
        wait("/readyz 200", lambda: _get(f"{url}/readyz")[0] == 200, 15)
        metrics = _get(f"{url}/metrics")[1].decode()
        ok = [
            line
            for line in metrics.splitlines()
            if line.startswith("zastava_observer_engine_reconnects_total{")
        ]
        assert any('result="ok"' in line and not line.endswith(" 0.0") for line in ok), ok
        log_text = err.read_text()
        assert log_text.count("container engine reconnected") == 1, log_text[-4000:]
        assert agent.poll() is None
    finally:
        if sandbox:
            client.remove_pod(sandbox)
        client.close()
        if agent.poll() is None:
            os.kill(agent.pid, signal.SIGTERM)
            try:
                agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(agent.pid, signal.SIGKILL)
                agent.wait()
    assert agent.returncode == 0, err.read_text()[-4000:]  # SIGTERM: a clean stop
