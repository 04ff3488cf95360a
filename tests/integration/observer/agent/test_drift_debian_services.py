"""Drift on real Debian-packaged services (issue 22): quiet under normal load, every scripted attack caught.

Images built here from Debian packages (``tests/harness/drift_debian.py``: the debootstrapped base the
Zastava image is built on, plus ``apt-get install`` of nginx, PostgreSQL 15, redis, cron, supervisor,
busybox): nginx behind an official-style entrypoint with a HEALTHCHECK, PostgreSQL whose official-style
entrypoint steps down with ``setpriv``, runs ``initdb`` and an init script (``psql``) while it is pid 1, redis
started through ``setpriv``, Debian ``cron`` with two jobs, ``supervisord`` with two programs.

The agent runs as deployed on a node: proc connector (``execSource: connector``), network drift on, library
drift on against the real reference backend (in-process ASGI, SQLite store) whose catalog holds, per image,
an SBOM of its Debian packages' shared objects as dpkg lists them (``/lib/x86_64-linux-gnu/libc.so.6``: the
processes map ``/usr/lib/…`` on this usr-merged system). The SBOM is written here from the image's dpkg
database, standing in for the scanner that would upload it.

Normal load from the host inside each container's network namespace: HTTP, SQL, Redis commands; the
services' own work (cron job runs, supervisor's worker loop, health checks, PostgreSQL's workers and its
``/dev/shm/PostgreSQL.*`` and SysV segments). Then the attacks, each reported with the right kind: ``docker
exec`` of a shell and of ``redis-cli`` (EXEC); PostgreSQL made to run a shell by SQL (``COPY … TO PROGRAM``),
a binary copied in with a 2001 mtime and run by it for 50 ms and for ~1 ms (process and filesystem DRIFT),
``busybox sh`` opening a listener on a new port, a library not in the SBOM preloaded into a program it runs.
The figures are printed for the benchmark (``bench/bench_drift.py`` runs the same images and attacks).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import devstack
from tests.harness.agent_run import running_agent
from tests.harness.drift_debian import (
    build_debian_services,
    catalog_posture,
    http_get,
    pg_query,
    redis_command,
)
from tests.harness.real import start_real
from tests.unit.observer.agent.standins import Collector
from zastava.contracts import EventKind, RuntimeEvent
from zastava.observer.agent import ObserverAgent
from zastava.observer.engines.docker import DockerEngineClient
from zastava.observer.execdrift import _init_program
from zastava.observer.ports import entrytrace_view, tracer_from_function
from zastava.observer.posture_client import BackendPosture
from zastava.observer.wiring import AgentSettings

QUIET = 4.0
#: the first test of a session pays for the images: debootstrap (~75 s, shared with the chart test) and
#: apt-get install (~30 s); then ~90 s of run, most of it waiting for cron's minute
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def debian_images(docker_engine: devstack.DockerEngine) -> dict[str, str]:
    return start_real(lambda: build_debian_services(docker_engine))


@pytest.fixture
async def backend(
    tmp_path: Path, docker_engine: devstack.DockerEngine, debian_images: dict[str, str]
) -> AsyncIterator[BackendPosture]:
    posture, client = await catalog_posture(docker_engine, debian_images, tmp_path / "b.db")
    try:
        yield posture
    finally:
        await client.aclose()


@pytest.fixture
async def agent(
    docker_engine: devstack.DockerEngine, backend: BackendPosture
) -> AsyncIterator[tuple[ObserverAgent, Collector]]:
    collector = Collector()
    engine = DockerEngineClient(docker_engine.host)
    settings = AgentSettings(
        tenant="t",
        node="n",
        drift_interval=0.5,
        drift_network=True,
        exec_source="connector",
        quiet_window=QUIET,
    )
    agent = ObserverAgent(
        engine,
        collector,
        settings,
        tracer=tracer_from_function(entrytrace_view, max_depth=48),
        posture=backend,
    )
    try:
        async with running_agent(agent):
            yield agent, collector
    finally:
        await engine.aclose()


@pytest.fixture
def containers(
    docker_engine: devstack.DockerEngine, debian_images: dict[str, str], agent: Any
) -> Iterator[dict[str, Any]]:
    client = docker_engine.client()
    started: dict[str, Any] = {}
    try:
        for name, tag in debian_images.items():
            started[name] = client.containers.run(tag, detach=True, network_mode="none", name=f"drift-{name}")
        yield started
    finally:
        for container in started.values():
            with contextlib.suppress(Exception):
                container.remove(force=True)


def _pid(container: Any) -> int:
    container.reload()
    return int(container.attrs["State"]["Pid"])


def _cid(e: RuntimeEvent) -> str:
    return e.workload.container_id.split("://", 1)[-1]


def _values(event: RuntimeEvent, signal: str) -> list[str]:
    return [e.value for e in event.evidence if e.signal == signal]


def _program(event: RuntimeEvent) -> str:
    values = _values(event, "drift.process") + _values(event, "exec.entered")
    return values[0].split("program=", 1)[1] if values else ""


def _describe(e: RuntimeEvent) -> tuple[str, str, list[str]]:
    return (e.kind.value, _program(e), [f"{x.signal}={x.value}"[:200] for x in e.evidence])


async def _until(what: str, check: Callable[[], Any], timeout: float) -> Any:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        await asyncio.sleep(0.3)


async def test_debian_services_quiet_and_every_attack_caught(
    docker_engine: devstack.DockerEngine,
    agent: tuple[ObserverAgent, Collector],
    containers: dict[str, Any],
) -> None:
    agent_, collector = agent
    assert agent_.exec_drift is not None, "the proc connector must be in use (root, CAP_NET_ADMIN)"
    ids = {c.id: name for name, c in containers.items()}

    def ours(e: RuntimeEvent) -> str | None:
        return ids.get(_cid(e)) if e.kind in (EventKind.DRIFT, EventKind.EXEC) else None

    for container in containers.values():
        await collector.wait_for(
            lambda e, c=container: e.kind is EventKind.CONTAINER_START and _cid(e) == c.id, timeout=30
        )
    pids = {name: await asyncio.to_thread(_pid, c) for name, c in containers.items()}
    root = {name: Path(f"/proc/{pid}/root") for name, pid in pids.items()}

    # ------------------------------------------------------------------ normal load: nothing reported
    started = time.monotonic()
    await _until("nginx serving", lambda: http_get(pids["nginx"], "/").startswith(b"ok from"), 30)
    await _until("postgres initialised", lambda: pg_query(pids["postgres"], "SELECT count(*) FROM items"), 60)
    await _until("redis answering", lambda: b"+PONG" in redis_command(pids["redis"], "PING"), 30)
    await _until("supervisor's worker", lambda: (root["supervisor"] / "tmp/worker").exists(), 30)
    requests = 0
    # cron runs its jobs at the next minute: load the others until both jobs have run once
    while (
        not ((root["cron"] / "tmp/heartbeat").exists() and (root["cron"] / "tmp/rotated").exists())
        or time.monotonic() - started < 10
    ):
        assert time.monotonic() - started < 90, "cron never ran its two jobs"
        assert (await asyncio.to_thread(http_get, pids["nginx"], "/")).startswith(b"ok from")
        assert await asyncio.to_thread(
            pg_query, pids["postgres"], f"INSERT INTO items (name) VALUES ('r{requests}') RETURNING id"
        )
        reply = await asyncio.to_thread(
            redis_command, pids["redis"], f"SET k{requests} v", "INCR hits", "BGSAVE"
        )
        assert b"+OK" in reply, reply
        requests += 1
        await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)  # a last drift pass over the maps and sockets
    health = await asyncio.to_thread(
        lambda: containers["nginx"].client.api.inspect_container(containers["nginx"].id)["State"]["Health"]
    )
    assert health.get("Status") == "healthy", health
    watched = {w.container_id for w in agent_.exec_drift.watched.values()}
    assert set(ids) <= watched
    # every init has reached its final program (else all it runs counts as start-up: attacks would pass)
    starting = {
        ids[w.container_id]: _init_program("/proc", w.init)
        for w in agent_.exec_drift.watched.values()
        if w.container_id in ids and not w.settled and _init_program("/proc", w.init) not in w.baseline.finals
    }
    assert not starting, starting
    normal = [e for e in collector.events if ours(e)]
    source = agent_.exec_drift.source
    judged = sum(
        w.findings for w in agent_.exec_drift.watched.values()
    )  # only findings counted per container
    print(
        f"\nDEBIAN-NORMAL requests={requests} load_s={time.monotonic() - started:.0f} "
        f"execs_read={source.records if source else 0} findings={judged} events={len(normal)}"
    )
    for e in normal:
        print("FP", ids[_cid(e)], *_describe(e))
    assert normal == [], [(ids[_cid(e)], *_describe(e)) for e in normal]

    # --------------------------------------------------------------------------------- the attacks
    caught: dict[str, RuntimeEvent] = {}

    async def expect(name: str, service: str, predicate: Callable[[RuntimeEvent], bool]) -> RuntimeEvent:
        try:
            event = await collector.wait_for(lambda e: ours(e) == service and predicate(e), timeout=10)
        except TimeoutError:
            recent = [(ids.get(_cid(e)), *_describe(e)) for e in collector.events[-10:]]
            raise AssertionError(f"{name}: not reported; last events {recent}") from None
        caught[name] = event
        return event

    async def expect_once(
        name: str,
        tries: int,
        attempt: Callable[[int], Awaitable[None]],
        predicate: Callable[[RuntimeEvent, int], bool],
    ) -> None:
        """An attack whose processes live ~1–2 ms, run up to ``tries`` times: one run must be reported (the
        reader misses such a run 0–3 times in 10 under load; bench_drift counts every run)."""
        for n in range(tries):
            mark = len(collector.events)
            await attempt(n)
            with contextlib.suppress(AssertionError):
                await expect(
                    name,
                    "postgres",
                    lambda e, n=n, mark=mark: predicate(e, n) and collector.events.index(e) >= mark,
                )
                return
        raise AssertionError(f"{name}: not reported in {tries} runs")

    pg = containers["postgres"]
    # 1. docker exec shell (bash) in postgres: EXEC
    await asyncio.to_thread(docker_engine.docker, "exec", pg.id, "bash", "-c", "id > /dev/null")
    await expect("docker exec shell", "postgres", lambda e: e.kind is EventKind.EXEC)
    # 2. an operator's short docker exec (redis-cli, ~5 ms): EXEC, not DRIFT
    await asyncio.to_thread(docker_engine.docker, "exec", containers["redis"].id, "redis-cli", "ping")
    await expect("docker exec redis-cli", "redis", lambda e: e.kind is EventKind.EXEC)

    # 3. the database runs a shell (COPY … TO PROGRAM: SQL injection to command execution). The shell and its
    # `id` live ~2 ms: like the ~1 ms binary below, the reader can miss them under load (bench_drift
    # pg-shell-by-service 9–10/10; one targeted suite run in 4 missed its single run); up to three runs,
    # at least one must be reported.
    await expect_once(
        "shell spawned by postgres",
        3,
        lambda n: asyncio.to_thread(
            pg_query, pids["postgres"], f"COPY (SELECT {n}) TO PROGRAM 'id > /dev/null; true'"
        ),
        lambda e, n: e.kind is EventKind.DRIFT and _program(e).startswith(("/usr/bin/dash", "comm:sh")),
    )
    # 4+5. a binary copied in with an old mtime (2001), run by the database for 50 ms and for ~1 ms
    with tempfile.TemporaryDirectory() as tmp:
        dropped = Path(tmp) / "kminer"
        shutil.copy("/usr/bin/sleep", dropped)  # coreutils, linked against the container's own libc
        os.utime(dropped, (1e9, 1e9))
        await asyncio.to_thread(
            docker_engine.docker, "cp", "-a", str(dropped), f"{pg.id}:/usr/local/bin/kminer"
        )
    await asyncio.to_thread(
        pg_query, pids["postgres"], "COPY (SELECT 1) TO PROGRAM 'exec /usr/local/bin/kminer 0.05'"
    )
    await expect(
        "dropped binary, 50 ms",
        "postgres",
        lambda e: e.kind is EventKind.DRIFT and "kminer" in _program(e),
    )

    # ~1 ms: read when the reader gets to it before it is reaped — 7–8 in 10 in bench_drift on this
    # loaded 2-core machine (pg-dropped-1ms; nothing of a process reaped that fast may be left to read, and
    # no engine event covers what a service runs). Up to five runs, each under its own name (so no quiet
    # window joins them); at least one must be reported.
    async def run_dropped(n: int) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy("/usr/bin/sleep", Path(tmp) / f"kminer{n}")
            await asyncio.to_thread(
                docker_engine.docker, "cp", f"{tmp}/kminer{n}", f"{pg.id}:/usr/local/bin/kminer{n}"
            )
        await asyncio.to_thread(
            pg_query, pids["postgres"], f"COPY (SELECT 1) TO PROGRAM 'exec /usr/local/bin/kminer{n} 0'"
        )

    await expect_once(
        "dropped binary, ~1 ms",
        5,
        run_dropped,
        lambda e, n: e.kind is EventKind.DRIFT and f"kminer{n}" in _program(e),
    )
    fs = await expect(
        "binary with an old mtime in the upper layer",
        "postgres",
        lambda e: any(v.startswith("/usr/local/bin/kminer ") for v in _values(e, "drift.filesystem")),
    )
    assert "upperLayer=yes" in _values(fs, "drift.filesystem")[0]
    # 6. busybox sh (the Debian busybox's applet) run by the database, opening a listener on a new port
    await asyncio.to_thread(
        pg_query,
        pids["postgres"],
        "COPY (SELECT 1) TO PROGRAM "
        "'busybox sh -c \"busybox nc -l -p 4444 </dev/null >/dev/null 2>&1 & sleep 0.1; exit 0\"'",
    )
    # the applet, or (the shell reaped before its argv was read: the machine is loaded) busybox by its exe
    await expect(
        "busybox sh",
        "postgres",
        lambda e: (
            e.kind is EventKind.DRIFT
            and ("applet=sh" in _program(e) or _program(e).startswith("/usr/bin/busybox (exited"))
        ),
    )
    await expect(
        "listener on a new port",
        "postgres",
        lambda e: any(":4444 listening" in v for v in _values(e, "drift.network")),
    )
    # 7. a library copied in and preloaded into a program the database runs: library drift (the catalog's
    # usage view is in use: nothing else of the images' libraries was ever reported)
    with tempfile.TemporaryDirectory() as tmp:
        hook = Path(tmp) / "libhook.so"
        shutil.copy("/lib/x86_64-linux-gnu/libz.so.1", hook)  # follows the link: the real object
        await asyncio.to_thread(docker_engine.docker, "cp", str(hook), f"{pg.id}:/tmp/libhook.so")
    await asyncio.to_thread(
        pg_query,
        pids["postgres"],
        "COPY (SELECT 1) TO PROGRAM 'LD_PRELOAD=/tmp/libhook.so sleep 5 >/dev/null 2>&1 &'",
    )
    await expect(
        "preloaded library not in the SBOM",
        "postgres",
        lambda e: any("/tmp/libhook.so not in usage SBOM" in v for v in _values(e, "drift.library")),
    )
    # nothing but the attacks: the exposed ports (80, 5432, 6379) and the images' own libraries (dpkg's
    # /lib/x86_64-linux-gnu/… mapped as /usr/lib/…, /dev/shm/PostgreSQL.*, SysV segments) never reported
    network = [v for e in collector.events if ours(e) for v in _values(e, "drift.network")]
    assert all(":4444 " in v for v in network), network
    libraries = [v for e in collector.events if ours(e) for v in _values(e, "drift.library")]
    assert all("/tmp/libhook.so " in v for v in libraries), libraries
    others = [
        (ids[_cid(e)], *_describe(e))
        for e in collector.events
        if ours(e) and ours(e) not in ("postgres", "redis")
    ]
    assert others == [], others
    print(f"\nDEBIAN-SERVICES false_positives=0 attacks={len(caught)}/9 caught: " + "; ".join(caught))
    assert len(caught) == 9
