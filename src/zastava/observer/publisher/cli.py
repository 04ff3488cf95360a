"""``zastava events send|tail``: push captured ND-JSON events through the publisher; follow stored events.

Heavy imports happen inside the commands so that ``zastava --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO
from urllib.parse import urlsplit

import typer

if TYPE_CHECKING:
    from ...config import ZastavaConfig
    from ...contracts import RuntimeEvent

events_app = typer.Typer(help="Runtime events: send captured events to a backend, follow stored ones.")

#: Longest accepted input line (one event); longer lines are reported and skipped.
MAX_LINE_BYTES = 4 * 1024 * 1024
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _config(backend: str, config_file: Path | None, allow_insecure_http: bool) -> ZastavaConfig:
    from ...config import ConfigError, load_config

    parts = urlsplit(backend)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(f"--backend must be an http(s) URL, got {backend!r}")
    insecure = parts.scheme == "http"
    if insecure and not allow_insecure_http and parts.hostname not in _LOOPBACK:
        raise _fail("--backend uses plain http to a non-loopback host; pass --allow-insecure-http to do so")
    try:
        config = load_config(config_file, warn=False)
        data = config.model_dump(by_alias=True)
        data["backend"].update(
            baseAddress=backend.rstrip("/"),
            allowInsecureHttp=insecure or data["backend"]["allowInsecureHttp"],
        )
        return type(config).model_validate(data)
    except ConfigError as exc:
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
    backend: Annotated[str, typer.Option("--backend", help="backend base URL, e.g. https://scanner:8443")],
    buffer_dir: Annotated[
        Path | None,
        typer.Option("--buffer-dir", help="disk buffer (kept if not everything was delivered)"),
    ] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="zastava YAML config")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for delivery before giving up")] = 60.0,
    allow_insecure_http: Annotated[
        bool, typer.Option("--allow-insecure-http", help="allow http:// to a non-loopback host")
    ] = False,
) -> None:
    """Push ND-JSON runtime events through the publisher (batching, gzip, disk buffer, retries).

    Exit codes: 0 all delivered; 1 some input lines were invalid or refused by the backend (the rest was
    delivered); 3 not everything could be delivered in time (it stays in the buffer directory, printed).
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
    from ...telemetry.metrics import ZastavaMetrics
    from .publisher import EventPublisher

    publisher = EventPublisher(config, buffer_dir=directory, metrics=ZastavaMetrics(), rate_limit=False)
    await publisher.start()
    bad = read = 0
    try:
        for number, line in _lines(stream):
            if line is None:
                bad += 1
                typer.echo(f"line {number}: longer than {MAX_LINE_BYTES} bytes; skipped", err=True)
                continue
            if not line.strip():
                continue
            try:
                event = parse_event_line(line)
            except ValueError as exc:
                bad += 1
                typer.echo(f"line {number}: {exc}", err=True)
                continue
            read += 1
            await publisher.publish(event)
        delivered = await publisher.flush(wait_seconds)
    finally:
        await publisher.aclose(timeout=0.5)
    typer.echo(
        f"events: {read} read, {publisher.delivered_total} delivered, {publisher.rejected_total} refused by "
        f"the backend, {bad} invalid line(s)",
        err=True,
    )
    if not delivered:
        return 3
    return 1 if bad or publisher.rejected_total else 0


@events_app.command("tail")
def tail(
    backend: Annotated[str, typer.Option("--backend", help="backend base URL")],
    since: Annotated[str | None, typer.Option(help="cursor to start after (default: the beginning)")] = None,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 2.0,
    limit: Annotated[int, typer.Option(help="events per request", min=1, max=1000)] = 500,
    once: Annotated[bool, typer.Option("--once", help="stop when no new event is returned")] = False,
    max_events: Annotated[int | None, typer.Option(help="stop after this many events")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="zastava YAML config")] = None,
    allow_insecure_http: Annotated[
        bool, typer.Option("--allow-insecure-http", help="allow http:// to a non-loopback host")
    ] = False,
) -> None:
    """Follow stored events: polls ``GET {eventsPath}?since=<cursor>`` and prints one envelope per line."""
    import asyncio

    config = _config(backend, config_file, allow_insecure_http)
    raise typer.Exit(asyncio.run(_tail(config, since, interval, limit, once, max_events)))


def parse_page(data: Any) -> tuple[list[Any], str | None]:
    """Items and next cursor of a query-API page, tolerant of field-name variants; ValueError if unusable."""
    if isinstance(data, list):
        return data, None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    items = next((data[k] for k in ("items", "events", "data") if k in data), None)
    if items is None:
        raise ValueError("response has no 'items'")
    if not isinstance(items, list):
        raise ValueError("'items' is not a list")
    cursor = next((data[k] for k in ("cursor", "nextCursor", "next") if data.get(k) not in (None, "")), None)
    return items, None if cursor is None else str(cursor)


async def _tail(
    config: ZastavaConfig, since: str | None, interval: float, limit: int, once: bool, max_events: int | None
) -> int:
    import asyncio

    import httpx
    import orjson

    url = config.backend.base_address.rstrip("/") + config.backend.events_path
    cursor = since
    printed = 0
    out = sys.stdout.buffer
    async with httpx.AsyncClient(timeout=config.backend.request_timeout_seconds) as client:
        while True:
            params: dict[str, str | int] = {"limit": limit}
            if cursor is not None:
                params["since"] = cursor
            try:
                response = await client.get(url, params=params, headers={"Accept": "application/json"})
            except httpx.HTTPError as exc:
                typer.echo(f"warning: {url}: {type(exc).__name__}: {exc}", err=True)
                if once:
                    return 3
                await asyncio.sleep(interval)
                continue
            if response.status_code != 200:
                typer.echo(f"warning: {url}: HTTP {response.status_code}: {response.text[:200]}", err=True)
                if once or response.status_code in (400, 401, 403, 404):
                    return 3
                await asyncio.sleep(interval)
                continue
            try:
                items, next_cursor = parse_page(response.json())
            except ValueError as exc:
                typer.echo(f"error: unexpected response from {url}: {exc}", err=True)
                return 3
            for item in items:
                out.write(orjson.dumps(item) + b"\n")
                printed += 1
                if max_events is not None and printed >= max_events:
                    out.flush()
                    return 0
            out.flush()
            if next_cursor is not None:
                cursor = next_cursor
            if not items:
                if once:
                    return 0
                await asyncio.sleep(interval)
            elif next_cursor is None:
                typer.echo("error: the backend returned items without a cursor; cannot follow", err=True)
                return 3
