"""Wrappers and supervisors: programs that start another program.

A *wrapper* runs one inner command: either by ``exec`` (gosu, su-exec, setpriv, chroot, env, nice …) or as a
parent that stays alive (tini, dumb-init, su, runuser, timeout: *resident*). :func:`unwrap` turns a wrapper's
argv into the inner argv plus what changes for it (user, environment, directory, root).

A *supervisor* runs several programs from its configuration: supervisord (``[program:x] command=``), s6
(``s6-svscan DIR``: ``DIR/*/run``) and runit (``runsvdir DIR``). :func:`supervised_programs` lists them from
files inside the root.
"""

from __future__ import annotations

import configparser
import fnmatch
import posixpath
import re
import shlex
from dataclasses import dataclass, field

from ..rootfs import RootFS, RootFSError

__all__ = ["SUPERVISORS", "Program", "Unwrapped", "supervised_programs", "unwrap", "wrapper_name"]

Arg = str | None

#: wrapper name → stays alive as the parent of its command
_RESIDENT = {
    "tini": True,
    "docker-init": True,  # `docker run --init`: Docker's bundled tini
    "rootlesskit": True,  # runs the command in its user/network namespaces and stays as its parent
    "tini-static": True,
    "catatonit": True,
    "dumb-init": True,
    "su": True,
    "runuser": True,
    "sudo": True,
    "timeout": True,
    "gosu": False,
    "su-exec": False,
    "setpriv": False,
    "chroot": False,
    "env": False,
    "nice": False,
    "ionice": False,
    "nohup": False,
    "setsid": False,
    "stdbuf": False,
    "taskset": False,
    "numactl": False,
    "chpst": False,
    "s6-setuidgid": False,
    "s6-envuidgid": False,
    "s6-applyuidgid": False,
    "s6-envdir": False,
    "with-contenv": False,
    "exec": False,
}

SUPERVISORS = frozenset({"supervisord", "s6-svscan", "runsvdir", "s6-overlay-suexec"})

#: wrappers that run their command as another user (a new identity for the rest of the chain)
_SWITCHES_USER = frozenset(
    {
        "gosu",
        "su-exec",
        "setpriv",
        "chroot",
        "su",
        "runuser",
        "sudo",
        "chpst",
        "s6-setuidgid",
        "s6-applyuidgid",
    }
)


def wrapper_name(name: str) -> str | None:
    if name in _RESIDENT:
        return name
    if name.startswith("tini"):
        return "tini"
    return None


@dataclass(slots=True)
class Unwrapped:
    name: str
    argv: list[Arg] | None  # the inner command; None when it cannot be known statically
    resident: bool
    user: str | None = None  # user the inner command runs as ("postgres", "999", "999:999")
    env_set: dict[str, Arg] = field(default_factory=dict)
    env_unset: list[str] = field(default_factory=list)
    env_clear: bool = False
    cwd: str | None = None
    root: str | None = None  # chroot
    shell: str | None = None  # the inner command is a shell command string (su -c, runuser -c)
    reason: str | None = None  # why argv is None
    #: the inner command runs as another user, named by ``user`` (None: a user not known statically)
    switches: bool = False


def _after_options(
    args: list[Arg], with_value: frozenset[str], *, stop_at_first: bool = True
) -> tuple[int, dict[str, Arg]] | None:
    """Index of the first non-option argument, and the options seen (``--opt=value`` split)."""
    options: dict[str, Arg] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg is None:
            return None
        if arg == "--":
            return i + 1, options
        if not arg.startswith("-") or arg == "-":
            return i, options
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            options[key] = value
            i += 1
            continue
        if arg in with_value:
            options[arg] = args[i + 1] if i + 1 < len(args) else None
            i += 2
            continue
        # short option with an attached value (-n10, -uuser)
        if len(arg) > 2 and arg[:2] in with_value and not arg.startswith("--"):
            options[arg[:2]] = arg[2:]
            i += 1
            continue
        options[arg] = ""
        i += 1
    return i, options


def _unknown(name: str, resident: bool, reason: str) -> Unwrapped:
    return Unwrapped(name, None, resident, reason=reason)


def unwrap(name: str, args: list[Arg]) -> Unwrapped | None:
    """The inner command of wrapper ``name`` called with ``args`` (argv without argv[0])."""
    wrapper = wrapper_name(name)
    if wrapper is None:
        return None
    resident = _RESIDENT[wrapper]
    handler = _HANDLERS.get(wrapper, _generic)
    unwrapped = handler(wrapper, resident, args)
    if wrapper in _SWITCHES_USER and (unwrapped.user is not None or _names_user(wrapper, args)):
        unwrapped.switches = True
    return unwrapped


