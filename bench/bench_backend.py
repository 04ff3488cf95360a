"""Reference backend: sustained ingest over HTTP and /policy/runtime latency, on SQLite and PostgreSQL.

For each store a real ``zastava backend serve`` process (uvicorn, one worker) is started; realistic
CONTAINER_START events (4 loaded libraries, an EntryTrace, a catalogued image with an SBOM so correlation
and usedByEntrypoint run) are sent as gzip ND-JSON batches of 500 by 4 concurrent clients. Baseline, same run:
the raw bulk insert of the same rows (``executemany`` on SQLite, ``COPY`` on PostgreSQL) into a fresh
database, without HTTP, parsing or validation. Then ``/policy/runtime`` p50/p95 with a warm store (2 images).
PostgreSQL is started with ``tests.harness.devstack.PostgresServer`` and stopped by the benchmark.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from tests.harness.devstack import PostgresServer, free_port

from bench.common import ms, pct
from zastava.backend.catalog import CatalogPut, build_record
from zastava.backend.fastpath import fast_runtime_line
from zastava.backend.ingest import Ingestor, split_envelopes
from zastava.backend.store import EventRow, Store
from zastava.backend.store.bulk import insert_events
from zastava.contracts import LoadedLib, parse_runtime_envelope, runtime_envelope_wire
from zastava.contracts.examples import example_runtime_event

BATCH = 500
CONCURRENCY = 4
TENANT = "tenant-01"
LIBS = [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    "/usr/lib/x86_64-linux-gnu/libz.so.1",
]
IMAGES = ["sha256:" + hashlib.sha256(f"image-{i}".encode()).hexdigest() for i in range(8)]
CONFIG = """
zastava:
  backendServer:
    tenantRate: {eventsPerSecond: 1000000000, burst: 1000000000}
    nodeRate: {eventsPerSecond: 1000000000, burst: 1000000000}
    maxEventsPerRequest: 1000
