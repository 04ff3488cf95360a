"""``zastava events send|tail``: push captured ND-JSON events through the publisher; follow stored events.

Heavy imports happen inside the commands so that ``zastava --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer

if TYPE_CHECKING:
    from ...config import ZastavaConfig
    from ...contracts import RuntimeEvent
    from .publisher import EventPublisher

events_app = typer.Typer(help="Runtime events: send captured events to a backend, follow stored ones.")

#: Longest accepted input line (one event); longer lines are reported and skipped.
MAX_LINE_BYTES = 4 * 1024 * 1024

BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="backend base URL, e.g. https://scanner:8443 (default $ZASTAVA_BACKEND_URL, else "
        "zastava.backend.baseAddress of --config, else http://127.0.0.1:8080)",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="zastava YAML: credentials and TLS from zastava.runtime.authority (OpTok, DPoP, client "
        "certificate, caBundlePath), the backend from zastava.backend",
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _config(backend: str | None, config_file: Path | None, allow_insecure_http: bool) -> ZastavaConfig:
    """The operator's config and backend URL (:func:`zastava.auth.operator.operator_config`)."""
    from ...auth.operator import OperatorConfigError, operator_config

    try:
        return operator_config(config_file, backend, allow_insecure_http=allow_insecure_http)
    except OperatorConfigError as exc:
        raise _fail(str(exc)) from None


def parse_event_line(line: bytes) -> RuntimeEvent:
    """One input line: a runtime-event envelope, or a bare event object. Raises ValueError with a message."""
    import orjson
    from pydantic import ValidationError

    from ...contracts import EnvelopeError, RuntimeEvent, parse_runtime_envelope

    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    if "schemaVersion" in data:
        try:
            return parse_runtime_envelope(data)[1]
        except EnvelopeError as exc:
            raise ValueError(str(exc)) from None
    try:
        return RuntimeEvent.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"not a runtime event: {where}: {first['msg']}") from None