def _names_user(name: str, args: list[Arg]) -> bool:
    """Whether the arguments name a target user even when its value is not known statically."""
    if name in ("gosu", "su-exec", "s6-setuidgid"):
        return bool(args)
    if name == "setpriv":
        return any(a is not None and a.startswith(("--reuid", "--ruid")) for a in args)
    if name == "chroot":
        return any(a is not None and a.startswith("--userspec") for a in args)
    if name == "chpst":
        return "-u" in args
    return name in ("su", "runuser", "sudo")


def _generic(name: str, resident: bool, args: list[Arg]) -> Unwrapped:
    values = {
        "tini": frozenset({"-p", "-e"}),
        "docker-init": frozenset({"-p", "-e"}),
        "rootlesskit": frozenset(
            {
                "--state-dir",
                "--net",
                "--mtu",
                "--cidr",
                "--ifname",
                "--copy-up",
                "--copy-up-mode",
                "--port-driver",
                "-p",
                "--publish",
                "--propagation",
                "--evacuate-cgroup2",
                "--reaper",
                "--slirp4netns-binary",
                "--slirp4netns-sandbox",
                "--slirp4netns-seccomp",
                "--vpnkit-binary",
                "--lxc-user-nic-binary",
                "--lxc-user-nic-bridge",
                "--subid-source",
                "--log-level",
            }
        ),
        "catatonit": frozenset(),
        "dumb-init": frozenset({"-r", "--rewrite"}),
        "nice": frozenset({"-n", "--adjustment"}),
        "ionice": frozenset({"-c", "-n", "-p", "-P", "-u", "--class", "--classdata"}),
        "nohup": frozenset(),
        "setsid": frozenset(),
        "stdbuf": frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}),
        "numactl": frozenset(
            {"-i", "-m", "-N", "-C", "-p", "--interleave", "--membind", "--cpunodebind", "--physcpubind"}
        ),
        "chpst": frozenset(
            {"-u", "-U", "-b", "-e", "-/", "-n", "-l", "-L", "-m", "-d", "-o", "-p", "-f", "-c"}
        ),
        "with-contenv": frozenset(),
        "exec": frozenset({"-a"}),
    }.get(name, frozenset())
    parsed = _after_options(args, values)
    if parsed is None:
        return _unknown(name, resident, f"{name}: option not known statically")
    index, options = parsed
    user = options.get("-u") if name == "chpst" else None
    return Unwrapped(name, args[index:], resident, user=user)


def _positional(name: str, resident: bool, args: list[Arg], skip: int, values: frozenset[str]) -> Unwrapped:
    """A wrapper whose command follows ``skip`` positional arguments (timeout DURATION, s6-envdir DIR)."""
    parsed = _after_options(args, values)
    if parsed is None or parsed[0] + skip > len(args):
        return _unknown(name, resident, f"{name}: arguments not known statically")
    index, _ = parsed
    return Unwrapped(name, args[index + skip :], resident)


def _gosu(name: str, resident: bool, args: list[Arg]) -> Unwrapped:
    # gosu USER[:GROUP] CMD…  /  su-exec USER[:GROUP] CMD…  /  s6-setuidgid USER CMD…
    if not args:
        return _unknown(name, resident, f"{name}: no command")
    if args[0] is not None and args[0].startswith("-"):
        return _unknown(name, resident, f"{name}: {args[0]} is not a user")
    return Unwrapped(name, args[1:], resident, user=args[0])


def _timeout(name: str, resident: bool, args: list[Arg]) -> Unwrapped:
    return _positional(name, resident, args, 1, frozenset({"-s", "--signal", "-k", "--kill-after"}))


def _taskset(name: str, resident: bool, args: list[Arg]) -> Unwrapped:
    parsed = _after_options(args, frozenset())
    if parsed is None:
        return _unknown(name, resident, "taskset: arguments not known statically")
    index, options = parsed
    if "-p" in options or "--pid" in options:
        return _unknown(name, resident, "taskset -p changes another process")
    return Unwrapped(name, args[index + 1 :], resident)  # the mask / cpu list is the first positional


def _setpriv(name: str, resident: bool, args: list[Arg]) -> Unwrapped:
    values = frozenset(
        {
            "--reuid",
            "--regid",
            "--ruid",
            "--rgid",
            "--euid",
            "--egid",
            "--groups",
            "--inh-caps",
            "--ambient-caps",
            "--bounding-set",
            "--securebits",
            "--pdeathsig",
            "--selinux-label",
            "--apparmor-profile",
            "--landlock-access",
            "--landlock-rule",
        }
    )
    parsed = _after_options(args, values)
    if parsed is None:
        return _unknown(name, resident, "setpriv: options not known statically")
    index, options = parsed
    return Unwrapped(name, args[index:], resident, user=options.get("--reuid") or options.get("--ruid"))


