"""What every command writes to the terminal: errors on standard error (exit code 2 unless said otherwise),
JSON on standard output, input from a file or ``-``.

The root command (:mod:`zastava.cli`) and each plane's command module import this; nothing here imports a
plane, so no plane reaches back into the root command that loads it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

err = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def read_input(source: str) -> bytes:
    """Bytes of a file path, or of standard input for ``-``."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}")


def write_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