def _lines(stream: BinaryIO) -> Any:
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            # skip the rest of the oversized line
            while True:
                rest = stream.readline(MAX_LINE_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line


@events_app.command("send")
def send(
    source: Annotated[str, typer.Argument(help="ND-JSON file of events or envelopes, or - for stdin")],
    backend: BackendOption = None,
    buffer_dir: Annotated[
        Path | None,
        typer.Option("--buffer-dir", help="disk buffer (kept if not everything was delivered)"),
    ] = None,
    config_file: ConfigOption = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for delivery before giving up")] = 60.0,
    allow_insecure_http: Annotated[
        bool, typer.Option("--allow-insecure-http", help="allow http:// to a non-loopback host")
    ] = False,
) -> None:
    """Push ND-JSON runtime events through the publisher (batching, gzip, disk buffer, retries).

    Backpressure: when the disk buffer is full (its cap, or the disk itself) reading waits for deliveries
    instead of dropping the oldest events; it gives up after --timeout seconds without any delivery.

    Exit codes: 0 all delivered; 1 some input lines were invalid or refused by the backend (the rest was
    delivered); 3 some events were not delivered — the summary says how many (those stored stay in the
    buffer directory, printed).
    """
    import asyncio
    import tempfile

    config = _config(backend, config_file, allow_insecure_http)
    keep = buffer_dir is not None
    directory = buffer_dir or Path(tempfile.mkdtemp(prefix="zastava-events-"))
    try:
        stream: BinaryIO = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise _fail(f"cannot read {source}: {exc.strerror or exc}") from None
    with stream:
        code = asyncio.run(_send(config, stream, directory, timeout))
    if code == 3:
        typer.echo(f"undelivered events kept in {directory}", err=True)
    elif not keep:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
    raise typer.Exit(code)


async def _send(config: ZastavaConfig, stream: BinaryIO, directory: Path, wait_seconds: float) -> int:
    from ...auth.operator import operator_client
    from ...telemetry.metrics import ZastavaMetrics
    from .publisher import EventPublisher

    async with operator_client(config, component="events-send") as client:
        publisher = EventPublisher(
            config,
            buffer_dir=directory,
            metrics=ZastavaMetrics(),
            rate_limit=False,
            http_client=client.http,
            headers_provider=client.auth.headers_provider if client.auth else None,
        )
        return await _publish_stream(publisher, stream, wait_seconds)


async def _publish_stream(publisher: EventPublisher, stream: BinaryIO, wait_seconds: float) -> int:
    await publisher.start()
    bad = read = unsent = 0
    try:
        for number, line in _lines(stream):
            if line is None:
                bad += 1
                typer.echo(f"line {number}: longer than {MAX_LINE_BYTES} bytes; skipped", err=True)
                continue
            if not line.strip():
                continue
            if unsent:  # gave up waiting for the backend: the rest of the input is counted, not stored
                unsent += 1
                continue
            try:
                event = parse_event_line(line)
            except ValueError as exc:
                bad += 1
                typer.echo(f"line {number}: {exc}", err=True)
                continue
            read += 1
            if not await publisher.publish_waiting(event, wait_seconds):
                unsent = 1
                typer.echo(
                    f"line {number}: the disk buffer stayed full for {wait_seconds:g} s without a delivery; "
                    "the rest of the input is not sent",
                    err=True,
                )
        delivered = await publisher.flush(wait_seconds)
    finally:
        await publisher.aclose(timeout=0.5)
    buffer = publisher.buffer
    lost = buffer.dropped_total  # dropped past the cap or not written (disk full): counted by the buffer
    kept = buffer.pending  # stored but not delivered: kept in the buffer directory
    missing = lost + kept + unsent
    total = read + max(0, unsent - 1)  # lines after giving up are counted, not parsed
    refused = publisher.rejected_total
    typer.echo(
        f"events: {total} read, {max(0, total - missing - refused)} delivered, {refused} refused by the "
        f"backend, {bad} invalid line(s), {missing} not delivered ({kept} kept in the buffer, {lost} lost, "
        f"{unsent} not sent)",
        err=True,
    )
    if missing or not delivered:
        return 3
    return 1 if bad or publisher.rejected_total else 0


@events_app.command("tail")
def tail(
    backend: BackendOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="only events at or after this RFC 3339 time (with zone), e.g. 2026-11-28T12:00:00Z"
        ),
    ] = None,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 2.0,
    limit: Annotated[int, typer.Option(help="events per request (page size)", min=1, max=1000)] = 500,
    backlog: Annotated[
        int, typer.Option(help="at most this many already-stored events printed first", min=0, max=1_000_000)
    ] = 1000,
    once: Annotated[bool, typer.Option("--once", help="print the backlog and stop")] = False,
    max_events: Annotated[int | None, typer.Option(help="stop after this many events")] = None,
    config_file: ConfigOption = None,
    allow_insecure_http: Annotated[
        bool, typer.Option("--allow-insecure-http", help="allow http:// to a non-loopback host")
    ] = False,
) -> None:
    """Follow stored events: polls ``GET {eventsPath}`` (newest first, ``nextCursor`` pages) and prints one
    envelope per line, oldest first; with the config's Authority credentials the calls carry OpTok/DPoP."""
    import asyncio

    config = _config(backend, config_file, allow_insecure_http)
    raise typer.Exit(asyncio.run(_tail(config, since, interval, limit, backlog, once, max_events)))


