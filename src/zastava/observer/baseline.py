"""What a container is expected to run (issue 22): a baseline that knows the container, per parent.

Built once per container from what can be read without running anything: the EntryTrace result (its final
programs, and the wrappers, interpreters and scripts on the chain), the commands the platform declares
(Docker ``HEALTHCHECK``, Kubernetes probes and lifecycle hooks), crontabs and the programs their jobs name,
and the configured extra programs. Programs are :func:`~.programs.program_key` identities (a busybox ``sh``
is not the busybox ``httpd``), as given and as resolved inside the container's root.

Where a program may run matters as much as which: a shell is allowed only where the trace puts it — as the
container's init, a direct child of it, under ``crond`` for a job, or entered by a declared command — never
container-wide (a shell spawned by the web server is the classic drift). So the baseline keeps:

* ``anywhere`` — final programs (not shells), declared commands (not shells), configured programs;
* ``under`` — program → the parent programs it may run under (a resident shell script's commands under that
  shell, cron jobs under ``crond`` and its shell);
* ``chain`` — the traced chain (wrappers, interpreters, resident terminals): as init or init's child only;
* ``finals`` — the programs pid 1 ends in: until init runs one of them the container is starting up;
* ``declared`` — what may be entered from outside (``docker exec`` of a health check, a probe's command).
"""

from __future__ import annotations

import configparser
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any

from .drift import allowed_programs
from .entrytrace.parser import parse_shell
from .programs import SHELLS, is_multi_call, program_key
from .rootfs import RootFS, RootFSError

__all__ = [
    "Baseline",
    "build_baseline",
    "crontab_commands",
    "program_name",
    "script_commands",
    "supervisor_commands",
]

_CRONTABS = ("/etc/crontab", "/etc/crontabs", "/etc/cron.d", "/var/spool/cron/crontabs", "/var/spool/cron")
_CROND = ("crond", "cron")
_MAX_SCRIPT = 1 << 20  # a script or crontab read for command names: 1 MiB (entry scripts measured < 40 KiB)
_MAX_COMMANDS = 512  # command names taken from one script
_MAX_CRON_FILES = 64
_SUPERVISOR_CONFS = ("/etc/supervisord.conf", "/etc/supervisor/supervisord.conf")
_MAX_SCRIPTS = 32  # scripts read per container for the commands they run


def program_name(key: str) -> str:
    """The name a program runs as: the applet of a multi-call key, else the basename."""
    path, _, applet = key.partition("\0")
    return applet or path.rsplit("/", 1)[-1]


def _is_shell(key: str) -> bool:
    return program_name(key) in SHELLS


@dataclass(frozen=True, slots=True)
class Baseline:
    anywhere: frozenset[str] = frozenset()
    under: Mapping[str, frozenset[str]] = field(default_factory=dict)
    chain: frozenset[str] = frozenset()
    finals: frozenset[str] = frozenset()
    declared: frozenset[str] = frozenset()
    #: the declared commands as the engine shows them when it runs one (argv joined by spaces)
    declared_commands: frozenset[str] = frozenset()
    #: shell scripts read for the baseline (a shell running one of them is the container's own script)
    scripts: frozenset[str] = frozenset()
    #: see :attr:`by_name`
    name_index: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: where each program came from (``entrytrace.final``, ``healthcheck``, ``crontab:/etc/crontabs/root`` …)
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def by_name(self) -> Mapping[str, frozenset[str]]:
        """comm (15 characters, what the kernel keeps) → program keys, for a process gone before its exe
        could be read (computed once, in :func:`build_baseline`)."""
        return self.name_index


