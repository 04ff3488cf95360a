"""The ``zastava`` command.

Each plane contributes a sub-command group from its own ``cli`` module, registered in :data:`_GROUPS`; those
modules import their heavy dependencies inside the commands so that ``zastava --help`` stays fast. The
``zastava`` command imports only the plane it runs (``zastava backend serve`` never imports the observer);
``from zastava.cli import app`` gets every plane.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Annotated, Any, NoReturn

import typer

from . import __version__
from .terminal import err, fail, read_input, write_json

_core = typer.Typer(
    name="zastava",
    help="Runtime inspector and admission guard for containers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: (module, attribute, group name) of plane command groups; each attribute is a ``typer.Typer``.
_GROUPS: list[tuple[str, str, str]] = [
    (".auth.cli", "app", "authority"),
    (".registry.cli", "app", "registry"),
    (".observer.agent_cli", "app", "observer"),
    (".backend.cli", "backend_app", "backend"),
    (".backend.cli", "catalog_app", "catalog"),
    (".backend.cli", "runtime_app", "runtime"),
    (".observer.publisher.cli", "events_app", "events"),
    (".webhook.cli", "app", "webhook"),
    (".backend.console.cli", "console_app", "console"),
    (".backend.console.cli", "policy_app", "policy"),
]
#: (module, attribute, command name) of top-level plane commands; each attribute is a typer command function.
_COMMANDS: list[tuple[str, str, str]] = [
    (".registry.cli", "verify", "verify"),
    (".observer.cli", "inspect_command", "inspect"),
    (".observer.entrytrace.cli", "entrytrace", "entrytrace"),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zastava {__version__}")
        raise typer.Exit()


@_core.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Runtime inspector and admission guard for containers."""


# ------------------------------------------------------------------------------------------- contracts

contracts_app = typer.Typer(help="Data contracts: JSON Schemas and wire examples.", no_args_is_help=True)
_core.add_typer(contracts_app, name="contracts")


@contracts_app.command("list")
def contracts_list() -> None:
    """List the contracts and the schema versions this build speaks."""
    from .contracts import versions
    from .contracts.examples import CONTRACTS

    for name, item in CONTRACTS.items():
        speaks = ", ".join(str(v) for v in versions.supported(name)) if name in versions.schemas else "-"
        typer.echo(f"{name}\t{speaks}\t{item.description}")


@contracts_app.command("schema")
def contracts_schema(
    name: Annotated[str, typer.Argument(help="e.g. zastava.runtime.event or runtime-event")],
) -> None:
    """Print the JSON Schema of a contract."""
    from .contracts.examples import contract

    try:
        write_json(contract(name).json_schema())
    except KeyError as exc:
        fail(str(exc.args[0]))


@contracts_app.command("example")
def contracts_example(name: Annotated[str, typer.Argument()]) -> None:
    """Print a complete example exactly as sent on the wire (envelope included)."""
    from .contracts.examples import contract

    try:
        write_json(contract(name).example())
    except KeyError as exc:
        fail(str(exc.args[0]))


# ----------------------------------------------------------------------------------------------- canon


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON for canonicalisation")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate object key {key!r}")
        out[key] = value
    return out


@_core.command("canon")
def canon(
    id_: Annotated[bool, typer.Option("--id", help="Print the multihash id instead of the bytes.")] = False,
    source: Annotated[str, typer.Argument(help="JSON file, or - for standard input")] = "-",
) -> None:
    """Canonical JSON (RFC 8785) of the input, or its id ``sha256-<base64url>``."""
    from .contracts.canonical import CanonicalizationError, canonical_bytes, multihash_id

    raw = read_input(source)
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"input is not valid JSON: {exc}")
    try:
        data = canonical_bytes(value)
    except CanonicalizationError as exc:
        fail(str(exc))
    if id_:
        typer.echo(multihash_id(data))
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


# ---------------------------------------------------------------------------------------------- config

config_app = typer.Typer(help="Configuration (spec §6).", no_args_is_help=True)
_core.add_typer(config_app, name="config")


@config_app.command("example")
def config_example() -> None:
    """Print a complete example configuration."""
    from .config import example_config_yaml

    sys.stdout.write(example_config_yaml())


@config_app.command("validate")
def config_validate(
    source: Annotated[str, typer.Argument(help="YAML file, or - for standard input")],
    component: Annotated[
        str | None,
        typer.Option(
            "--component",
            help="observer, webhook or backend: also refuse what that component's start-up refuses on this "
            "machine (mode, client certificate and credential files, the webhook's serving certificate).",
        ),
    ] = None,
) -> None:
    """Exit 0 when the configuration is valid; 2 with each error's key path when not.

    Trust material is checked too: key files are read and parsed, trusted roots loaded, image globs compiled
    (``zastava.registry.trust``, ``zastava.admission.trustPolicies``). The ``ZASTAVA_*`` environment applies,
    as at start-up."""
    from .config import ConfigError, load_config, start_up_problems

    if component not in (None, "observer", "webhook", "backend"):
        err.print(f"--component must be observer, webhook or backend, got {component!r}", highlight=False)
        raise typer.Exit(2)

    try:
        if source == "-":
            config = load_config(text=read_input("-").decode("utf-8", errors="replace"), warn=False)
        else:
            config = load_config(source, warn=False)
    except ConfigError as exc:
        for path, message in exc.errors:
            err.print(f"{path}: {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    from .registry.settings import trust_configured

    if trust_configured(config):
        from .registry.errors import TrustConfigError
        from .registry.settings import trust_policies

        try:
            trust_policies(config)
        except TrustConfigError as exc:
            err.print(f"{exc.path or 'zastava'}: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    if component is not None:
        problems = start_up_problems(config, component)  # type: ignore[arg-type]  # checked above
        for path, message in problems:
            err.print(f"{path}: {message}", highlight=False, soft_wrap=True)
        if problems:
            raise typer.Exit(2)
    typer.echo("valid")


_registered: set[str] = set()


def _register_planes(only: str | None = None) -> typer.Typer:
    """Add the planes' groups and commands to the root app: every one, or only the one named ``only``."""
    for module_name, attribute, name in _GROUPS + _COMMANDS:
        if name in _registered or (only is not None and name != only):
            continue
        target = getattr(importlib.import_module(module_name, __package__), attribute)
        if isinstance(target, typer.Typer):
            _core.add_typer(target, name=name)
        else:
            _core.command(name)(target)
        _registered.add(name)
    return _core


_PLANE_NAMES = frozenset(name for _, _, name in _GROUPS + _COMMANDS)


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole command tree, for tests and tools that import it
        return _register_planes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    _register_planes(command if command in _PLANE_NAMES else None)()


if __name__ == "__main__":
    main()
