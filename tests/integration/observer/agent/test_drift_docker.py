"""Drift detection against real Docker containers (spec §10).

The EntryTrace terminal of the busybox image (``/entry.sh`` → ``exec sleep``) is given here as ``/bin/sleep``,
what EntryTrace reports for it (``test_agent_docker.py`` runs the real trace through the agent).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.harness import devstack
from zastava.contracts import EventKind
from zastava.observer import drift
from zastava.observer.engines.docker import DockerEngineClient
from zastava.observer.events import context_for
from zastava.observer.rootfs import RootFS

PROC = "/proc"


def _wait_for(predicate: Any, timeout: float = 15, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def running(docker_engine: devstack.DockerEngine, pushed_busybox: str) -> Iterator[tuple[Any, int]]:
    container = docker_engine.client().containers.run(pushed_busybox, detach=True, network_mode="none")

    def pid() -> int:
        container.reload()
        p = int(container.attrs["State"]["Pid"] or 0)
        with contextlib.suppress(OSError):
            if p and Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] == b"sleep":
                return p
        return 0

    try:
        yield container, _wait_for(pid, what="entrypoint to exec sleep")
    finally:
        container.remove(force=True)


async def _inspect(docker_engine: devstack.DockerEngine, container_id: str) -> Any:
    engine = DockerEngineClient(docker_engine.host)
    try:
        return await engine.inspect(container_id)
    finally:
        await engine.aclose()


def _exec(docker_engine: devstack.DockerEngine, container: Any, *argv: str, detach: bool = False) -> None:
    docker_engine.docker("exec", *(["-d"] if detach else []), container.id, *argv)


async def test_copied_binary_run_by_exec_is_process_and_filesystem_drift(
    docker_engine: devstack.DockerEngine, running: tuple[Any, int]
) -> None:
    container, pid = running
    root = RootFS(f"{PROC}/{pid}/root")
    allowed = drift.allowed_programs(root, terminals=["/bin/sleep"])
    # /bin/sleep resolves to the busybox it links to: busybox's sleep applet, not every applet
    assert "/bin/busybox\0sleep" in allowed and "/bin/busybox" not in allowed

    info = await _inspect(docker_engine, container.id)
    assert info is not None and info.image_created is not None
    ctx = context_for(info, tenant="t1", node="n1")

    # the entrypoint's own program: no drift, no new files
    baseline = drift.container_processes(PROC, pid)
    assert [p.pid for p in baseline] == [pid]
    assert drift.detect_process_drift(baseline, allowed, root=root) == []
    upper_dir = drift.overlay_upper_dir(PROC, pid)
    host = drift.host_root(PROC)
    assert drift.detect_filesystem_drift(root, info.image_created, upper=host, upper_dir=upper_dir) == []

    _exec(docker_engine, container, "busybox", "mkdir", "-p", "/usr/local/bin")
    _exec(docker_engine, container, "cp", "/bin/busybox", "/usr/local/bin/sleep")
    _exec(docker_engine, container, "/usr/local/bin/sleep", "300", detach=True)

    def drifting() -> list[drift.ContainerProcess]:
        return drift.detect_process_drift(drift.container_processes(PROC, pid), allowed, root=root)

    found = _wait_for(drifting, what="the copied sleep to run")
    assert [p.exe for p in found] == ["/usr/local/bin/sleep"]
    helper = found[0]
    # a busybox shell is the same /bin/busybox as the entrypoint's sleep, and another program
    _exec(docker_engine, container, "sh", "-c", "sleep 300; true", detach=True)

    def shells() -> list[drift.ContainerProcess]:
        # The shell forks before it execs sleep, and for that moment the child is an "sh" too: wait
        # for the shell whose child has become the sleep applet, so the forked copy is not taken.
        procs = drift.container_processes(PROC, pid)
        sleeping_parents = {p.ppid for p in procs if p.applet == "sleep" and p.pid != pid}
        return [p for p in drifting() if p.applet == "sh" and p.pid in sleeping_parents]

    shell = _wait_for(shells, what="the shell to run")[0]
    assert (shell.exe, shell.program) == ("/bin/busybox", "/bin/busybox\0sh")
    assert [p.applet for p in baseline] == ["sleep"]
    assert helper.start_time == drift.process_start_time(PROC, helper.pid)
    # reported processes are not reported again (keyed by pid and start time)
    assert (
        drift.detect_process_drift(
            drift.container_processes(PROC, pid), allowed, {helper.key, shell.key}, root=root
        )
        == []
    )
    # a declared probe command running the same program is not drift
    with_probe = drift.allowed_programs(
        root,
        terminals=["/bin/sleep"],
        declared_commands=[["/usr/local/bin/sleep", "1"], ["/bin/sh", "-c", "true"]],
    )
    assert drift.detect_process_drift(drift.container_processes(PROC, pid), with_probe, root=root) == []

    event = drift.process_drift_event(ctx, found, when=datetime.now(UTC))
    assert event.kind is EventKind.DRIFT and event.event_id == event.compute_id()
    assert event.process is not None and event.process.pid == helper.pid
    assert event.delta is not None and event.delta.changed_files == ["/usr/local/bin/sleep"]
    assert event.delta.baseline_image_digest == info.image_digest
    assert event.workload.container_id == f"docker://{container.id}"
    assert any(e.signal == "drift.process" and "exe=/usr/local/bin/sleep" in e.value for e in event.evidence)

    new_files = drift.detect_filesystem_drift(root, info.image_created, upper=host, upper_dir=upper_dir)
    assert [f.path for f in new_files] == ["/usr/local/bin/sleep"]
    busybox_sha = __import__("hashlib").sha256(root.read_bytes("/bin/busybox", 10 << 20)).hexdigest()
    assert new_files[0].sha256 == busybox_sha
    if upper_dir is not None:  # overlay2 storage: confirmed on the container's upper layer
        assert new_files[0].on_upper_layer is True
    fs_event = drift.filesystem_drift_event(
        ctx, new_files, when=datetime.now(UTC), since=info.image_created, since_source="imageCreated"
    )
    assert fs_event.delta is not None and fs_event.delta.new_binaries is not None
    assert fs_event.delta.new_binaries[0].sha256 == busybox_sha
    assert (
        drift.detect_filesystem_drift(
            root, info.image_created, upper=host, upper_dir=upper_dir, reported={new_files[0].key}
        )
        == []
    )


async def test_listener_on_undeclared_port_is_network_drift(
    docker_engine: devstack.DockerEngine, running: tuple[Any, int]
) -> None:
    container, pid = running
    assert not drift.shares_host_network(PROC, pid)
    assert drift.listening_sockets(PROC, pid) == []
    _exec(docker_engine, container, "nc", "-l", "-p", "8081", detach=True)
    _exec(docker_engine, container, "nc", "-l", "-p", "8080", detach=True)
    listeners = _wait_for(
        lambda: (ls := drift.listening_sockets(PROC, pid)) and len(ls) >= 2 and ls, what="nc to listen"
    )
    assert {x.port for x in listeners} == {8080, 8081}
    found = drift.detect_network_drift(listeners, allowed_ports={8080})
    assert [x.port for x in found] == [8081]
    assert drift.detect_network_drift(listeners, allowed_ports={8080}, reported={found[0].key}) == []
    info = await _inspect(docker_engine, container.id)
    assert info is not None
    event = drift.network_drift_event(
        context_for(info, tenant="t", node="n"), found, when=datetime.now(UTC), pid=pid
    )
    assert any(":8081 listening" in e.value for e in event.evidence)
