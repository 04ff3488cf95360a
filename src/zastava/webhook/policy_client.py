"""Client of the backend (Scanner.WebService): ``/policy/runtime`` and admission decision records.

Request/response bodies are the contract models; outbound authentication is added by a
``headers_provider(method, url) -> headers`` hook (the auth issue plugs OpToks/DPoP in there). Every failure
is a :class:`BackendError` with a short message fit for an admission response; secrets never appear in it.
Latency and failures are recorded in the §8 metrics (``endpoint="policy"`` / ``"decisions"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from ..contracts import (
    ADMISSION_DECISION,
    AdmissionDecision,
    RuntimePolicyRequest,
    RuntimePolicyResponse,
    versions,
)
from ..diskbuffer import DiskBuffer, DiskBufferError
from ..telemetry import ZastavaMetrics, fields

__all__ = ["BackendClient", "BackendError", "DecisionRecorder", "HeadersProvider", "decision_line"]

log = logging.getLogger("zastava.webhook.backend")

HeadersProvider = Callable[[str, str], Awaitable[dict[str, str]]]
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class BackendError(RuntimeError):
    """``status``: the HTTP status when the backend answered (None: no answer)."""

    def __init__(self, endpoint: str, message: str, status: int | None = None) -> None:
        self.endpoint = endpoint
        self.status = status
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
                            endpoint,
                            f"backend {endpoint} answered HTTP {response.status_code}",
                            response.status_code,
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
        await self.post_decision_lines([decision_line(d) for d in decisions])

    async def post_decision_lines(self, lines: list[bytes]) -> None:
        """``POST`` envelope lines (:func:`decision_line`) as ND-JSON; raises :class:`BackendError`."""
        body = b"\n".join(lines) + b"\n"
        await self._post(
            "decisions", self.decisions_url, body, self.timeout, content_type="application/x-ndjson"
        )


def decision_line(decision: AdmissionDecision) -> bytes:
    """The ND-JSON line of ``decision``'s envelope at the current version."""
    # the envelope's wire form built as a dict: an AdmissionDecisionEnvelope model around the record only to
    # serialise it again cost ~15 % of the line (tests/unit/webhook: equal to the model's wire form)
    return orjson.dumps({"schemaVersion": _DECISION_VERSION, "decision": decision.wire()})


_DECISION_VERSION = str(versions.current(ADMISSION_DECISION))


#: Backend answers that refuse a batch for good (retrying cannot help): the records are counted and skipped.
_REFUSED = frozenset({400, 413, 415, 422})
#: Most records in one request, and most bytes (the backend's default body limit is 16 MB).
BATCH_CAP = 2000
BATCH_BYTES = 4 * 1024 * 1024


