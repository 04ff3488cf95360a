"""Event publisher: events/s through rate limit → disk buffer → batching → gzip → POST, and buffer writes.

The backend is the events test server of ``tests/integration/observer/publisher/events_server.py`` (the
stand-in for the reference backend of issue 5, SQLite store, pydantic validation of every line) running as a
separate process, so the publisher has this process (one core) to itself. Figures:

* end-to-end events/s (wall clock: publish N events, then flush until the backend acknowledged all);
* publisher CPU per event (``time.process_time`` of this process / N) → events/s per core of the publisher;
* baseline in the same run: the same events POSTed one per request through one pooled httpx client
  (no batching, no buffer) — what a naive sink does;
* buffer write throughput: ``DiskBuffer.append`` of ~1 KB envelopes vs raw ``os.write`` of the same bytes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.harness.devstack import free_port
from tests.harness.events import make_event

from zastava.config import ZastavaConfig
from zastava.contracts import (
    RUNTIME_EVENT,
    SCHEMA_VERSIONS_HEADER,
    RuntimeEvent,
    dump_runtime_envelope,
    versions,
)
from zastava.observer.publisher import DiskBuffer, EventPublisher
from zastava.telemetry.metrics import ZastavaMetrics

REPO = Path(__file__).resolve().parents[1]


class _Server:
    def __init__(self, directory: Path, validate: bool = True) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "tests.integration.observer.publisher.events_server"]
        args += ["--port", str(self.port), "--db", str(directory / f"bench-{self.port}.sqlite")]
        if not validate:
            args.append("--no-validate")
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/api/v1/scanner/runtime/events?limit=1", timeout=1)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("events test server did not start") from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _events(count: int, offset: int) -> list[RuntimeEvent]:
    return [make_event(offset + i, node=f"node-{i % 4}") for i in range(count)]


async def _pipeline(url: str, events: list[RuntimeEvent], directory: Path, gzip: bool) -> tuple[float, float]:
    config = ZastavaConfig(
        backend={"baseAddress": url, "allowInsecureHttp": True, "requestTimeoutSeconds": 30},
        publisher={"batchMaxEvents": 1000, "flushIntervalSeconds": 0.2, "gzip": gzip},
    )
    publisher = EventPublisher(config, buffer_dir=directory, metrics=ZastavaMetrics(), rate_limit=False)
    await publisher.start()
    wall, cpu = time.perf_counter(), time.process_time()
    for index, event in enumerate(events):
        await publisher.publish(event)
        if index % 200 == 0:
            await asyncio.sleep(0)  # let the sender interleave, as an agent's event loop would
    assert await publisher.flush(300), "not everything delivered"
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert publisher.delivered_total == len(events)
    await publisher.aclose()
    return wall, cpu


async def _naive(url: str, events: list[RuntimeEvent]) -> tuple[float, float]:
    header = versions.header_value(RUNTIME_EVENT)
    async with httpx.AsyncClient(timeout=30) as client:
        wall, cpu = time.perf_counter(), time.process_time()
        for event in events:
            response = await client.post(
                url + "/api/v1/scanner/runtime/events",
                content=dump_runtime_envelope(event) + b"\n",
                headers={"Content-Type": "application/x-ndjson", SCHEMA_VERSIONS_HEADER: header},
            )
            assert response.status_code == 202
        return time.perf_counter() - wall, time.process_time() - cpu


def _buffer_writes(directory: Path, lines: list[bytes]) -> tuple[float, float]:
    buffer = DiskBuffer(directory / "buf", 1 << 31).open()
    start = time.perf_counter()
    for index, line in enumerate(lines):
        buffer.append(line, index)
    buffered = time.perf_counter() - start
    buffer.close()
    fd = os.open(directory / "raw.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    start = time.perf_counter()
    for line in lines:
        os.write(fd, line)
    raw = time.perf_counter() - start
    os.close(fd)
    return buffered, raw


def main(quick: bool = False) -> list[str]:
    count = 5_000 if quick else 50_000
    naive_count = 500 if quick else 3_000
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="zastava-bench-publisher-") as tmp:
        directory = Path(tmp)
        lines = [dump_runtime_envelope(e) for e in _events(count, 0)]
        size = sum(len(line) for line in lines) / len(lines)
        buffered, raw = _buffer_writes(directory, lines)
        out.append(f"envelope size {size:.0f} B; {count} events per run")
        out.append(
            f"buffer append: {count / buffered:,.0f} events/s ({count * size / buffered / 1e6:.0f} MB/s); "
            f"raw os.write: {count / raw:,.0f}/s; ratio raw/buffer {buffered / raw:.2f}x"
        )
        for validate in (True, False):
            server = _Server(directory, validate=validate)
            try:
                label = "server validates every line" if validate else "server stores without validation"
                for gzip in (True, False):
                    events = _events(count, (1 + 2 * validate + gzip) * 1_000_000)
                    server_cpu = server.cpu_seconds()
                    wall, cpu = asyncio.run(
                        _pipeline(server.url, events, directory / f"p{validate}{gzip}", gzip)
                    )
                    server_cpu = server.cpu_seconds() - server_cpu
                    out.append(
                        f"pipeline gzip={'on' if gzip else 'off'} ({label}): {count / wall:,.0f} events/s "
                        f"end-to-end; publisher CPU {cpu / count * 1e6:.1f} µs/event = "
                        f"{count / cpu:,.0f} events/s per core; server CPU "
                        f"{server_cpu / count * 1e6:.1f} µs/event"
                    )
                if validate:
                    events = _events(naive_count, 9_000_000)
                    naive_wall, naive_cpu = asyncio.run(_naive(server.url, events))
                    out.append(
                        f"baseline one POST per event ({naive_count} events): "
                        f"{naive_count / naive_wall:,.0f} events/s end-to-end; "
                        f"client CPU {naive_cpu / naive_count * 1e6:.0f} µs/event"
                    )
            finally:
                server.stop()
    return out


if __name__ == "__main__":
    for line in main(quick="--quick" in sys.argv):
        print(line)
