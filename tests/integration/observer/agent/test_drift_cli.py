"""Drift per exec through the product's entry point: ``zastava observer run --stdout --engine docker``.

The agent command, configured only by a file (``observer.drift.execSource: connector``, a quiet window), runs
against the private Docker engine; a ``docker exec`` into a running container must come out as an ``EXEC``
event line (entered from outside, with its chain), and the container's own entrypoint as no finding at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.harness import devstack


def test_observer_command_reports_exec_and_drift_from_the_proc_connector(
    docker_engine: devstack.DockerEngine, pushed_busybox: str, tmp_path: Path
) -> None:
    config = tmp_path / "zastava.yaml"
    config.write_text(
        "zastava:\n  runtime:\n    procfs: /proc\n    logging: {level: WARNING}\n"
        f"  observer:\n    nodeName: cli\n    engines: {{dockerHost: '{docker_engine.host}'}}\n"
        "    drift: {intervalSeconds: 1.0, execSource: connector, quietWindowSeconds: 30}\n"
    )
    env = {**os.environ, "ZASTAVA_CACHE_DIR": str(tmp_path / "cache")}
    argv = [
        sys.executable,
        "-m",
        "zastava",
        "observer",
        "run",
        "--stdout",
        "--engine",
        "docker",
        "--listen",
        "",
    ]
    agent = subprocess.Popen(
        [*argv, "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    events: list[dict[str, Any]] = []

    def read() -> None:
        assert agent.stdout is not None
        for line in agent.stdout:
            events.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    container = docker_engine.client().containers.run(pushed_busybox, detach=True, network_mode="none")
    try:

        def wait(predicate: Any, what: str, timeout: float = 20) -> dict[str, Any]:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for event in list(events):
                    if predicate(event):
                        return event
                assert agent.poll() is None, agent.stderr.read().decode()[-2000:] if agent.stderr else ""
                time.sleep(0.1)
            raise AssertionError(f"{what}: not seen; kinds {[e['kind'] for e in events]}")

        ours = f"docker://{container.id}"
        wait(lambda e: e["kind"] == "CONTAINER_START" and e["workload"]["containerId"] == ours, "start")
        time.sleep(0.5)
        docker_engine.docker("exec", container.id, "sh", "-c", "sleep 0.2; id")
        entered = wait(
            lambda e: e["kind"] == "EXEC" and e["workload"]["containerId"] == ours, "EXEC of the docker exec"
        )
        signals = {x["signal"]: x["value"] for x in entered["evidence"]}
        assert "(outside)" in signals["exec.entered.chain"] and signals["drift.source"] == "proc-connector"
        # the container's own entrypoint tree never produced a finding
        assert not [e for e in events if e["kind"] == "DRIFT" and e["workload"]["containerId"] == ours]
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        container.remove(force=True)
