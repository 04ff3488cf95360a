"""Drift detection on real services (issue 22): false positives, attacks caught, observer CPU per exec, RSS.

A private Docker engine runs the three busybox services of ``tests/harness/drift_services.py`` (a shell loop,
a job runner, a web server with a start-up script and a HEALTHCHECK) and the five Debian-packaged services of
``tests/harness/drift_debian.py`` (nginx, PostgreSQL with an init script, redis through ``setpriv``, cron with
two jobs, supervisord), the same images as the test suites. The agent runs in this process, twice on the
same engine and load: with the proc connector (``execSource: connector``) and with the baseline of the same
run, /proc polling every 1 s (``execSource: poll``); library drift against the reference backend's catalog
(the images' dpkg SBOM). Each run: ``load_s`` seconds of normal load, and at least until cron has run its
jobs again (HTTP into both web servers, SQL inserts, Redis commands, all from the host inside the containers'
network namespaces; the services' own work), then scripted attacks, each repeated ``tries`` times:

* ``exec-1ms`` / ``exec-50ms`` — ``docker exec`` of busybox ``true`` (~1 ms) / ``sleep 0.05``;
* ``shell-by-service`` — a request to the web server's CGI, which runs a shell (and ``id``, ``nc``);
* ``dropped-binary`` — a binary copied in with ``docker cp`` and run for 50 ms by the job runner;
* ``pg-shell-by-service`` — SQL ``COPY … TO PROGRAM`` makes PostgreSQL run ``sh -c``;
* ``pg-exec-bash`` / ``redis-exec-cli`` — ``docker exec`` of ``bash -c id`` / ``redis-cli ping`` (~5 ms);
* ``pg-dropped-50ms`` / ``pg-dropped-1ms`` — a binary copied in with an old mtime (2001), run by PostgreSQL
  for 50 ms / ~1 ms;
* ``pg-busybox-sh`` / ``pg-listener-new-port`` — PostgreSQL runs ``busybox sh``, which opens ``nc -l`` on a
  new port.

Measured: false positives (DRIFT/EXEC events during normal load) per exec judged, and as a share of all the
DRIFT/EXEC events of the run; attacks caught (an event of the right kind naming it); CPU of the reader thread
per exec on the node (every exec on the host is read up to its pid namespace), the agent process's CPU per
second of load, and its RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

#: a dropped binary's process (by its path, or by its name when reaped before its exe was read) — not the
#: filesystem finding about the same file, nor the shell that ran it
KMINER = re.compile(r"program=(/usr/local/bin/|comm:)kminer")
#: busybox's sh applet, or busybox by its exe when the shell was reaped before its argv was read
BUSYBOX_SH = re.compile(r"program=/usr/bin/busybox( applet=sh| \(exited)")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(engine: Any, images: dict[str, str], mode: str, load_s: float, tries: int) -> dict[str, Any]:
    from tests.harness.drift_debian import catalog_posture, pg_query, redis_command
    from tests.harness.drift_debian import http_get as http_get_80
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
    db = tempfile.mkdtemp(prefix="zastava-bench-drift-")
    # library drift against the reference backend's catalog (the images' dpkg SBOM)
    posture, http = await catalog_posture(engine, images, Path(db) / "b.db")
    agent = ObserverAgent(
        client,
        collector,
        settings,
        tracer=tracer_from_function(entrytrace_view, max_depth=48),
        posture=posture,
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
        pids = {}
        for name in ("nginx", "postgres", "redis", "cron", "supervisor"):
            containers[name].reload()
            pids[name] = int(containers[name].attrs["State"]["Pid"])
        ready = {
            "nginx": lambda: http_get_80(pids["nginx"], "/").startswith(b"ok from"),
            "postgres": lambda: bool(pg_query(pids["postgres"], "SELECT count(*) FROM items")),
            "redis": lambda: b"+PONG" in redis_command(pids["redis"], "PING"),
        }
        for name, check in ready.items():
            deadline = time.monotonic() + 60
            while not await asyncio.to_thread(check):
                assert time.monotonic() < deadline, f"{name} never answered"
                await asyncio.sleep(0.3)
        await asyncio.sleep(2.0)  # start-up over
        before = len(collector.events)
        source = agent.exec_drift.source if agent.exec_drift is not None else None
        judged0 = source.records if source else 0
        node0 = source.execs if source else 0
        busy0 = source.busy_seconds if source else 0.0
        cpu0, t0 = _cpu(), time.monotonic()
        requests = 0
        cron_root = Path(f"/proc/{pids['cron']}/root/tmp")
        heartbeat = cron_root / "heartbeat"
        first_beat = heartbeat.stat().st_mtime if heartbeat.exists() else 0.0
        # load_s at least, and until cron has run its two jobs once more (they run on the minute)
        while time.monotonic() - t0 < load_s or (
            (heartbeat.stat().st_mtime if heartbeat.exists() else 0.0) <= first_beat
            and time.monotonic() - t0 < 90
        ):
            await asyncio.to_thread(http_get, web_pid, "/index.html")
            await asyncio.to_thread(http_get_80, pids["nginx"], "/")
            await asyncio.to_thread(
                pg_query, pids["postgres"], f"INSERT INTO items (name) VALUES ('b{requests}')"
            )
            await asyncio.to_thread(redis_command, pids["redis"], f"SET k{requests} v", "INCR hits")
            requests += 1
            await asyncio.sleep(0.05)
        out["cron_ran"] = heartbeat.exists() and heartbeat.stat().st_mtime > first_beat
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

        async def caught(
            name: str, container: str, kind: EventKind, needle: str | re.Pattern[str], act: Any
        ) -> int:
            hits = 0
            for _ in range(tries):
                mark = len(collector.events)
                await act()
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline:
                    new = [e for e in collector.events[mark:] if ours(e) == container and e.kind is kind]
                    if any(
                        needle.search(str(e.evidence))
                        if isinstance(needle, re.Pattern)
                        else needle in str(e.evidence)
                        for e in new
                    ):
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
        # the Debian services: a database that runs what SQL tells it (COPY … TO PROGRAM), operators' execs
        pg = containers["postgres"].id

        def sql(statement: str) -> Any:
            return lambda: asyncio.to_thread(pg_query, pids["postgres"], statement)

        attacks["pg-shell-by-service"] = await caught(
            "pg-shell-by-service",
            "postgres",
            EventKind.DRIFT,
            "dash",
            sql("COPY (SELECT 1) TO PROGRAM 'id; true'"),
        )
        attacks["pg-exec-bash"] = await caught(
            "pg-exec-bash", "postgres", EventKind.EXEC, "", dexec("postgres", "bash", "-c", "id")
        )
        attacks["redis-exec-cli"] = await caught(
            "redis-exec-cli", "redis", EventKind.EXEC, "", dexec("redis", "redis-cli", "ping")
        )
        with tempfile.TemporaryDirectory() as tmp:
            m = 0

            async def plant_and_run(seconds: str) -> None:
                nonlocal m
                m += 1
                binary = Path(tmp) / f"kminer{m}"
                shutil.copy("/usr/bin/sleep", binary)
                os.utime(binary, (1e9, 1e9))  # an old mtime: 2001
                await asyncio.to_thread(
                    engine.docker, "cp", "-a", str(binary), f"{pg}:/usr/local/bin/kminer{m}"
                )
                await asyncio.to_thread(
                    pg_query,
                    pids["postgres"],
                    f"COPY (SELECT 1) TO PROGRAM 'exec /usr/local/bin/kminer{m} {seconds}'",
                )

            attacks["pg-dropped-50ms"] = await caught(
                "pg-dropped-50ms",
                "postgres",
                EventKind.DRIFT,
                KMINER,
                lambda: plant_and_run("0.05"),
            )
            attacks["pg-dropped-1ms"] = await caught(
                "pg-dropped-1ms",
                "postgres",
                EventKind.DRIFT,
                KMINER,
                lambda: plant_and_run("0"),
            )
        n_port = 0

        async def busybox_listener() -> None:
            nonlocal n_port
            n_port += 1
            await asyncio.to_thread(
                pg_query,
                pids["postgres"],
                f"COPY (SELECT 1) TO PROGRAM 'busybox sh -c \"busybox nc -l -p {4400 + n_port} "
                "</dev/null >/dev/null 2>&1 & sleep 0.1; exit 0\"'",
            )

        attacks["pg-busybox-sh"] = await caught(
            "pg-busybox-sh", "postgres", EventKind.DRIFT, BUSYBOX_SH, busybox_listener
        )
        attacks["pg-listener-new-port"] = await caught(
            "pg-listener-new-port", "postgres", EventKind.DRIFT, "listening", busybox_listener
        )
        out["attacks"] = attacks
        attack_events = [e for e in collector.events[before:] if ours(e)]
        out["attack_events"] = len(attack_events) - len(out["fp"])
        out["fp_by_service"] = {name: sum(1 for e in out["fp"] if ours(e) == name) for name in containers}
        import psutil

        out["rss_mib"] = psutil.Process().memory_info().rss / 2**20
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
        await client.aclose()
        await http.aclose()
        shutil.rmtree(db, ignore_errors=True)
        for c in containers.values():
            with contextlib.suppress(Exception):
                c.remove(force=True)
    return out


def main(quick: bool = False) -> list[str]:
    from tests.harness import devstack
    from tests.harness.drift_debian import build_debian_services
    from tests.harness.drift_services import build_service_images

    load_s, tries = (8.0, 3) if quick else (65.0, 10)
    engine = devstack.DockerEngine().start()
    lines: list[str] = []
    try:
        started = time.monotonic()
        images = {**build_service_images(engine), **build_debian_services(engine)}
        lines.append(f"images built in {time.monotonic() - started:.0f}s (debootstrap + apt-get + 8 images)")
        results = [asyncio.run(_run(engine, images, mode, load_s, tries)) for mode in ("connector", "poll")]
        for r in results:
            judged = r["judged"]
            fp = len(r["fp"])
            rate = f"{fp}/{judged} execs judged ({100 * fp / judged:.2f}%)" if judged else f"{fp} events"
            events = fp + r["attack_events"]
            rate += (
                f"; {fp} of {events} DRIFT/EXEC events false ({100 * fp / max(1, events):.1f}%)"
                f", by service {r['fp_by_service']}; cron ran in the load: {r['cron_ran']}"
            )
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
