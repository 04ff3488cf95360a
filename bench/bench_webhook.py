"""Admission webhook over TLS on loopback, driven by ``wrk`` in a separate process (the other core).

Variants served by ``bench/webhook_target.py`` (one process, pinned to CPU 0; ``wrk`` pinned to CPU 1):
``bare`` (a bare ASGI handler answering a fixed AdmissionReview: the same-run baseline), ``raw`` (the webhook
as ``zastava webhook serve`` runs it) and ``starlette`` (the same admitter behind Starlette routing).
Scenarios: warm cache (every image of the Pod already cached) and one backend round trip (one image with a
digest never seen before per review) against the stand-in policy backend (``tests/integration/webhook``,
in its own process: ``bench/policy_backend_target.py``). 1 and 16 connections. Decision records are
posted to the backend as in production. Rows marked ``*`` are not pinned (CPUs 0 and 1): the one process, and
``zastava.webhook.workers: 2`` (issue 19). In process: CPU per warm review through each ASGI app, and the warm
path's functions timed one by one.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.harness.devstack import ensure_packages, free_port
from tests.unit.webhook.reviews import DIGEST_A, DIGEST_B, body, pod_with, review

from zastava.webhook.certs import generate_certs, write_certs

HERE = Path(__file__).resolve().parent
PLACEHOLDER = "f" * 64

LUA_COMMON = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("ZASTAVA_BENCH_BODY"), "rb"))
local template = f:read("*a")
f:close()
wrk.body = template
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %.1f %.1f %.1f %.1f %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""
LUA_MISS = r"""
local salt = os.getenv("ZASTAVA_BENCH_SALT")
local counter = 0
request = function()
  counter = counter + 1
  local digest = salt .. string.rep("0", 48) .. string.format("%08x", counter)
  local b = template:gsub(string.rep("f", 64), digest)
  return wrk.format(nil, nil, nil, b)