class DecisionRecorder:
    """Delivers decision records — the audit trail — to the backend in the background; never delays a
    response and loses nothing while the backend is up.

    :meth:`submit` appends the record's envelope line to a bounded disk spool (:class:`~zastava.diskbuffer.
    DiskBuffer`, the observer's buffer: one ``write(2)``, crash-safe). A sender task posts what waits as
    ND-JSON: batches are sized to the rate — every record waiting, up to :data:`BATCH_CAP` (``batch_max``
    records after a ``linger_seconds`` wait when traffic is light) — and acknowledged on 2xx. Failures are
    retried with jittered backoff (the backend stores each ``admissionId`` once). Loss happens only when the
    backend stays down until the spool (``spool_max_bytes``) is full: the oldest records are dropped, counted
    in :attr:`dropped` and ``zastava_buffer_drops_total``, and logged with their time range. Records the
    backend refuses for good (400/413/415/422) are counted in :attr:`refused` and logged.

    ``spool_dir`` keeps the spool across restarts (records are replayed); None uses a private temporary
    directory removed at :meth:`stop` (what was still undelivered then is counted as dropped). When no
    directory is writable the records wait in a bounded memory queue of ``max_queue`` instead.
    """

    def __init__(
        self,
        client: BackendClient,
        *,
        max_queue: int = 1000,
        batch_max: int = 100,
        linger_seconds: float = 0.2,
        spool_dir: str | Path | None = None,
        spool_max_bytes: int = 50_000_000,
    ) -> None:
        self.client = client
        self.batch_max = batch_max
        self.linger = linger_seconds
        self.max_queue = max_queue
        self.dropped = 0
        self.posted = 0
        self.refused = 0
        self.failed = 0  # failed posts (retried)
        self._memory: deque[bytes] = deque()
        self._private: Path | None = None
        self.spool = self._open_spool(spool_dir, spool_max_bytes)
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._backoff_s = 0.0
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------------ spool

    def _open_spool(self, spool_dir: str | Path | None, max_bytes: int) -> DiskBuffer | None:
        try:
            if spool_dir is None:
                self._private = Path(tempfile.mkdtemp(prefix="zastava-decisions-"))
            spool = DiskBuffer(self._private or Path(str(spool_dir)), max_bytes)
            spool.open()
        except OSError as exc:
            log.warning(
                "decision spool unavailable; records wait in memory (bounded) instead",
                extra=fields(directory=str(spool_dir or self._private), error=exc.strerror or str(exc)),
            )
            if self._private is not None:
                shutil.rmtree(self._private, ignore_errors=True)
                self._private = None
            return None
        spool.on_drop = self._on_drop  # type: ignore[method-assign]
        if spool.pending:
            log.info("replaying spooled decision records", extra=fields(pending=spool.pending))
        return spool

    def _on_drop(self, count: int, since_us: int | None, until_us: int | None) -> None:
        self.dropped += count
        metrics = self.client.metrics
        if metrics is not None:
            metrics.buffer_drops.inc(count)
        log.warning(
            "decision records dropped: the backend stayed down until the spool was full",
            extra=fields(dropped=count, droppedTotal=self.dropped, sinceUs=since_us, untilUs=until_us),
        )

    @property
    def pending(self) -> int:
        """Records submitted and neither delivered, refused nor dropped."""
        return self.spool.pending if self.spool is not None else len(self._memory)

    # ------------------------------------------------------------------------------------------ API

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._worker())
            if self.pending:
                self._wake.set()

    def submit(self, decision: AdmissionDecision) -> None:
        self.submit_lines([decision_line(decision)])

    def submit_lines(self, lines: list[bytes]) -> None:
        """Records as envelope lines (:func:`decision_line`'s bytes), e.g. the webhook's warm answers'."""
        now = int(time.time() * 1_000_000)
        for line in lines:
            if self.spool is not None:
                try:
                    self.spool.append(line, now)
                except (OSError, DiskBufferError):
                    pass  # counted by the spool (a gap) and reported through on_drop
            elif len(self._memory) >= self.max_queue:
                self._on_drop(1, None, None)
            else:
                self._memory.append(line)
        self._wake.set()

    async def flush(self, wait_seconds: float = 5.0) -> bool:
        """Wait until every submitted record was delivered, refused or dropped (at most ``wait_seconds``)."""
        await asyncio.sleep(0)  # records submitted by callbacks already scheduled (the admitter's call_soon)
        deadline = time.monotonic() + wait_seconds
        while self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._task is None or self._task.done():
                return False
            self._progress.clear()
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._progress.wait()
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        left = self.pending
        if self.spool is not None:
            self.spool.close()
        if self._private is not None or self.spool is None:
            if left:
                self.dropped += left
                log.warning(
                    "decision records not delivered at shutdown",
                    extra=fields(lost=left, hint="set webhook.decisionSpoolDir to keep them across restarts"),
                )
            if self._private is not None:
                shutil.rmtree(self._private, ignore_errors=True)
                self._private = None

    # ------------------------------------------------------------------------------------------ sender

    def _take(self) -> tuple[list[bytes], int]:
        """The next batch: every record waiting up to :data:`BATCH_CAP` / :data:`BATCH_BYTES`, and the
        spool sequence number to acknowledge (-1 for the memory queue)."""
        if self.spool is not None:
            records = self.spool.read(BATCH_CAP, BATCH_BYTES)
            return [r.payload for r in records], records[-1].seq if records else -1
        lines: list[bytes] = []
        size = 0
        while self._memory and len(lines) < BATCH_CAP and size < BATCH_BYTES:
            line = self._memory.popleft()
            lines.append(line)
            size += len(line)
        return lines, -1

    def _settle(self, lines: list[bytes], seq: int) -> None:
        if self.spool is not None and seq >= 0:
            self.spool.ack(seq)

    def _retry(self, lines: list[bytes]) -> None:
        if self.spool is not None:
            self.spool.rewind()
        else:  # back at the head, as far as the bound allows
            room = max(0, self.max_queue - len(self._memory))
            if len(lines) > room:
                self._on_drop(len(lines) - room, None, None)
            self._memory.extendleft(reversed(lines[:room]))

    async def _worker(self) -> None:
        while True:
            if not self.pending:
                self._wake.clear()
                self._progress.set()
                await self._wake.wait()
            if self.linger and self.pending < self.batch_max:
                await asyncio.sleep(self.linger)  # light traffic: let more records join one request
            lines, seq = self._take()
            if not lines:
                await asyncio.sleep(0.01)
                continue
            try:
                await self.client.post_decision_lines(lines)
            except BackendError as exc:
                if exc.status in _REFUSED:
                    self.refused += len(lines)
                    self._settle(lines, seq)
                    log.error(
                        "backend refused decision records; skipped",
                        extra=fields(records=len(lines), error=str(exc)),
                    )
                    continue
                self.failed += 1
                self._retry(lines)
                self._backoff_s = min(10.0, max(0.2, self._backoff_s * 2))
                log.warning(
                    "decision records not delivered yet; will retry",
                    extra=fields(records=len(lines), pending=self.pending, error=str(exc)),
                )
                await asyncio.sleep(self._backoff_s * random.uniform(0.5, 1.0))
                continue
            except Exception:  # never let the sender die
                log.exception("decision sender failed; retrying")
                self._retry(lines)
                await asyncio.sleep(1.0)
                continue
            self._backoff_s = 0.0
            self.posted += len(lines)
            self._settle(lines, seq)
            self._progress.set()