def parse_page(data: Any) -> tuple[list[Any], str | None]:
    """Envelopes and next cursor of a query-API page (``{items: [{envelope, …}], total, nextCursor?}``; bare
    envelopes in ``items`` are accepted too); ValueError if unusable."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    items = data.get("items")
    if not isinstance(items, list):
        raise ValueError("response has no 'items' list")
    envelopes = [
        item["envelope"] if isinstance(item, dict) and isinstance(item.get("envelope"), dict) else item
        for item in items
    ]
    cursor = data.get("nextCursor")
    return envelopes, None if cursor in (None, "") else str(cursor)


def _event_id(envelope: Any) -> str | None:
    if isinstance(envelope, dict):
        event = envelope.get("event", envelope)
        if isinstance(event, dict) and isinstance(event.get("eventId"), str):
            return str(event["eventId"])
    return None


class _TailError(Exception):
    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


async def _tail(
    config: ZastavaConfig,
    since: str | None,
    interval: float,
    limit: int,
    backlog: int,
    once: bool,
    max_events: int | None,
) -> int:
    """Newest-first pages: each poll walks pages until it meets an event already printed (or, on the first
    poll, ``backlog`` events), then prints the new ones oldest first. Memory is bounded by ``backlog`` and the
    remembered ids (the last 10 000 printed)."""
    import asyncio
    from collections import deque

    import httpx
    import orjson

    url = config.backend.base_address.rstrip("/") + config.backend.events_path
    from contextlib import AsyncExitStack

    from ...auth.operator import operator_client

    stack = AsyncExitStack()
    operator = await stack.enter_async_context(operator_client(config, component="events-tail"))
    client = operator.http
    headers_provider = operator.auth.headers_provider if operator.auth else None
    seen_order: deque[str] = deque(maxlen=10_000)
    seen: set[str] = set()
    printed = 0
    out = sys.stdout.buffer

    async def get(cursor: str | None) -> tuple[list[Any], str | None]:
        params: dict[str, str | int] = {"limit": limit}
        if since is not None:
            params["since"] = since
        if cursor is not None:
            params["cursor"] = cursor
        headers = {"Accept": "application/json"}
        if headers_provider is not None:
            full = str(httpx.URL(url, params=params))
            headers.update(await headers_provider("GET", full))
        try:
            response = await client.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise _TailError(f"{url}: {type(exc).__name__}: {exc}", fatal=False) from None
        if response.status_code != 200:
            message = (
                f"{url}: HTTP {response.status_code}: {response.text[:200]}{operator.refusal_hint(response)}"
            )
            raise _TailError(message, fatal=response.status_code in (400, 401, 403, 404))
        try:
            return parse_page(orjson.loads(response.content))
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise _TailError(f"unexpected response from {url}: {exc}", fatal=True) from None

    async def poll(first: bool) -> list[Any]:
        fresh: list[Any] = []
        cursor: str | None = None
        cap = backlog if first else 1_000_000
        while len(fresh) < cap:
            envelopes, cursor = await get(cursor)
            for envelope in envelopes:
                event_id = _event_id(envelope)
                if event_id is not None and event_id in seen:
                    return fresh
                fresh.append(envelope)
                if len(fresh) >= cap:
                    break
            if cursor is None:
                break
        return fresh

    first = True
    try:
        while True:
            try:
                fresh = await poll(first)
            except _TailError as exc:
                typer.echo(f"{'error' if exc.fatal else 'warning'}: {exc}", err=True)
                if exc.fatal or once:
                    return 3
                await asyncio.sleep(interval)
                continue
            if first and not backlog:  # print only what arrives from now on
                for envelope in (await get(None))[0]:
                    if (event_id := _event_id(envelope)) is not None:
                        seen_order.append(event_id)
                        seen.add(event_id)
            first = False
            for envelope in reversed(fresh):
                event_id = _event_id(envelope)
                if event_id is not None:
                    if len(seen_order) == seen_order.maxlen:
                        seen.discard(seen_order[0])
                    seen_order.append(event_id)
                    seen.add(event_id)
                out.write(orjson.dumps(envelope) + b"\n")
                printed += 1
                if max_events is not None and printed >= max_events:
                    out.flush()
                    return 0
            out.flush()
            if once:
                return 0
            await asyncio.sleep(interval)
    finally:
        await stack.aclose()