end
"""


def _taskset(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if (os.cpu_count() or 1) > 1 else []


def _wrk(url: str, connections: int, seconds: int, script: Path, body_file: Path) -> dict[str, float]:
    env = {**os.environ, "ZASTAVA_BENCH_BODY": str(body_file), "ZASTAVA_BENCH_SALT": secrets.token_hex(4)}
    out = subprocess.run(
        [
            *_taskset(1),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 60,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    requests, duration_us, p50, p95, p99, worst, errors = (float(v) for v in line.split()[1:])
    return {
        "rps": requests / (duration_us / 1e6),
        "p50": p50 / 1000,
        "p95": p95 / 1000,
        "p99": p99 / 1000,
        "max": worst / 1000,
        "errors": errors,
        "requests": requests,
    }


class BackendProcess:
    """The stand-in policy backend in its own process (so it does not share the benchmark's interpreter)."""

    def __init__(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "policy_backend_target.py"), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/", timeout=1)
                break
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("stand-in backend did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


class Target:
    def __init__(self, variant: str, tls: Path, backend: str, extra: list[str], cpus: str = "0") -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                *(["taskset", "-c", cpus] if (os.cpu_count() or 1) > 1 else []),
                sys.executable,
                str(HERE / "webhook_target.py"),
                variant,
                str(self.port),
                str(tls / "tls.crt"),
                str(tls / "tls.key"),
                backend,
                "--quiet",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"https://127.0.0.1:{self.port}"
        self.client = httpx.Client(verify=ssl.create_default_context(cafile=str(tls / "ca.crt")), timeout=10)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.client.get(f"{self.url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{variant} target did not start: {self.process.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.1)

    def admit(self, data: bytes) -> dict[str, object]:
        response = self.client.post(f"{self.url}/admit?timeout=10s", content=data)
        response.raise_for_status()
        return orjson.loads(response.content)["response"]  # type: ignore[no-any-return]

    def backend_latency(self) -> tuple[float, float]:
        """(mean ms, count) of the webhook's ``/policy/runtime`` calls, from its own ``/metrics``."""
        text = self.client.get(f"{self.url}/metrics").text
        values = {}
        for line in text.splitlines():
            for kind in ("sum", "count"):
                if line.startswith(f'zastava_runtime_backend_latency_ms_{kind}{{endpoint="policy"}}'):
                    values[kind] = float(line.rsplit(" ", 1)[1])
        count = values.get("count", 0.0)
        return (values.get("sum", 0.0) / count if count else 0.0), count

    def stop(self) -> None:
        self.client.close()
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def _fmt(name: str, r: dict[str, float], base: dict[str, float] | None) -> str:
    ratio = (
        f"  ({r['p50'] / base['p50']:.1f}× bare p50, {r['rps'] / base['rps']:.2f}× bare rps)" if base else ""
    )
    errors = f"  ERRORS {r['errors']:.0f}" if r["errors"] else ""
    if "backend_ms" in r:
        errors += f"  [policy call mean {r['backend_ms']:.2f} ms as seen by the webhook]"
    return (
        f"{name:<34} {r['rps']:>8.0f} req/s  p50 {r['p50']:6.2f} ms  p95 {r['p95']:6.2f} ms  "
        f"p99 {r['p99']:6.2f} ms  max {r['max']:7.2f} ms{ratio}{errors}"
    )


def _variants() -> list[tuple[str, str, list[str], str]]:
    """(label, target variant, extra target arguments, CPUs); httptools rows only when it is installed.

    The ``*`` rows are not pinned (CPUs 0 and 1, wrk's CPU included): ``x2 workers`` is
    ``zastava.webhook.workers: 2`` (httptools), ``raw+httptools*`` the one process let onto both cores too."""
    variants = [("bare", "bare", [], "0"), ("raw", "raw", [], "0"), ("starlette", "starlette", [], "0")]
    if importlib.util.find_spec("httptools") is not None:
        variants += [
            ("bare+httptools", "bare", ["--httptools"], "0"),
            ("raw+httptools", "raw", ["--httptools"], "0"),
            ("raw+httptools*", "raw", ["--httptools"], "0,1"),
            ("raw x2 workers*", "raw", ["--workers", "2"], "0,1"),
        ]
    return variants


def _bodies(work: Path) -> tuple[Path, Path]:
    warm, miss = work / "warm.json", work / "miss.json"
    pinned_side = f"ghcr.io/acme/side@{DIGEST_B}"
    warm.write_bytes(body(review(pod_with({"api": f"ghcr.io/acme/api@{DIGEST_A}", "sidecar": pinned_side}))))
    miss.write_bytes(
        body(review(pod_with({"api": f"ghcr.io/acme/api@sha256:{PLACEHOLDER}", "sidecar": pinned_side})))
    )
    return warm, miss


def _cached_review(*admitters: Any) -> bytes:
    """A Pod review of two images whose passing verdicts are already in each admitter's cache (warm)."""
    from zastava.contracts import ImagePolicy
    from zastava.webhook.cache import CacheEntry, PolicyContext, PolicyKey

    document = review(
        pod_with({"api": f"ghcr.io/acme/api@{DIGEST_A}", "sidecar": f"ghcr.io/acme/side@{DIGEST_B}"})
    )
    request = document["request"]
    context = PolicyContext.of(request["namespace"], request["object"]["metadata"]["labels"])
    for ref in (f"ghcr.io/acme/api@{DIGEST_A}", f"ghcr.io/acme/side@{DIGEST_B}"):
        result = ImagePolicy(signed=True, has_sbom=True, policy_verdict="pass")
        entry = CacheEntry(result, None, time.monotonic() + 1e6, None, 300)
        for admitter in admitters:
            admitter.cache._store(PolicyKey(ref, context), entry)
    return body(document)


def _asgi_dispatch(quick: bool) -> list[str]:
    """CPU per request through each ASGI app in this process (no sockets): raw vs Starlette vs bare handler.

    The warm-cache review of the HTTPS runs; batches of each variant are interleaved and the median batch
    kept, which makes this comparison far less sensitive to other load on the machine than the wrk runs.
    """
    import asyncio
    import statistics

    from tests.harness.webhook_starlette import starlette_app

    from bench.webhook_target import bare
    from zastava.config import ZastavaConfig
    from zastava.telemetry import ZastavaMetrics
    from zastava.telemetry.logging import configure_logging
    from zastava.webhook.server import build_webhook

    config = ZastavaConfig(
        backend={"baseAddress": "http://127.0.0.1:9", "allowInsecureHttp": True},
        admission={"resolveTags": False},
        webhook={"postDecisions": False},
    )
    components = build_webhook(config, metrics=ZastavaMetrics())
    # as served: the JSON decision line at INFO (to /dev/null) and every record spooled (the recorder's
    # sender is not started: nothing is posted)
    recording = build_webhook(
        config.model_copy(update={"webhook": config.webhook.model_copy(update={"post_decisions": True})}),
        metrics=ZastavaMetrics(),
    )
    devnull = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    configure_logging("INFO", stream=devnull, static_scope={"plane": "runtime", "component": "webhook"})
    data = _cached_review(components.admitter, recording.admitter)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/admit",
        "raw_path": b"/admit",
        "root_path": "",
        "query_string": b"timeout=10s",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        "server": ("127.0.0.1", 8443),
        "client": ("127.0.0.1", 50000),
    }
    apps = {
        "bare": bare,
        "raw": components.app,
        "starlette": starlette_app(components.app),
        "raw+log+spool": recording.app,
    }
    quiet = {"raw", "starlette"}  # as the runs before issue 19 measured them: no log line, no record
    per_batch = 200
    batches = 10 if quick else 40

    async def run(app_name: str, app: object) -> float:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": data, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            return None

        logging.getLogger("zastava").setLevel(logging.WARNING if app_name in quiet else logging.INFO)
        started = time.process_time()
        for _ in range(per_batch):
            await app(dict(scope), receive, send)  # type: ignore[operator]
            await asyncio.sleep(0)  # let the post-response decision record run, as in the server
        return (time.process_time() - started) / per_batch

    loop = asyncio.new_event_loop()
    samples: dict[str, list[float]] = {name: [] for name in apps}
    try:
        for _ in range(batches):
            for name, app in apps.items():
                samples[name].append(loop.run_until_complete(run(name, app)))
        assert recording.recorder is not None
        spooled = recording.recorder.pending
        logging.getLogger("zastava").setLevel(logging.ERROR)  # the stop's "not delivered" warning
        loop.run_until_complete(recording.recorder.stop())  # its private spool directory removed
    finally:
        loop.close()
        devnull.close()
    median = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
    full = median["raw+log+spool"]
    return [
        f"in-process ASGI, CPU per warm-cache review (median of {batches} batches of {per_batch}): "
        + ", ".join(f"{name} {value:.1f} µs" for name, value in median.items()),
        f"  raw/starlette CPU ratio {median['raw'] / median['starlette']:.2f}; "
        f"admission work over the bare handler: raw +{median['raw'] - median['bare']:.0f} µs, "
        f"starlette +{median['starlette'] - median['bare']:.0f} µs; raw+log+spool spooled {spooled} records",
        f"  issue 19 goal ≤ 40 µs and ≤ 6× bare: raw {median['raw']:.1f} µs "
        f"({median['raw'] / median['bare']:.1f}×), "
        f"raw+log+spool {full:.1f} µs ({full / median['bare']:.1f}×)",
    ]


def _warm_steps(quick: bool) -> list[str]:
    """The functions of a warm review timed alone (CPU, best of 7 rounds): where the in-process µs go."""
    import asyncio

    from zastava.config import ZastavaConfig
    from zastava.telemetry import ZastavaMetrics
    from zastava.telemetry.logging import configure_logging, emit_many, fields
    from zastava.webhook.admitter import pod_spec_digest
    from zastava.webhook.images import collect_images
    from zastava.webhook.review import quick_request, validate_review
    from zastava.webhook.server import build_webhook

    config = ZastavaConfig(
        backend={"baseAddress": "http://127.0.0.1:9", "allowInsecureHttp": True},
        admission={"resolveTags": False},
    )
    components = build_webhook(config, metrics=ZastavaMetrics())
    devnull = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    configure_logging("INFO", stream=devnull, static_scope={"plane": "runtime", "component": "webhook"})
    data = _cached_review(components.admitter)
    admitter = components.admitter
    rounds = 500 if quick else 5000
    lines = ["warm review, step by step (CPU, best of 7 rounds):"]

    async def run() -> None:
        await components.app.admit(data, "10s")  # the full review remembers the answer
        await asyncio.sleep(0)
        parsed = orjson.loads(data)
        admitter.warm_answer(parsed)
        proto = admitter._pending[-1]
        admitter._pending.clear()
        quick_read = quick_request(parsed)
        assert quick_read is not None
        log = logging.getLogger("zastava.webhook")
        row = {
            "admissionId": quick_read.uid,
            "namespace": "payments",
            "pod": "api",
            "decision": "Allow",
            "result": "allow",
            "podSpecDigest": pod_spec_digest(quick_read.pod),
            "images": orjson.Fragment(b'[{"name":"a"},{"name":"b"}]'),
        }

        def warm() -> None:
            admitter.warm_answer(parsed)
            admitter._pending.clear()

        def flush() -> None:
            admitter._pending.append(proto)
            admitter.flush_warm()

        steps: list[tuple[str, object, int]] = [
            ("orjson.loads of the review", lambda: orjson.loads(data), rounds),
            ("envelope: pydantic (full review)", lambda: validate_review(parsed), rounds),
            ("envelope: quick_request (warm)", lambda: quick_request(parsed), rounds),
            ("collect_images", lambda: collect_images(quick_read.pod), rounds),
            (
                "context (namespace, sorted labels)",
                lambda: admitter._context_of("payments", quick_read.pod),
                rounds,
            ),
            ("warm_answer whole (without the parse)", warm, rounds),
            ("pod_spec_digest (memo by spec text)", lambda: pod_spec_digest(quick_read.pod), rounds),
            (
                "log line through logging.info",
                lambda: log.info("admission decision", extra=fields(**row)),
                rounds,
            ),
            (
                "log line through emit_many, 1 row",
                lambda: emit_many(log, 20, "admission decision", [row]),
                rounds,
            ),
            (
                "emit_many, 16 rows",
                lambda: emit_many(log, 20, "admission decision", [row] * 16),
                rounds // 10,
            ),
            ("flush_warm, 1 record (count, log, record, spool)", flush, rounds // 2),
        ]
        for name, step, n in steps:
            best = float("inf")
            for _ in range(7):
                started = time.process_time()
                for _ in range(n):
                    step()  # type: ignore[operator]
                best = min(best, (time.process_time() - started) / n)
            lines.append(f"  {name:<52} {best * 1e6:6.1f} µs")

    try:
        asyncio.run(run())
        assert components.recorder is not None
        logging.getLogger("zastava").setLevel(logging.ERROR)
        asyncio.run(components.recorder.stop())  # its private spool directory removed
    finally:
        devnull.close()
    return lines


def main(quick: bool = False) -> list[str]:
    ensure_packages(["wrk"])
    seconds = 3 if quick else 10
    lines: list[str] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="zastava-bench-webhook-") as tmp:
        work = Path(tmp)
        tls = work / "tls"
        write_certs(generate_certs(extra_dns=["localhost"], ip_addresses=["127.0.0.1"]), tls)
        warm_body, miss_body = _bodies(work)
        warm_lua, miss_lua = work / "warm.lua", work / "miss.lua"
        warm_lua.write_text(LUA_COMMON)
        miss_lua.write_text(LUA_COMMON + LUA_MISS)
        lines.append(f"review {warm_body.stat().st_size} bytes (Pod, 2 containers), TLS, {seconds}s per run")
        results: dict[tuple[str, str, int], dict[str, float]] = {}
        backend = BackendProcess()
        try:
            for label, variant, extra, cpus in _variants():
                target = Target(variant, tls, backend.url, extra, cpus)
                try:
                    if variant != "bare":
                        answer = target.admit(warm_body.read_bytes())
                        assert answer["allowed"] is True, answer
                    url = f"{target.url}/admit?timeout=10s"
                    for connections in (1, 16):
                        results[(label, "warm", connections)] = _wrk(
                            url, connections, seconds, warm_lua, warm_body
                        )
                    if variant != "bare":
                        for connections in (1, 16):
                            before = target.backend_latency()
                            result = _wrk(url, connections, seconds, miss_lua, miss_body)
                            mean, count = target.backend_latency()
                            calls = count - before[1]
                            result["backend_ms"] = (
                                (mean * count - before[0] * before[1]) / calls if calls else 0.0
                            )
                            results[(label, "miss", connections)] = result
                finally:
                    target.stop()
        finally:
            backend.stop()
    for connections in (1, 16):
        for (label, scenario, conns), result in results.items():
            if conns != connections:
                continue
            base_label = "bare" if label in ("bare", "raw", "starlette") else "bare+httptools"
            base = None if label == base_label else results[(base_label, "warm", connections)]
            what = "warm cache" if scenario == "warm" else "1 backend trip"
            lines.append(_fmt(f"{label}, {what}, {connections} conn", result, base))
    base = "bare+httptools" if ("bare+httptools", "warm", 1) in results else "bare"
    for label in [v[0] for v in _variants() if v[1] == "raw"]:
        r1, r16, m1 = results[(label, "warm", 1)], results[(label, "warm", 16)], results[(label, "miss", 1)]
        ratio = r16["rps"] / results[(base, "warm", 16)]["rps"]
        lines.append(
            f"issue 19 goals ({label}): warm @16 ≥ 0.5× {base} rps with p99 ≤ 10 ms: {ratio:.2f}×, "
            f"p99 {r16['p99']:.2f} ms; warm p95 ≤ 1 ms @1: {r1['p95']:.2f} ms; "
            f"(issue 9: backend trip p95 ≤ 10 ms @1: {m1['p95']:.2f} ms)"
        )
    lines.append(f"1-min load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (2 cores)")
    lines.extend(_asgi_dispatch(quick))
    lines.extend(_warm_steps(quick))
    lines.extend(_cache_key(quick))
    return lines


#: Labels Kubernetes controllers put on Pods (apps/v1, batch/v1 as of 1.28+), for the hit-rate figures.
#: (kind, replicas, labels of replica i): what one rollout admits; every Pod runs the same two images.
WORKLOADS = [
    ("Deployment", 10, lambda i: {"app": "api", "pod-template-hash": "7c9fbbd8b7"}),
    (
        "DaemonSet",
        20,
        lambda i: {"app": "agent", "controller-revision-hash": "5d4f", "pod-template-generation": "1"},
    ),
    (
        "StatefulSet",
        5,
        lambda i: {
            "app": "db",
            "controller-revision-hash": "db-6c8",
            "statefulset.kubernetes.io/pod-name": f"db-{i}",
            "apps.kubernetes.io/pod-index": str(i),
        },
    ),
    (
        "Job (indexed)",
        5,
        lambda i: {
            "batch.kubernetes.io/controller-uid": "0f1e",
            "batch.kubernetes.io/job-name": "etl-28861",
            "batch.kubernetes.io/job-completion-index": str(i),
        },
    ),
]


def _cache_key(quick: bool) -> list[str]:
    """What keying the verdict cache by (digest, namespace, labels) costs and what it gives up.

    Cost: building the key of a warm-cache review (the review's 3 labels, and a Pod with 12) and looking both
    images up, against the old key (the pinned reference alone), CPU per review. Hit rate: the cache hits of
    one rollout of each workload kind within the TTL, by key (labels as Kubernetes controllers set them),
    and of one Deployment rolled out in three namespaces.
    """
    from zastava.webhook.cache import PolicyContext, PolicyKey

    images = [f"ghcr.io/acme/api@{DIGEST_A}", f"ghcr.io/acme/side@{DIGEST_B}"]
    few = {"app": "api", "env": "prod", "tier": "backend"}
    many = {f"example.com/label-{i:02d}": f"value-{i}" for i in range(12)}
    rounds = 20_000 if quick else 200_000

    def per_review(run: object) -> float:
        started = time.process_time()
        run()  # type: ignore[operator]
        return (time.process_time() - started) / rounds * 1e9

    def old() -> None:
        table = {ref: 1 for ref in images}
        for _ in range(rounds):
            for ref in images:
                table.get(ref)

    def new(labels: dict[str, str]) -> object:
        def run() -> None:
            ctx = PolicyContext.of("payments", labels)
            table = {PolicyKey(ref, ctx): 1 for ref in images}
            for _ in range(rounds):
                context = PolicyContext.of("payments", labels)
                for ref in images:
                    table.get(PolicyKey(ref, context))

        return run

    base, cost_few, cost_many = per_review(old), per_review(new(few)), per_review(new(many))
    lines = [
        f"cache key per warm review (2 images): pinned reference only {base:.0f} ns; "
        f"+ namespace and labels {cost_few:.0f} ns (3 labels), {cost_many:.0f} ns (12 labels)"
    ]

    def hit_rate(pods: list[tuple[str, dict[str, str]]], key: str) -> float:
        seen: set[object] = set()
        hits = total = 0
        for namespace, labels in pods:
            for ref in images:
                k: object = ref
                if key != "digest":
                    k = (ref, namespace, tuple(sorted(labels.items())) if key == "labels" else ())
                total += 1
                hits += k in seen
                seen.add(k)
        return hits / total

    rows = [(kind, [("prod", make(i)) for i in range(n)]) for kind, n, make in WORKLOADS]
    deployment = WORKLOADS[0][2]
    rows.append(
        (
            "Deployment in dev, staging, prod",
            [(ns, deployment(i)) for ns in ("dev", "staging", "prod") for i in range(10)],
        )
    )
    for kind, pods in rows:
        rates = {key: hit_rate(pods, key) for key in ("digest", "namespace", "labels")}
        lines.append(
            f"hit rate, {kind} ({len(pods)} Pods): digest only {rates['digest']:.0%}, "
            f"+ namespace {rates['namespace']:.0%}, + namespace and labels {rates['labels']:.0%}"
        )
    return lines


if __name__ == "__main__":
    for line in main(quick="--quick" in sys.argv):
        print(line)
