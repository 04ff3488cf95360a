"""``zastava observer``: the node agent (``run``) and a one-pass view of what it would send (``snapshot``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..telemetry.logging import fields

if TYPE_CHECKING:
    from ..config import ZastavaConfig

app = typer.Typer(
    help="The observer node agent (spec §3): watch containers, emit runtime events.", no_args_is_help=True
)

log = logging.getLogger("zastava.observer")

ConfigOption = Annotated[str | None, typer.Option("--config", "-c", help="YAML configuration file.")]
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine", "-e", help="containerd, cri-o, docker, logtail or auto (default: runtime.engine)."
    ),
]


def _load(config: str | None) -> ZastavaConfig:
    from ..config import ConfigError, load_config
    from ..terminal import fail

    try:  # run: the runtime core logs the guardrail warnings, in the JSON format
        return load_config(config, warn=False)
    except ConfigError as exc:
        fail(str(exc))


async def _stdout_publish(event: Any) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(event.wire()) + b"\n")
    sys.stdout.buffer.flush()


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _start_up_problems(cfg: ZastavaConfig, *, stdout: bool = False) -> list[str]:
    """What stops ``observer run`` before it observes anything (each message names its key); with
    ``--stdout`` nothing is sent to the backend, so its credentials are not needed."""
    from ..config import start_up_problems
    from .mounts import writable_mounts

    # the refusals `zastava config validate --component observer` reports too (one list, zastava.config)
    found = start_up_problems(cfg, "observer", calls_backend=not stdout)
    problems = [f"{key}: {message}" for key, message in found]
    problems += writable_mounts(cfg.security.mounts)
    return problems


@app.command("run")
def run(
    config: ConfigOption = None,
    engine: EngineOption = None,
    stdout: Annotated[
        bool,
        typer.Option(
            "--stdout", help="Write events as ND-JSON to stdout instead of publishing (no backend calls)."
        ),
    ] = False,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="HOST:PORT of /metrics, /healthz, /readyz (default zastava.observer.listen, 0.0.0.0:9090; "
            "'' turns it off).",
        ),
    ] = None,
) -> None:
    """Observe until SIGINT/SIGTERM; events go to the backend through the durable publisher.

    Serves /metrics, /healthz and /readyz on zastava.observer.listen. Exit status 2 when the configuration
    cannot run (each message names its key): mode.observer false, a writable security.mounts entry, no
    procfs showing the host's processes, the listen address taken, tracing configured but not installed.
    Exit status 1 when the observation loop ends without SIGINT/SIGTERM. The endpoint is served before the
    container engine is opened: a slow engine at start-up is a 503 naming it, not a refused port.
    """
    from pydantic import ValidationError

    from ..config import Observer
    from ..telemetry.setup import runtime_core
    from ..telemetry.tracing import TracingUnavailable, shutdown_tracing
    from .endpoint import ObserverEndpoint, Readiness, bind, serve
    from .hostprocfs import ProcfsUnavailable
    from .wiring import create_agent

    cfg = _load(config)
    if listen is not None:
        try:
            observer = Observer.model_validate({**cfg.observer.model_dump(), "listen": listen})
        except ValidationError as exc:
            message = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise _fail(f"--listen: {message}") from None
        cfg = cfg.model_copy(update={"observer": observer})
    problems = _start_up_problems(cfg, stdout=stdout)
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    try:
        metrics = runtime_core(cfg, "observer")
    except TracingUnavailable as exc:
        raise _fail(f"zastava.runtime.tracing.otlpEndpoint: {exc}") from None
    timeout = cfg.observer.engines.connect_timeout_seconds

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        closers: list[Callable[[], Awaitable[None]]] = []
        try:
            await observe(stop, closers)
        finally:
            for close in reversed(closers):
                await close()
            shutdown_tracing()

    async def observe(stop: asyncio.Event, closers: list[Callable[[], Awaitable[None]]]) -> None:
        # the endpoint first: /metrics and /readyz (not ready, with the reason) answer while the engine is
        # still being chosen or is slow to answer (a CPU-throttled node at start-up), not a refused port
        readiness = Readiness(None, publisher=None, running=lambda: False, timeout=timeout)
        endpoint = None
        if cfg.observer.listen is not None:
            try:
                sock = bind(cfg.observer.listen)
            except OSError as exc:
                where = cfg.observer.listen
                raise _fail(f"zastava.observer.listen: cannot listen on {where}: {exc}") from None
            started = asyncio.Event()
            endpoint = asyncio.create_task(serve(ObserverEndpoint(metrics, readiness), sock, stop, started))
            # serving before the engine's first call: starting uvicorn (its imports block the loop) while that
            # call waits made the first CRI Version 1.2 s slower (median, 2 cores busy) and time out
            waiter = asyncio.create_task(started.wait())
            await asyncio.wait([waiter, endpoint], timeout=30, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if endpoint.done() and endpoint.exception() is not None:
                raise _fail(
                    f"zastava.observer.listen: cannot serve on {cfg.observer.listen}: {endpoint.exception()}"
                )
        try:
            await run_agent(stop, closers, readiness)
        finally:
            stop.set()
            if endpoint is not None:
                await asyncio.gather(endpoint, return_exceptions=True)

    async def run_agent(
        stop: asyncio.Event, closers: list[Callable[[], Awaitable[None]]], readiness: Readiness
    ) -> None:
        publisher = auth = None
        publish: Any = _counting_stdout(metrics)
        if not stdout:
            from ..auth import backend_auth
            from .publisher import EventPublisher

            try:
                auth = backend_auth(cfg, component="observer")
            except (ValueError, OSError) as exc:
                raise _fail(f"zastava.runtime.authority: {exc}") from None
            closers.append(auth.aclose)
            publisher = EventPublisher(
                cfg, metrics=metrics, http_client=auth.http_client, headers_provider=auth.headers_provider
            )
            publish = publisher.publish
        try:
            agent, aclose = await create_agent(
                cfg,
                publish,
                engine=engine,
                metrics=metrics,
                backend=not stdout,
                http_client=auth.http_client if auth else None,
                headers_provider=auth.headers_provider if auth else None,
                count_events=False,
            )
        except ProcfsUnavailable as exc:
            raise _fail(str(exc)) from None
        closers.append(aclose)
        if publisher is not None:
            await publisher.start()
            closers.append(publisher.aclose)
        observing = asyncio.create_task(agent.run(stop))
        readiness.publisher = publisher
        readiness.running = lambda: not observing.done()
        readiness.engine = agent.engine
        log.info(
            "observer started",
            extra=fields(
                node=cfg.observer.node_name,
                engine=agent.engine.name,
                # what the engine declares it can tell (a log-tail or pod-metadata fallback: reduced)
                capabilities=dataclasses.asdict(agent.engine.capabilities),
                procfs=agent.settings.procfs,
                output="stdout" if stdout else cfg.backend.base_address,
                metrics=f"http://{cfg.observer.listen}/metrics" if cfg.observer.listen is not None else None,
            ),
        )
        await observing
        if not stop.is_set():
            # status 0 would tell a kubelet (restartPolicy OnFailure) or systemd that all is well
            log.error("observation loop ended without a stop signal")
            raise typer.Exit(1)

    asyncio.run(main())


def _counting_stdout(metrics: Any) -> Any:
    """``--stdout``: events as ND-JSON lines, counted as the publisher would count them."""

    async def publish(event: Any) -> None:
        metrics.events_total.labels(kind=event.kind.value).inc()
        await _stdout_publish(event)

    return publish


@app.command("snapshot")
def snapshot(
    engine: EngineOption = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the events as a JSON array (wire form).")
    ] = False,
    config: ConfigOption = None,
    backend: Annotated[
        bool, typer.Option("--backend/--no-backend", help="Ask the backend for image posture.")
    ] = False,
) -> None:
    """One pass over the running containers: the CONTAINER_START events the agent would send."""
    from rich.console import Console
    from rich.table import Table

    from ..terminal import fail, write_json
    from .engines import EngineUnavailable
    from .wiring import create_agent

    cfg = _load(config)

    async def publish(event: Any) -> None:
        return None

    async def main() -> list[Any]:
        auth = None
        if backend:
            from ..auth import backend_auth

            auth = backend_auth(cfg, component="observer-snapshot")
        try:
            agent, aclose = await create_agent(
                cfg,
                publish,
                engine=engine,
                backend=backend,
                http_client=auth.http_client if auth else None,
                headers_provider=auth.headers_provider if auth else None,
            )
            try:
                return await agent.snapshot()
            finally:
                await aclose()
        finally:
            if auth is not None:
                await auth.aclose()

    try:
        events = asyncio.run(main())
    except (EngineUnavailable, ValueError, OSError) as exc:  # ProcfsUnavailable names runtime.procfs
        fail(str(exc))
    if json_:
        write_json([event.wire() for event in events])
        return
    table = Table(title=f"containers on {cfg.observer.node_name}")
    for column in ("kind", "container", "pid", "image", "entrypoint", "terminal"):
        table.add_column(column, overflow="fold")
    for event in events:
        process = event.process
        workload = event.workload
        name = "/".join(p for p in (workload.namespace, workload.pod, workload.container) if p)
        table.add_row(
            event.kind.value,
            f"{name}\n{workload.container_id[:40]}" if name else workload.container_id[:40],
            str(process.pid) if process else "-",
            workload.image_ref or "-",
            " ".join(process.entrypoint) if process else "-",
            ", ".join(process.terminals or []) if process else "-",
        )
    Console().print(table)