"""


def _events(count: int, seed: str) -> list[dict[str, object]]:
    base = example_runtime_event()
    libs = [
        LoadedLib(path=p, inode=100 + i, sha256=hashlib.sha256(p.encode()).hexdigest())
        for i, p in enumerate(LIBS)
    ]
    out = []
    start = datetime(2025, 10, 17, tzinfo=UTC)
    for i in range(count):
        image = IMAGES[i % len(IMAGES)]
        event = base.model_copy(
            update={
                "when": start + timedelta(milliseconds=i),
                "node": f"node-{i % 50}",
                "workload": base.workload.model_copy(
                    update={
                        "pod": f"api-{seed}-{i}",
                        "container_id": f"containerd://{seed}{i:060x}"[:77],
                        "image_ref": f"ghcr.io/acme/app@{image}",
                    }
                ),
                "loaded_libs": libs,
            }
        ).with_computed_id()
        out.append(runtime_envelope_wire(event))
    return out


def _sbom() -> dict[str, object]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "components": [
            {"bom-ref": f"c{i}", "name": Path(p).name, "evidence": {"occurrences": [{"location": p}]}}
            for i, p in enumerate(LIBS)
        ]
        + [
            {"bom-ref": f"x{i}", "name": f"pkg{i}", "hashes": [{"alg": "SHA-256", "content": f"{i:064x}"}]}
            for i in range(200)
        ],
    }


def _rows(envelopes: list[dict[str, object]]) -> list[EventRow]:
    rows = []
    for env in envelopes:
        ev: dict = env["event"]  # type: ignore[assignment]
        rows.append(
            EventRow(
                tenant=TENANT,
                event_id=ev["eventId"],
                received_us=1,
                when_us=1,
                kind=ev["kind"],
                node=ev["node"],
                namespace=ev["workload"]["namespace"],
                pod=ev["workload"]["pod"],
                container_id=ev["workload"]["containerId"],
                image=ev["workload"]["imageRef"].split("@")[1],
                image_digest=ev["workload"]["imageRef"].split("@")[1],
                build_id=ev["process"]["buildId"],
                schema_version=env["schemaVersion"],  # type: ignore[arg-type]
                body=orjson.dumps(env).decode(),
                correlation=None,
            )
        )
    return rows


def prepare_rate(url: str, envelopes: list[dict[str, object]], rounds: int = 3) -> tuple[float, float]:
    """In-process ``Ingestor.prepare`` (ND-JSON lines → validated fields → rows, catalog correlation, used
    components) over ``envelopes`` in batches of :data:`BATCH`, best of ``rounds``; and, same run, the fast
    path alone over the same lines (the validation ``prepare`` starts with), best of ``rounds``."""
    store = Store(url)
    try:
        put = CatalogPut.model_validate({"sbom": _sbom(), "signed": True})
        for image in IMAGES:
            store.catalog_put(TENANT, build_record(image, put, 1))
        bodies = [
            b"".join(orjson.dumps(e) + b"\n" for e in envelopes[i : i + BATCH])
            for i in range(0, len(envelopes), BATCH)
        ]
        ingestor = Ingestor(store)
        best = fast = float("inf")
        for _ in range(rounds):
            batches = [split_envelopes(body, BATCH, parse=False) for body in bodies]
            start = time.perf_counter()
            for items in batches:
                ingestor.prepare(TENANT, items, 1)
            best = min(best, time.perf_counter() - start)
            lines = [item.raw for items in batches for item in items]
            start = time.perf_counter()
            for line in lines:
                assert line is not None and fast_runtime_line(line) is not None
            fast = min(fast, time.perf_counter() - start)
    finally:
        store.close()
    return len(envelopes) / best, len(envelopes) / fast


def _raw_insert(url: str, rows: list[EventRow]) -> float:
    store = Store(url)
    try:
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            with store.engine.begin() as conn:
                insert_events(conn, rows[i : i + BATCH])
        elapsed = time.perf_counter() - start
    finally:
        store.close()
    return len(rows) / elapsed


class Server:
    def __init__(self, store_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = workdir / "backend.yaml"
        config.write_text(CONFIG)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")}
        self.log = (workdir / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "zastava",
                "backend",
                "serve",
                "--config",
                str(config),
                "--store",
                store_url,
                "--listen",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "WARNING",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"backend did not start: {(workdir / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def _ingest(base: str, bodies: list[bytes]) -> float:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        queue = list(reversed(bodies))
        accepted = 0

        async def worker() -> None:
            nonlocal accepted
            while queue:
                body = queue.pop()
                r = await client.post(
                    "/api/v1/scanner/runtime/events",
                    content=body,
                    headers={"content-encoding": "gzip", "content-type": "application/x-ndjson"},
                )
                if r.status_code != 200:
                    raise RuntimeError(f"ingest answered {r.status_code}: {r.text[:500]}")
                accepted += r.json()["accepted"]

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    expected = len(bodies) * BATCH
    if accepted != expected:
        raise RuntimeError(f"accepted {accepted} of {expected}")
    return expected / elapsed


def _policy_latency(base: str, requests: int) -> list[float]:
    body = {
        "namespace": "payments",
        "labels": {"app": "api"},
        "images": [f"ghcr.io/acme/app@{IMAGES[0]}", IMAGES[1]],
    }
    samples = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(requests + 50):
            start = time.perf_counter()
            r = client.post("/api/v1/scanner/policy/runtime", json=body)
            elapsed = time.perf_counter() - start
            if r.status_code != 200:
                raise RuntimeError(f"policy answered {r.status_code}")
            if i >= 50:
                samples.append(elapsed)
    return samples


def _run_store(
    label: str, http_url: str, raw_url: str, workdir: Path, batches: int, policy_n: int
) -> list[str]:
    envelopes = _events(batches * BATCH, label)
    bodies = [
        gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in envelopes[i : i + BATCH]), compresslevel=6)
        for i in range(0, len(envelopes), BATCH)
    ]
    raw_rate = _raw_insert(raw_url, _rows(envelopes))
    start = time.perf_counter()
    for env in envelopes:
        parse_runtime_envelope(env)
    validate_rate = len(envelopes) / (time.perf_counter() - start)
    lines = [orjson.dumps(env) for env in envelopes]
    start = time.perf_counter()
    for line in lines:
        if fast_runtime_line(line) is None:
            raise RuntimeError("the ingest fast path declined a valid envelope")
    fast_rate = len(lines) / (time.perf_counter() - start)
    prepare, prepare_fast = prepare_rate(f"sqlite:///{workdir / 'prepare.db'}", envelopes[: 20 * BATCH])
    server = Server(http_url, workdir)
    try:
        with httpx.Client(base_url=server.base) as client:
            for image in IMAGES:
                client.put(
                    f"/api/v1/scanner/catalog/images/{image}", json={"sbom": _sbom(), "signed": True}
                ).raise_for_status()
        # warm-up batch (not counted): compiles the catalog indexes, fills pools
        warm = [gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in _events(BATCH, label + "w")))]
        asyncio.run(_ingest(server.base, warm))
        rate = asyncio.run(_ingest(server.base, bodies))
        latencies = _policy_latency(server.base, policy_n)
    finally:
        server.stop()
    size = sum(len(b) for b in bodies) / len(bodies)
    p50, p95 = ms(pct(latencies, 50)), ms(pct(latencies, 95))
    return [
        f"{label}: ingest {rate:,.0f} events/s over HTTP ({batches} gzip batches of {BATCH}, "
        f"{size / 1024:.0f} KiB each, {CONCURRENCY} clients)",
        f"{label}: raw bulk insert of the same rows {raw_rate:,.0f} rows/s; "
        f"ingest/raw = {rate / raw_rate:.2f}",
        f"{label}: contract validation alone (parse_runtime_envelope, in-process) "
        f"{validate_rate:,.0f} events/s; "
        f"ingest fast path (bytes → fields, one pass) {fast_rate:,.0f} events/s",
        f"{label}: Ingestor.prepare in-process (lines → rows, correlation) {prepare:,.0f} events/s; "
        f"fast path alone, same lines {prepare_fast:,.0f} events/s; "
        f"prepare/fast = {prepare / prepare_fast:.2f}",
        f"{label}: /policy/runtime (2 images, warm) p50 {p50}, p95 {p95} over {len(latencies)} requests",
    ]


def main(quick: bool = False) -> list[str]:
    batches = 8 if quick else 200  # 100,000 events: long enough for the store's checkpoints to count
    policy_n = 200 if quick else 1000
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="zastava-bench-backend-") as tmp:
        root = Path(tmp)
        (root / "sqlite").mkdir()
        lines += _run_store(
            "sqlite",
            f"sqlite:///{root / 'sqlite' / 'http.db'}",
            f"sqlite:///{root / 'sqlite' / 'raw.db'}",
            root / "sqlite",
            batches,
            policy_n,
        )
        pg = PostgresServer().start()
        try:
            (root / "pg").mkdir()
            lines += _run_store(
                "postgresql",
                pg.create_database("bench_http"),
                pg.create_database("bench_raw"),
                root / "pg",
                batches,
                policy_n,
            )
        finally:
            pg.stop()
            pg.cleanup()
    return lines
