"""What an EntryTrace returns: steps, terminal programs, wrappers, confidence and diagnostics.

A *terminal* is a program that runs for the life of the container: the end of the exec chain, plus the
*resident* processes that stay alive as its parents (``tini``, ``dumb-init``, ``su``, a shell that runs
its last command without ``exec``, a supervisor and each of its programs). The observer uses every terminal's
container path (as found and with symlinks resolved) as the process-drift baseline (spec §10).

An *outcome* is the set of terminals of one possible execution path. More than one distinct successful outcome
means a branch could not be decided statically: the result is then ``ambiguous`` and lists every candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from zastava.contracts import EntryTraceStep

__all__ = ["Decision", "Diagnostic", "EntryTraceResult", "Terminal", "TerminalKind"]

#: ``binary`` ELF or other native executable; ``interpreter`` a language launcher with its script/module/jar;
#: ``script`` a script whose interpreter is not a known launcher (the interpreter is the running program);
#: ``shell`` a resident shell; ``missing`` not found in the root; ``unknown`` not decidable statically.
TerminalKind = Literal["binary", "interpreter", "script", "shell", "missing", "unknown"]


@dataclass(frozen=True, slots=True)
class Decision:
    """A condition the trace could not decide on the path that led to a terminal, and the way that path took:
    ``branch`` is ``true``/``false`` (how the condition of an ``if``, ``while``, ``&&`` or ``||`` came out on
    that path), or ``case`` and the patterns of the ``case`` branch taken."""

    file: str
    line: int | None
    condition: str
    branch: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "condition": self.condition, "branch": self.branch}


@dataclass(frozen=True, slots=True)
class Terminal:
    """A program that keeps running. ``path`` is the container path as found (PATH lookup, shebang), and
    ``resolved`` the same with every symlink resolved inside the root (what ``/proc/<pid>/exe`` shows)."""

    path: str | None
    resolved: str | None
    kind: TerminalKind
    argv: tuple[str, ...] | None = None
    resident: bool = False
    role: str | None = None  # wrapper or supervisor name for residents (tini, supervisord, sh …)
    language: str | None = None  # python, node, java … for interpreters
    script: str | None = None
    module: str | None = None
    jar: str | None = None
    main_class: str | None = None
    inline: bool = False  # code given on the command line (python -c, node -e …)
    user: str | None = None
    #: the program a multi-call binary (busybox, toybox, uutils coreutils) runs as: its argv[0] name
    applet: str | None = None
    #: the undecided conditions on the path that led here (empty when the path is certain)
    via: tuple[Decision, ...] = ()

    def identity(self) -> tuple[Any, ...]:
        """Which program this is, regardless of its arguments (outcomes are compared by identity)."""
        return (
            self.path,
            self.resolved,
            self.kind,
            self.resident,
            self.language,
            self.script,
            self.module,
            self.jar,
            self.main_class,
            self.inline,
            self.applet,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "resolved": self.resolved, "kind": self.kind}
        out["argv"] = list(self.argv) if self.argv is not None else None
        if self.resident:
            out["resident"] = True
            out["role"] = self.role
        for key in ("language", "script", "module", "jar", "main_class", "user", "applet"):
            value = getattr(self, key)
            if value is not None:
                out[_camel(key)] = value
        if self.inline:
            out["inline"] = True
        return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Why a result is partial or less certain. ``partial`` diagnostics mean some path was not followed
    to its end (a limit was hit, or input could not be read as a script)."""

    code: str
    message: str
    file: str | None = None
    line: int | None = None
    partial: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message, "partial": self.partial}
        if self.file is not None:
            out["file"] = self.file
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass(slots=True)
class EntryTraceResult:
    argv: list[str]
    steps: list[EntryTraceStep] = field(default_factory=list)
    terminals: list[Terminal] = field(default_factory=list)
    wrappers: list[str] = field(default_factory=list)
    confidence: int = 0
    ambiguous: bool = False
    partial: bool = False
    diagnostics: list[Diagnostic] = field(default_factory=list)
    depth: int = 0
    #: each successful outcome as indices into ``terminals``
    outcomes: list[list[int]] = field(default_factory=list)
    #: per terminal, the distinct paths (undecided conditions taken) it was reached by; ``[()]`` = certain
    when: list[list[tuple[Decision, ...]]] = field(default_factory=list)

    # ---------------------------------------------------------------------------------- observer view

    def terminal_paths(self) -> list[str]:
        """Container paths of every terminal, as found and resolved (the process-drift baseline)."""
        seen: dict[str, None] = {}
        for terminal in self.terminals:
            for path in (terminal.path, terminal.resolved):
                if path:
                    seen.setdefault(path, None)
        return list(seen)

    def programs(self) -> list[Terminal]:
        """The terminals that are not resident parents (the programs the chain ends in)."""
        return [t for t in self.terminals if not t.resident]

    def process_fields(self) -> dict[str, Any]:
        """Exactly the runtime event's EntryTrace fields, for ``Process(pid=…, entrypoint=…, **fields)``:
        ``entry_trace`` (``process.entryTrace``), ``terminals`` (``process.terminals``) and
        ``entry_trace_confidence`` (``process.entryTraceConfidence``, integer percent)."""
        return {
            "entry_trace": list(self.steps),
            "terminals": self.terminal_paths(),
            "entry_trace_confidence": self.confidence,
        }

    def _terminal_json(self, index: int, terminal: Terminal) -> dict[str, Any]:
        out = terminal.to_json()
        paths = self.when[index] if index < len(self.when) else []
        if any(paths):  # a terminal some undecided condition led to: say which (all paths, each as taken)
            out["when"] = [[d.to_json() for d in path] for path in paths]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "entryTrace": [step.wire() for step in self.steps],
            "terminals": [self._terminal_json(i, t) for i, t in enumerate(self.terminals)],
            "terminalPaths": self.terminal_paths(),
            "outcomes": self.outcomes,
            "wrappers": self.wrappers,
            "confidence": self.confidence,
            "ambiguous": self.ambiguous,
            "partial": self.partial,
            "depth": self.depth,
            "diagnostics": [d.to_json() for d in self.diagnostics],
        }
