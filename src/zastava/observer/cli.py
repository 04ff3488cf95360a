"""Observer commands. ``inspect`` is registered as a top-level command in :mod:`zastava.cli`.

Heavy modules are imported inside the command functions so ``zastava --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["inspect_command"]


def inspect_command(
    pid: Annotated[int, typer.Argument(min=1, help="Process id, as seen in --procfs.")],
    json_: Annotated[bool, typer.Option("--json", help="Contract JSON instead of a table.")] = False,
    procfs: Annotated[
        str | None,
        typer.Option(
            "--procfs",
            help="procfs mount (default: runtime.procfs of --config, else /proc).",
            show_default=False,
        ),
    ] = None,
    max_libs: Annotated[
        int | None,
        typer.Option("--max-libs", min=0, help="Objects hashed at most (default: config, else 256)."),
    ] = None,
    max_hash_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-hash-bytes", min=0, help="Bytes hashed at most (default: config, else 64000000)."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Zastava YAML configuration for the defaults.")
    ] = None,
    diagnostic: Annotated[
        bool,
        typer.Option("--diagnostic", help="Also export argv and environment (spec §7 diagnostic mode)."),
    ] = False,
) -> None:
    """Print the process, loadedLibs and evidence of a runtime event for one live process."""
    from zastava.terminal import fail, write_json

    from .inspect import ProcessGone, inspect_process

    defaults_procfs, defaults_libs, defaults_bytes, hash_threads = "/proc", 256, 64_000_000, 2
    if config is not None:
        from zastava.config import ConfigError, load_config

        try:
            cfg = load_config(config, warn=False)
        except ConfigError as exc:
            fail(str(exc))
        if procfs is None:  # as observer run: /proc on the host when the configured one is absent
            from .hostprocfs import ProcfsUnavailable, resolve_procfs

            try:
                defaults_procfs = resolve_procfs(cfg.runtime.procfs)
            except ProcfsUnavailable as exc:
                fail(str(exc))
        defaults_libs = cfg.runtime.collect.max_libs
        defaults_bytes = cfg.runtime.collect.max_hash_bytes_per_container
        hash_threads = cfg.runtime.collect.hash_threads
    procfs_dir = procfs if procfs is not None else defaults_procfs
    if not Path(procfs_dir, "self").exists() and not Path(procfs_dir, str(pid)).exists():
        fail(f"{procfs_dir} is not a procfs mount")
    try:
        result = inspect_process(
            pid,
            procfs=procfs_dir,
            max_libs=defaults_libs if max_libs is None else max_libs,
            max_hash_bytes=defaults_bytes if max_hash_bytes is None else max_hash_bytes,
            diagnostic=diagnostic,
            hash_threads=hash_threads,
        )
    except ProcessGone:
        fail(f"no process {pid} in {procfs_dir}", code=1)
    if json_:
        write_json(result.wire())
        return
    _print_table(result)


def _print_table(result: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from .inspect import Inspection

    assert isinstance(result, Inspection)
    console = Console(highlight=False, soft_wrap=True)
    proc = result.process
    identity = result.identity
    console.print(f"[bold]pid[/] {proc.pid}  [bold]start time[/] {proc.start_time}")
    console.print(f"[bold]exe[/] {result.exe_path or '-'}  [bold]build-id[/] {proc.build_id or '-'}")
    console.print(f"[bold]entrypoint[/] {' '.join(proc.entrypoint) or '-'}")
    console.print(f"[bold]container[/] {identity.uri if identity else '- (host process)'}")
    if result.partial:
        console.print("[bold yellow]partial sample[/] (see evidence)")
    table = Table(title=f"loaded objects ({len(result.loaded_libs)})")
    table.add_column("path", overflow="fold")
    table.add_column("inode", no_wrap=True)
    table.add_column("sha256", overflow="fold", min_width=64)
    for lib in result.loaded_libs:
        table.add_row(lib.path, str(lib.inode), lib.sha256 or "[dim]not hashed[/]")
    console.print(table)
    evidence = Table(title="evidence")
    evidence.add_column("signal", no_wrap=True)
    evidence.add_column("value", overflow="fold")
    for item in result.evidence:
        evidence.add_row(item.signal, item.value)
    console.print(evidence)
