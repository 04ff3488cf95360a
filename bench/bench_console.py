"""Console pages with 10,000 running containers and 1,000,000 stored events (issue 18), SQLite and PostgreSQL.

Seeding goes through the backend's own ingest path in-process (``Ingestor.prepare`` + ``Store.ingest``, the
code behind ``POST /runtime/events``, so the inventory, node and per-minute views are maintained exactly as
in production): 10,000 long-running containers on 50 nodes in 100 namespaces, 480,000 short-lived ones
(start + stop: 960,000 events, so the inventory table also holds 480,000 stopped rows), 30,000
DRIFT/POLICY_VIOLATION events — 1,000,000 events, received over the last 7 days — and 50,000 admission
decisions. Then each page is fetched 20 times (after 3 warm-ups) through the ASGI app with a logged-in session
(``httpx.ASGITransport``: routing, session lookup, queries, template rendering; no socket). Baseline, same
run and same transport: ``GET /healthz``. ``--quick`` seeds a tenth.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.harness.devstack import PostgresServer

from bench.common import ms, pct
from zastava.backend.app import create_app
from zastava.backend.auth import ALL_SCOPES, Principal
from zastava.backend.ingest import Item
from zastava.backend.store import DecisionRow, Store
from zastava.config import BackendServer
from zastava.contracts import runtime_envelope_wire
from zastava.contracts.examples import example_runtime_event

TENANT = "tenant-01"
NODES, NAMESPACES = 50, 100
BATCH = 2000
NOW = 1_800_000_000.0
WEEK_US = 7 * 86400 * 1_000_000


def _template() -> dict[str, Any]:
    return runtime_envelope_wire(example_runtime_event())


def _event(base: dict[str, Any], n: int, kind: str, container: int, when_us: int) -> dict[str, Any]:
    env = orjson.loads(orjson.dumps(base))
    e = env["event"]
    e["eventId"] = "sha256-" + hashlib.sha256(f"{n}".encode()).hexdigest()[:43]
    e["kind"] = kind
    e["tenant"] = TENANT
    e["node"] = f"node-{container % NODES:02d}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when_us / 1e6))
    e["when"] = f"{stamp}.{when_us % 1_000_000:06d}Z"
    w = e["workload"]
    w["namespace"] = f"ns-{container % NAMESPACES:03d}"
    w["pod"] = f"app-{container}"
    w["containerId"] = f"containerd://{container:064x}"
    image = container % 40
    w["imageRef"] = f"ghcr.io/acme/app-{image}@sha256:{hashlib.sha256(str(image).encode()).hexdigest()}"
    w["owner"] = {"kind": "Deployment", "name": f"app-{container % 2000}"}
    if kind != "CONTAINER_START":
        e.pop("process", None)
        e.pop("loadedLibs", None)
    if kind in ("DRIFT", "POLICY_VIOLATION"):
        e["evidence"] = [{"signal": "filesystem.newExecutable", "value": f"/usr/local/bin/tool-{n % 97}"}]
    return env


def _seed(store: Store, scale: int) -> tuple[int, int]:
    from zastava.backend.ingest import Ingestor

    ingestor = Ingestor(store)
    base = _template()
    running = 10_000 // scale
    churned = 480_000 // scale
    drifts = 30_000 // scale
    start_us = int(NOW * 1e6) - WEEK_US
    plan: list[tuple[str, int]] = [("CONTAINER_START", c) for c in range(running)]
    for c in range(running, running + churned):
        plan += [("CONTAINER_START", c), ("CONTAINER_STOP", c)]
    step = max(1, len(plan) // drifts)
    full: list[tuple[str, int]] = []
    for i, item in enumerate(plan):
        full.append(item)
        if i % step == 0 and len(full) < len(plan) + drifts:
            full.append(("DRIFT" if i % 2 else "POLICY_VIOLATION", i % running))
    total = len(full)
    span = WEEK_US // max(1, total)
    for offset in range(0, total, BATCH):
        chunk = full[offset : offset + BATCH]
        now_us = start_us + offset * span
        items = [Item(i, _event(base, offset + i, kind, c, now_us + i)) for i, (kind, c) in enumerate(chunk)]
        store.ingest(ingestor.prepare(TENANT, items, now_us).write)
    decisions = 50_000 // scale
    rows = []
    for i in range(decisions):
        deny = i % 5 == 0
        record = {
            "admissionId": f"uid-{i}",
            "namespace": f"ns-{i % NAMESPACES:03d}",
            "podSpecDigest": "sha256-" + "q" * 43,
            "images": [
                {
                    "name": f"ghcr.io/acme/app-{i % 40}:1",
                    "policyVerdict": "fail" if deny else "pass",
                    "reasons": ["image signature not verified"] if deny else [],
                }
            ],
            "decision": "Deny" if deny else "Allow",
            "ttlSeconds": 300,
            "outcome": "deny" if deny else "allow",
            "pod": f"app-{i}",
        }
        body = orjson.dumps({"schemaVersion": "zastava.admission.decision@v1.1", "decision": record}).decode()
        rows.append(
            DecisionRow(
                tenant=TENANT,
                admission_id=f"uid-{i}",
                namespace=str(record["namespace"]),
                decision=str(record["decision"]),
                pod_spec_digest=str(record["podSpecDigest"]),
                received_us=start_us + i * (WEEK_US // decisions),
                schema_version="zastava.admission.decision@v1.1",
                body=body,
                outcome=str(record["outcome"]),
                pod=str(record["pod"]),
            )
        )
        if len(rows) == 5000:
            store.insert_decisions(rows)
            rows = []
    store.insert_decisions(rows)
    return total, decisions


async def _measure(app: Any, pages: dict[str, str], repeat: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as c:
        login = await c.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
        r = await c.post(
            "/ui/login", data={"nonce": nonce, "credentials": "x"}, headers={"origin": "http://bench"}
        )
        assert r.status_code == 303, r.text
        first = await c.get("/ui/inventory")
        cursor = None
        for _ in range(20):  # a deep page: 20 "next page" hops in
            page = await c.get(f"/ui/inventory?{cursor or ''}")
            match = re.search(r'class="next" href="\?([^"]+)"', page.text)
            if not match:
                break
            cursor = match.group(1).replace("&amp;", "&")
        pages = {**pages, "inventory, 21st page": f"/ui/inventory?{cursor}"}
        ids = re.findall(r'/ui/admission/(\d+)"', (await c.get("/ui/admission")).text)
        pages["admission decision"] = f"/ui/admission/{ids[0]}"
        assert first.status_code == 200
        for name, path in pages.items():
            for _ in range(3):
                assert (await c.get(path)).status_code == 200, path
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                response = await c.get(path)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200, (path, response.status_code)
            out[name] = samples
    return out


PAGES = {
    "healthz (baseline)": "/healthz",
    "inventory": "/ui/inventory",
    "inventory by node": "/ui/inventory?node=node-07",
    "inventory by namespace": "/ui/inventory?namespace=ns-042",
    "inventory by workload": "/ui/inventory?workload=Deployment%2Fapp-42",
    "inventory stopped": "/ui/inventory?state=stopped",
    "drift": "/ui/drift",
    "drift by namespace": "/ui/drift?namespace=ns-042",
    "drift by node, 24h": "/ui/drift?node=node-07&window=24h",
    "drift POLICY_VIOLATION": "/ui/drift?kind=POLICY_VIOLATION",
    "admission": "/ui/admission",
    "admission denied": "/ui/admission?outcome=deny",
    "health": "/ui/health",
}


def _run(label: str, url: str, scale: int, repeat: int) -> list[str]:
    store = Store(url)
    try:
        started = time.perf_counter()
        events, decisions = _seed(store, scale)
        seeded = time.perf_counter() - started
        app = create_app(
            BackendServer.model_validate({"store": "sqlite:///unused.db"}),
            store=store,
            authenticator=None,
            clock=lambda: NOW,
            purge=False,
        )
        results = asyncio.run(_measure(app, PAGES, repeat))
        base = pct(results["healthz (baseline)"], 50)
        lines = [
            f"{label}: seeded {events:,} events, {decisions:,} decisions in {seeded:.0f} s "
            f"({events / seeded:,.0f} events/s through Ingestor.prepare + Store.ingest)"
        ]
        for name, samples in results.items():
            p50, p95 = pct(samples, 50), pct(samples, 95)
            lines.append(
                f"{label:10} {name:28} p50 {ms(p50):>10}  p95 {ms(p95):>10}  ×{p50 / base:6.1f} healthz"
            )
        return lines
    finally:
        store.close()


def main(quick: bool = False) -> list[str]:
    scale = 10 if quick else 1
    repeat = 20
    lines: list[str] = []
    _ = Principal, ALL_SCOPES
    with tempfile.TemporaryDirectory(prefix="zastava-bench-console-") as tmp:
        lines += _run("sqlite", f"sqlite:///{Path(tmp) / 'console.db'}", scale, repeat)
        pg = PostgresServer().start()
        try:
            lines += _run("postgresql", pg.create_database("bench_console"), scale, repeat)
        finally:
            pg.stop()
            pg.cleanup()
    return lines