def _chroot(name: str, resident: bool, args: list[Arg]) -> Unwrapped:
    parsed = _after_options(args, frozenset({"--userspec", "--groups"}))
    if parsed is None or parsed[0] >= len(args) or args[parsed[0]] is None:
        return _unknown(name, resident, "chroot: new root not known statically")
    index, options = parsed
    inner = args[index + 1 :] or ["/bin/sh", "-i"]
    userspec = options.get("--userspec")
    return Unwrapped(
        name, inner, resident, root=args[index], user=userspec.split(":")[0] if userspec else None
    )


def _env(name: str, resident: bool, args: list[Arg]) -> Unwrapped:
    out = Unwrapped(name, None, resident)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg is None:
            return _unknown(name, resident, "env: argument not known statically")
        if arg in ("-i", "--ignore-environment", "-"):
            out.env_clear = True
        elif arg in ("-u", "--unset") and i + 1 < len(args):
            out.env_unset.append(args[i + 1] or "")
            i += 1
        elif arg.startswith("--unset="):
            out.env_unset.append(arg.split("=", 1)[1])
        elif arg in ("-C", "--chdir") and i + 1 < len(args):
            out.cwd = args[i + 1]
            i += 1
        elif arg in ("-S", "--split-string") and i + 1 < len(args):
            split = args[i + 1]
            if split is None:
                return _unknown(name, resident, "env -S: string not known statically")
            args = [*args[:i], *shlex.split(split), *args[i + 2 :]]
            continue
        elif arg.startswith("-S") and len(arg) > 2:
            args = [*args[:i], *shlex.split(arg[2:]), *args[i + 1 :]]
            continue
        elif arg == "--":
            i += 1
            break
        elif arg.startswith("-") and not _is_assignment(arg):
            pass  # -0, -v, --debug …
        elif _is_assignment(arg):
            key, value = arg.split("=", 1)
            out.env_set[key] = value
        else:
            break
        i += 1
    while i < len(args) and args[i] is not None and _is_assignment(args[i] or ""):
        key, value = (args[i] or "").split("=", 1)
        out.env_set[key] = value
        i += 1
    out.argv = args[i:]
    return out


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _is_assignment(arg: str) -> bool:
    return bool(_ASSIGNMENT.match(arg))


def _su(name: str, resident: bool, args: list[Arg]) -> Unwrapped:
    """``su [-] [-s SHELL] [-c CMD] [USER [ARGS]]``, ``runuser [-u USER] [--] CMD…``, ``runuser -l U -c``."""
    command: Arg = None
    has_command = False
    user: Arg = None
    shell: str | None = None
    positional: list[Arg] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg is None:
            return _unknown(name, resident, f"{name}: argument not known statically")
        if arg in ("-c", "--command", "--session-command") and i + 1 < len(args):
            command, has_command = args[i + 1], True
            i += 2
            continue
        if arg.startswith("--command="):
            command, has_command = arg.split("=", 1)[1], True
        elif arg in ("-s", "--shell") and i + 1 < len(args):
            shell = args[i + 1]
            i += 2
            continue
        elif arg in ("-u", "--user") and name == "runuser" and i + 1 < len(args):
            user = args[i + 1]
            i += 2
            if not has_command:  # runuser -u USER [--] COMMAND …
                rest = args[i:]
                if rest and rest[0] == "--":
                    rest = rest[1:]
                return Unwrapped(name, rest, resident, user=user)
            continue
        elif arg in ("-g", "-G", "--group", "--supp-group", "-w", "--whitelist-environment") and i + 1 < len(
            args
        ):
            i += 2
            continue
        elif arg == "--":
            positional.extend(args[i + 1 :])
            break
        elif arg.startswith("-") and arg != "-":
            pass  # -, -l, --login, -m, -p, -f, -P
        elif arg != "-":
            positional.append(arg)
        i += 1
    if positional and user is None:
        user = positional.pop(0)
    if not has_command:
        if positional:
            return Unwrapped(
                name, None, resident, user=user, reason=f"{name}: arguments passed to a login shell"
            )
        # su USER with no command: the user's login shell, interactive
        return Unwrapped(name, [shell or "/bin/sh"], resident, user=user)
    if command is None:
        return Unwrapped(name, None, resident, user=user, reason=f"{name} -c: command not known statically")
    return Unwrapped(
        name, [shell or "/bin/sh", "-c", command, *positional], resident, user=user, shell=command
    )