def script_commands(source: bytes) -> list[str]:
    """Command names a shell script runs (``date``, ``/usr/bin/wget``…), in order, unique, at most
    :data:`_MAX_COMMANDS`; builtins and functions are names too (harmless: they never exec)."""
    tree = parse_shell(source[:_MAX_SCRIPT])
    seen: dict[str, None] = {}
    cursor = tree.root.walk()
    visited = 0
    while visited < 200_000 and len(seen) < _MAX_COMMANDS:  # bounded walk of the syntax tree
        node = cursor.node
        visited += 1
        if node is not None and node.type == "command":
            name = node.child_by_field_name("name")
            if name is not None and name.text:
                text = name.text.decode("utf-8", "replace").strip("\"'")
                if text and "$" not in text and "`" not in text:
                    seen.setdefault(_with_applet(text, node.child_by_field_name("argument")), None)
        if cursor.goto_first_child() or cursor.goto_next_sibling():
            continue
        while cursor.goto_parent():
            if cursor.goto_next_sibling():
                break
        else:
            break
    return list(seen)


def _with_applet(name: str, argument: Any) -> str:
    """``busybox wget`` for a multi-call binary called by its own name with the applet as first argument
    (the applet is the program that runs), else the name."""
    if not is_multi_call(name) or argument is None or not argument.text:
        return name
    applet = argument.text.decode("utf-8", "replace").strip("\"'")
    ok = applet and not applet.startswith("-") and not any(c in applet for c in "$`/ ")
    return f"{name} {applet}" if ok else name


def crontab_commands(root: RootFS) -> list[tuple[str, str]]:
    """(crontab path, job command) of every job in the image's crontabs (system ones have a user field)."""
    files: list[tuple[str, bool]] = []
    for path in _CRONTABS:
        try:
            if root.is_file(path):
                files.append((path, True))
            else:
                files += [(f"{path}/{n}", path == "/etc/cron.d") for n in sorted(root.listdir(path))]
        except RootFSError:
            continue
    out: list[tuple[str, str]] = []
    for path, system in files[:_MAX_CRON_FILES]:
        try:
            text = root.read_bytes(path, _MAX_SCRIPT).decode("utf-8", "replace")
        except RootFSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" in line.split(None, 1)[0]:
                continue  # comments and VAR=value lines
            skip = (1 if line.startswith("@") else 5) + (1 if system else 0)  # schedule (and user) fields
            fields = line.split(None, skip)
            if len(fields) > skip:
                out.append((path, fields[skip].split("%", 1)[0]))
    return out


def _keys(root: RootFS, names: Iterable[str], path_env: str | None) -> set[str]:
    """Program keys of command names (looked up on PATH inside the root) or container paths."""
    search = path_env or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    paths = []
    applets: set[str] = set()
    for name in names:
        name, _, applet = name.partition(" ")
        found = name if name.startswith("/") else root.which(name, search)
        if found and applet:  # that applet of the multi-call binary, never all of them
            try:
                resolved = root.resolve(found)
            except RootFSError:
                resolved = found
            applets |= {program_key(p, applet) for p in (found, resolved) if is_multi_call(p)}
        elif found:
            paths.append(found)
    keys = set(allowed_programs(root, terminals=paths, path_env=path_env)) if paths else set()
    return keys | applets


def _shell_scripts(root: RootFS, names: Iterable[str], path_env: str | None) -> list[str]:
    """The names that are shell scripts in the root (``#!/bin/sh`` …), as container paths; a glob
    (``/jobs/*.sh``) is expanded in its directory (bounded by the directory listing)."""
    search = path_env or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    out: list[str] = []
    for name in names:
        paths = [name]
        if "*" in name and name.startswith("/"):
            directory, _, pattern = name.rpartition("/")
            try:
                paths = [f"{directory}/{n}" for n in root.listdir(directory or "/") if fnmatch(n, pattern)]
            except RootFSError:
                continue
        for path in paths:
            found = path if path.startswith("/") else root.which(path, search)
            try:
                if (
                    found
                    and root.read_bytes(found, 64).startswith(b"#!")
                    and any(
                        s in root.read_bytes(found, 128).split(b"\n", 1)[0].decode("utf-8", "replace")
                        for s in SHELLS
                    )
                ):
                    out.append(found)
            except RootFSError:
                continue
    return out


