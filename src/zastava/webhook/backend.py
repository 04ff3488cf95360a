"""Client of the backend (Scanner.WebService): ``/policy/runtime`` and admission decision records.

Request/response bodies are the contract models; outbound authentication is added by a
``headers_provider(method, url) -> headers`` hook (the auth issue plugs OpToks/DPoP in there). Every failure
is a :class:`BackendError` with a short message fit for an admission response; secrets never appear in it.
Latency and failures are recorded in the §8 metrics (``endpoint="policy"`` / ``"decisions"``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from ..contracts import (
    ADMISSION_DECISION,
    AdmissionDecision,
    AdmissionDecisionEnvelope,
    RuntimePolicyRequest,
    RuntimePolicyResponse,
    versions,
)
from ..telemetry import ZastavaMetrics, fields

__all__ = ["BackendClient", "BackendError", "DecisionRecorder", "HeadersProvider"]

log = logging.getLogger("zastava.webhook.backend")

HeadersProvider = Callable[[str, str], Awaitable[dict[str, str]]]
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class BackendError(RuntimeError):
    def __init__(self, endpoint: str, message: str) -> None:
        self.endpoint = endpoint
        super().__init__(message)


class BackendClient:
    def __init__(
        self,
        base_address: str,
        *,
        policy_path: str = "/api/v1/scanner/policy/runtime",
        decisions_path: str = "/api/v1/scanner/admission/decisions",
        timeout: float = 5.0,
        headers_provider: HeadersProvider | None = None,
        verify: Any = True,
        metrics: ZastavaMetrics | None = None,
        http2: bool = False,
        max_connections: int = 64,
        http_client: httpx.AsyncClient | None = None,
        response_observer: Callable[[httpx.Response], bool] | None = None,
    ) -> None:
        self.base_address = base_address.rstrip("/")
        self.policy_url = self.base_address + policy_path
        self.decisions_url = self.base_address + decisions_path
        self.timeout = timeout
        self.headers_provider = headers_provider
        #: ``TokenProvider.observe_response``: learns DPoP nonces, drops a refused token; True = retry once
        self.response_observer = response_observer
        self.metrics = metrics
        #: a given client (e.g. :func:`zastava.auth.backend_auth`'s, presenting the client certificate the
        #: OpTok is bound to) is shared and closed by its owner; per-request timeouts still apply
        self._own_client = http_client is None
        self._client = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            verify=verify,
            http2=http2,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"accept": "application/json"},
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def _headers(self, endpoint: str, method: str, url: str) -> dict[str, str]:
        if self.headers_provider is None:
            return {}
        try:
            return await self.headers_provider(method, url)
        except Exception as exc:  # Authority down, token refused: the admitter applies fail-open/closed
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise BackendError(endpoint, f"backend {endpoint}: no credentials ({detail})") from None

    async def _post(
        self, endpoint: str, url: str, body: bytes, time_budget: float, content_type: str = "application/json"
    ) -> bytes:
        started = time.perf_counter()
        try:
            for attempt in (0, 1):
                headers = {
                    "accept": "application/json",
                    "content-type": content_type,
                    **await self._headers(endpoint, "POST", url),
                }
                remaining = max(0.05, time_budget - (time.perf_counter() - started))
                async with self._client.stream(
                    "POST", url, content=body, headers=headers, timeout=httpx.Timeout(remaining)
                ) as response:
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_RESPONSE_BYTES:
                            raise BackendError(
                                endpoint, f"backend {endpoint} response exceeds {MAX_RESPONSE_BYTES} bytes"
                            )
                    if (
                        response.status_code == 401
                        and attempt == 0
                        and self.response_observer is not None
                        and self.response_observer(response)
                    ):
                        continue  # a DPoP nonce was asked for, or the token was refused: once more
                    if response.status_code >= 300:
                        raise BackendError(
                            endpoint, f"backend {endpoint} answered HTTP {response.status_code}"
                        )
                    return bytes(data)
            raise AssertionError("unreachable")  # pragma: no cover
        except BackendError:
            self._failed(endpoint)
            raise
        except httpx.TimeoutException:
            self._failed(endpoint)
            raise BackendError(
                endpoint, f"backend {endpoint} did not answer within {time_budget:.2f}s"
            ) from None
        except httpx.HTTPError as exc:
            self._failed(endpoint)
            raise BackendError(endpoint, f"backend {endpoint} unreachable: {type(exc).__name__}") from None
        finally:
            if self.metrics is not None:
                elapsed = (time.perf_counter() - started) * 1000
                self.metrics.backend_latency_ms.labels(endpoint=endpoint).observe(elapsed)

    def _failed(self, endpoint: str) -> None:
        if self.metrics is not None:
            self.metrics.backend_failures.labels(endpoint=endpoint).inc()

    async def policy(
        self, request: RuntimePolicyRequest, *, time_budget: float | None = None
    ) -> RuntimePolicyResponse:
        """``POST /policy/runtime``; raises :class:`BackendError`."""
        data = await self._post(
            "policy",
            self.policy_url,
            orjson.dumps(request.wire()),
            min(time_budget or self.timeout, self.timeout),
        )
        try:
            return RuntimePolicyResponse.model_validate(orjson.loads(data))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            self._failed("policy")
            detail = str(exc).splitlines()[0][:200]
            raise BackendError(
                "policy", f"backend policy response is not a RuntimePolicyResponse: {detail}"
            ) from None

    async def post_decisions(self, decisions: list[AdmissionDecision]) -> None:
        """``POST`` decision envelopes as ND-JSON (one per line); raises :class:`BackendError`."""
        version = str(versions.current(ADMISSION_DECISION))
        body = b"\n".join(
            orjson.dumps(AdmissionDecisionEnvelope(schema_version=version, decision=d).wire())
            for d in decisions
        )
        await self._post(
            "decisions", self.decisions_url, body + b"\n", self.timeout, content_type="application/x-ndjson"
        )


class DecisionRecorder:
    """Posts decision records in the background through a bounded queue; never delays a response.

    A post waits ``linger_seconds`` for more records and sends them together (up to ``batch_max`` per request,
    ND-JSON): one HTTP request per batch instead of one per review. When the queue is full the record is
    dropped (it was already logged) and a warning is logged.
    """

    def __init__(
        self,
        client: BackendClient,
        *,
        max_queue: int = 1000,
        batch_max: int = 100,
        linger_seconds: float = 0.2,
    ) -> None:
        self.client = client
        self.batch_max = batch_max
        self.linger = linger_seconds
        self.queue: asyncio.Queue[AdmissionDecision] = asyncio.Queue(maxsize=max_queue)
        self.dropped = 0
        self.posted = 0
        self.failed = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._worker())

    def submit(self, decision: AdmissionDecision) -> None:
        try:
            self.queue.put_nowait(decision)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "decision record queue full; record dropped (it was logged)",
                extra=fields(admissionId=decision.admission_id, dropped=self.dropped),
            )

    async def _worker(self) -> None:
        while True:
            batch = [await self.queue.get()]
            if self.linger and self.queue.qsize() + 1 < self.batch_max:
                await asyncio.sleep(self.linger)  # let more records join: one request carries many
            while len(batch) < self.batch_max and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self.client.post_decisions(batch)
                self.posted += len(batch)
            except BackendError as exc:
                self.failed += len(batch)
                log.warning(
                    "decision records not delivered",
                    extra=fields(admissionIds=[d.admission_id for d in batch][:20], error=str(exc)),
                )
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def flush(self, wait_seconds: float = 5.0) -> None:
        """Wait until queued records were sent (or ``wait_seconds``)."""
        try:
            await asyncio.wait_for(self.queue.join(), wait_seconds)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