def _sudo(name: str, resident: bool, args: list[Arg]) -> Unwrapped:
    parsed = _after_options(args, frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U"}))
    if parsed is None:
        return _unknown(name, resident, "sudo: options not known statically")
    index, options = parsed
    return Unwrapped(name, args[index:], resident, user=options.get("-u") or "root")


def _s6_applyuidgid(name: str, resident: bool, args: list[Arg]) -> Unwrapped:
    parsed = _after_options(args, frozenset({"-u", "-g", "-G"}))
    if parsed is None:
        return _unknown(name, resident, f"{name}: options not known statically")
    index, options = parsed
    return Unwrapped(name, args[index:], resident, user=options.get("-u"))


_HANDLERS = {
    "gosu": _gosu,
    "su-exec": _gosu,
    "s6-setuidgid": _gosu,
    "s6-envuidgid": _gosu,
    "s6-envdir": lambda n, r, a: _positional(n, r, a, 1, frozenset()),
    "s6-applyuidgid": _s6_applyuidgid,
    "setpriv": _setpriv,
    "chroot": _chroot,
    "env": _env,
    "su": _su,
    "runuser": _su,
    "sudo": _sudo,
    "timeout": _timeout,
    "taskset": _taskset,
}


# ------------------------------------------------------------------------------------------ supervisors


@dataclass(frozen=True, slots=True)
class Program:
    """One program a supervisor starts: its argv (or a shell command), directory, user and where declared."""

    name: str
    source: str  # config file or run script
    line: int | None
    argv: list[str] | None = None
    shell: str | None = None  # a shell command string (supervisord runs commands without a shell)
    script: str | None = None  # an executable run script (s6, runit)
    cwd: str | None = None
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)


_SUPERVISORD_DEFAULTS = (
    "/usr/etc/supervisord.conf",
    "/usr/supervisord.conf",
    "/etc/supervisord.conf",
    "/etc/supervisor/supervisord.conf",
)
_MAX_CONFIG = 1 << 20
_MAX_PROGRAMS = 64


def supervised_programs(
    supervisor: str, args: list[Arg], root: RootFS, cwd: str
) -> tuple[list[Program], list[str]]:
    """Programs a supervisor starts, and notes on what could not be read."""
    if supervisor == "supervisord":
        return _supervisord(args, root, cwd)
    if supervisor == "s6-overlay-suexec":
        return _s6_overlay(args, root)
    return _scandir(supervisor, args, root)


def _s6_overlay(args: list[Arg], root: RootFS) -> tuple[list[Program], list[str]]:
    """s6-overlay v3: ``/init`` → ``s6-overlay-suexec PREINIT '' STAGE0 CMD…``. Stage 0 execs the stage-1 init
    that s6-linux-init-maker generates at run time, which becomes s6-svscan over the s6-rc longruns
    (``/etc/s6-overlay/s6-rc.d``) and the legacy ``/etc/services.d``; stage 2 runs the CMD (if any) as a
    child."""
    programs = _run_scripts(root, "/etc/s6-overlay/s6-rc.d") + _run_scripts(root, "/etc/services.d")
    notes: list[str] = []
    try:
        cmd = args[args.index("") + 2 :]
    except ValueError:
        cmd = []
        notes.append("s6-overlay-suexec: arguments are not /init's; the CMD (if any) is not known")
    if cmd and all(a is not None for a in cmd):
        programs.append(
            Program(name="CMD", source="<argv>", line=None, argv=[a for a in cmd if a is not None])
        )
    elif cmd:
        notes.append("s6-overlay: the CMD is not known statically")
    if not programs:
        notes.append("s6-overlay: no longrun services and no CMD in the image")
    return programs[:_MAX_PROGRAMS], notes


