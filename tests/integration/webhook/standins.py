"""Test stand-ins, kept only where a test needs to inject what the real parts cannot be made to do on demand.

* :class:`PolicyBackend`: a real HTTP server (uvicorn + Starlette) standing in for the reference backend where
  a test injects latency, HTTP failures, malformed answers, TTL / ``policyRevision`` changes, or counts the
  exact policy requests (cache and single-flight behaviour). It implements
  ``POST /api/v1/scanner/policy/runtime``
  (``RuntimePolicyRequest`` → ``RuntimePolicyResponse``) and ``POST /api/v1/scanner/admission/decisions``
  (decision envelopes: one object, a JSON array or ND-JSON, as the reference backend accepts), with
  controllable latency, failures, verdicts, TTL and ``policyRevision``.
* :class:`ThrottlingProxy` sits in front of the real registry and answers 429 while ``throttle`` is set:
  Debian's distribution registry has no rate limiting of its own to provoke.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.harness.servers import ThreadedServer
from zastava.contracts import (
    AdmissionDecisionEnvelope,
    ImagePolicy,
    RuntimePolicyRequest,
    RuntimePolicyResponse,
)

#: uvicorn in a thread of this process (shared test harness)
ThreadServer = ThreadedServer


def _default_result(ref: str) -> ImagePolicy:
    if "unsigned" in ref:
        return ImagePolicy(signed=False, has_sbom=True, policy_verdict="fail", reasons=["unsigned"])
    if "nosbom" in ref:
        return ImagePolicy(signed=True, has_sbom=False, policy_verdict="fail", reasons=["missing SBOM"])
    if "warn" in ref:
        return ImagePolicy(signed=True, has_sbom=True, policy_verdict="warn", reasons=["medium CVEs"])
    return ImagePolicy(signed=True, has_sbom=True, policy_verdict="pass", build_ids=["9f3a1cd4c0b7adfe"])


@dataclass
class PolicyBackend:
    """Stand-in for the reference backend for latency/failure injection (see the module docstring)."""

    delay: float = 0.0
    fail_status: int | None = None
    ttl_seconds: int = 300
    revision: str = "rev-1"
    overrides: dict[str, ImagePolicy] = field(default_factory=dict)
    policy_calls: list[RuntimePolicyRequest] = field(default_factory=list)
    decisions: list[AdmissionDecisionEnvelope] = field(default_factory=list)
    decision_delay: float = 0.0
    decision_posts: int = 0
    raw_policy_body: bytes | None = None
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    server: ThreadServer | None = None

    def reset(self) -> None:
        self.delay, self.fail_status, self.ttl_seconds, self.revision = 0.0, None, 300, "rev-1"
        self.decision_delay = 0.0
        self.decision_posts = 0
        self.raw_policy_body = None
        self.headers_seen.clear()
        self.overrides.clear()
        self.policy_calls.clear()
        self.decisions.clear()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def app(self) -> Starlette:
        async def policy(request: Request) -> Response:
            self.headers_seen.append(dict(request.headers))
            parsed = RuntimePolicyRequest.model_validate(orjson.loads(await request.body()))
            self.policy_calls.append(parsed)
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.raw_policy_body is not None:
                return Response(self.raw_policy_body, 200, media_type="application/json")
            if self.fail_status is not None:
                return Response(b'{"error":"injected"}', self.fail_status, media_type="application/json")
            results = {}
            for ref in parsed.images:
                digest = ref.partition("@")[2]
                results[ref] = self.overrides.get(ref) or self.overrides.get(digest) or _default_result(ref)
            body = RuntimePolicyResponse(
                ttl_seconds=self.ttl_seconds, results=results, policy_revision=self.revision
            ).wire()
            return Response(orjson.dumps(body), media_type="application/json")

        async def decisions(request: Request) -> Response:
            raw = await request.body()
            try:
                single = orjson.loads(raw)
                items = single if isinstance(single, list) else [single]
            except orjson.JSONDecodeError:
                items = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
            envelopes = [AdmissionDecisionEnvelope.model_validate(item) for item in items]
            if self.decision_delay:
                await asyncio.sleep(self.decision_delay)
            self.decisions.extend(envelopes)
            self.decision_posts += 1
            return Response(b"{}", 202, media_type="application/json")

        return Starlette(
            routes=[
                Route("/api/v1/scanner/policy/runtime", policy, methods=["POST"]),
                Route("/api/v1/scanner/admission/decisions", decisions, methods=["POST"]),
            ]
        )

    def start(self) -> PolicyBackend:
        self.server = ThreadServer(self.app()).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def wait_decisions(self, count: int, timeout: float = 10) -> list[AdmissionDecisionEnvelope]:
        deadline = time.monotonic() + timeout
        while len(self.decisions) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.decisions)


class ThrottlingProxy:
    """Reverse proxy to a registry that answers 429 (with Retry-After) while ``throttle`` is set."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.throttle = False
        self.server: ThreadServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def app(self) -> Starlette:
        client = httpx.AsyncClient(timeout=10)

        async def proxy(request: Request) -> Response:
            if self.throttle:
                return Response(b"TOOMANYREQUESTS", 429, headers={"Retry-After": "30"})
            upstream = await client.request(
                request.method,
                f"{self.upstream}{request.url.path}",
                headers={"Accept": request.headers.get("accept", "*/*")},
            )
            headers = {k: v for k, v in upstream.headers.items() if k.lower().startswith("docker-")}
            return Response(upstream.content, upstream.status_code, headers=headers)

        return Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "HEAD"])])

    def start(self) -> ThrottlingProxy:
        self.server = ThreadServer(self.app()).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
