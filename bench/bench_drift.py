"""Drift detection on real services (issue 22): false positives, attacks caught, observer CPU per exec, RSS.

A private Docker engine runs the three services of ``tests/harness/drift_services.py`` (a shell loop, a
job runner, a web server with a start-up script and a HEALTHCHECK). The agent runs in this process, twice on
the same engine and load: with the proc connector (``execSource: connector``) and with the baseline of the
same run, /proc polling every 1 s (``execSource: poll``). Each run: ``load_s`` seconds of normal load (the
services, HTTP requests into the web container's network namespace from the host, health checks), then
scripted attacks, each repeated ``tries`` times:

* ``exec-1ms`` — ``docker exec`` of busybox ``true`` (lives ~1 ms);
* ``exec-50ms`` — ``docker exec`` of busybox ``sleep 0.05``;
* ``shell-by-service`` — a request to the web server's CGI, which runs a shell (and ``id``, ``nc``): caught
  when a DRIFT names the shell or what it runs;
* ``dropped-binary`` — a binary copied in with ``docker cp`` and run for 50 ms by the job runner.

Measured: false positives (DRIFT/EXEC events during normal load) per exec judged, attacks caught (an event
of the right kind naming it), CPU of the reader thread per exec on the node (the connector's cost: every exec
on the host is read up to its pid namespace), the agent process's CPU per second of load, and its RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(engine: Any, images: dict[str, str], mode: str, load_s: float, tries: int) -> dict[str, Any]:
    from tests.harness.drift_services import http_get
    from tests.unit.observer.agent.standins import Collector

    from zastava.contracts import EventKind, RuntimeEvent
    from zastava.observer.agent import ObserverAgent
    from zastava.observer.engines.docker import DockerEngineClient
    from zastava.observer.ports import entrytrace_view, tracer_from_function
    from zastava.observer.wiring import AgentSettings

    collector = Collector()
    client = DockerEngineClient(engine.host)
    settings = AgentSettings(
        tenant="bench",
        node="bench",
        drift_interval=1.0,
        drift_network=True,
        exec_source=mode,
        quiet_window=0.0,  # every finding reported: what is counted is what is caught
    )
    agent = ObserverAgent(
        client, collector, settings, tracer=tracer_from_function(entrytrace_view, max_depth=48)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    docker = engine.client()
    containers = {
        name: docker.containers.run(tag, detach=True, network_mode="none") for name, tag in images.items()
    }
    out: dict[str, Any] = {"mode": mode}
    try:
        ids = {c.id: name for name, c in containers.items()}

        def ours(e: RuntimeEvent) -> str | None:
            return (
                ids.get(e.workload.container_id.split("://", 1)[1])
                if e.kind in (EventKind.DRIFT, EventKind.EXEC)
                else None
            )

        for c in containers.values():
            cid = f"docker://{c.id}"
            await collector.wait_for(
                lambda e, cid=cid: e.kind is EventKind.CONTAINER_START and e.workload.container_id == cid, 20
            )
        web = containers["web"]
        web.reload()
        web_pid = int(web.attrs["State"]["Pid"])
        deadline = time.monotonic() + 20
        while await asyncio.to_thread(http_get, web_pid, "/index.html") != b"ok\n":
            assert time.monotonic() < deadline, "httpd never served"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # start-up over
        before = len(collector.events)
        source = agent.exec_drift.source if agent.exec_drift is not None else None
        judged0 = source.records if source else 0
        node0 = source.execs if source else 0
        busy0 = source.busy_seconds if source else 0.0
        cpu0, t0 = _cpu(), time.monotonic()
        requests = 0
        while time.monotonic() - t0 < load_s:
            await asyncio.to_thread(http_get, web_pid, "/index.html")
            requests += 1
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - t0
        out["cpu_per_s"] = (_cpu() - cpu0) / elapsed
        out["requests"] = requests
        out["fp"] = [e for e in collector.events[before:] if ours(e)]
        if source is not None:
            out["judged"] = source.records - judged0
            out["node_execs"] = source.execs - node0
            out["reader_us_per_exec"] = (source.busy_seconds - busy0) / max(1, source.execs - node0) * 1e6
            out["dropped"] = dict(source.dropped)
            out["unidentified"] = agent.exec_drift.unidentified if agent.exec_drift else 0
        else:  # polling: judged processes are not counted per exec; the node's execs are the same load
            out["judged"] = None

        async def caught(name: str, container: str, kind: EventKind, needle: str, act: Any) -> int:
            hits = 0
            for _ in range(tries):
                mark = len(collector.events)
                await act()
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline:
                    new = [e for e in collector.events[mark:] if ours(e) == container and e.kind is kind]
                    if any(needle in str(e.evidence) for e in new):
                        hits += 1
                        break
                    await asyncio.sleep(0.1)
            return hits

        def dexec(container: str, *argv: str) -> Any:
            return lambda: asyncio.to_thread(engine.docker, "exec", containers[container].id, *argv)

        attacks: dict[str, int] = {}
        attacks["exec-1ms"] = await caught(
            "exec-1ms", "loop", EventKind.EXEC, "", dexec("loop", "/bin/busybox", "true")
        )
        attacks["exec-50ms"] = await caught(
            "exec-50ms", "loop", EventKind.EXEC, "", dexec("loop", "/bin/busybox", "sleep", "0.05")
        )
        attacks["shell-by-service"] = await caught(
            "shell-by-service",
            "web",
            EventKind.DRIFT,
            "",  # the shell, or the id/nc it runs when the shell itself was read too late
            lambda: asyncio.to_thread(http_get, web_pid, "/cgi-bin/run"),
        )
        jobs = containers["jobs"].id
        with tempfile.TemporaryDirectory() as tmp:
            n = 0

            async def drop() -> None:
                nonlocal n
                n += 1
                directory = Path(tmp) / f"d{n}"
                directory.mkdir()
                binary = directory / "sleep"  # busybox runs the applet its name says
                shutil.copy(shutil.which("busybox") or "/bin/busybox", binary)
                job = Path(tmp) / "report.sh"
                job.write_bytes(f"#!/bin/sh\n/tmp/d{n}/sleep 0.05\n".encode())
                job.chmod(0o755)
                await asyncio.to_thread(engine.docker, "cp", str(directory), f"{jobs}:/tmp/d{n}")
                await asyncio.to_thread(engine.docker, "cp", str(job), f"{jobs}:/jobs/report.sh")

            attacks["dropped-binary"] = await caught(
                "dropped-binary", "jobs", EventKind.DRIFT, "/tmp/d", drop
            )
        out["attacks"] = attacks
        import psutil

        out["rss_mib"] = psutil.Process().memory_info().rss / 2**20
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
        await client.aclose()
        for c in containers.values():
            with contextlib.suppress(Exception):
                c.remove(force=True)
    return out


def main(quick: bool = False) -> list[str]:
    from tests.harness import devstack
    from tests.harness.drift_services import build_service_images

    load_s, tries = (8.0, 3) if quick else (30.0, 10)
    engine = devstack.DockerEngine().start()
    lines: list[str] = []
    try:
        images = build_service_images(engine)
        results = [asyncio.run(_run(engine, images, mode, load_s, tries)) for mode in ("connector", "poll")]
        for r in results:
            judged = r["judged"]
            fp = len(r["fp"])
            rate = f"{fp}/{judged} execs judged ({100 * fp / judged:.2f}%)" if judged else f"{fp} events"
            caught = ", ".join(f"{k} {v}/{tries}" for k, v in r["attacks"].items())
            total = sum(r["attacks"].values())
            lines.append(
                f"{r['mode']:9s}: false positives {rate} over {load_s:.0f}s of load "
                f"({r['requests']} requests); "
                f"attacks caught {total}/{tries * len(r['attacks'])}: {caught}"
            )
            extra = f"agent CPU {r['cpu_per_s'] * 1000:.1f} ms/s of load; RSS {r['rss_mib']:.1f} MiB"
            if judged is not None:
                extra += (
                    f"; reader {r['reader_us_per_exec']:.1f} µs CPU per exec on the node "
                    f"({r['node_execs']} node execs, {judged} in watched containers); "
                    f"dropped {r['dropped']}; unidentified {r['unidentified']}"
                )
            lines.append(f"           {extra}")
        c, p = results
        if p["cpu_per_s"]:
            lines.append(f"CPU ratio connector/poll: {c['cpu_per_s'] / p['cpu_per_s']:.2f}x")
        for r in results:
            for e in r["fp"][:5]:
                lines.append(f"  FP ({r['mode']}): {e.kind.value} {[x.value for x in e.evidence][:2]}")
    finally:
        engine.stop()
        engine.cleanup()
    return lines