def _supervisord(args: list[Arg], root: RootFS, cwd: str) -> tuple[list[Program], list[str]]:
    notes: list[str] = []
    config: str | None = None
    for i, arg in enumerate(args):
        if arg in ("-c", "--configuration") and i + 1 < len(args):
            config = args[i + 1]
            if config is None:
                return [], ["supervisord: configuration path not known statically"]
        elif arg is not None and arg.startswith("--configuration="):
            config = arg.split("=", 1)[1]
    candidates = [config] if config else [posixpath.join(cwd, "supervisord.conf"), *_SUPERVISORD_DEFAULTS]
    parser = configparser.RawConfigParser(
        strict=False, interpolation=None, inline_comment_prefixes=(";", "#")
    )
    main: str | None = None
    for candidate in candidates:
        if candidate and root.is_file(candidate):
            main = posixpath.normpath(
                candidate if candidate.startswith("/") else posixpath.join(cwd, candidate)
            )
            break
    if main is None:
        return [], [f"supervisord: no configuration found ({', '.join(c for c in candidates if c)})"]
    sources: dict[str, str] = {}

    def load(path: str) -> None:
        try:
            text = root.read_bytes(path, _MAX_CONFIG).decode("utf-8", errors="replace")
        except RootFSError as exc:
            notes.append(f"supervisord: cannot read {path}: {exc.strerror}")
            return
        before = set(parser.sections())
        try:
            parser.read_string(text, source=path)
        except configparser.Error as exc:
            notes.append(f"supervisord: {path}: {exc.message.splitlines()[0]}")
            return
        for section in parser.sections():
            if section not in before:
                sources[section] = path

    load(main)
    if parser.has_option("include", "files"):
        base = posixpath.dirname(main)
        for pattern in (parser.get("include", "files") or "").split():
            full = pattern if pattern.startswith("/") else posixpath.join(base, pattern)
            for path in _glob(root, full)[:_MAX_PROGRAMS]:
                load(path)
    programs: list[Program] = []
    for section in parser.sections():
        if not section.startswith("program:"):
            continue
        if parser.has_option(section, "autostart") and parser.get(section, "autostart").lower() == "false":
            continue
        command = parser.get(section, "command", fallback=None)
        if not command:
            notes.append(f"supervisord: [{section}] has no command")
            continue
        try:
            argv = shlex.split(command)
        except ValueError:
            notes.append(f"supervisord: [{section}] command cannot be split")
            continue
        env: dict[str, str] = {}
        raw_env = parser.get(section, "environment", fallback="") or ""
        for item in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|[^,]*)', raw_env):
            env[item[0]] = item[1].strip('"')
        programs.append(
            Program(
                name=section.split(":", 1)[1],
                source=sources.get(section, main),
                line=None,
                argv=argv,
                cwd=parser.get(section, "directory", fallback=None),
                user=parser.get(section, "user", fallback=None),
                env=env,
            )
        )
        if len(programs) >= _MAX_PROGRAMS:
            notes.append(f"supervisord: more than {_MAX_PROGRAMS} programs; the rest ignored")
            break
    return programs, notes


def _scandir(supervisor: str, args: list[Arg], root: RootFS) -> tuple[list[Program], list[str]]:
    positional = [a for a in args if a is None or not a.startswith("-")]
    if positional and positional[0] is None:
        return [], [f"{supervisor}: scan directory not known statically"]
    default = "/etc/service" if supervisor == "runsvdir" else "."
    scandir = positional[0] if positional else default
    # s6-overlay and runit images populate the run-time scan directory from these at boot
    fallbacks = ["/etc/services.d", "/etc/s6-overlay/s6-rc.d", "/etc/service", "/etc/sv"]
    notes: list[str] = []
    for directory in [scandir, *fallbacks]:
        programs = _run_scripts(root, directory or ".")
        if programs:
            if directory != scandir:
                notes.append(f"{supervisor}: {scandir} is empty in the image; services read from {directory}")
            return programs, notes
    return [], [f"{supervisor}: no services found in {scandir}"]


def _run_scripts(root: RootFS, directory: str) -> list[Program]:
    try:
        names = root.listdir(directory)
    except RootFSError:
        return []
    programs: list[Program] = []
    for name in names:
        if name.startswith("."):
            continue
        service = posixpath.join(directory, name)
        run = posixpath.join(service, "run")
        if not root.is_file(run):
            continue
        kind_file = posixpath.join(service, "type")
        if root.is_file(kind_file):  # s6-rc: only longruns are supervised
            try:
                kind = root.read_bytes(kind_file, 64).decode("ascii", errors="replace").strip()
            except RootFSError:
                kind = ""
            if kind != "longrun":
                continue
        programs.append(Program(name=name, source=run, line=None, script=run))
        if len(programs) >= _MAX_PROGRAMS:
            break
    return programs


def _glob(root: RootFS, pattern: str) -> list[str]:
    """Paths in the root matching a glob whose wildcards are in the last component only."""
    directory, base = posixpath.split(pattern)
    if not any(c in base for c in "*?["):
        return [pattern] if root.exists(pattern) else []
    try:
        names = root.listdir(directory or "/")
    except RootFSError:
        return []
    return [
        posixpath.join(directory, n) for n in names if fnmatch.fnmatchcase(n, base) and not n.startswith(".")
    ]
