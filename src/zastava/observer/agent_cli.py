"""``zastava observer``: the node agent (``run``) and a one-pass view of what it would send (``snapshot``)."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="The observer node agent (spec §3): watch containers, emit runtime events.", no_args_is_help=True
)

ConfigOption = Annotated[str | None, typer.Option("--config", "-c", help="YAML configuration file.")]
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine", "-e", help="containerd, cri-o, docker, logtail or auto (default: runtime.engine)."
    ),
]


def _load(config: str | None) -> Any:
    from ..cli import fail
    from ..config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        fail(str(exc))


async def _stdout_publish(event: Any) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(event.wire()) + b"\n")
    sys.stdout.buffer.flush()


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
) -> None:
    """Observe until SIGINT/SIGTERM; events go to the backend through the durable publisher."""
    from ..telemetry.logging import configure_logging
    from ..telemetry.metrics import default_metrics
    from .agent import create_agent

    cfg = _load(config)
    configure_logging(
        cfg.runtime.logging.level,
        fmt=cfg.runtime.logging.format,
        static_scope=cfg.runtime.logging.static_scope,
        common=cfg.runtime.metrics.common_tags,
        include_scopes=cfg.runtime.logging.include_scopes,
    )
    metrics = default_metrics(cfg.runtime.metrics.common_tags)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if stdout:
            agent, aclose = await create_agent(
                cfg, _stdout_publish, engine=engine, metrics=metrics, backend=False
            )
            typer.echo(
                f"observer: node {cfg.observer.node_name}, engine {agent.engine.name}, stdout", err=True
            )
            try:
                await agent.run(stop)
            finally:
                await aclose()
            return
        from ..auth import backend_auth
        from .publisher import EventPublisher

        try:
            auth = backend_auth(cfg, component="observer")
        except (ValueError, OSError) as exc:
            typer.echo(f"error: zastava.runtime.authority: {exc}", err=True)
            raise typer.Exit(2) from None
        publisher = EventPublisher(
            cfg, metrics=metrics, http_client=auth.http_client, headers_provider=auth.headers_provider
        )
        await publisher.start()
        agent, aclose = await create_agent(
            cfg,
            publisher.publish,
            engine=engine,
            metrics=metrics,
            http_client=auth.http_client,
            headers_provider=auth.headers_provider,
        )
        typer.echo(f"observer: node {cfg.observer.node_name}, engine {agent.engine.name}", err=True)
        try:
            await agent.run(stop)
        finally:
            await aclose()
            await publisher.aclose()
            await auth.aclose()

    asyncio.run(main())


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

    from ..cli import fail, write_json
    from .agent import create_agent
    from .engines import EngineUnavailable

    cfg = _load(config)

    async def publish(event: Any) -> None:
        return None

    async def main() -> list[Any]:
        agent, aclose = await create_agent(cfg, publish, engine=engine, backend=backend)
        try:
            return await agent.snapshot()
        finally:
            await aclose()

    try:
        events = asyncio.run(main())
    except (EngineUnavailable, ValueError) as exc:
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
