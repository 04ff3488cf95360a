"""Admission that verifies (``zastava.admission.trustPolicies``): the webhook checks cosign key signatures in
the real loopback distribution registry (no referrers API: the tag-schema fallback), with no backend.

* **cold** — each review is a Pod with two tag-only images never seen before, each signed with a trusted key:
  resolve both tags, fetch ``.sig``/``.att``/``.sbom`` and the referrers fallback tag of both digests, verify,
  decide. Wall time per review through the webhook's ASGI app (``WebhookApp.admit``), p50/p95.
* **warm** — the same Pod pinned to the verified digests (what the API server stores after ``/mutate``):
  CPU per review through the raw ASGI app with local verification cached, next to the bare ASGI handler
  (``bench/webhook_target.py``: the same-run baseline) and the webhook as configured before this feature
  (backend policy cache warm, no trust policies); interleaved batches, median batch.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import devstack
from tests.harness.devstack import signing
from tests.harness.signed import push_synthetic
from tests.unit.webhook.reviews import body, pod_with, review

from zastava.config import ZastavaConfig, load_config
from zastava.telemetry import ZastavaMetrics
from zastava.webhook.server import build_configured_webhook, build_webhook


def _scope(data: bytes) -> dict[str, object]:
    return {
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


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(quick: bool = False) -> list[str]:
    from bench.webhook_target import bare

    logging.getLogger("zastava").setLevel(logging.ERROR)
    pods = 12 if quick else 60
    lines: list[str] = []
    registry = devstack.RegistryServer().start()
    work = Path(tempfile.mkdtemp(prefix="zastava-bench-verify-"))
    try:
        key = signing.KeyPair.generate()
        key.write_public(work / "ci.pub")
        pusher = signing.OciPusher(registry.url)
        images = []
        for i in range(pods + 1):
            pair = []
            for role in ("api", "side"):
                pushed = push_synthetic(
                    pusher, registry.host, f"bench/{role}", f"{role}-{i}".encode(), f"v{i}"
                )
                signing.sign_legacy(pusher, f"bench/{role}", pushed.digest, key=key)
                pair.append(pushed)
            images.append(pair)
        pusher.close()
        document = {
            "zastava": {
                "backend": {"baseAddress": ""},
                "admission": {
                    "verify": {"sbomReferrer": False},
                    "trustPolicies": [
                        {
                            "name": "bench",
                            "images": [f"{registry.host}/bench/**"],
                            "authorities": [{"key": {"path": str(work / "ci.pub")}}],
                        }
                    ],
                },
                "webhook": {"postDecisions": False},
            }
        }
        (work / "zastava.yaml").write_text(yaml.safe_dump(document))
        config = load_config(work / "zastava.yaml", warn=False)
        components = build_configured_webhook(config, metrics=ZastavaMetrics())
        loop = asyncio.new_event_loop()

        async def admit(data: bytes) -> float:
            started = time.perf_counter()
            status, answer = await components.app.admit(data, "10s")
            elapsed = time.perf_counter() - started
            assert status == 200 and b'"allowed":true' in answer, answer[:400]
            return elapsed

        cold = []
        for api, side in images[1:]:
            data = body(review(pod_with({"api": api.ref, "side": side.ref})))
            cold.append(loop.run_until_complete(admit(data)))
        lines.append(
            f"cold admission, Pod with 2 key-signed tag-only images ({pods} Pods, loopback registry): "
            f"p50 {_pct(cold, 0.5) * 1000:.1f} ms, p95 {_pct(cold, 0.95) * 1000:.1f} ms"
        )
        # warm: the Pod pinned to the verified digests (what runs after /mutate)
        api, side = images[1]
        warm = body(review(pod_with({"api": api.pinned, "side": side.pinned})))
        loop.run_until_complete(admit(warm))
        # the configuration before this feature: the backend's cached verdicts, no trust policies
        before = ZastavaConfig(
            backend={"baseAddress": "http://127.0.0.1:9", "allowInsecureHttp": True},
            admission={"resolveTags": False},
            webhook={"postDecisions": False},
        )
        legacy = build_webhook(before, metrics=ZastavaMetrics())
        _warm_backend_cache(
            legacy, [api.pinned, side.pinned], review(pod_with({"api": api.pinned}))["request"]
        )
        apps = {"bare": bare, "local verification": components.app, "backend cache (before)": legacy.app}
        per_batch, batches = 200, (10 if quick else 40)

        async def run(app: object) -> float:
            async def receive() -> dict[str, object]:
                return {"type": "http.request", "body": warm, "more_body": False}

            async def send(message: dict[str, object]) -> None:
                return None

            started = time.process_time()
            for _ in range(per_batch):
                await app(dict(_scope(warm)), receive, send)  # type: ignore[operator]
                await asyncio.sleep(0)
            return (time.process_time() - started) / per_batch

        samples: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(batches):
            for name, app in apps.items():
                samples[name].append(loop.run_until_complete(run(app)))
        median = {name: statistics.median(v) * 1e6 for name, v in samples.items()}
        lines.append(
            f"warm, CPU per review in-process (median of {batches} batches of {per_batch}): "
            + ", ".join(f"{name} {value:.0f} µs" for name, value in median.items())
        )
        local, old = median["local verification"], median["backend cache (before)"]
        lines.append(
            f"  over the bare handler: local verification +{local - median['bare']:.0f} µs, "
            f"backend cache (before) +{old - median['bare']:.0f} µs; local/before {local / old:.2f}×"
        )
        loop.run_until_complete(components.close_clients())
        loop.close()
    finally:
        registry.stop()
        registry.cleanup()
    return lines


def _warm_backend_cache(components: object, refs: list[str], request: dict[str, object]) -> None:
    """Fill the webhook's backend-policy cache as a backend answer would (as bench_webhook.py does)."""
    from zastava.contracts import ImagePolicy
    from zastava.webhook.cache import CacheEntry, PolicyContext, PolicyKey

    admitter = components.admitter  # type: ignore[attr-defined]
    context = PolicyContext.of(request["namespace"], request["object"]["metadata"]["labels"])  # type: ignore[index]
    for ref in refs:
        result = ImagePolicy(signed=True, has_sbom=True, policy_verdict="pass")
        admitter.cache._store(
            PolicyKey(ref, context), CacheEntry(result, None, time.monotonic() + 1e6, None, 300)
        )


if __name__ == "__main__":
    for line in main(quick="--quick" in sys.argv):
        print(line)
