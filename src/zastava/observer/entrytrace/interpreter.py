"""Static interpretation of a shell script's syntax tree (tree-sitter-bash).

The interpreter runs a script over a *set of states* (variables, positional parameters, functions, working
directory, user, the last foreground command, background jobs). Anything decidable from argv, the
environment, ``--user`` and the files in the root is decided; a condition that is not (``None`` in
three-valued logic) forks the state and both branches are followed. States that reach the same point with
the same content are merged, and their number is bounded.

A path ends by ``exec`` (the exec'd program is followed by the tracer), by ``exit``/end of script (the last
foreground command, if any, is the program; the shell stays resident as its parent), or at a limit (loop,
recursion, budget: the result is partial). Commands are never run: command substitution is evaluated only for
a few pure commands (``id -u``, ``basename``, ``dirname``, ``command -v`` …), everything else is unknown.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tree_sitter import Node

from ..rootfs import RootFSError
from .conditions import Token, evaluate_test, match_pattern
from .parser import ParsedScript, parse_shell
from .result import Decision, Terminal
from .vocabulary import Arg, Context, Follower, Outcome, combine, dedupe, with_resident

__all__ = ["interpret"]

Value = str | None | tuple[Arg, ...]  # tuple: an array
_UNSET = object()
_GLOB_CHARS = re.compile(r"[*?\[]")
_MAX_NESTING = 64  # nested statements (subshells, groups, bodies) within one script
_MAX_FIELDS = 4096  # words of one command line / elements of an array
_MAX_VALUE = 64 * 1024  # characters of one variable or word
_MAX_PATTERN_SUBJECT = 4096  # ${x#pat} / ${x/pat/r} on longer values: unknown (the matching is quadratic)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = "__zastava_unknown_"  # stands for a word of an eval'd string that is not known statically
#: words that assign while expanding: ${x:=v} / ${x=v} and arithmetic ($((x++)), $((x=1)))
_ASSIGNING_EXPANSION = re.compile(rb"\$\{[^}]*=|\$\(\(")
_BUILTIN_NAMES = (
    ": true false echo printf export readonly local declare typeset set shift unset cd exit return break "
    "continue source . eval exec command type hash wait trap umask ulimit shopt alias unalias getopts read "
    "let test [ [[ pwd builtin enable mapfile readarray times jobs disown fg bg kill"
)
_BUILTINS = frozenset(_BUILTIN_NAMES.split())


@dataclass(frozen=True, slots=True)
class Pending:
    """A foreground command whose program is followed only if it turns out to be the last one."""

    argv: tuple[Arg, ...]
    env: tuple[tuple[str, Arg], ...]
    cwd: str
    user: object
    file: str
    line: int
    #: how the path got here (not part of equality: states that differ only in history are merged)
    decisions: tuple[Decision, ...] = field(default=(), compare=False)
    #: a call to a function that cannot change the script's state, not interpreted unless the script ends
    #: right after it (then its own last command is what keeps running): the function's name, and the state
    #: and call site to interpret it from
    call: str | None = None
    deferred: tuple[object, object] | None = field(default=None, compare=False)


class State:
    __slots__ = (
        "background",
        "call_depth",
        "created",
        "cwd",
        "decisions",
        "exported",
        "fkey",
        "flow",
        "flow_n",
        "functions",
        "last_fg",
        "locals",
        "positional",
        "status",
        "subshell",
        "user",
        "vars",
        "waiting",
    )

    def __init__(self) -> None:
        self.vars: dict[str, Value] = {}
        self.exported: set[str] = set()
        self.positional: list[Arg] | None = []
        #: shared between copies and replaced, never changed in place (copy on write)
        self.functions: dict[str, tuple[Node, str]] = {}
        self.fkey: frozenset[tuple[str, int]] | None = frozenset()
        self.status: int | None = 0
        self.flow: str | None = None  # break, continue, return, exit, stuck
        self.flow_n = 0
        self.cwd = "/"
        self.user: object = None
        self.last_fg: tuple[Pending, ...] = ()
        self.background: frozenset[Terminal] = frozenset()
        self.locals: list[dict[str, object]] = []
        self.call_depth = 0
        self.subshell = 0
        #: paths this script created (mkdir, touch): file tests see them although the image does not have them
        self.created: frozenset[tuple[str, bool]] = frozenset()
        #: undecided conditions on this path, as taken
        self.decisions: tuple[Decision, ...] = ()
        #: the last thing the shell did blocks it (wait for background jobs, read from stdin)
        self.waiting = False

    def copy(self) -> State:
        new = State.__new__(State)
        new.vars = dict(self.vars)
        new.exported = set(self.exported)
        new.positional = list(self.positional) if self.positional is not None else None
        new.functions = self.functions
        new.fkey = self.fkey
        new.status = self.status
        new.flow = self.flow
        new.flow_n = self.flow_n
        new.cwd = self.cwd
        new.user = self.user
        new.last_fg = self.last_fg
        new.background = self.background
        new.locals = [dict(frame) for frame in self.locals]
        new.call_depth = self.call_depth
        new.subshell = self.subshell
        new.created = self.created
        new.decisions = self.decisions
        new.waiting = self.waiting
        return new

    def key(self) -> tuple[object, ...]:
        return (
            frozenset(self.vars.items()),
            frozenset(self.exported),
            self.last_fg,
            self.waiting,
            *self.shape(),
        )

    def functions_key(self) -> frozenset[tuple[str, int]]:
        if self.fkey is None:
            self.fkey = frozenset((k, v[0].id) for k, v in self.functions.items())
        return self.fkey

    def define(self, name: str, body: Node, file: str) -> None:
        self.functions = {**self.functions, name: (body, file)}
        self.fkey = None

    def undefine(self, name: str) -> None:
        if name in self.functions:
            self.functions = {k: v for k, v in self.functions.items() if k != name}
            self.fkey = None

    def shape(self) -> tuple[object, ...]:
        """What a state is apart from the values of its variables: states of one shape can be joined (the
        positional parameters are part of it: they are what a final `exec "$@"` runs)."""
        return (
            tuple(self.positional) if self.positional is not None else None,
            self.functions_key(),
            self.flow,
            self.flow_n,
            self.cwd,
            self.user,
            self.background,
            self.call_depth,
            self.subshell,
        )


def _common_prefix(a: tuple[Decision, ...], b: tuple[Decision, ...]) -> tuple[Decision, ...]:
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return a[:common]


class _Field:
    __slots__ = ("keep", "segs")

    def __init__(self, segs: list[tuple[str | None, bool]], keep: bool) -> None:
        self.segs = segs  # (text or None when unknown, unquoted: subject to globbing)
        self.keep = keep  # quoted or literal: kept even when empty

    def join(self, other: _Field) -> _Field:
        return _Field(self.segs + other.segs, self.keep or other.keep)

    def text(self) -> str | None:
        parts = [s for s, _ in self.segs]
        if any(p is None for p in parts):
            return None
        return "".join(p for p in parts if p is not None)


#: a function calling itself is unrolled this many levels, then summarised
_RECURSION_UNROLL = 2
#: names a function body may assign (``x=``, ``x+=``, ``read x``, ``for x in``): over-approximated
_ASSIGNED = re.compile(
    r"(?:\b|^)([A-Za-z_][A-Za-z0-9_]*)\+?=|\b(?:read|for)\s+(?:-\w+\s+)*([A-Za-z_][A-Za-z0-9_]*)"
)
_DQ_ESCAPE = re.compile(r'\\([$`"\\\n])')
_DOLLAR_NODES = frozenset({"simple_expansion", "expansion", "command_substitution", "arithmetic_expansion"})


#: nodes under which a command may or may not run
_BRANCHING = frozenset(
    {
        "if_statement",
        "elif_clause",
        "else_clause",
        "case_item",
        "while_statement",
        "for_statement",
        "c_style_for_statement",
        "list",
    }
)


def _conditional(node: Node, body: Node) -> bool:
    """Whether the call at ``node`` runs only on some paths through the function ``body`` (a recursion with
    a base case); an unconditional self-call never ends and is left to the depth limit."""
    current = node.parent
    while current is not None and current.id != body.id:
        if current.type in _BRANCHING:
            return True
        current = current.parent
    return False


def _dq_unescape(match: re.Match[str]) -> str:
    """``\\$`` → ``$`` inside double quotes; a backslash-newline disappears."""
    return "" if match.group(1) == "\n" else match.group(1)


def _concat(left: list[_Field], right: list[_Field]) -> list[_Field]:
    if not left:
        return right
    if not right:
        return left
    return [*left[:-1], left[-1].join(right[0]), *right[1:]]


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return re.sub(r"\\(\n|.)", lambda m: "" if m.group(1) == "\n" else m.group(1), text)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


_ANSI = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "v": "\v",
}


def _ansi_c(text: str) -> str:
    body = text[2:-1]
    return re.sub(r"\\(.)", lambda m: _ANSI.get(m.group(1), m.group(1)), body)


class Interpreter:
    def __init__(
        self, tracer: Follower, parsed: ParsedScript, file: str, shell: Terminal, ctx: Context, depth: int
    ) -> None:
        self.tracer = tracer
        self.limits = tracer.limits
        self.ctx = ctx
        self.root = ctx.root
        self.file = file
        self.source = parsed.source
        self.shell = shell
        self.depth = depth
        self.arg0: str = file
        self.line_override: int | None = None
        self.source_depth = 0
        self.eval_depth = 0
        self.outcomes: list[Outcome] = []
        self.nesting = 0
        #: the statement a `sh -c` string ends with, which the shell execs instead of forking (None: a script)
        self.tail: Node | None = None
        self._purity = tracer.purity
        #: the functions being called, innermost last (recursion beyond a few levels is summarised)
        self.active: list[str] = []
        #: > 0 while a command's exit status decides something (a condition, the left of && and ||, `!`)
        self.status_needed = 0
        #: the shell as the program itself (an endless loop, waiting on stdin) rather than a resident parent
        self.shell_program = dataclasses.replace(shell, resident=False, role=None)

    # ----------------------------------------------------------------------------------------- helpers

    def line(self, node: Node) -> int:
        if self.line_override is not None:
            return self.line_override
        return node.start_point[0] + 1

    def text(self, node: Node) -> str:
        data = node.text
        return data.decode("utf-8", errors="surrogateescape") if data is not None else ""

    def diagnose(self, code: str, message: str, node: Node | None, partial: bool = False) -> None:
        self.tracer.diagnose(
            code, message, self.file, self.line(node) if node is not None else None, partial=partial
        )

    def decide(self, st: State, node: Node | None, branch: str) -> None:
        """Record that this path took ``branch`` at a condition that could not be decided."""
        if len(st.decisions) >= self.limits.max_decisions:
            return
        text = self.text(node).strip() if node is not None else "?"
        first = text.splitlines()[0] if text else "?"
        line = self.line(node) if node is not None else None
        st.decisions = (*st.decisions, Decision(self.file, line, first[:120], branch))

    def lookup(self, st: State, name: str) -> tuple[Value, bool | None]:
        """(value, is_set); is_set None when unknown."""
        if name in st.vars:
            return st.vars[name], True
        special = self.special(st, name)
        if special is not _UNSET:
            return special, True  # type: ignore[return-value]
        if self.ctx.env_complete:
            return "", False
        return None, None

    def special(self, st: State, name: str) -> object:
        if name.isdigit():
            index = int(name)
            if index == 0:
                return self.arg0
            if st.positional is None:
                return None
            return st.positional[index - 1] if index <= len(st.positional) else ""
        if name == "#":
            return None if st.positional is None else str(len(st.positional))
        if name == "?":
            return None if st.status is None else str(st.status)
        if name in ("$", "!", "RANDOM", "HOSTNAME", "SECONDS", "PPID", "BASHPID"):
            return None
        if name == "-":
            return ""
        if name in ("BASH_SOURCE", "0"):
            return self.arg0 if name == "0" else self.file
        if name == "PWD":
            return st.cwd
        if name in ("UID", "EUID"):
            uid = getattr(st.user, "uid", None)
            return None if uid is None else str(uid)
        if name == "LINENO":
            return None
        return _UNSET

    def scalar(self, value: Value) -> str | None:
        if isinstance(value, tuple):
            return value[0] if value else ""
        return value

    def set_var(self, st: State, name: str, value: Value) -> None:
        st.vars[name] = value

    def env_of(self, st: State, extra: dict[str, Arg] | None = None) -> dict[str, Arg]:
        env: dict[str, Arg] = {}
        for name in st.exported:
            if name in st.vars:
                env[name] = self.scalar(st.vars[name])
            elif not self.ctx.env_complete:
                env[name] = None
        if extra:
            env.update(extra)
        return env

    def child_ctx(self, st: State, env: dict[str, Arg] | None = None) -> Context:
        return self.ctx.with_(
            env=env if env is not None else self.env_of(st),
            cwd=st.cwd,
            user=st.user if st.user is not None else self.ctx.user,
            decisions=st.decisions,
        )

    def path_env(self, st: State) -> str:
        value, _ = self.lookup(st, "PATH")
        text = self.scalar(value)
        return text if text is not None else self.ctx.path_env

    def locate(self, st: State, name: str) -> str | None:
        return self.tracer.locate_in(self.root, name, self.path_env(st), st.cwd)

    # --------------------------------------------------------------------------------------- expansion

    def fields(self, node: Node, st: State, quoted: bool = False) -> list[_Field]:
        self.tracer.tick()
        kind = node.type
        if kind in ("word", "number", "extglob_pattern", "regex", "variable_name", "test_operator"):
            text = self.text(node)
            if self.eval_depth and _PLACEHOLDER in text:
                return [_Field([(None, False)], True)]
            if kind == "word":
                text = _unescape(text)
                if text.startswith("~") and not quoted:
                    home, _ = self.lookup(st, "HOME")
                    rest = text[1:]
                    if rest == "" or rest.startswith("/"):
                        return [_Field([(self.scalar(home), False), (rest, True)], True)]
            return [_Field([(text, not quoted)], True)]
        if kind == "raw_string":
            return [_Field([(self.text(node)[1:-1], False)], True)]
        if kind == "ansi_c_string":
            return [_Field([(_ansi_c(self.text(node)), False)], True)]
        if kind == "string" or kind == "translated_string":
            return self.string_fields(node, st)
        if kind in ("simple_expansion", "expansion"):
            return self.expansion(node, st, quoted)
        if kind == "command_substitution":
            return self._split(self.substitute(node, st), quoted)
        if kind == "arithmetic_expansion":
            named = [c for c in node.children if c.is_named]
            value = self.arith(named[0], st) if named else None
            return self._split(None if value is None else str(value), quoted)
        if kind == "concatenation":
            result: list[_Field] = []
            for child in node.children:
                result = _concat(result, self.fields(child, st, quoted))
            return result
        if kind == "array":
            result = []
            for child in node.children:
                if child.is_named:
                    result.extend(self.fields(child, st, quoted))
            return result
        return [_Field([(None, False)], True)]

    def string_fields(self, node: Node, st: State) -> list[_Field]:
        """A double-quoted string. Literal text is taken from the source between the expansions (the
        grammar folds some of it, e.g. spaces next to ``$`` or the closing quote, into anonymous tokens)."""
        data = node.text or b""
        base = node.start_byte
        opening = data.find(b'"')
        position = base + (opening + 1 if opening >= 0 else 0)
        end = node.end_byte - 1 if data.endswith(b'"') else node.end_byte
        result: list[_Field] = []
        had_at = False

        def literal(upto: int) -> None:
            nonlocal result
            if upto > position:
                raw = data[position - base : upto - base].decode("utf-8", errors="surrogateescape")
                if "\\" in raw:
                    raw = _DQ_ESCAPE.sub(_dq_unescape, raw)
                result = _concat(result, [_Field([(raw, False)], True)])

        for child in node.children:
            kind = child.type
            if kind == "string_content" or not child.is_named:
                continue
            start = child.start_byte
            if kind in _DOLLAR_NODES:
                child_text = data[start - base : child.end_byte - base]
                leading = len(child_text) - len(child_text.lstrip())
                start += leading  # whitespace the grammar put inside the `$` token is literal text
            literal(start)
            if kind in ("simple_expansion", "expansion") and self._is_at(child):
                had_at = True
            result = _concat(result, self.fields(child, st, quoted=True))
            position = child.end_byte
        literal(end)
        if not result and not had_at:
            result = [_Field([("", False)], True)]
        return result

    def _is_at(self, node: Node) -> bool:
        text = node.text or b""
        if b"@" not in text and b"*" not in text:
            return False
        for child in node.children:
            if child.type == "special_variable_name":
                return self.text(child) in ("@", "*")
            if child.type == "subscript":
                return any(self.text(c) in ("@", "*") for c in child.children if c.type in ("word", "number"))
        return False

    def _split(self, value: str | None, quoted: bool) -> list[_Field]:
        if quoted:
            return [_Field([(value, False)], True)]
        if value is None:
            return [_Field([(None, False)], True)]
        return [_Field([(part, True)], False) for part in value.split()]

    def _list_fields(self, items: list[Arg] | None, quoted: bool, star: bool) -> list[_Field]:
        if items is None:
            return [_Field([(None, False)], True)]
        if len(items) > _MAX_FIELDS:
            self.too_big(f"{len(items)} arguments")
            return [_Field([(None, False)], True)]
        if star and quoted:
            joined = None if any(i is None for i in items) else " ".join(i for i in items if i is not None)
            return [_Field([(joined, False)], True)]
        if quoted:
            return [_Field([(item, False)], True) for item in items]
        out: list[_Field] = []
        for item in items:
            out.extend(self._split(item, False))
        return out

    def expansion(self, node: Node, st: State, quoted: bool) -> list[_Field]:
        children = node.children
        if node.type == "simple_expansion":
            name_node = next((c for c in children if c.is_named), None)
            if name_node is None:
                return [_Field([("$", False)], True)]
            name = self.text(name_node)
            if name in ("@", "*"):
                return self._list_fields(st.positional, quoted, name == "*")
            found, _ = self.lookup(st, name)
            return self._split(self.scalar(found), quoted)
        inner = [c for c in children if c.type not in ("${", "}")]
        prefix = None
        if inner and inner[0].type in ("#", "!") and len(inner) > 1:
            prefix = inner[0].type
            inner = inner[1:]
        if not inner:
            return [_Field([(None, False)], True)]
        name_node = inner[0]
        ops: list[tuple[str, list[Node]]] = []
        for child in inner[1:]:
            if not child.is_named:
                ops.append((child.type, []))
            elif ops:
                ops[-1][1].append(child)
            else:
                ops.append(("", [child]))
        # the variable: name, special, or subscripted
        index: str | None = None
        if name_node.type == "subscript":
            sub_name = name_node.child_by_field_name("name")
            sub_index = name_node.child_by_field_name("index")
            name = self.text(sub_name) if sub_name is not None else ""
            index = self.text(sub_index) if sub_index is not None else "0"
        else:
            name = self.text(name_node)
        is_list = name in ("@", "*") or index in ("@", "*")
        items: list[Arg] | None
        value: Value
        if name in ("@", "*"):
            items = st.positional
            is_set: bool | None = True
        else:
            found, is_set = self.lookup(st, name)
            value = found
            if prefix == "!":
                ref = self.scalar(value)
                if ref is None or not _NAME.match(ref):
                    return self._split(None, quoted)
                value, is_set = self.lookup(st, ref)
            if isinstance(value, tuple):
                if index in ("@", "*"):
                    items = list(value)
                else:
                    position = self.arith_text(index or "0", st)
                    items = [value[position] if position is not None and 0 <= position < len(value) else None]
            else:
                if index is not None and index not in ("@", "*", "0"):
                    value = "" if self.ctx.env_complete and value == "" else None
                items = [value]
        if prefix == "#":
            if items is None or any(i is None for i in items):
                return self._split(None, quoted)
            count = len(items) if is_list else len(items[0] or "")
            return self._split(str(count), quoted)
        if not ops:
            if is_list:
                return self._list_fields(items, quoted, name == "*" or index == "*")
            return self._split(items[0] if items else "", quoted)
        return self._operate(st, name, items, is_set, is_list, ops, quoted, node)

    def _operate(
        self,
        st: State,
        name: str,
        items: list[Arg] | None,
        is_set: bool | None,
        is_list: bool,
        ops: list[tuple[str, list[Node]]],
        quoted: bool,
        node: Node,
    ) -> list[_Field]:
        op, operands = ops[0]
        scalar: Arg = (
            None
            if items is None
            else (" ".join(i or "" for i in items) if is_list else (items[0] if items else ""))
        )
        if items is not None and any(i is None for i in items):
            scalar = None

        def word(nodes: list[Node]) -> str | None:
            out: list[_Field] = []
            for n in nodes:
                out = _concat(out, self.fields(n, st, quoted=True))
            if not out:
                return ""
            texts = [f.text() for f in out]
            return None if any(t is None for t in texts) else " ".join(t for t in texts if t is not None)

        if op in (":-", "-", ":=", "=", ":+", "+", ":?", "?"):
            colon = op.startswith(":")
            if is_set is None:
                empty: bool | None = None
            elif colon:
                empty = None if scalar is None else (not is_set or scalar == "")
            else:
                empty = not is_set
            base = op.lstrip(":")
            if empty is None:
                return self._split(None, quoted)
            if base in ("-", "="):
                if empty:
                    replacement = word(operands)
                    if base == "=" and _NAME.match(name):
                        self.set_var(st, name, replacement)
                    return self._split(replacement, quoted)
                return self._list_fields(items, quoted, False) if is_list else self._split(scalar, quoted)
            if base == "+":
                return (
                    self._split("" if empty else word(operands), quoted) if not (empty and not quoted) else []
                )
            if base == "?":
                if empty:
                    st.flow = "exit"
                    st.status = 1
                return self._split(scalar, quoted)
        if op in ("#", "##", "%", "%%"):
            pattern = self.pattern(operands, st)
            if pattern is None:
                return self._split(None, quoted)
            values = items if is_list and items is not None else [scalar]
            out = [self._trim(v, pattern, op) for v in values]
            return self._list_fields(out, quoted, False) if is_list else self._split(out[0], quoted)
        if op in ("/", "//", "/#", "/%"):
            pattern = self.pattern(operands, st)
            replacement = word(ops[1][1]) if len(ops) > 1 else ""
            if pattern is None or replacement is None or scalar is None:
                return self._split(None, quoted)
            return self._split(self._replace(scalar, pattern, replacement, op), quoted)
        if op == ":":
            offset_text = word(operands)
            length_text = word(ops[1][1]) if len(ops) > 1 else None
            offset = self.arith_text(offset_text, st) if offset_text is not None else None
            length = self.arith_text(length_text, st) if length_text is not None else None
            if offset is None or (len(ops) > 1 and length is None):
                return self._split(None, quoted)
            if name in ("@", "*"):
                if items is None:
                    return self._split(None, quoted)
                seq = [self.arg0, *items]
                sliced = seq[offset:] if offset >= 0 else seq[len(seq) + offset :]
                if length is not None:
                    sliced = sliced[:length]
                return self._list_fields(sliced, quoted, name == "*")
            if scalar is None:
                return self._split(None, quoted)
            start = offset if offset >= 0 else max(0, len(scalar) + offset)
            text = scalar[start:]
            if length is not None:
                text = text[:length]
            return self._split(text, quoted)
        if op in ("^^", "^", ",,", ","):
            if scalar is None:
                return self._split(None, quoted)
            if op == "^^":
                return self._split(scalar.upper(), quoted)
            if op == ",,":
                return self._split(scalar.lower(), quoted)
            if op == "^":
                return self._split(scalar[:1].upper() + scalar[1:], quoted)
            return self._split(scalar[:1].lower() + scalar[1:], quoted)
        return self._split(None, quoted)

    def pattern(self, nodes: list[Node], st: State) -> str | None:
        """A shell pattern: unquoted parts keep their wildcards, quoted parts are literal."""
        out: list[_Field] = []
        for n in nodes:
            out = _concat(out, self.fields(n, st))
        parts: list[str] = []
        for f in out:
            for seg, unquoted in f.segs:
                if seg is None:
                    return None
                parts.append(seg if unquoted else _glob_escape(seg))
        return "".join(parts)

    @staticmethod
    def _trim(value: Arg, pattern: str, op: str) -> Arg:
        if value is None or len(value) > _MAX_PATTERN_SUBJECT:
            return None
        n = len(value)
        if op in ("#", "##"):
            indices = range(n + 1) if op == "#" else range(n, -1, -1)
            for i in indices:
                if match_pattern(value[:i], pattern):
                    return value[i:]
            return value
        indices = range(n, -1, -1) if op == "%" else range(n + 1)
        for i in indices:
            if match_pattern(value[i:], pattern):
                return value[:i]
        return value

    @staticmethod
    def _replace(value: str, pattern: str, replacement: str, op: str) -> str | None:
        if len(value) > _MAX_PATTERN_SUBJECT:
            return None
        if op == "/#":
            for i in range(len(value), -1, -1):
                if match_pattern(value[:i], pattern):
                    return replacement + value[i:]
            return value
        if op == "/%":
            for i in range(len(value) + 1):
                if match_pattern(value[i:], pattern):
                    return value[:i] + replacement
            return value
        out: list[str] = []
        i = 0
        replaced = False
        while i <= len(value):
            if replaced and op == "/":
                out.append(value[i:])
                break
            match_end = next(
                (j for j in range(len(value), i, -1) if match_pattern(value[i:j], pattern)),
                None,
            )
            if match_end is not None:
                out.append(replacement)
                i = match_end
                replaced = True
                continue
            if i < len(value):
                out.append(value[i])
            i += 1
        return "".join(out)

    def arith_text(self, text: str | None, st: State) -> int | None:
        if text is None:
            return None
        text = text.strip()
        try:
            return int(text)
        except ValueError:
            pass
        if len(text) > 200 or "$(" in text or "`" in text:
            return None
        parsed = parse_shell(f"echo $(({text}))".encode("utf-8", errors="surrogateescape"))
        for command in parsed.root.named_children[:1]:
            for child in command.children:
                if child.type == "arithmetic_expansion":
                    named = child.named_children
                    return self.arith(named[0], st) if named else None
        return None

    def arith(self, node: Node, st: State) -> int | None:
        kind = node.type
        if kind == "number":
            try:
                return int(self.text(node), 0)
            except ValueError:
                return None
        if kind in ("variable_name", "word"):
            value, _ = self.lookup(st, self.text(node))
            text = self.scalar(value)
            if text is None:
                return None
            try:
                return int(text or "0")
            except ValueError:
                return None
        if kind in ("simple_expansion", "expansion", "string", "command_substitution"):
            fields = self.fields(node, st, quoted=True)
            text = fields[0].text() if fields else ""
            try:
                return None if text is None else int(text or "0")
            except ValueError:
                return None
        if kind == "parenthesized_expression":
            named = node.named_children
            return self.arith(named[0], st) if named else None
        if kind == "unary_expression":
            op = node.children[0].type
            named = node.named_children
            operand = self.arith(named[0], st) if named else None
            if operand is None:
                return None
            return {"-": -operand, "+": operand, "!": int(not operand), "~": ~operand}.get(op)
        if kind == "binary_expression":
            left = node.child_by_field_name("left")
            right = node.child_by_field_name("right")
            operator = node.child_by_field_name("operator")
            if left is None or right is None or operator is None:
                return None
            a, b = self.arith(left, st), self.arith(right, st)
            if a is None or b is None:
                return None
            op = operator.type
            try:
                return {
                    "+": lambda: a + b,
                    "-": lambda: a - b,
                    "*": lambda: a * b,
                    "/": lambda: int(a / b),
                    "%": lambda: a % b,
                    "<": lambda: int(a < b),
                    ">": lambda: int(a > b),
                    "<=": lambda: int(a <= b),
                    ">=": lambda: int(a >= b),
                    "==": lambda: int(a == b),
                    "!=": lambda: int(a != b),
                    "&&": lambda: int(bool(a and b)),
                    "||": lambda: int(bool(a or b)),
                }[op]()
            except (KeyError, ZeroDivisionError):
                return None
        return None

    def substitute(self, node: Node, st: State) -> str | None:
        """``$(…)`` of a few pure commands; anything else is unknown."""
        statements = [c for c in node.children if c.is_named and c.type != "comment"]
        if len(statements) != 1 or statements[0].type != "command":
            return None
        argv = self.argv(statements[0], st)
        if not argv or argv[0] is None:
            return None
        name, args = argv[0], argv[1:]
        if any(a is None for a in args):
            return None
        words = [a for a in args if a is not None]
        user = st.user if st.user is not None else self.ctx.user
        if name == "id":
            if words in (["-u"], ["-ru"], ["-ur"]):
                uid = getattr(user, "uid", None)
                return None if uid is None else str(uid)
            if words in (["-un"], ["-nu"]):
                return getattr(user, "name", None)
            if words == ["-g"] and getattr(user, "uid", None) == 0:
                return "0"
            return None
        if name == "whoami":
            return getattr(user, "name", None)
        if name == "echo":
            if words and words[0].startswith("-"):
                return None
            return " ".join(words)
        if name == "printf" and words and "%" not in words[0] and "\\" not in words[0]:
            return words[0]
        if name == "basename" and words:
            base = posixpath.basename(words[0].rstrip("/")) or "/"
            if len(words) > 1 and base.endswith(words[1]) and base != words[1]:
                base = base[: -len(words[1])]
            return base
        if name == "dirname" and len(words) == 1:
            return posixpath.dirname(words[0].rstrip("/")) or ("/" if words[0].startswith("/") else ".")
        if name == "pwd":
            return st.cwd
        if (name == "command" and words[:1] == ["-v"] and len(words) == 2) or (
            name == "which" and len(words) == 1
        ):
            target = words[-1]
            if target in st.functions or target in _BUILTINS:
                return target
            return self.locate(st, target) or ""
        return None

    def argv(self, node: Node, st: State) -> list[Arg]:
        """Expanded argv of a command node (name and arguments; assignments and redirects excluded)."""
        fields: list[_Field] = []
        for child in node.children:
            if child.type in (
                "variable_assignment",
                "file_redirect",
                "heredoc_redirect",
                "herestring_redirect",
            ):
                continue
            if child.type == "command_name":
                inner = child.named_children
                if inner:
                    fields.extend(self.fields(inner[0], st))
                continue
            if child.is_named and child.type != "comment":
                fields.extend(self.fields(child, st))
        return self.finish(fields, st)

    def too_big(self, what: str) -> None:
        self.tracer.diagnose(
            "argument-limit", f"{what}: more than the expansion limits; value taken as unknown", partial=True
        )

    def finish(self, fields: list[_Field], st: State) -> list[Arg]:
        out: list[Arg] = []
        self.tracer.tick(1 + len(fields) // 16)
        if len(fields) > _MAX_FIELDS:
            self.too_big(f"{len(fields)} words")
            return [None]
        for f in fields:
            text = f.text()
            if text is not None and len(text) > _MAX_VALUE:
                self.too_big(f"a word of {len(text)} characters")
                text = None
            if text is None:
                out.append(None)
                continue
            if not text and not f.keep:
                continue
            if any(unquoted and s is not None and _GLOB_CHARS.search(s) for s, unquoted in f.segs):
                pattern = "".join((s or "") if unquoted else _glob_escape(s or "") for s, unquoted in f.segs)
                matches = self.glob(pattern, st)
                if matches:
                    out.extend(matches)
                    continue
            out.append(text)
        return out

    def glob(self, pattern: str, st: State) -> list[str]:
        absolute = pattern.startswith("/")
        base = "/" if absolute else st.cwd
        parts = [p for p in pattern.split("/") if p]
        current = [""]
        for i, part in enumerate(parts):
            nxt: list[str] = []
            for prefix in current:
                directory = posixpath.join(base, prefix) if prefix else base
                if not _GLOB_CHARS.search(part):
                    candidate = f"{prefix}/{part}" if prefix else part
                    if i == len(parts) - 1 or self.root.is_dir(posixpath.join(base, candidate)):
                        nxt.append(candidate)
                    continue
                try:
                    names = self.root.listdir(directory)
                except RootFSError:
                    continue
                self.tracer.tick(1 + len(names) // 64)
                for name in names:
                    if name.startswith(".") and not part.startswith("."):
                        continue
                    if match_pattern(name, part):
                        nxt.append(f"{prefix}/{name}" if prefix else name)
            current = nxt[: self.limits.max_glob]
            if not current:
                return []
        results = ["/" + c if absolute else c for c in current]
        return [r for r in results if self.root.exists(r if absolute else posixpath.join(base, r))]

    # ------------------------------------------------------------------------------------------ running

    def run_script(self, root: Node, st: State, exec_last: bool = False) -> list[Outcome]:
        if exec_last:
            statements = [
                c for c in root.children if c.is_named and c.type not in ("comment", "heredoc_body")
            ]
            last = statements[-1] if statements else None
            # dash (>= 0.5.11), bash (>= 5.1) and busybox ash exec the last simple command of `-c`, also
            # at the end of an and-or list (`mkdir -p /run/x && exec-me`)
            while last is not None and last.type in ("list", "redirected_statement"):
                if last.type == "redirected_statement":
                    last = last.child_by_field_name("body")
                else:
                    named = [c for c in last.children if c.is_named and c.type != "comment"]
                    last = named[-1] if named else None
            if last is not None and last.type == "command":
                self.tail = last
        states = self.block(root.children, [st])
        for end in states:
            self.finish_state(end, root)
        return self.outcomes

    def block(self, children: list[Node], states: list[State]) -> list[State]:
        count = len(children)
        for i, child in enumerate(children):
            if not child.is_named or child.type in ("comment", "heredoc_body"):
                continue
            background = i + 1 < count and children[i + 1].type == "&"
            states = self.statement(child, states, background)
            if not states:
                break
        return states

    def statement(self, node: Node, states: list[State], background: bool = False) -> list[State]:
        out: list[State] = []
        for st in states:
            if st.flow is not None:
                out.append(st)
                continue
            if not self.tracer.tick():
                st.flow = "stuck"
                out.append(st)
                continue
            if self.nesting >= _MAX_NESTING:
                self.diagnose("nesting-limit", f"statements nested more than {_MAX_NESTING} deep", node, True)
                st.flow = "stuck"
                out.append(st)
                continue
            self.nesting += 1
            try:
                if background:
                    out.extend(self.background(node, st))
                else:
                    out.extend(self.dispatch(node, st))
            finally:
                self.nesting -= 1
        return self.merge(out, node)

    def merge(self, states: list[State], node: Node) -> list[State]:
        if len(states) <= 1:
            return states
        unique: dict[tuple[object, ...], State] = {}
        for st in states:
            kept = unique.setdefault(st.key(), st)
            if kept is not st and kept.created != st.created:
                # `[ -d x ] || mkdir x`: both ways x exists afterwards (paths made on one way are kept too)
                kept.created = kept.created | st.created
            if kept is not st and kept.decisions != st.decisions:
                # both ways lead to the same state: the conditions where they part did not matter
                kept.decisions = _common_prefix(kept.decisions, st.decisions)
        merged = list(unique.values())
        if len(merged) > self.limits.join_states:
            merged = self.join(merged)
        if len(merged) > self.limits.max_states:
            self.diagnose(
                "state-limit",
                f"more than {self.limits.max_states} undecided paths; some not followed",
                node,
                True,
            )
            merged = merged[: self.limits.max_states]
        return merged

    @staticmethod
    def join(states: list[State]) -> list[State]:
        """Join states of the same shape into one whose variables that differ between them are unknown (the
        abstract-interpretation join): undecided branches widen the state instead of multiplying it."""
        groups: dict[tuple[object, ...], list[State]] = {}
        for st in states:
            groups.setdefault(st.shape(), []).append(st)
        out: list[State] = []
        for group in groups.values():
            # the last foreground command is what runs if the script ends there: states whose commands differ
            # stay apart; one that ran a builtin since (none pending) joins one with a command pending
            bases: list[State] = []
            for st in group:
                base = next(
                    (b for b in bases if not b.last_fg or not st.last_fg or b.last_fg == st.last_fg), None
                )
                if base is None:
                    bases.append(st)
                    continue
                Interpreter.join_into(base, st)
            out.extend(bases)
        return out

    @staticmethod
    def join_into(base: State, other: State) -> None:
        """Fold ``other`` into ``base``: what differs between them becomes unknown."""
        for name in set(base.vars) | set(other.vars):
            if base.vars.get(name, _UNSET) != other.vars.get(name, _UNSET):
                base.vars[name] = None
        for name in base.exported ^ other.exported:  # exported on one way only: value unknown
            base.vars[name] = None
        base.exported = base.exported | other.exported
        if base.status != other.status:
            base.status = None
        base.created = base.created | other.created
        base.decisions = _common_prefix(base.decisions, other.decisions)
        base.last_fg = base.last_fg or other.last_fg
        base.waiting = base.waiting or other.waiting

    def dispatch(self, node: Node, st: State) -> list[State]:
        kind = node.type
        handler = _DISPATCH.get(kind)
        if handler is not None:
            return handler(self, node, st)
        if kind == "ERROR":
            return [st]
        st.status = None
        return [st]

    def nodes(self, node: Node, names: tuple[str, ...]) -> list[Node]:
        return [c for c in node.children if c.is_named and c.type not in names]

    # -------------------------------------------------------------------------------------- statements

    def s_command(self, node: Node, st: State) -> list[State]:
        if self.output_only(node, st):
            # echo/printf whose words cannot assign anything: their output never changes what runs, so the
            # words are not expanded (log lines are a large share of real entrypoints)
            st.status, st.waiting = 0, False
            return [st]
        assignments = [c for c in node.children if c.type == "variable_assignment"]
        argv = self.argv(node, st)
        if not argv:
            for assignment in assignments:
                self.assign(assignment, st)
            st.status = self.assignment_status(assignments)
            return [st]
        extra: dict[str, Arg] = {}
        for assignment in assignments:
            name_node = assignment.child_by_field_name("name")
            value = self.assignment_value(assignment, st)
            if name_node is not None:
                extra[self.text(name_node)] = self.scalar(value)
        return self.run_command(argv, extra, node, st)

    def output_only(self, node: Node, st: State) -> bool:
        name = node.child_by_field_name("name")
        if (
            name is None
            or name.text not in (b"echo", b"printf")
            or "echo" in st.functions
            or "printf" in st.functions
        ):
            return False
        text = node.text or b""
        if b"-v" in text.split(b" ", 2)[1:2]:  # printf -v VAR assigns
            return False
        return _ASSIGNING_EXPANSION.search(text) is None

    def assignment_value(self, node: Node, st: State) -> Value:
        value_node = node.child_by_field_name("value")
        if value_node is None:
            return ""
        if value_node.type == "array":
            items = self.finish(self.fields(value_node, st), st)
            return tuple(items)
        fields = self.fields(value_node, st, quoted=True)
        texts = [f.text() for f in fields]
        return None if any(t is None for t in texts) else "".join(t for t in texts if t is not None)

    def assign(self, node: Node, st: State, local: bool = False) -> None:
        name_node = node.child_by_field_name("name")
        if name_node is None:
            return
        name = self.text(name_node)
        if name_node.type == "subscript":
            inner = name_node.child_by_field_name("name")
            name = self.text(inner) if inner is not None else name
            st.vars[name] = None  # element assignment: the array becomes unknown
            return
        value = self.assignment_value(node, st)
        append = any(c.type == "+=" for c in node.children)
        if append:
            old, _ = self.lookup(st, name)
            if isinstance(old, tuple) and isinstance(value, tuple):
                value = old + value
            elif isinstance(old, str) and isinstance(value, str):
                value = f"{old}{value}"
            else:
                value = None
        if isinstance(value, str) and len(value) > _MAX_VALUE:
            self.too_big(f"${name} of {len(value)} characters")
            value = None
        elif isinstance(value, tuple) and len(value) > _MAX_FIELDS:
            self.too_big(f"array {name} of {len(value)} elements")
            value = None
        if local and st.locals:
            st.locals[-1].setdefault(name, st.vars.get(name, _UNSET))
        st.vars[name] = value

    @staticmethod
    def assignment_status(nodes: list[Node]) -> int | None:
        """An assignment's status is that of its last command substitution (unknown), else 0."""
        for node in nodes:
            text = node.text or b""
            if b"$(" in text.replace(b"$((", b"") or b"`" in text:
                return None
        return 0

    def s_assignment(self, node: Node, st: State) -> list[State]:
        self.assign(node, st)
        st.status = self.assignment_status([node])
        return [st]

    def s_assignments(self, node: Node, st: State) -> list[State]:
        children = [c for c in node.children if c.type == "variable_assignment"]
        for child in children:
            self.assign(child, st)
        st.status = self.assignment_status(children)
        return [st]

    def s_declaration(self, node: Node, st: State) -> list[State]:
        keyword = node.children[0].type if node.children else ""
        flags = [self.text(c) for c in node.children if c.type == "word" and self.text(c).startswith("-")]
        local = keyword == "local" or (
            keyword in ("declare", "typeset") and bool(st.locals) and not any("g" in f for f in flags)
        )
        export = (keyword == "export" and not any("n" in f for f in flags)) or any("x" in f for f in flags)
        for child in node.children[1:]:
            if child.type == "variable_assignment":
                self.assign(child, st, local=local)
                name_node = child.child_by_field_name("name")
                name = self.text(name_node) if name_node is not None else ""
            elif child.type in ("variable_name", "word") and not self.text(child).startswith("-"):
                name = self.text(child)
                if local and st.locals:
                    st.locals[-1].setdefault(name, st.vars.get(name, _UNSET))
                    st.vars[name] = ""
                elif keyword in ("declare", "typeset", "readonly"):
                    st.vars.setdefault(name, "")
            else:
                continue
            if export:
                st.exported.add(name)
        st.status = 0
        return [st]

    def s_unset(self, node: Node, st: State) -> list[State]:
        function = any(c.type == "word" and self.text(c) == "-f" for c in node.children)
        for child in node.children:
            if child.type in ("variable_name", "word") and not self.text(child).startswith("-"):
                name = self.text(child)
                if function:
                    st.undefine(name)
                else:
                    st.vars.pop(name, None)
                    st.exported.discard(name)
                    if not self.ctx.env_complete:
                        st.vars[name] = ""  # explicitly unset: known empty
                        st.exported.discard(name)
        st.status = 0
        return [st]

    def s_redirected(self, node: Node, st: State) -> list[State]:
        body = node.child_by_field_name("body")
        if body is None:
            st.status = 0
            return [st]
        return self.dispatch(body, st)

    def s_compound(self, node: Node, st: State) -> list[State]:
        return self.block(node.children, [st])

    def s_function(self, node: Node, st: State) -> list[State]:
        name_node = node.child_by_field_name("name")
        body = node.child_by_field_name("body")
        if name_node is not None and body is not None:
            st.define(self.text(name_node), body, self.file)
        st.status = 0
        return [st]

    def s_negated(self, node: Node, st: State) -> list[State]:
        inner = node.named_children
        if not inner:
            return [st]
        self.status_needed += 1
        try:
            out = self.dispatch(inner[-1], st)
        finally:
            self.status_needed -= 1
        for s in out:
            if s.flow is None:
                s.status = None if s.status is None else int(s.status == 0)
        return out

    def s_test(self, node: Node, st: State) -> list[State]:
        extended = any(c.type == "[[" for c in node.children)
        tokens: list[Token] = []
        for child in node.children:
            if child.type in ("[", "]", "[[", "]]"):
                continue
            self.test_tokens(child, st, tokens, extended)
        value = evaluate_test(tokens, self.root, st.cwd, extended=extended, created=st.created)
        st.status = None if value is None else (0 if value else 1)
        return [st]

    def test_tokens(self, node: Node, st: State, out: list[Token], extended: bool) -> None:
        kind = node.type
        if kind in ("binary_expression", "unary_expression", "parenthesized_expression", "test_command"):
            for child in node.children:
                self.test_tokens(child, st, out, extended)
            return
        if not node.is_named or kind == "test_operator":
            out.append(Token(self.text(node)))
            return
        if extended:  # [[ ]]: no splitting or globbing; the right of == / != is a pattern
            previous = out[-1].value if out else None
            if previous in ("==", "=", "!="):
                out.append(Token(self.pattern([node], st), pattern=True))
            elif kind == "regex":
                out.append(Token(self.text(node)))
            else:
                out.append(Token(self.joined(node, st)))
            return
        out.extend(Token(v) for v in self.finish(self.fields(node, st), st))

    def joined(self, node: Node, st: State) -> str | None:
        texts = [f.text() for f in self.fields(node, st, quoted=True)]
        return None if any(t is None for t in texts) else "".join(t for t in texts if t is not None)

    def s_list(self, node: Node, st: State) -> list[State]:
        children = node.children
        named = [c for c in children if c.is_named]
        op = next((c.type for c in children if c.type in ("&&", "||")), "&&")
        if len(named) < 2:
            return self.dispatch(named[0], st) if named else [st]
        left, right = named[0], named[-1]
        self.status_needed += 1
        try:
            states = self.dispatch(left, st)
        finally:
            self.status_needed -= 1
        out: list[State] = []
        for s in states:
            if s.flow is not None:
                out.append(s)
                continue
            if s.status is None:
                other = s.copy()
                self.decide(s, left, "true" if op == "&&" else "false")
                self.decide(other, left, "false" if op == "&&" else "true")
                out.extend(self.statement(right, [s]))
                other.status = 1 if op == "&&" else 0
                out.append(other)
            elif (s.status == 0) == (op == "&&"):
                out.extend(self.statement(right, [s]))
            else:
                out.append(s)
        return out

    def split(
        self, states: list[State], condition: Node | None = None
    ) -> tuple[list[State], list[State], list[State], bool]:
        """(true, false, passing-through-with-flow, undecided?) by last status."""
        true: list[State] = []
        false: list[State] = []
        done: list[State] = []
        undecided = False
        for s in states:
            if s.flow is not None:
                done.append(s)
            elif s.status is None:
                undecided = True
                other = s.copy()
                self.decide(s, condition, "true")
                self.decide(other, condition, "false")
                true.append(s)
                false.append(other)
            elif s.status == 0:
                true.append(s)
            else:
                false.append(s)
        return true, false, done, undecided

    def s_if(self, node: Node, st: State) -> list[State]:
        clauses: list[tuple[list[Node] | None, list[Node]]] = []
        condition: list[Node] = []
        body: list[Node] = []
        phase = "condition"
        for child in node.children:
            ctype = child.type
            if ctype == "then":
                phase = "body"
                continue
            if ctype in ("elif_clause", "else_clause"):
                continue
            if ctype in ("if", "fi"):
                continue
            if phase == "condition":
                condition.append(child)
            else:
                body.append(child)
        clauses.append((condition, body))
        for child in node.children:
            if child.type == "elif_clause":
                cond: list[Node] = []
                bod: list[Node] = []
                phase = "condition"
                for c in child.children:
                    if c.type == "then":
                        phase = "body"
                    elif c.type != "elif":
                        (cond if phase == "condition" else bod).append(c)
                clauses.append((cond, bod))
            elif child.type == "else_clause":
                clauses.append((None, [c for c in child.children if c.type != "else"]))
        pending = [st]
        out: list[State] = []
        for cond_nodes, body_nodes in clauses:
            if not pending:
                break
            if cond_nodes is None:
                out.extend(self.block(body_nodes, pending))
                pending = []
                break
            self.status_needed += 1
            try:
                evaluated = self.block(cond_nodes, pending)
            finally:
                self.status_needed -= 1
            true, false, done, _ = self.split(evaluated, next((c for c in cond_nodes if c.is_named), None))
            out.extend(done)
            if true:
                out.extend(self.block(body_nodes, true))
            pending = false
        for s in pending:
            s.status = 0
        out.extend(pending)
        return self.merge(out, node)

    def s_case(self, node: Node, st: State) -> list[State]:
        value_node = node.child_by_field_name("value")
        fields = self.fields(value_node, st, quoted=True) if value_node is not None else []
        value = fields[0].text() if fields else ""
        items = [c for c in node.children if c.type == "case_item"]
        parsed: list[tuple[list[str | None], list[Node], str]] = []
        for item in items:
            patterns: list[str | None] = []
            body: list[Node] = []
            termination = ";;"
            seen_paren = False
            pieces: list[Node] = []  # one alternative may be several adjacent nodes: *" -S "*
            for i, child in enumerate(item.children):
                field = item.field_name_for_child(i)
                if not seen_paren and child.type == "|":
                    patterns.append(self.pattern(pieces, st))
                    pieces = []
                elif field == "value" and not seen_paren:
                    pieces.append(child)
                elif child.type == ")":
                    seen_paren = True
                    patterns.append(self.pattern(pieces, st))
                    pieces = []
                elif field == "termination" or child.type in (";;", ";&", ";;&"):
                    termination = child.type
                elif seen_paren and child.is_named:
                    body.append(child)
            parsed.append((patterns, body, termination))
        out: list[State] = []
        if value is None:
            catch_all = False
            for patterns, body, _ in parsed:
                taken = st.copy()
                self.decide(taken, value_node, "case " + "|".join(p or "?" for p in patterns))
                out.extend(self.block(body, [taken]))
                if "*" in patterns:
                    catch_all = True
                    break
            if not catch_all:
                st.status = 0
                out.append(st)
            return self.merge(out, node)
        undecided_from: int | None = None
        for index, (patterns, _, _) in enumerate(parsed):
            if any(p is None for p in patterns):
                undecided_from = index
                break
            if any(match_pattern(value, p) for p in patterns if p is not None):
                return self.run_case_from(parsed, index, st)
        if undecided_from is None:
            st.status = 0
            return [st]
        for index in range(undecided_from, len(parsed)):
            out.extend(self.run_case_from(parsed, index, st.copy()))
        st.status = 0
        out.append(st)
        return self.merge(out, node)

    def run_case_from(
        self, parsed: list[tuple[list[str | None], list[Node], str]], index: int, st: State
    ) -> list[State]:
        states = [st]
        while index < len(parsed):
            _, body, termination = parsed[index]
            states = self.block(body, states)
            if termination != ";&":
                break
            index += 1
        return states

    def s_for(self, node: Node, st: State) -> list[State]:
        variable = node.child_by_field_name("variable")
        body = node.child_by_field_name("body")
        values: list[Node] = []
        for i in range(node.child_count):
            if node.field_name_for_child(i) == "value":
                values.append(node.children[i])
        if variable is None or body is None:
            st.status = None
            return [st]
        name = self.text(variable)
        has_in = any(c.type == "in" for c in node.children)
        if has_in:
            fields: list[_Field] = []
            for v in values:
                fields.extend(self.fields(v, st))
            items: list[Arg] | None = self.finish(fields, st)
        else:
            items = st.positional
        if items is None:
            items = [None]
        return self.loop_over(name, items, body, node, st)

    def loop_over(self, name: str, items: list[Arg], body: Node, node: Node, st: State) -> list[State]:
        """A ``for`` loop: a known list is walked item by item; an unknown or long one is summarised."""
        if any(i is None for i in items) or len(items) > self.limits.max_loop_items:
            if len(items) > self.limits.max_loop_items:
                self.diagnose("loop-summarised", f"loop over {len(items)} items summarised", node)

            def one_pass(states: list[State]) -> tuple[list[State], list[State]]:
                for s in states:
                    s.vars[name] = None
                return self.loop_flow(self.block(body.children, states))

            exits = self.summarise(node, st, one_pass)
            for s in exits:
                if s.flow is None:
                    s.status = 0 if s.status is not None else None
            return self.merge(exits, node)
        states = [st]
        finished: list[State] = []
        for item in items:
            for s in states:
                s.vars[name] = item
            states = self.block(body.children, states)
            states, done = self.loop_flow(states)
            finished.extend(done)
            if not states:
                break
        for s in states:
            if s.flow is None:
                s.status = 0 if s.status is not None else None
        return self.merge(finished + states, node)

    def summarise(
        self, node: Node, st: State, one_pass: Callable[[list[State]], tuple[list[State], list[State]]]
    ) -> list[State]:
        """Zero or more passes of a loop whose number of passes is not known. Passes are run until no state
        reaches the loop head that has not been there before (a fixpoint); after ``loop_unroll`` passes the
        variables that still change are widened to unknown, so the next pass summarises all later ones.
        Returns the states that leave the loop."""
        seen: set[tuple[object, ...]] = set()
        entry = dict(st.vars), st.positional
        exits: list[State] = []
        states = [st]
        passes = 0
        while states:
            fresh = []
            for s in states:
                key = s.key()
                if key not in seen:
                    seen.add(key)
                    fresh.append(s)
            if not fresh:
                break
            exits.extend(s.copy() for s in fresh)  # the loop may end before this pass
            if passes == self.limits.loop_unroll:
                self.widen(fresh, entry)
                self.diagnose(
                    "loop-summarised", f"loop still changing after {passes} passes: summarised", node
                )
            if passes >= self.limits.max_loop_iterations or self.tracer.exhausted:
                self.give_up(node, fresh, passes)
                exits.extend(fresh)
                break
            states, left = one_pass(fresh)
            exits.extend(left)
            passes += 1
        return exits

    def widen(self, states: list[State], entry: tuple[dict[str, Value], list[Arg] | None]) -> None:
        """Forget what a loop keeps changing: variables (and positional parameters) that differ from the
        loop's entry become unknown, so further passes reach a fixpoint instead of counting to the end."""
        variables, positional = entry
        for s in states:
            for name, value in list(s.vars.items()):
                if variables.get(name, _UNSET) != value:
                    s.vars[name] = None
            if s.positional != positional:
                s.positional = None

    def give_up(self, node: Node, states: list[State], passes: int) -> None:
        if not self.tracer.exhausted:
            self.diagnose("loop-limit", f"loop still changing after {passes} passes; stopped", node, True)
        for s in states:
            s.flow = "stuck"

    def loop_flow(self, states: list[State]) -> tuple[list[State], list[State]]:
        """After a loop body: (states that go on looping, states that left the loop)."""
        keep: list[State] = []
        left: list[State] = []
        for s in states:
            if s.flow == "break":
                s.flow_n -= 1
                if s.flow_n <= 0:
                    s.flow, s.flow_n = None, 0
                left.append(s)
            elif s.flow == "continue":
                s.flow_n -= 1
                if s.flow_n <= 0:
                    s.flow, s.flow_n = None, 0
                    keep.append(s)
                else:
                    left.append(s)
            elif s.flow is not None:
                left.append(s)
            else:
                keep.append(s)
        return keep, left

    def s_while(self, node: Node, st: State) -> list[State]:
        """``while``/``until``: passes run until the condition is false, or until no new state reaches the
        loop head (a fixpoint; what keeps changing is widened after ``loop_unroll`` passes). A state that
        comes back unchanged to a condition that is certainly true loops forever: the shell keeps running."""
        until = bool(node.children) and node.children[0].type == "until"
        body = node.child_by_field_name("body")
        condition = [
            node.children[i] for i in range(node.child_count) if node.field_name_for_child(i) == "condition"
        ]
        if body is None:
            st.status = None
            return [st]
        cond_node = next((c for c in condition if c.is_named), None)
        seen: set[tuple[object, ...]] = set()
        certain: set[tuple[object, ...]] = set()  # head states whose condition was certainly true
        entry = dict(st.vars), st.positional
        states = [st]
        finished: list[State] = []
        passes = 0
        while states:
            fresh = []
            for s in states:
                key = s.key()
                if key in certain:  # back where it was, and the condition will hold again: forever
                    s.flow, s.last_fg = "forever", ()
                    finished.append(s)
                elif key not in seen:
                    seen.add(key)
                    fresh.append(s)
            if not fresh:
                break
            if passes == self.limits.loop_unroll:
                self.widen(fresh, entry)
                self.diagnose(
                    "loop-summarised", f"loop still changing after {passes} passes: summarised", node
                )
                seen.update(s.key() for s in fresh)
            if passes >= self.limits.max_loop_iterations or self.tracer.exhausted:
                self.give_up(node, fresh, passes)
                finished.extend(fresh)
                break
            keys = {id(s): s.key() for s in fresh}
            self.status_needed += 1
            try:
                evaluated = self.block(condition, fresh)
            finally:
                self.status_needed -= 1
            true, false, done, _ = self.split(evaluated, cond_node)
            if until:
                true, false = false, true
            for s in true:
                if s.status is not None and id(s) in keys:  # decided, not forked by split
                    certain.add(keys[id(s)])
            finished.extend(done)
            for s in false:
                s.status = 0
            finished.extend(false)
            if not true:
                break
            states, left = self.loop_flow(self.block(body.children, true))
            finished.extend(left)
            passes += 1
        return self.merge(finished, node)

    def s_c_for(self, node: Node, st: State) -> list[State]:
        """``for ((…;…;…))``: summarised as a loop with an unknown number of passes."""
        body = node.child_by_field_name("body")
        if body is None:
            return [st]
        exits = self.summarise(node, st, lambda states: self.loop_flow(self.block(body.children, states)))
        return self.merge(exits, node)

    def s_subshell(self, node: Node, st: State) -> list[State]:
        inner = st.copy()
        inner.subshell += 1
        inner.last_fg = ()
        results = self.block(node.children, [inner])
        out: list[State] = []
        for r in results:
            outer = st.copy()
            outer.last_fg = r.last_fg or st.last_fg
            outer.background = r.background
            outer.status = r.status if r.flow in (None, "exit") else None
            if r.flow in ("stuck", "forever"):
                outer.flow = r.flow
            out.append(outer)
        return out

    def listing_loop(self, commands: list[Node], st: State) -> list[State] | None:
        """``find DIR … | sort | while read -r VAR; do …; done`` (or ``ls DIR |``): the loop runs over the
        files of DIR present in the root, in sorted order. None when the pipeline is not of that shape."""
        loop = commands[-1]
        if (
            loop.type != "while_statement"
            or loop.children[0].type != "while"
            or commands[0].type != "command"
        ):
            return None
        condition = [
            loop.children[i] for i in range(loop.child_count) if loop.field_name_for_child(i) == "condition"
        ]
        body = loop.child_by_field_name("body")
        named = [c for c in condition if c.is_named]
        if len(named) != 1 or named[0].type != "command" or body is None:
            return None
        read_argv = self.argv(named[0], st)
        source_argv = self.argv(commands[0], st)
        if not read_argv or read_argv[0] != "read" or not source_argv or source_argv[0] not in ("find", "ls"):
            return None
        variables = [a for a in read_argv[1:] if a is not None and _NAME.match(a)]
        operands = [a for a in source_argv[1:] if a is not None and not a.startswith("-")]
        if len(variables) != 1 or not operands or any(a is None for a in source_argv):
            return None
        directory = posixpath.normpath(posixpath.join(st.cwd, operands[0]))
        if source_argv[0] == "ls":
            try:
                items: list[Arg] = list(self.root.listdir(directory))
            except RootFSError:
                items = []
        else:
            max_depth = 8
            if "-maxdepth" in source_argv:
                position = source_argv.index("-maxdepth")
                depth_arg = source_argv[position + 1] if position + 1 < len(source_argv) else None
                max_depth = int(depth_arg) if depth_arg is not None and depth_arg.isdigit() else max_depth
            base = operands[0].rstrip("/") or "/"
            items = [
                f"{base}/{rel}" if base != "/" else f"/{rel}" for rel in self.walk_files(directory, max_depth)
            ]
        return self.loop_over(variables[0], items, body, loop, st)

    def walk_files(self, directory: str, max_depth: int) -> list[str]:
        out: list[str] = []
        pending = [("", 1)]
        while pending and len(out) < self.limits.max_glob:
            relative, depth = pending.pop()
            path = posixpath.join(directory, relative) if relative else directory
            try:
                names = self.root.listdir(path)
            except RootFSError:
                continue
            self.tracer.tick(1 + len(names) // 64)
            for name in names:
                child = f"{relative}/{name}" if relative else name
                full = posixpath.join(directory, child)
                if self.root.is_dir(full):
                    if depth < max_depth:
                        pending.append((child, depth + 1))
                elif self.root.is_file(full):
                    out.append(child)
        return sorted(out)

    def s_pipeline(self, node: Node, st: State) -> list[State]:
        commands = [c for c in node.children if c.is_named]
        if len(commands) >= 2:
            inner = st.copy()
            inner.subshell += 1
            inner.last_fg = ()
            looped = self.listing_loop(commands, inner)
            if looped is not None:
                st.last_fg = tuple(dict.fromkeys(p for r in looped for p in r.last_fg)) or st.last_fg
                st.status = 0
                return [st]
        pendings: list[Pending] = []
        background = st.background
        status: int | None = None
        for command in commands:
            inner = st.copy()
            inner.subshell += 1
            inner.last_fg = ()
            for r in self.dispatch(command, inner):
                pendings.extend(r.last_fg)
                background = background | r.background
                status = r.status
        st.last_fg = tuple(dict.fromkeys(pendings)) or st.last_fg
        st.background = background
        st.status = status if len(commands) == 1 else None
        return [st]

    # ------------------------------------------------------------------------------------- background

    def background(self, node: Node, st: State) -> list[State]:
        inner = st.copy()
        inner.subshell += 1
        inner.last_fg = ()
        inner.background = frozenset()
        results = self.dispatch(node, inner)
        parts: list[list[Outcome]] = []
        for r in results:
            for pending in r.last_fg:
                parts.append(self.follow_pending(pending, "background"))
            if r.background:
                parts.append([r.background])
        merged: frozenset[Terminal] = frozenset()
        for options in parts:
            for outcome in options:
                merged = merged | outcome
        st.background = st.background | merged
        st.status = 0
        return [st]

    # ------------------------------------------------------------------------------------------- commands

    def run_command(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        name = argv[0]
        if name is None:
            self.diagnose("unknown-command", "command name not known statically", node)
            st.last_fg = (self.pending(argv, extra, node, st),)
            st.status = None
            return [st]
        if name in st.functions:
            if not self.status_needed and self.pure(name, st):
                # nothing it does changes what runs later: interpreted only if the script ends right here
                st.last_fg = (
                    dataclasses.replace(
                        self.pending(argv, extra, node, st), call=name, deferred=(st.copy(), node)
                    ),
                )
                st.status, st.waiting = None, False
                return [st]
            return self.call(name, argv, node, st)
        builtin = _BUILTIN_HANDLERS.get(name)
        if builtin is not None:
            results = builtin(self, argv, extra, node, st)
            if name in _BLOCKING_BUILTINS:
                for r in results:
                    if r.flow is None and (name != "wait" or r.background):
                        # the shell now blocks (on its background jobs, on stdin): the foreground command
                        # before has finished, and the shell itself is what keeps running
                        r.last_fg, r.waiting = (), True
            elif name not in _CONTROL_BUILTINS:
                for r in results:
                    r.waiting = False
            return results
        return self.external(argv, extra, node, st)

    def pending(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> Pending:
        env = self.env_of(st, extra)
        return Pending(
            tuple(argv), tuple(sorted(env.items())), st.cwd, st.user, self.file, self.line(node), st.decisions
        )

    def external(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        name = argv[0] or ""
        if name in ("true",):
            st.status = 0
            return [st]
        if name == "false":
            st.status = 1
            return [st]
        if name == "which":
            return self.b_lookup(argv, extra, node, st)
        base = posixpath.basename(name)
        if base in ("mkdir", "touch"):
            self.note_created(base, argv[1:], st)
        if name == "run-parts":
            self.run_parts(argv, node, st)
        elif "/" in name:
            self.tracer.step(
                self.file, self.line(node), "run", posixpath.normpath(posixpath.join(st.cwd, name))
            )
        if node is self.tail and not st.subshell and st.call_depth == 0:
            return self.exec_now(argv, extra, node, st)
        st.last_fg = (self.pending(argv, extra, node, st),)
        st.waiting = False
        st.status = None
        return [st]

    def note_created(self, command: str, args: list[Arg], st: State) -> None:
        """Remember what ``mkdir``/``touch`` make, so that later file tests see it (bounded)."""
        made = set(st.created)
        skip = False
        for arg in args:
            if skip or arg is None:
                skip = False
                continue
            if arg in ("-m", "--mode", "-t", "-r", "-d", "--reference", "--date"):
                skip = True
                continue
            if arg.startswith("-"):
                continue
            path = posixpath.normpath(posixpath.join(st.cwd, arg))
            made.add((path, command == "mkdir"))
            if (
                command == "mkdir"
            ):  # -p or not: a parent that did not exist makes mkdir fail, so assume it does
                parent = posixpath.dirname(path)
                while parent not in ("/", "") and len(made) < 256:
                    made.add((parent, True))
                    parent = posixpath.dirname(parent)
        if len(made) <= 256:
            st.created = frozenset(made)

    def run_parts(self, argv: list[Arg], node: Node, st: State) -> None:
        operands = [a for a in argv[1:] if a is None or not a.startswith("-")]
        if not operands or operands[0] is None:
            return
        directory = posixpath.normpath(posixpath.join(st.cwd, operands[0]))
        try:
            names = self.root.listdir(directory)
        except RootFSError:
            return
        for entry in names:
            path = posixpath.join(directory, entry)
            if re.fullmatch(r"[A-Za-z0-9_-]+", entry) and self.root.is_executable(path):
                self.tracer.step(self.file, self.line(node), "run-parts", path)

    def pure(self, name: str, st: State) -> bool:
        """Whether a call to function ``name`` can change nothing the rest of the script sees: it assigns no
        variable but its locals, exports nothing, does not exec, exit, set, shift, cd, source, eval, trap,
        read, wait, make files, run in the background, or call a function that does (a conservative reading
        of its body; remembered per function body for the trace)."""
        body = st.functions[name][0]
        key = body.text or b""
        cached = self._purity.get(key)
        if cached is not None:
            return cached
        self._purity[key] = False  # a recursive call is treated as not pure
        verdict = self.body_is_pure(body, st)
        self._purity[key] = verdict
        return verdict

    def body_is_pure(self, body: Node, st: State) -> bool:
        text = body.text or b""
        if _ASSIGNING_EXPANSION.search(text):
            return False
        local_names: set[str] = set()
        stack = [body]
        nodes: list[Node] = []
        while stack:
            current = stack.pop()
            if current.type in ("command_substitution", "process_substitution", "subshell", "pipeline"):
                continue  # run in a subshell: nothing there reaches the caller's state
            nodes.append(current)
            if current.type == "declaration_command":
                keyword = current.children[0].type if current.children else ""
                flags = (current.text or b"").split()[1:3]
                if keyword != "local" and (keyword not in ("declare", "typeset") or b"-g" in flags):
                    return False
                for child in current.named_children:
                    target = (
                        child.child_by_field_name("name") if child.type == "variable_assignment" else child
                    )
                    if target is not None:
                        local_names.add(self.text(target))
            stack.extend(c for c in current.children if c.is_named or c.type in ("&", "(("))
        for current in nodes:
            kind = current.type
            if kind in ("&", "((", "unset_command", "function_definition"):
                return False
            if (
                kind == "variable_assignment"
                and current.parent is not None
                and current.parent.type != "declaration_command"
            ):
                target = current.child_by_field_name("name")
                if target is None or self.text(target) not in local_names:
                    return False
            if kind == "command":
                name_node = current.child_by_field_name("name")
                command = self.text(name_node) if name_node is not None else ""
                if not command or "$" in command or "`" in command or command in _IMPURE_COMMANDS:
                    return False
                if command == "printf" and b" -v" in (current.text or b""):
                    return False
                if command in st.functions and not self.pure(command, st):
                    return False  # (a function being judged reads as not pure: recursion is not)
        return True

    def call(self, name: str, argv: list[Arg], node: Node, st: State) -> list[State]:
        body, file = st.functions[name]
        if self.active.count(name) >= _RECURSION_UNROLL and _conditional(node, body):
            return self.summarise_call(name, body, node, st)
        if st.call_depth >= self.limits.max_call_depth:
            self.diagnose(
                "recursion", f"function {name} nested more than {self.limits.max_call_depth} deep", node, True
            )
            st.flow = "stuck"
            return [st]
        saved_positional = st.positional
        saved_file = self.file
        st.positional = list(argv[1:])
        st.locals.append({})
        st.call_depth += 1
        self.file = file
        self.active.append(name)
        try:
            results = self.block(
                body.children if body.type in ("compound_statement", "subshell") else [body], [st]
            )
        finally:
            self.file = saved_file
            self.active.pop()
        for s in results:
            s.positional = saved_positional
            s.call_depth -= 1
            frame = s.locals.pop() if s.locals else {}
            for var, old in frame.items():
                if old is _UNSET:
                    s.vars.pop(var, None)
                else:
                    s.vars[var] = old  # type: ignore[assignment]
            if s.flow == "return":
                s.flow, s.flow_n = None, 0
        return results

    def summarise_call(self, name: str, body: Node, node: Node, st: State) -> list[State]:
        """A function calling itself deeper than ``_RECURSION_UNROLL``: the call is not unrolled (its depth
        depends on data the trace does not have, e.g. a device tree); what its body may assign becomes
        unknown and its status unknown — the rest of the script goes on from there."""
        self.diagnose(
            "recursion-summarised", f"recursive calls of {name} summarised: what they assign is unknown", node
        )
        for match in _ASSIGNED.finditer(self.text(body)):
            st.vars[match.group(1) or match.group(2)] = None
        st.status = None
        return [st]

    def exec_now(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        """``exec CMD``: the shell becomes CMD; this path ends here."""
        name = argv[0]
        if st.subshell:
            st.last_fg = (self.pending(argv, extra, node, st),)
            st.flow = "exit"
            st.status = None
            return [st]
        target = (self.locate(st, name) if name else None) or name or "<unknown>"
        self.tracer.step(self.file, self.line(node), "exec", target)
        env = self.env_of(st, extra)
        outcomes = self.tracer.follow(
            argv, self.child_ctx(st, env), self.depth + 1, self.file, self.line(node)
        )
        if st.background:
            outcomes = with_resident(outcomes, st.background) or [st.background]
        self.outcomes.extend(outcomes)
        return []

    @staticmethod
    def unknown(st: State) -> Terminal:
        return Terminal(None, None, "unknown", via=st.decisions)

    def follow_pending(self, pending: Pending, why: str) -> list[Outcome]:
        if pending.call is not None and pending.deferred is not None:
            snapshot, site = pending.deferred
            assert isinstance(snapshot, State) and isinstance(site, Node)
            outcomes: list[Outcome] = []
            for after in self.call(pending.call, list(pending.argv), site, snapshot.copy()):
                if after.flow not in (None, "return") and after.flow != "exit":
                    continue
                parts = [p for p in (self.follow_pending(inner, why) for inner in after.last_fg) if p]
                if parts:
                    outcomes.extend(combine(parts))
            return outcomes
        ctx = self.ctx.with_(
            env=dict(pending.env),
            cwd=pending.cwd,
            user=pending.user if pending.user is not None else self.ctx.user,
            decisions=pending.decisions,
        )
        name = pending.argv[0]
        target = (self.tracer.locate(name, ctx) if name else None) or name or "<unknown>"
        self.tracer.step(pending.file, pending.line, why, target)
        return self.tracer.follow(list(pending.argv), ctx, self.depth + 1, pending.file, pending.line)

    def finish_state(self, st: State, node: Node) -> None:
        """What keeps running where this path of the script ends."""
        if st.flow in (None, "exit") and st.status not in (0, None):
            return  # the script ends with an error (exit 1, or a failed last command): nothing keeps running
        lasting = [p for p in st.last_fg if not _short_lived(p)]
        parts = [p for p in (self.follow_pending(pending, "run") for pending in lasting) if p]
        if parts:  # the last foreground command runs with the shell waiting for it as its parent
            self.outcomes.extend(with_resident(combine(parts), {self.shell, *st.background}))
            return
        if st.flow == "stuck":  # a limit stopped this path: what would run from here is not known
            self.outcomes.append(frozenset({self.unknown(st), self.shell, *st.background}))
            return
        if st.flow == "forever" or st.waiting:
            # the shell itself keeps running (an endless loop, `wait`, `read`): it is the program, or the
            # resident parent of its background jobs
            if st.background:
                self.outcomes.append(frozenset({self.shell, *st.background}))
            else:
                self.outcomes.append(frozenset({self.shell_program}))
            return
        if st.background:
            # the script ends without waiting: as the container's main process it takes its jobs with it
            self.diagnose("background-ends", "the script ends without waiting for its background jobs", node)

    # -------------------------------------------------------------------------------------------- builtins

    def b_status0(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        st.status = 0
        return [st]

    def b_unknown(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        st.status = None
        return [st]

    def b_false(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        st.status = 1
        return [st]

    def b_read(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        skip_next = False
        for arg in argv[1:]:
            if skip_next:
                skip_next = False
                continue
            if arg is None:
                continue
            if arg in ("-d", "-n", "-N", "-p", "-t", "-u", "-a", "-i"):
                skip_next = True
                continue
            if _NAME.match(arg):
                st.vars[arg] = None
        st.status = None
        return [st]

    def b_export(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        for arg in argv[1:]:
            if arg is None or arg.startswith("-"):
                continue
            name, eq, value = arg.partition("=")
            if eq:
                st.vars[name] = value
            st.exported.add(name)
        st.status = 0
        return [st]

    def b_set(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        args = argv[1:]
        i = 0
        while i < len(args):
            arg = args[i]
            if arg is None:
                st.positional = None
                st.status = 0
                return [st]
            if arg == "--":
                st.positional = list(args[i + 1 :])
                break
            if arg.startswith(("-", "+")) and len(arg) > 1:
                i += 2 if "o" in arg[1:] else 1  # -o NAME, -eo pipefail
                continue
            st.positional = list(args[i:])
            break
        st.status = 0
        return [st]

    def b_shift(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        count: int | None = 1
        if len(argv) > 1:
            count = self.arith_text(argv[1], st)
        if st.positional is None or count is None:
            st.positional = None
            st.status = None
            return [st]
        if count > len(st.positional):
            st.status = 1
            return [st]
        st.positional = st.positional[count:]
        st.status = 0
        return [st]

    def b_cd(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        target = argv[1] if len(argv) > 1 else "/root"
        if target is None:
            st.status = None
            return [st]
        if target == "-":
            st.status = 0
            return [st]
        path = posixpath.normpath(posixpath.join(st.cwd, target))
        st.cwd = path
        st.status = 0 if self.root.is_dir(path) else None
        return [st]

    def b_exit(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        code: int | None = st.status
        if len(argv) > 1:
            code = self.arith_text(argv[1], st)
        st.status = code
        st.flow = "exit"
        return [st]

    def b_return(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        if len(argv) > 1:
            st.status = self.arith_text(argv[1], st)
        if st.call_depth > 0 or self.source_depth > 0:
            st.flow = "return"
        else:
            st.flow = "exit"
        return [st]

    def b_break(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        levels = self.arith_text(argv[1], st) if len(argv) > 1 else 1
        st.flow = argv[0]
        st.flow_n = levels or 1
        return [st]

    def b_source(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        if len(argv) < 2 or argv[1] is None:
            self.diagnose("unknown-source", "sourced file not known statically", node, True)
            st.status = None
            return [st]
        name = argv[1]
        if "/" in name:
            path = posixpath.normpath(posixpath.join(st.cwd, name))
        else:
            path = next(
                (
                    posixpath.join(d, name)
                    for d in self.path_env(st).split(":")
                    if d.startswith("/") and self.root.is_file(posixpath.join(d, name))
                ),
                posixpath.join(st.cwd, name),
            )
        self.tracer.step(self.file, self.line(node), "source", path)
        if not self.root.is_file(path):
            self.diagnose("not-found", f"sourced file {path} not found in the root", node)
            st.status = 1
            return [st]
        if self.source_depth >= self.limits.max_source_depth:
            self.diagnose(
                "recursion", f"files sourced more than {self.limits.max_source_depth} deep", node, True
            )
            st.flow = "stuck"
            return [st]
        parsed = self.tracer.read_script(self.ctx.with_(cwd=st.cwd), path, self.file, self.line(node))
        if parsed is None:
            st.status = None
            return [st]
        saved = (self.file, self.source, self.line_override)
        saved_positional = st.positional
        if len(argv) > 2:
            st.positional = list(argv[2:])
        self.file, self.source, self.line_override = path, parsed.source, None
        self.source_depth += 1
        try:
            results = self.block(parsed.root.children, [st])
        finally:
            self.source_depth -= 1
            self.file, self.source, self.line_override = saved
        for s in results:
            if len(argv) > 2:
                s.positional = saved_positional
            if s.flow == "return":
                s.flow, s.flow_n = None, 0
        return results

    def b_eval(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        # a word not known statically stands in as a placeholder that expands to "unknown": the code is still
        # interpreted (`eval "export $var=…"`), unless a placeholder names a command (then anything may run)
        code = " ".join(a if a is not None else f"{_PLACEHOLDER}{i}__" for i, a in enumerate(argv[1:]))
        if _PLACEHOLDER in code and node.type == "command":
            code = self.eval_text(node, st)
        if _PLACEHOLDER in code and self.names_placeholder(code):
            self.diagnose("unknown-eval", "eval of a command not known statically", node, True)
            st.status = None
            return [st]
        if self.eval_depth >= self.limits.max_eval_depth or len(code) > 65536:
            self.diagnose("eval-limit", "eval nested too deep or too large", node, True)
            st.flow = "stuck"
            return [st]
        self.tracer.tick(1 + len(code) // 1024)
        parsed = parse_shell(code.encode("utf-8", errors="surrogateescape"))
        if parsed.error_lines:
            self.diagnose("parse-error", "eval: syntax error", node, True)
        saved = self.line_override
        self.line_override = self.line(node)
        self.eval_depth += 1
        try:
            return self.block(parsed.root.children, [st])
        finally:
            self.eval_depth -= 1
            self.line_override = saved

    def eval_text(self, node: Node, st: State) -> str:
        """The words of an ``eval`` command with only their unknown parts replaced by placeholders."""
        words: list[str] = []
        count = 0
        for child in node.children:
            if not child.is_named or child.type in ("command_name", "variable_assignment", "file_redirect"):
                continue
            for f in self.fields(child, st):
                text = ""
                for segment, _ in f.segs:
                    if segment is None:
                        segment = f"{_PLACEHOLDER}{count}__"
                        count += 1
                    text += segment
                words.append(text)
        return " ".join(words)

    @staticmethod
    def names_placeholder(code: str) -> bool:
        parsed = parse_shell(code.encode("utf-8", errors="surrogateescape"))
        stack = [parsed.root]
        while stack:
            current = stack.pop()
            if current.type == "command":
                name = current.child_by_field_name("name")
                if name is not None and _PLACEHOLDER.encode() in (name.text or b""):
                    return True
            stack.extend(current.named_children)
        return False

    def b_exec(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        args = argv[1:]
        while args and args[0] is not None and args[0].startswith("-") and args[0] != "--":
            args = args[2:] if args[0] == "-a" else args[1:]
        if args and args[0] == "--":
            args = args[1:]
        if not args:
            st.status = 0
            return [st]  # exec with redirections only
        return self.exec_now(args, extra, node, st)

    def b_command(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        args = argv[1:]
        if args and args[0] in ("-v", "-V"):
            return self.b_lookup(["command", *args[1:]], extra, node, st)
        while args and args[0] is not None and args[0].startswith("-"):
            args = args[1:]
        if not args:
            st.status = 0
            return [st]
        name = args[0]
        if name is not None and name in _BUILTIN_HANDLERS:
            return _BUILTIN_HANDLERS[name](self, args, extra, node, st)
        return self.external(args, extra, node, st)

    def b_lookup(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        names = [a for a in argv[1:] if a is None or not a.startswith("-")]
        if not names:
            st.status = 1
            return [st]
        if any(n is None for n in names):
            st.status = None
            return [st]
        found = all(
            n in st.functions or n in _BUILTINS or self.locate(st, n) is not None
            for n in names
            if n is not None
        )
        st.status = 0 if found else 1
        return [st]

    def b_test(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        args = argv[1:]
        if argv[0] == "[":
            if not args or args[-1] != "]":
                st.status = 2
                return [st]
            args = args[:-1]
        value = evaluate_test([Token(a) for a in args], self.root, st.cwd, created=st.created)
        st.status = None if value is None else (0 if value else 1)
        return [st]

    def b_getopts(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        if len(argv) > 2 and argv[2] is not None and _NAME.match(argv[2]):
            st.vars[argv[2]] = None
        st.vars["OPTARG"] = None
        st.vars["OPTIND"] = None
        st.status = None
        return [st]

    def b_local(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        for arg in argv[1:]:
            if arg is None or arg.startswith("-"):
                continue
            name, eq, value = arg.partition("=")
            if st.locals:
                st.locals[-1].setdefault(name, st.vars.get(name, _UNSET))
            st.vars[name] = value if eq else st.vars.get(name, "")
        st.status = 0
        return [st]

    def b_printf(self, argv: list[Arg], extra: dict[str, Arg], node: Node, st: State) -> list[State]:
        if len(argv) > 2 and argv[1] == "-v" and argv[2] is not None:
            st.vars[argv[2]] = None
        st.status = 0
        return [st]


#: commands that change the shell's own state (or may replace it): a function running one is not pure
_IMPURE_NAMES = (
    "exec exit cd pushd popd source . eval trap unset read mapfile readarray getopts umask alias "
    "unalias shopt export readonly let wait kill builtin command enable hash"
)
_IMPURE_COMMANDS = frozenset(_IMPURE_NAMES.split())

#: utilities that do their job and exit: a script whose path ends right after one of them ends with it
#: (`mkdir -p /data && server; echo stopped` when mkdir fails), it does not keep the utility running.
#: Not here: what can block (cat, tail, sleep, read, watch, yes) and wrappers.
_SHORT_LIVED_NAMES = (
    "mkdir chown chmod chgrp cp mv rm rmdir ln touch install sed grep egrep fgrep echo printf test [ "
    "true false id whoami basename dirname date uname hostname mktemp stat readlink realpath wc cut tr "
    "sort uniq head find ls pwd getent nproc df du which useradd usermod groupadd adduser addgroup "
    "ldconfig update-ca-certificates setcap sysctl chpasswd envsubst"
)
_SHORT_LIVED = frozenset(_SHORT_LIVED_NAMES.split())


def _short_lived(pending: Pending) -> bool:
    name = pending.argv[0] if pending.call is None and pending.argv else None
    return name is not None and posixpath.basename(name) in _SHORT_LIVED


#: builtins that pass control on (the state they leave is set by what they run)
_CONTROL_BUILTINS = frozenset(
    {"exit", "return", "break", "continue", "exec", ".", "source", "eval", "command"}
)
#: builtins that block the shell: with background jobs (`wait`) or on its input (`read`)
_BLOCKING_BUILTINS = frozenset({"wait", "read"})

_DISPATCH = {
    "command": Interpreter.s_command,
    "variable_assignment": Interpreter.s_assignment,
    "variable_assignments": Interpreter.s_assignments,
    "declaration_command": Interpreter.s_declaration,
    "unset_command": Interpreter.s_unset,
    "redirected_statement": Interpreter.s_redirected,
    "compound_statement": Interpreter.s_compound,
    "function_definition": Interpreter.s_function,
    "negated_command": Interpreter.s_negated,
    "test_command": Interpreter.s_test,
    "list": Interpreter.s_list,
    "if_statement": Interpreter.s_if,
    "case_statement": Interpreter.s_case,
    "for_statement": Interpreter.s_for,
    "c_style_for_statement": Interpreter.s_c_for,
    "while_statement": Interpreter.s_while,
    "subshell": Interpreter.s_subshell,
    "pipeline": Interpreter.s_pipeline,
}

_BUILTIN_HANDLERS = {
    ":": Interpreter.b_status0,
    "true": Interpreter.b_status0,
    "false": Interpreter.b_false,
    "echo": Interpreter.b_status0,
    "printf": Interpreter.b_printf,
    "export": Interpreter.b_export,
    "readonly": Interpreter.b_export,
    "local": Interpreter.b_local,
    "declare": Interpreter.b_local,
    "typeset": Interpreter.b_local,
    "set": Interpreter.b_set,
    "shift": Interpreter.b_shift,
    "cd": Interpreter.b_cd,
    "exit": Interpreter.b_exit,
    "return": Interpreter.b_return,
    "break": Interpreter.b_break,
    "continue": Interpreter.b_break,
    "source": Interpreter.b_source,
    ".": Interpreter.b_source,
    "eval": Interpreter.b_eval,
    "exec": Interpreter.b_exec,
    "command": Interpreter.b_command,
    "type": Interpreter.b_lookup,
    "hash": Interpreter.b_lookup,
    "test": Interpreter.b_test,
    "[": Interpreter.b_test,
    "wait": Interpreter.b_status0,
    "trap": Interpreter.b_status0,
    "umask": Interpreter.b_status0,
    "ulimit": Interpreter.b_status0,
    "shopt": Interpreter.b_status0,
    "alias": Interpreter.b_status0,
    "unalias": Interpreter.b_status0,
    "pwd": Interpreter.b_status0,
    "getopts": Interpreter.b_getopts,
    "read": Interpreter.b_read,
    "mapfile": Interpreter.b_unknown,
    "readarray": Interpreter.b_unknown,
    "let": Interpreter.b_unknown,
    "kill": Interpreter.b_unknown,
}


def interpret(
    tracer: Follower,
    parsed: ParsedScript,
    file: str,
    shell: Terminal,
    arg0: Arg,
    args: list[Arg],
    ctx: Context,
    depth: int,
    *,
    exec_last: bool = False,
) -> list[Outcome]:
    """Outcomes of running a parsed shell script with positional parameters ``args``."""
    interpreter = Interpreter(tracer, parsed, file, shell, ctx, depth)
    interpreter.arg0 = arg0 if arg0 is not None else file
    st = State()
    for name, value in ctx.env.items():
        st.vars[name] = value
        st.exported.add(name)
    st.positional = list(args)
    st.cwd = ctx.cwd
    st.user = ctx.user
    st.decisions = ctx.decisions
    outcomes = interpreter.run_script(parsed.root, st, exec_last)
    return dedupe(outcomes, tracer.limits.max_outcomes)
