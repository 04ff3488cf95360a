"""EntryTrace against the root of a live container (``/proc/<pid>/root``) run by the real Docker engine.

The images are built locally with :func:`tests.harness.devstack.build_image`; the trace reads the container's
filesystem through the host's procfs, exactly as the observer does, and its terminal set must contain what
``/proc/<pid>/exe`` of the running process shows (the process-drift baseline of spec §10).
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import pytest

from tests.harness import devstack
from tests.harness.devstack.packages import ensure_packages
from zastava.contracts import Process
from zastava.observer.entrytrace import trace_entrypoint
from zastava.telemetry import ZastavaMetrics

ENTRYPOINT = b"""#!/bin/sh
set -e
# a number as first argument means: sleep that long
if [ "${1#[0-9]}" != "$1" ]; then
\tset -- sleep "$@"
fi
for f in /docker-entrypoint.d/*.sh; do
\tcase "$f" in
\t\t*.sh) . "$f" ;;
\tesac
done
if [ "$1" = "sleep" ] && [ "$(id -u)" = "0" ]; then
\tshift\n\texec "$SLEEP_BIN" "$@"
fi
exec "$@"
"""
HOOK = b'SLEEP_BIN="${SLEEP_BIN:-/usr/local/bin/sleep}"\nexport SLEEP_BIN\n'


def _wait_for_exec(container: Any, argv0: str) -> int:
    deadline = time.monotonic() + 15
    while True:
        container.reload()
        pid = int(container.attrs["State"]["Pid"] or 0)
        if pid:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    if handle.read().split(b"\0")[0].decode() == argv0:
                        return pid
            except OSError:
                pass
        assert time.monotonic() < deadline, f"entrypoint never exec'd {argv0}: {container.logs()!r}"
        time.sleep(0.05)


def _config_argv(container: Any) -> tuple[list[str], dict[str, str], str, str | None]:
    config = container.attrs["Config"]
    argv = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    return argv, env, config.get("WorkingDir") or "/", config.get("User") or None


@pytest.fixture(scope="module")
def entrytrace_image(docker_engine: devstack.DockerEngine) -> str:
    ensure_packages(["busybox-static"])
    busybox = shutil.which("busybox") or "/bin/busybox"
    tag = "zastava-test/entrytrace:1"
    devstack.build_image(
        docker_engine,
        tag,
        {
            "/bin/busybox": busybox,
            "/usr/local/bin/docker-entrypoint.sh": (ENTRYPOINT, 0o755),
            "/docker-entrypoint.d/10-sleep.sh": (HOOK, 0o644),
            "/etc/passwd": (b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
        },
        symlinks={
            "/bin/sh": "busybox",
            "/bin/id": "busybox",
            "/usr/local/bin/sleep": "/bin/busybox",
        },
        entrypoint=["docker-entrypoint.sh"],
        cmd=["1000000"],  # a number: the script prepends its default program
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    return tag


def test_trace_of_live_container_root_contains_the_running_program(
    docker_engine: devstack.DockerEngine, entrytrace_image: str
) -> None:
    container = docker_engine.client().containers.run(entrytrace_image, detach=True, network_mode="none")
    try:
        pid = _wait_for_exec(container, "/usr/local/bin/sleep")
        argv, env, workdir, user = _config_argv(container)
        assert argv == ["docker-entrypoint.sh", "1000000"]
        metrics = ZastavaMetrics()
        result = trace_entrypoint(
            argv,
            root=f"/proc/{pid}/root",
            env=env,
            workdir=workdir,
            user=user if user else 0,
            metrics=metrics,
        )
        assert not result.partial and not result.ambiguous, result.to_json()
        exe = os.readlink(f"/proc/{pid}/exe")  # a container path
        assert exe == "/bin/busybox"
        assert exe in result.terminal_paths()
        [program] = result.programs()
        assert program.path == "/usr/local/bin/sleep" and program.resolved == "/bin/busybox"
        assert program.argv == ("/usr/local/bin/sleep", "1000000")
        ops = [(s.file, s.op, s.target) for s in result.steps]
        assert ("/usr/local/bin/docker-entrypoint.sh", "source", "/docker-entrypoint.d/10-sleep.sh") in ops
        assert ("/usr/local/bin/docker-entrypoint.sh", "exec", "/usr/local/bin/sleep") in ops
        assert result.confidence >= 90
        process = Process(pid=pid, entrypoint=argv, **result.process_fields())
        wire = process.wire()
        assert wire["terminals"] == result.terminal_paths()
        assert wire["entryTraceConfidence"] == result.confidence
        assert b"zastava_entrytrace_depth_count" in metrics.render()
    finally:
        container.remove(force=True)


def test_trace_of_dynamic_image_bash_entrypoint(
    docker_engine: devstack.DockerEngine, dynamic_image: str
) -> None:
    container = docker_engine.client().containers.run(dynamic_image, detach=True, network_mode="none")
    try:
        pid = _wait_for_exec(container, "/usr/bin/sleep")
        argv, env, workdir, user = _config_argv(container)
        result = trace_entrypoint(argv, root=f"/proc/{pid}/root", env=env, workdir=workdir, user=user or 0)
        assert os.readlink(f"/proc/{pid}/exe") in result.terminal_paths(), result.to_json()
        assert [t.resolved for t in result.programs()] == ["/usr/bin/sleep"]
        assert result.confidence == 100
    finally:
        container.remove(force=True)
