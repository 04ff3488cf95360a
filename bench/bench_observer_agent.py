"""Observer agent under container churn on a private Docker engine (needs root; the engine is started here).

``zastava observer run --stdout --engine docker`` runs as a subprocess writing ND-JSON events to stdout: the
full pipeline (inspection with hashing, EntryTrace, drift) without the publisher and backend. Short-lived
containers are started and stopped in rounds; measured: start-to-event latency (``containers.run()`` called →
CONTAINER_START line read) against the baseline of the same run — the engine's own ``start`` event seen by a
bare Docker SDK subscriber — and the agent's RSS/CPU after each round (growth across rounds shows leaks).

The agent serves ``/metrics`` (``--listen``), scraped after each round as Prometheus would; the cost of the
endpoint is the idle RSS of the agent with it against the idle RSS without it (``--listen ''``), same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import median, ms, pct


def _agent(config: Path, listen: str, env: dict[str, str], stdout: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "zastava", "observer", "run", "--stdout", "--engine", "docker"]
    return subprocess.Popen(
        [*argv, "--listen", listen, "-c", str(config)], stdout=stdout, stderr=subprocess.DEVNULL, env=env
    )


def _idle_rss(config: Path, listen: str, env: dict[str, str]) -> float:
    """RSS (MiB) of an agent 4 s after start on an idle engine."""
    import psutil

    agent = _agent(config, listen, env, subprocess.DEVNULL)
    try:
        time.sleep(4.0)
        return float(psutil.Process(agent.pid).memory_info().rss / 2**20)
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def main(quick: bool = False) -> list[str]:
    import psutil
    from tests.harness import devstack

    rounds, per_round = (2, 15) if quick else (5, 100)
    engine = devstack.DockerEngine().start()
    workdir = Path(tempfile.mkdtemp(prefix="zastava-bench-observer-"))
    agent: subprocess.Popen[bytes] | None = None
    try:
        image = "zastava-bench/busybox:1"
        devstack.busybox_image(engine, image)
        config = workdir / "zastava.yaml"
        config.write_text(
            "zastava:\n  runtime:\n    procfs: /proc\n    logging: {level: WARNING}\n"
            f"  observer:\n    nodeName: bench\n    engines: {{dockerHost: '{engine.host}'}}\n"
            "    drift: {intervalSeconds: 1.0}\n"
        )
        env = {**os.environ, "ZASTAVA_CACHE_DIR": str(workdir / "cache")}
        port = devstack.free_port()
        idle_off = _idle_rss(config, "", env)
        idle_on = _idle_rss(config, f"127.0.0.1:{port}", env)
        agent = _agent(config, f"127.0.0.1:{port}", env, subprocess.PIPE)
        seen: dict[str, float] = {}
        engine_seen: dict[str, float] = {}
        lock = threading.Lock()

        def read_agent() -> None:
            assert agent is not None and agent.stdout is not None
            for line in agent.stdout:
                now = time.perf_counter()
                event = json.loads(line)
                if event["kind"] == "CONTAINER_START":
                    with lock:
                        seen[event["workload"]["containerId"].split("://", 1)[1]] = now

        def read_engine() -> None:
            filters = {"type": "container", "event": "start"}
            for raw in engine.client().api.events(decode=True, filters=filters):
                with lock:
                    engine_seen[raw["Actor"]["ID"]] = time.perf_counter()

        threading.Thread(target=read_agent, daemon=True).start()
        threading.Thread(target=read_engine, daemon=True).start()
        time.sleep(2.0)  # agent start-up
        process = psutil.Process(agent.pid)
        lines: list[str] = []
        agent_latency: list[float] = []
        engine_latency: list[float] = []
        rss: list[float] = []
        scrapes: list[float] = []
        counted = 0.0
        client = engine.client()

        def one() -> None:
            started = time.perf_counter()
            container = client.containers.run(
                image, entrypoint=["sleep", "1"], detach=True, network_mode="none"
            )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with lock:
                    if container.id in seen and container.id in engine_seen:
                        agent_latency.append(seen[container.id] - started)
                        engine_latency.append(engine_seen[container.id] - started)
                        break
                time.sleep(0.01)
            container.wait(timeout=30)
            container.remove(force=True)

        cpu_before = process.cpu_times()
        for index in range(rounds):
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda _: one(), range(per_round)))
            time.sleep(1.0)
            started = time.perf_counter()
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            scrapes.append(time.perf_counter() - started)
            counted = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('zastava_runtime_events_total{kind="CONTAINER_START"}')
            )
            rss.append(process.memory_info().rss / 2**20)
            lines.append(f"round {index + 1}: {per_round} containers, agent RSS {rss[-1]:.1f} MiB")
        cpu_after = process.cpu_times()
        total = rounds * per_round
        cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        lines += [
            f"{len(agent_latency)}/{total} CONTAINER_START events observed",
            f"start-to-event (run() → event line): median {ms(median(agent_latency))}, "
            f"p95 {ms(pct(agent_latency, 95))}",
            f"baseline, engine's own start event: median {ms(median(engine_latency))}, "
            f"p95 {ms(pct(engine_latency, 95))}",
            f"agent overhead over the engine event: median "
            f"{ms(median([a - e for a, e in zip(agent_latency, engine_latency, strict=True)]))}; "
            f"ratio agent/engine {median(agent_latency) / median(engine_latency):.2f}x",
            f"agent CPU: {cpu:.2f} s for {total} containers ({cpu / total * 1e3:.1f} ms per container)",
            f"agent RSS: first round {rss[0]:.1f} MiB, last round {rss[-1]:.1f} MiB, max {max(rss):.1f} MiB",
            f"idle agent RSS: {idle_on:.1f} MiB with /metrics served, {idle_off:.1f} MiB without "
            f"(ratio {idle_on / idle_off:.2f}x)",
            f"/metrics scrape after each round: median {ms(median(scrapes))}, max {ms(max(scrapes))}; "
            f"zastava_runtime_events_total{{kind=CONTAINER_START}} = {counted:.0f}",
        ]
        return lines
    finally:
        if agent is not None:
            agent.terminate()
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
        engine.stop()
        engine.cleanup()
