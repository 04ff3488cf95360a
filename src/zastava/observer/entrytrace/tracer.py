"""Following an argv to the program that really runs: PATH lookup, shebangs, wrappers, supervisors, launchers,
and shell scripts (handed to :mod:`.interpreter`).

:func:`trace_entrypoint` is the entry point. Work is bounded: chain depth (``max_depth``), a wall-clock
budget, an operation budget, script size, and the limits of :class:`Limits`. When a bound is hit the result
is marked ``partial`` with the reason; nothing is ever executed.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import posixpath
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from zastava.contracts import EntryTraceStep

from ..programs import MULTI_CALL, applet_of, is_multi_call
from ..rootfs import RootFS, RootFSError
from .interpreter import interpret
from .launchers import identify_launcher, parse_launch
from .parser import SHEBANG_MAX, ParsedScript, classify, parse_shebang, parse_shell
from .result import Decision, Diagnostic, EntryTraceResult, Terminal
from .vocabulary import (
    DEFAULT_PATH,
    SHELLS,
    UNKNOWN,
    Arg,
    Context,
    Limits,
    Outcome,
    User,
    as_resident,
    clean,
    clean_opt,
    combine,
    dedupe,
    with_resident,
)
from .wrappers import SUPERVISORS, Program, supervised_programs, unwrap, wrapper_name

if TYPE_CHECKING:
    from zastava.telemetry import ZastavaMetrics

__all__ = ["DEFAULT_PATH", "Context", "Limits", "Outcome", "User", "trace_entrypoint"]

_PROBE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Probe:
    resolved: str
    data: bytes  # the first bytes (all of them when ``complete``)
    complete: bool


K = TypeVar("K")
V = TypeVar("V")


class CachedRoot(RootFS):
    """A :class:`RootFS` that remembers lookups for the length of one trace.

    Directories are resolved once through the confined walk of :class:`RootFS` and kept as ``O_PATH``
    descriptors; a later lookup of ``DIR/NAME`` is then one ``openat(dirfd, NAME, O_NOFOLLOW)``. Anything
    that is not that simple (a final symlink to follow, ``..``) goes through the full walk, so confinement is
    unchanged. :meth:`close` releases the descriptors (``trace_entrypoint`` does it).
    """

    def __init__(self, root: str | os.PathLike[str], *, max_symlinks: int = 40) -> None:
        super().__init__(root, max_symlinks=max_symlinks)
        self._stat: dict[tuple[str, bool], os.stat_result | RootFSError] = {}
        self._resolve: dict[str, str | RootFSError] = {}
        self._listdir: dict[str, list[str] | RootFSError] = {}
        self._dirs: dict[str, tuple[int, str] | RootFSError] = {}

    def close(self) -> None:
        for entry in self._dirs.values():
            if isinstance(entry, tuple):
                os.close(entry[0])
        self._dirs.clear()

    def _dir(self, directory: str) -> tuple[int, str]:
        entry = self._dirs.get(directory)
        if entry is None:
            try:
                fd, resolved = self._walk(directory, True)
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise RootFSError(errno.ENOTDIR, "not a directory", directory)
                entry = (fd, resolved)
            except RootFSError as exc:
                entry = exc
            if len(self._dirs) >= 256:
                self.close()
            self._dirs[directory] = entry
        if isinstance(entry, RootFSError):
            raise entry
        return entry

    def _quick(self, path: str, follow: bool) -> tuple[os.stat_result, str] | None:
        """(stat, resolved path) by one openat from a cached directory, or None when a full walk is needed."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if not parts or ".." in parts or "\x00" in path:
            return None  # the full walk refuses a NUL with a RootFSError (os.open would raise ValueError)
        fd, resolved_dir = self._dir("/" + "/".join(parts[:-1]))
        try:
            child = os.open(parts[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            raise RootFSError(exc.errno, exc.strerror or "lookup failed", path) from None
        try:
            info = os.fstat(child)
        finally:
            os.close(child)
        if follow and stat.S_ISLNK(info.st_mode):
            return None
        return info, (resolved_dir.rstrip("/") + "/" + parts[-1])

    def stat(self, path: str) -> os.stat_result:
        return self._cached_stat(path, True)

    def lstat(self, path: str) -> os.stat_result:
        return self._cached_stat(path, False)

    def _cached_stat(self, path: str, follow: bool) -> os.stat_result:
        def compute() -> os.stat_result:
            quick = self._quick(path, follow)
            if quick is not None:
                return quick[0]
            return super(CachedRoot, self).stat(path) if follow else super(CachedRoot, self).lstat(path)

        return _memo(self._stat, (path, follow), compute, 65536)

    def resolve(self, path: str) -> str:
        def compute() -> str:
            quick = self._quick(path, True)
            return quick[1] if quick is not None else super(CachedRoot, self).resolve(path)

        return _memo(self._resolve, path, compute, 65536)

    def listdir(self, path: str) -> list[str]:
        return list(_memo(self._listdir, path, lambda: super(CachedRoot, self).listdir(path), 4096))


def _memo(cache: dict[K, Any], key: K, compute: Callable[[], V], limit: int) -> V:
    """Look ``key`` up in a bounded memo that also remembers failures (a missing file stays missing)."""
    value = cache.get(key)
    if value is None:
        try:
            value = compute()
        except RootFSError as exc:
            value = exc
        if len(cache) < limit:
            cache[key] = value
    if isinstance(value, RootFSError):
        raise value
    result: V = value
    return result


class TraceRecorder:
    """One trace: accumulates steps, diagnostics and wrappers, and enforces the budgets."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.steps: dict[tuple[str, int | None, str, str], None] = {}
        self.diagnostics: dict[tuple[str, str, str | None, int | None], Diagnostic] = {}
        self.wrappers: dict[str, None] = {}
        self.depth = 0
        self.operations = 0
        self.deadline = time.monotonic() + limits.time_budget
        self.exhausted: str | None = None
        self.forced_ambiguous = False
        self._scripts: dict[tuple[str, str], ParsedScript | None] = {}
        self._which: dict[tuple[int, str, str, str], str | None] = {}
        self._passwd: dict[int, list[tuple[str, int]]] = {}
        self._probes: dict[tuple[int, str], Probe | RootFSError] = {}
        self._follows: dict[tuple[object, ...], tuple[tuple[Decision, ...], list[Outcome]]] = {}
        self.purity: dict[bytes, bool] = {}
        self.roots: list[CachedRoot] = []

    def open_root(self, path: str) -> CachedRoot:
        root = CachedRoot(path)
        self.roots.append(root)
        return root

    # ------------------------------------------------------------------------------------ bookkeeping

    def tick(self, amount: int = 1) -> bool:
        """Count work; False once a budget is spent (the caller stops and the result is partial)."""
        if self.exhausted:
            return False
        self.operations += amount
        if self.operations > self.limits.max_operations:
            self.exhaust("operation-budget", f"more than {self.limits.max_operations} interpreter operations")
            return False
        if self.operations & 0xFF == 0 and time.monotonic() > self.deadline:
            self.exhaust("time-budget", f"trace took longer than {self.limits.time_budget:g}s")
            return False
        return True

    def exhaust(self, code: str, message: str) -> None:
        if not self.exhausted:
            self.exhausted = code
            self.diagnose(code, message, partial=True)

    def step(self, file: str, line: int | None, op: str, target: str) -> None:
        if len(self.steps) >= self.limits.max_steps:
            self.diagnose("step-limit", f"more than {self.limits.max_steps} steps; the rest not recorded")
            return
        target = clean(target or "<unknown>")[:4096]
        self.steps.setdefault((clean(file or "<unknown>")[:4096], line, clean(op or "exec"), target), None)

    def diagnose(
        self,
        code: str,
        message: str,
        file: str | None = None,
        line: int | None = None,
        *,
        partial: bool = False,
    ) -> None:
        key = (code, message, file, line)
        same_code = sum(1 for k in self.diagnostics if k[0] == code)
        if key not in self.diagnostics and len(self.diagnostics) < 256 and same_code < 4:
            self.diagnostics[key] = Diagnostic(code, clean(message[:1000]), clean_opt(file), line, partial)

    # ----------------------------------------------------------------------------------- root queries

    def locate(self, name: str, ctx: Context) -> str | None:
        """Container path of a command: PATH lookup, or a path relative to the working directory."""
        return self.locate_in(ctx.root, name, ctx.path_env, ctx.cwd)

    def locate_in(self, root: RootFS, name: str, path_env: str, cwd: str) -> str | None:
        key = (id(root), name, path_env if "/" not in name else "", cwd if "/" in name else "")
        if key in self._which:
            return self._which[key]
        if "/" in name:
            path = posixpath.normpath(name if name.startswith("/") else posixpath.join(cwd, name))
            found: str | None = path if root.is_executable(path) else None
        else:
            found = root.which(name, path_env)
        self._which[key] = found
        return found

    def read_script(self, ctx: Context, path: str, file: str | None, line: int | None) -> ParsedScript | None:
        """A shell script's syntax tree, or None (with a diagnostic) if it cannot be read as one."""
        try:
            probed = self.probe(ctx.root, path)
        except RootFSError as exc:
            self.diagnose("unreadable", f"{path}: {exc.strerror or exc}", file, line, partial=True)
            return None
        key = (str(ctx.root.root), probed.resolved)
        if key in self._scripts:
            return self._scripts[key]
        if probed.complete:
            return self._parse_script(key, path, probed.data, file, line)
        try:
            fd, info, _ = ctx.root.open_regular(path)
        except RootFSError as exc:
            self.diagnose("unreadable", f"{path}: {exc.strerror or exc}", file, line, partial=True)
            return None
        try:
            if info.st_size > self.limits.max_script_bytes:
                self.diagnose(
                    "too-large",
                    f"{path}: {info.st_size} bytes, more than the {self.limits.max_script_bytes}-byte script "
                    "limit; not interpreted",
                    file,
                    line,
                    partial=True,
                )
                self._scripts[key] = None
                return None
            chunks = []
            remaining = self.limits.max_script_bytes + 1
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
        return self._parse_script(key, path, data, file, line)

    def _parse_script(
        self, key: tuple[str, str], path: str, data: bytes, file: str | None, line: int | None
    ) -> ParsedScript | None:
        parsed: ParsedScript | None
        if len(data) > self.limits.max_script_bytes:
            self.diagnose(
                "too-large", f"{path}: grew past the script limit while read", file, line, partial=True
            )
            parsed = None
        elif b"\0" in data:
            self.diagnose("binary-data", f"{path}: binary data, not a shell script", file, line, partial=True)
            parsed = None
        else:
            self.tick(1 + len(data) // 4096)
            parsed = parse_shell(data)
            if parsed.error_lines:
                lines = ", ".join(str(n) for n in parsed.error_lines)
                self.diagnose(
                    "parse-error", f"{path}: syntax errors at line(s) {lines}", path, None, partial=True
                )
        self._scripts[key] = parsed
        return parsed

    def probe(self, root: RootFS, path: str) -> Probe:
        """One confined open of an executable: its resolved path and its first bytes (the whole file when
        small), remembered for the trace — PATH hits are then read, resolved and parsed from one lookup."""
        key = (id(root), path)
        cached = self._probes.get(key)
        if cached is None:
            try:
                fd, info, resolved = root.open_regular(path)
            except RootFSError as exc:
                cached = exc
            else:
                try:
                    want = min(info.st_size, _PROBE_BYTES) if info.st_size else SHEBANG_MAX
                    data = os.read(fd, max(want, SHEBANG_MAX))
                finally:
                    os.close(fd)
                cached = Probe(resolved, data, info.st_size <= _PROBE_BYTES and len(data) == info.st_size)
            if len(self._probes) < 4096:
                self._probes[key] = cached
        if isinstance(cached, RootFSError):
            raise cached
        return cached

    def passwd(self, root: RootFS) -> list[tuple[str, int]]:
        key = id(root)
        if key not in self._passwd:
            entries: list[tuple[str, int]] = []
            try:
                text = root.read_bytes("/etc/passwd", 1 << 20).decode("utf-8", errors="replace")
            except RootFSError:
                text = ""
            for row in text.splitlines():
                parts = row.split(":")
                if len(parts) >= 3 and parts[2].isdigit():
                    entries.append((parts[0], int(parts[2])))
            self._passwd[key] = entries
        return self._passwd[key]

    def user(self, spec: str | int | None, root: RootFS) -> User:
        """A user from ``name``, ``uid``, ``name:group`` or ``uid:gid``, completed from /etc/passwd."""
        if spec is None:
            return User()
        text = str(spec).split(":", 1)[0]
        if not text:
            return User()
        entries = self.passwd(root)
        if text.isdigit():
            uid = int(text)
            return User(uid, next((n for n, u in entries if u == uid), None))
        return User(next((u for n, u in entries if n == text), None), text)

    # --------------------------------------------------------------------------------------- following

    def follow(
        self,
        argv: list[Arg],
        ctx: Context,
        depth: int,
        file: str = "<argv>",
        line: int | None = None,
        script_of: str | None = None,
    ) -> list[Outcome]:
        """Outcomes of executing ``argv`` (execve semantics; argv[0] without '/' is looked up in PATH).

        Remembered for the trace: several undecided paths of a script often exec the very same command in the
        same context (the gosu re-exec of a database entrypoint), and what follows is the same for all of them
        — only the conditions that led there differ, and those are re-attached to the remembered outcome."""
        key = (
            tuple(argv),
            id(ctx.root),
            frozenset(ctx.env.items()),
            ctx.env_complete,
            ctx.cwd,
            ctx.user,
            ctx.prefix,
            ctx.chain,
            script_of,
        )
        cached = self._follows.get(key)
        if cached is not None:
            before, outcomes = cached
            if before == ctx.decisions:
                return outcomes
            return [frozenset(self._reattach(t, before, ctx.decisions) for t in o) for o in outcomes]
        outcomes = self._follow(argv, ctx, depth, file, line, script_of)
        if len(self._follows) < 4096 and not self.exhausted:
            self._follows[key] = (ctx.decisions, outcomes)
        return outcomes

    def _reattach(
        self, terminal: Terminal, before: tuple[Decision, ...], now: tuple[Decision, ...]
    ) -> Terminal:
        inner = terminal.via[len(before) :] if terminal.via[: len(before)] == before else terminal.via
        via = (*now, *inner)[: self.limits.max_decisions]
        return terminal if via == terminal.via else dataclasses.replace(terminal, via=via)

    def _follow(
        self,
        argv: list[Arg],
        ctx: Context,
        depth: int,
        file: str,
        line: int | None,
        script_of: str | None,
    ) -> list[Outcome]:
        self.depth = max(self.depth, depth)
        if self.exhausted:
            return [frozenset({UNKNOWN})]
        if depth > self.limits.max_depth:
            self.diagnose(
                "max-depth", f"exec chain deeper than {self.limits.max_depth}", file, line, partial=True
            )
            return [frozenset({UNKNOWN})]
        if not argv:
            return []
        program = argv[0]
        if program is None:
            self.diagnose("unknown-command", "command name not known statically", file, line, partial=True)
            return [frozenset({UNKNOWN})]
        if program == "":
            self.diagnose("not-found", "empty command name", file, line)
            return []
        path = self.locate(program, ctx)
        if path is None:
            # execve fails: the shell that tried reports "not found" and exits 127; nothing runs on this path
            self.diagnose("not-found", f"{program}: not found in the root; this path exits", file, line)
            return []
        try:
            resolved = self.probe(ctx.root, path).resolved
        except RootFSError:
            resolved = path
        names = [posixpath.basename(program), posixpath.basename(path), posixpath.basename(resolved)]
        if is_multi_call(resolved) and names[0] in MULTI_CALL and len(argv) > 1 and argv[1]:
            # `busybox sh -c …`: the applet named by argv[1] runs, as if called by that name
            applet = posixpath.basename(argv[1])
            names = [applet]
            argv = [applet, *argv[2:]]
        for name in dict.fromkeys(names):
            handled = self._by_name(name, argv, path, resolved, ctx, depth, file, line)
            if handled is not None:
                return handled
        return self._by_content(argv, path, resolved, ctx, depth, file, line, script_of)

    def _shown(self, ctx: Context, path: str | None) -> str | None:
        if path is None or ctx.prefix in ("", "/"):
            return path
        return "/" + "/".join(p for p in (*ctx.prefix.split("/"), *path.split("/")) if p)

    @staticmethod
    def _unknown(ctx: Context) -> Terminal:
        return dataclasses.replace(UNKNOWN, via=ctx.decisions) if ctx.decisions else UNKNOWN

    @staticmethod
    def _argv(argv: list[Arg]) -> tuple[str, ...] | None:
        return None if any(a is None for a in argv) else tuple(clean(a) for a in argv if a is not None)

    def _terminal(
        self, ctx: Context, path: str, resolved: str, kind: str, argv: list[Arg], **extra: object
    ) -> Terminal:
        name = argv[0] if argv else None
        applet = applet_of(resolved, [name or path]) if is_multi_call(resolved) else None
        return Terminal(
            clean_opt(self._shown(ctx, path)),
            clean_opt(self._shown(ctx, resolved)),
            kind,  # type: ignore[arg-type]
            self._argv(argv),
            user=ctx.user.label(),
            applet=clean_opt(applet),
            via=ctx.decisions,
            **extra,  # type: ignore[arg-type]
        )

    def _by_name(
        self,
        name: str,
        argv: list[Arg],
        path: str,
        resolved: str,
        ctx: Context,
        depth: int,
        file: str,
        line: int | None,
    ) -> list[Outcome] | None:
        language = identify_launcher(name)
        if (name in SHELLS or language is not None) and self._is_script(ctx, path):
            return None  # a shim named like an interpreter (pyenv, nvm, rbenv): follow its own #! line
        if name in SHELLS:
            return self._shell(name, argv, path, resolved, ctx, depth)
        wrapper = wrapper_name(name)
        if wrapper is not None:
            return self._wrapper(wrapper, argv, path, resolved, ctx, depth)
        if name in SUPERVISORS:
            return self._supervisor(name, argv, path, resolved, ctx, depth)
        if language is not None:
            launch = parse_launch(language, argv[1:], ctx.cwd)
            if not launch.known:
                self.diagnose("unknown-argument", f"{name}: what it runs is not known statically", file, line)
            self.step("<argv>", None, language, launch.target)
            if launch.script and not ctx.root.exists(launch.script):
                self.diagnose(
                    "script-missing", f"{launch.script}: not found in the root (created at run time?)"
                )
            terminal = self._terminal(
                ctx,
                path,
                resolved,
                "interpreter",
                argv,
                language=language,
                script=clean_opt(self._shown(ctx, launch.script)),
                module=clean_opt(launch.module),
                jar=clean_opt(self._shown(ctx, launch.jar)),
                main_class=clean_opt(launch.main_class),
                inline=launch.inline,
            )
            return [frozenset({terminal})]
        return None

    def _is_script(self, ctx: Context, path: str) -> bool:
        try:
            return self.probe(ctx.root, path).data.startswith(b"#!")
        except RootFSError:
            return False

    def _by_content(
        self,
        argv: list[Arg],
        path: str,
        resolved: str,
        ctx: Context,
        depth: int,
        file: str,
        line: int | None,
        script_of: str | None,
    ) -> list[Outcome]:
        try:
            head = self.probe(ctx.root, path).data[:SHEBANG_MAX]
        except RootFSError as exc:
            self.diagnose("unreadable", f"{path}: {exc.strerror or exc}", file, line, partial=True)
            return [frozenset({self._terminal(ctx, path, resolved, "unknown", argv)})]
        kind = classify(head)
        if kind == "elf":
            if script_of is not None:
                interp = posixpath.basename(resolved)
                return [
                    frozenset(
                        {
                            self._terminal(
                                ctx, path, resolved, "script", argv, language=interp, script=script_of
                            )
                        }
                    )
                ]
            return [frozenset({self._terminal(ctx, path, resolved, "binary", argv)})]
        if kind == "shebang":
            shebang = parse_shebang(head)
            if shebang is None:
                self.diagnose("bad-shebang", f"{path}: empty #! line", path, 1, partial=True)
                return [frozenset({self._terminal(ctx, path, resolved, "unknown", argv)})]
            if script_of is not None:  # an interpreter that is itself a script: Linux refuses nested #!
                self.diagnose("nested-shebang", f"{path}: interpreter is a script", path, 1)
            self.step(path, 1, "shebang", shebang.interpreter)
            new_argv: list[Arg] = [shebang.interpreter]
            if shebang.argument is not None:
                new_argv.append(shebang.argument)
            new_argv.extend([path, *argv[1:]])
            return self.follow(new_argv, ctx, depth + 1, path, 1, script_of=path)
        if kind == "text":
            self.diagnose("no-shebang", f"{path}: text without #!; a shell runs it with /bin/sh", path, None)
            return self.follow(["/bin/sh", path, *argv[1:]], ctx, depth + 1, file, line)
        if kind == "empty":
            self.diagnose("empty-file", f"{path}: empty file; nothing runs", file, line)
            return []
        self.diagnose(
            "binary-data", f"{path}: not ELF and no #!: unrecognised executable", file, line, partial=True
        )
        return [frozenset({self._terminal(ctx, path, resolved, "unknown", argv)})]

    # ------------------------------------------------------------------------------------------ shells

    def _shell(
        self, name: str, argv: list[Arg], path: str, resolved: str, ctx: Context, depth: int
    ) -> list[Outcome]:
        args = argv[1:]
        command: Arg = None
        has_command = False
        i = 0
        while i < len(args):
            arg = args[i]
            if arg is None:
                self.diagnose("unknown-argument", f"{name}: option not known statically", partial=True)
                return [frozenset({self._terminal(ctx, path, resolved, "shell", argv)})]
            if arg == "--" or arg == "-":
                i += 1
                break
            if arg in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
                i += 2
                continue
            if arg.startswith("--"):
                i += 1
                continue
            if arg.startswith(("-", "+")) and len(arg) > 1:
                if "c" in arg[1:] and arg[0] == "-":
                    has_command = True
                i += 1
                continue
            break
        operands = args[i:]
        shell_terminal = self._terminal(ctx, path, resolved, "shell", argv, resident=True, role=name)
        if has_command:
            if not operands:
                self.diagnose("bad-argument", f"{name} -c: option requires an argument", partial=True)
                return []
            command = operands[0]
            arg0 = operands[1] if len(operands) > 1 else argv[0]
            positional = list(operands[2:])
            if command is None:
                self.diagnose(
                    "unknown-command", f"{name} -c: command string not known statically", partial=True
                )
                return [frozenset({self._unknown(ctx), shell_terminal})]
            self.step(
                "<argv>",
                None,
                name,
                "-c " + command.strip().splitlines()[0][:200] if command.strip() else "-c",
            )
            self.tick(1 + len(command) // 4096)
            if len(command) > self.limits.max_script_bytes:
                self.diagnose("too-large", f"{name} -c: command string too large", partial=True)
                return [frozenset({self._unknown(ctx), shell_terminal})]
            parsed = parse_shell(command.encode("utf-8", errors="surrogateescape"))
            if parsed.error_lines:
                self.diagnose("parse-error", f"{name} -c: syntax errors", "<argv>", None, partial=True)
            # bash, dash (>= 0.5.11) and busybox ash exec the last simple command of a -c string themselves
            return interpret(
                self, parsed, "<argv>", shell_terminal, arg0, positional, ctx, depth, exec_last=True
            )
        if not operands:
            # an interactive shell or commands on stdin: the shell is the program
            return [frozenset({self._terminal(ctx, path, resolved, "shell", argv)})]
        script = operands[0]
        if script is None:
            self.diagnose("unknown-command", f"{name}: script not known statically", partial=True)
            return [frozenset({self._unknown(ctx), shell_terminal})]
        script_path = posixpath.normpath(
            script if script.startswith("/") else posixpath.join(ctx.cwd, script)
        )
        if not ctx.root.is_file(script_path) and "/" not in script:
            script_path = self.locate(script, ctx) or script_path
        self.step("<argv>", None, name, script_path)
        recursion_key = ("sh", str(ctx.root.root), script_path, tuple(operands[1:]), ctx.user, _env_key(ctx))
        if recursion_key in ctx.chain:
            # the same script, arguments, identity and environment as a pass already on this chain
            if ctx.user.stepped:
                # after a step-down to a user whose uid is not known, the branch that steps down again is the
                # one `id -u` rules out at run time (it is not root any more): it adds no outcome
                self.diagnose("re-exec", f"{script_path}: a second step-down is not taken", script_path, None)
                return []
            # otherwise the script really execs itself forever: the shell running it is what keeps running
            self.diagnose(
                "re-exec", f"{script_path} re-executes itself unchanged, forever", script_path, None
            )
            return [frozenset({dataclasses.replace(shell_terminal, resident=False, role=None)})]
        tree = self.read_script(ctx, script_path, "<argv>", None)
        if tree is None:
            return [frozenset({self._unknown(ctx), shell_terminal})]
        ctx = ctx.with_(chain=(*ctx.chain, recursion_key))
        return interpret(self, tree, script_path, shell_terminal, script, list(operands[1:]), ctx, depth)

    # ---------------------------------------------------------------------------------------- wrappers

    def _wrapper(
        self, name: str, argv: list[Arg], path: str, resolved: str, ctx: Context, depth: int
    ) -> list[Outcome]:
        unwrapped = unwrap(name, argv[1:])
        assert unwrapped is not None
        transparent = name == "env" and not (unwrapped.env_clear or unwrapped.env_set or unwrapped.env_unset)
        if not transparent:  # `env NAME` (a shebang's PATH lookup) changes nothing: not a wrapper
            self.wrappers.setdefault(name, None)
        self_terminal = self._terminal(ctx, path, resolved, "binary", argv, resident=True, role=name)
        if unwrapped.argv is None:
            self.diagnose("unknown-argument", unwrapped.reason or f"{name}: command not known", partial=True)
            return [frozenset({self._unknown(ctx), self_terminal})]
        if not unwrapped.argv:
            if name == "env":  # env with no command prints the environment
                return []
            self.diagnose("bad-argument", f"{name}: no command to run")
            return []
        inner = ctx
        if unwrapped.user is not None:
            inner = inner.with_(user=self.user(unwrapped.user, ctx.root))
        elif unwrapped.switches:  # `gosu "$user" …`: a new identity, even though its uid is not known
            inner = inner.with_(user=User(stepped=True))
        if unwrapped.env_clear or unwrapped.env_set or unwrapped.env_unset:
            env: dict[str, Arg] = {} if unwrapped.env_clear else dict(ctx.env)
            for key in unwrapped.env_unset:
                env.pop(key, None)
            env.update(unwrapped.env_set)
            inner = inner.with_(env=env, env_complete=ctx.env_complete or unwrapped.env_clear)
        if unwrapped.cwd is not None:
            inner = inner.with_(cwd=posixpath.normpath(posixpath.join(ctx.cwd, unwrapped.cwd)))
        if unwrapped.root is not None:
            try:
                new_root = ctx.root.resolve(posixpath.join(ctx.cwd, unwrapped.root))
            except RootFSError:
                self.diagnose("not-found", f"chroot: {unwrapped.root} not found in the root")
                return []
            inner = inner.with_(
                root=self.open_root(str(ctx.root.root) + new_root) if new_root != "/" else ctx.root,
                prefix="/" + "/".join(p for p in (*ctx.prefix.split("/"), *new_root.split("/")) if p),
                cwd="/",
            )
        target_name = unwrapped.argv[0]
        target = (self.locate(target_name, inner) if target_name else None) or (target_name or "<unknown>")
        self.step("<argv>", None, name, target)
        outcomes = self.follow(list(unwrapped.argv), inner, depth + 1)
        if unwrapped.resident:  # it exits with its command: where the command exits, nothing stays
            return with_resident(outcomes, [self_terminal])
        return outcomes

    def _supervisor(
        self, name: str, argv: list[Arg], path: str, resolved: str, ctx: Context, depth: int
    ) -> list[Outcome]:
        role = "s6-overlay" if name == "s6-overlay-suexec" else name
        self.wrappers.setdefault(role, None)
        programs, notes = supervised_programs(name, argv[1:], ctx.root, ctx.cwd)
        for note in notes:
            self.diagnose("supervisor", note, partial=not programs)
        residents: list[Terminal] = []
        if name == "s6-overlay-suexec":
            # suexec and stage 0 exec away; the stage-1 init (generated at run time) becomes s6-svscan
            own: list[Outcome] = []
            helpers = ["s6-svscan", "s6-supervise"]
        else:
            # the supervisor process itself (supervisord is a Python script: its interpreter is what runs)
            own = as_resident(self._by_content(argv, path, resolved, ctx, depth, "<argv>", None, None), role)
            helpers = [h for h in ({"s6-svscan": "s6-supervise", "runsvdir": "runsv"}.get(name),) if h]
        search = ctx.with_(env={**ctx.env, "PATH": f"/command:{ctx.path_env}"})
        for helper in helpers:
            helper_path = self.locate(helper, search)
            if helper_path:
                try:
                    helper_resolved = ctx.root.resolve(helper_path)
                except RootFSError:
                    helper_resolved = helper_path
                residents.append(
                    self._terminal(
                        ctx, helper_path, helper_resolved, "binary", [helper_path], resident=True, role=role
                    )
                )
        parts: list[list[Outcome]] = [own] if own else []
        for program in programs:
            parts.append(self._program(name, program, ctx, depth))
        outcomes = combine(parts)
        return with_resident(outcomes, residents) if residents else outcomes

    def _program(self, supervisor: str, program: Program, ctx: Context, depth: int) -> list[Outcome]:
        inner = ctx
        if program.user:
            inner = inner.with_(user=self.user(program.user, ctx.root))
        if program.cwd:
            inner = inner.with_(cwd=program.cwd)
        if program.env:
            inner = inner.with_(env={**ctx.env, **program.env})
        argv: list[Arg] = list(program.argv) if program.argv is not None else [program.script]
        target = program.script or (argv[0] and self.locate(argv[0], inner)) or argv[0] or "<unknown>"
        self.step(program.source, program.line, supervisor, target)
        outcomes = self.follow(argv, inner, depth + 1, program.source, program.line)
        if len(outcomes) > 1:
            self.forced_ambiguous = True
        return outcomes


def _env_key(ctx: Context) -> tuple[tuple[str, Arg], ...]:
    return tuple(sorted(ctx.env.items()))


# -------------------------------------------------------------------------------------------- public


def _confidence(outcomes: list[Outcome], diagnostics: list[Diagnostic]) -> int:
    """How sure the answer is, in percent. One certain answer — every path leads to the same programs, or
    every path certainly exits, and no limit was hit — reads 100 (an exit 90); each further alternative
    divides it (two: 50, three: 33); an unknown program caps it at 30; a path not followed to its end (a
    limit, input that cannot be read) at 50, and lower for every further one."""
    partial = sum(1 for d in diagnostics if d.partial)
    if not outcomes:  # every path exits: certain, unless a limit was hit or a program was not found
        if partial:
            return 10
        return 50 if any(d.code == "not-found" for d in diagnostics) else 90
    answers = {frozenset(t.identity() for t in o if not t.resident or t.kind == "shell") for o in outcomes}
    score = 100 // len(answers)
    if any(t.kind == "unknown" for o in outcomes for t in o):
        score = min(score, 30)
    if partial:
        score = min(score, 50) - 10 * min(partial - 1, 3)
    return max(5, score)


def trace_entrypoint(
    argv: list[str],
    *,
    root: RootFS | str | None,
    env: Mapping[str, str] | None = None,
    workdir: str = "/",
    user: int | str | None = None,
    max_depth: int = 48,
    metrics: ZastavaMetrics | None = None,
    limits: Limits | None = None,
) -> EntryTraceResult:
    """Follow a container's ENTRYPOINT+CMD statically to the program(s) that really run.

    ``root`` is the container root (an unpacked image rootfs or ``/proc/<pid>/root``); ``env`` the container
    environment — when given it is taken as complete (other variables are unset), when ``None``
    variables other than ``PATH`` are unknown and branches on them are followed both ways; ``user`` the
    image's USER (name or uid; ``None`` = unknown).
    Never executes anything; bounded in time, memory and depth.
    """
    limits = dataclasses.replace(limits or Limits(), max_depth=max_depth)
    given = root if isinstance(root, RootFS) else RootFS(root or "/")
    rootfs = CachedRoot(given.root, max_symlinks=given.max_symlinks)
    tracer = TraceRecorder(limits)
    env_map: dict[str, Arg] = dict(env) if env is not None else {}
    env_map.setdefault("PATH", DEFAULT_PATH)
    ctx = Context(
        root=rootfs,
        env=env_map,
        env_complete=env is not None,
        cwd=posixpath.normpath("/" + workdir.lstrip("/")) if workdir else "/",
        user=tracer.user(user, rootfs),
    )
    result = EntryTraceResult(argv=list(argv))
    outcomes: list[Outcome] = []
    if not argv:
        tracer.diagnose("empty-argv", "no ENTRYPOINT or CMD", partial=True)
    else:
        try:
            outcomes = tracer.follow(list(argv), ctx, 1)
        except RecursionError:
            tracer.diagnose("recursion", "nesting too deep for the tracer", partial=True)
            outcomes = [frozenset({UNKNOWN})]
        finally:
            for opened in tracer.roots:
                opened.close()
    rootfs.close()
    outcomes = [o for o in outcomes if o]
    paths: dict[tuple[object, ...], dict[tuple[Decision, ...], None]] = {}
    for outcome in outcomes:  # every way each program was reached, before outcomes are deduplicated
        for terminal in outcome:
            seen = paths.setdefault(terminal.identity(), {})
            if len(seen) < 8:
                seen.setdefault(terminal.via, None)
    outcomes = dedupe(outcomes, limits.max_outcomes)
    if not outcomes and argv:
        tracer.diagnose("no-program", "no path starts a long-running program (every path exits)")
    index: dict[tuple[object, ...], int] = {}
    terminals: list[Terminal] = []
    for outcome in outcomes:
        for terminal in sorted(outcome, key=lambda t: (t.resident, t.path or "", t.script or "")):
            key = terminal.identity()
            if key not in index:
                index[key] = len(terminals)
                terminals.append(dataclasses.replace(terminal, via=()))
            elif terminals[index[key]].argv != terminal.argv:
                terminals[index[key]] = dataclasses.replace(terminals[index[key]], argv=None)
    result.terminals = terminals
    result.when = [list(paths.get(t.identity(), {(): None})) for t in terminals]
    result.outcomes = [sorted(index[t.identity()] for t in o) for o in outcomes]
    result.steps = [EntryTraceStep(file=f, line=ln, op=op, target=t) for (f, ln, op, t) in tracer.steps]
    result.wrappers = list(tracer.wrappers)
    result.diagnostics = list(tracer.diagnostics.values())
    result.partial = any(d.partial for d in result.diagnostics)
    result.ambiguous = len(outcomes) > 1 or tracer.forced_ambiguous
    result.depth = tracer.depth
    result.confidence = _confidence(outcomes, result.diagnostics)
    if metrics is not None:
        metrics.entrytrace_depth.observe(tracer.depth)
    return result