def _interpreter(root: RootFS, source: bytes, path_env: str | None) -> set[str]:
    """Program keys of a script's shebang interpreter (``#!/bin/sh``, ``#!/usr/bin/env bash``)."""
    if not source.startswith(b"#!"):
        return set()
    words = source[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if words and words[0].rsplit("/", 1)[-1] == "env" and len(words) > 1:
        words = words[1:]
    return _keys(root, words[:1], path_env)


def supervisor_commands(root: RootFS) -> list[tuple[str, list[str]]]:
    """(config path, argv) of every ``[program:x] command=`` in the image's supervisord configuration and the
    files its ``[include] files=`` name (globs, relative to the including file), :data:`_MAX_CRON_FILES` files
    at most."""
    pending = list(_SUPERVISOR_CONFS)
    seen: list[str] = []
    out: list[tuple[str, list[str]]] = []
    while pending and len(seen) < _MAX_CRON_FILES:
        path = pending.pop(0)
        if path in seen:
            continue
        try:
            text = root.read_bytes(path, _MAX_SCRIPT).decode("utf-8", "replace")
        except RootFSError:
            continue
        seen.append(path)
        parser = configparser.RawConfigParser(strict=False, interpolation=None)
        try:
            parser.read_string(text, source=path)
        except configparser.Error:
            continue
        for section in parser.sections():
            if section.startswith("program:") and parser.has_option(section, "command"):
                try:
                    argv = shlex.split(parser.get(section, "command"))
                except ValueError:
                    continue
                if argv:
                    out.append((path, argv))
        if parser.has_option("include", "files"):
            base = path.rsplit("/", 1)[0] or "/"
            for pattern in parser.get("include", "files").split():
                pattern = pattern if pattern.startswith("/") else f"{base}/{pattern}"
                directory, _, name = pattern.rpartition("/")
                try:
                    names = sorted(root.listdir(directory or "/"))
                except RootFSError:
                    continue
                pending += [f"{directory}/{n}" for n in names if fnmatch(n, name)]
    return out


def _command_names(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(programs, shells) an argv runs: ``sh -c "…"`` is the shell and the script's commands."""
    if not argv:
        return [], []
    head = argv[0].rsplit("/", 1)[-1]
    if head in SHELLS and len(argv) >= 3 and argv[1] == "-c":
        return script_commands(argv[2].encode()), [argv[0]]
    if is_multi_call(argv[0]) and len(argv) > 1 and argv[1] and not argv[1].startswith("-"):
        return [f"{argv[0]} {argv[1].rsplit('/', 1)[-1]}"], []
    return [argv[0]], []


def build_baseline(
    root: RootFS,
    *,
    terminals: Sequence[str] = (),
    finals: Sequence[str] = (),
    chain: Sequence[str] = (),
    scripts: Sequence[str] = (),
    declared_commands: Iterable[Sequence[str]] = (),
    extra: Iterable[str] = (),
    path_env: str | None = None,
    crontabs: bool = True,
) -> Baseline:
    """The baseline of one container (see the module doc). ``terminals`` are all EntryTrace terminal paths,
    ``finals`` the non-resident ones (empty: all terminals are final), ``chain`` the wrappers and interpreters
    on the traced chain, ``scripts`` container paths of scripts a resident shell terminal runs."""
    sources: dict[str, str] = {}

    def note(keys: Iterable[str], source: str) -> set[str]:
        keys = set(keys)
        for key in keys:
            sources.setdefault(key, source)
        return keys

    final_keys = note(allowed_programs(root, terminals=list(finals or terminals), path_env=path_env), "final")
    traced = note(allowed_programs(root, terminals=list(terminals), path_env=path_env), "entrytrace")
    chain_keys = traced | note(_keys(root, [p for p in chain if p.startswith("/")], path_env), "chain")
    anywhere = {k for k in final_keys if not _is_shell(k)}
    # a final program that is a script (supervisord: #!/usr/bin/python3) runs as its interpreter: that is
    # what init's exe shows once it got there (else the container would never leave start-up, and everything
    # in it would pass as start-up). Not allowed anywhere: a python elsewhere is not the final program.
    for path in finals or terminals:
        try:
            head = root.read_bytes(path, 256) if path.startswith("/") else b""
        except RootFSError:
            continue
        interpreters = {k for k in _interpreter(root, head, path_env) if not _is_shell(k)}
        final_keys |= note(interpreters, "final-interpreter")
    under: dict[str, set[str]] = {}
    shells_on_chain = {k for k in chain_keys | final_keys if _is_shell(k)}
    read: set[str] = set()

    def read_scripts(scripts: Sequence[str], shells: set[str]) -> None:
        """Each shell script's commands, allowed under ``shells`` and the script's own interpreter, and the
        scripts it runs in turn (a job runner's jobs), 3 deep at most, :data:`_MAX_SCRIPTS` in all."""
        pending = [(s, 0) for s in scripts]
        while pending and len(read) < _MAX_SCRIPTS:
            script, depth = pending.pop(0)
            if script in read:
                continue
            read.add(script)
            try:
                source = root.read_bytes(script, _MAX_SCRIPT)
            except RootFSError:
                continue
            parents = shells | _interpreter(root, source, path_env)
            names = script_commands(source)
            for key in note(_keys(root, names, path_env), f"script:{script}"):
                under.setdefault(key, set()).update(parents)
            if depth < 2:
                pending += [(p, depth + 1) for p in _shell_scripts(root, names, path_env)]

    # a resident shell's script, and the scripts it runs
    read_scripts(list(scripts), shells_on_chain)
    declared: set[str] = set()
    declared_commands = [list(argv) for argv in declared_commands]
    for argv in declared_commands:
        programs, shells = _command_names(list(argv))
        keys = note(_keys(root, programs, path_env), "declared")
        shell_keys = note(_keys(root, shells, path_env), "declared")
        declared |= keys | shell_keys
        anywhere |= {k for k in keys if not _is_shell(k)}
        for key in keys:  # `sh -c "wget …"`: wget under that shell (or exec'd by it in its place)
            under.setdefault(key, set()).update(shell_keys)
    if crontabs:
        crond = _keys(root, _CROND, path_env)
        for path, command in crontab_commands(root) if crond else []:
            words = _command_names(["/bin/sh", "-c", command])[0]
            shell_keys = note(_keys(root, ["sh"], path_env), f"crontab:{path}")
            for key in shell_keys:
                under.setdefault(key, set()).update(crond)
            for key in note(_keys(root, words, path_env), f"crontab:{path}"):
                under.setdefault(key, set()).update(crond | shell_keys)
            read_scripts(_shell_scripts(root, words, path_env), shell_keys)  # a job's script: its commands
    # supervisord's programs, under supervisord (the interpreter pid 1 ends in) as the image configures them
    supervisors = final_keys | chain_keys
    for path, argv in supervisor_commands(root):
        programs, shells = _command_names(argv)
        for key in note(_keys(root, [*programs, *shells], path_env), f"supervisor:{path}"):
            under.setdefault(key, set()).update(supervisors)
        shell_keys = _keys(root, shells, path_env)
        for key in _keys(root, programs, path_env) if shells else ():  # `sh -c "…"`: under that shell
            under[key].update(shell_keys)
        for script in _shell_scripts(root, programs, path_env):  # a script program runs as its shell
            try:
                head = root.read_bytes(script, 256)
            except RootFSError:
                continue
            for key in note(_interpreter(root, head, path_env), f"supervisor:{path}"):
                under.setdefault(key, set()).update(supervisors)
            read_scripts([script], set())
    configured = note(allowed_programs(root, extra=list(extra), path_env=path_env), "configured")
    anywhere |= configured
    index: dict[str, set[str]] = {}
    for key in (*anywhere, *under, *chain_keys, *final_keys, *declared):
        index.setdefault(program_name(key)[:15], set()).add(key)
    return Baseline(
        name_index={k: frozenset(v) for k, v in index.items()},
        anywhere=frozenset(anywhere),
        under={k: frozenset(v) for k, v in under.items()},
        chain=frozenset(chain_keys),
        finals=frozenset(final_keys),
        declared=frozenset(declared),
        scripts=frozenset(read),
        declared_commands=frozenset(" ".join(argv) for argv in declared_commands if argv),
        sources=sources,
    )
