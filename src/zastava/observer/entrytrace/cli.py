"""``zastava entrytrace [--root DIR] [--env K=V …] [--workdir DIR] [--user UID] [--json] -- ARGV…``."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["entrytrace"]


def entrytrace(
    argv: Annotated[list[str], typer.Argument(help="the container's ENTRYPOINT + CMD (after --)")],
    root: Annotated[
        str, typer.Option("--root", help="image rootfs or /proc/<pid>/root of a live container")
    ] = "/",
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="K=V; when any is given the environment is taken as complete"),
    ] = None,
    workdir: Annotated[str, typer.Option("--workdir", "-w", help="working directory")] = "/",
    user: Annotated[str | None, typer.Option("--user", "-u", help="uid or user name (image USER)")] = None,
    max_depth: Annotated[int, typer.Option("--max-depth", min=1, max=1024)] = 48,
    json_: Annotated[bool, typer.Option("--json", help="print the full result as JSON")] = False,
) -> None:
    """Follow an entrypoint statically to the program that really runs (nothing is executed)."""
    from pathlib import Path

    from zastava.terminal import fail, write_json

    from .tracer import trace_entrypoint

    if not Path(root).is_dir():
        fail(f"--root {root}: not a directory")
    environment: dict[str, str] | None = None
    if env:
        environment = {}
        for item in env:
            key, eq, value = item.partition("=")
            if not eq or not key:
                fail(f"--env {item!r}: expected K=V")
            environment[key] = value
    result = trace_entrypoint(
        argv, root=root, env=environment, workdir=workdir, user=user, max_depth=max_depth
    )
    if json_:
        write_json(result.to_json())
        return
    for step in result.steps:
        where = step.file + (f":{step.line}" if step.line is not None else "")
        typer.echo(f"{where}\t{step.op}\t{step.target}")
    typer.echo("terminals:")
    for index, terminal in enumerate(result.terminals):
        what = terminal.script or terminal.jar or terminal.module or terminal.main_class or ""
        role = f" (resident: {terminal.role})" if terminal.resident else ""
        resolved = (
            f" -> {terminal.resolved}" if terminal.resolved and terminal.resolved != terminal.path else ""
        )
        applet = f" [{terminal.applet}]" if terminal.applet else ""
        line = f"  {terminal.path or '<unknown>'}{resolved}{applet}\t{terminal.kind}{role}\t{what}"
        typer.echo(line.rstrip())
        for path in result.when[index] if index < len(result.when) else []:
            if path:  # the undecided conditions this terminal depends on, as that path took them
                taken = "; ".join(f"{d.file}:{d.line} `{d.condition}` {d.branch}" for d in path)
                typer.echo(f"      when {taken}")
    if result.wrappers:
        typer.echo("wrappers: " + " ".join(result.wrappers))
    flags = [name for name, on in (("ambiguous", result.ambiguous), ("partial", result.partial)) if on]
    typer.echo(f"confidence: {result.confidence}%" + (f" ({', '.join(flags)})" if flags else ""))
    for diagnostic in result.diagnostics:
        where = f" [{diagnostic.file}:{diagnostic.line}]" if diagnostic.file and diagnostic.line else ""
        typer.echo(f"  {diagnostic.code}: {diagnostic.message}{where}", err=True)
