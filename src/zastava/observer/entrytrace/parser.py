"""Reading files of the chain: what kind of executable a file is, its shebang, and its shell syntax tree.

Shell is parsed with tree-sitter-bash (error-tolerant: a damaged script still yields a tree whose ERROR nodes
are reported). Parsers are kept per thread; nothing here executes anything.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import tree_sitter_bash
from tree_sitter import Language, Node, Parser, Tree

__all__ = ["FileKind", "ParsedScript", "Shebang", "classify", "parse_shebang", "parse_shell"]

LANGUAGE = Language(tree_sitter_bash.language())
_local = threading.local()

#: Linux reads at most this much of a file for the ``#!`` line (BINPRM_BUF_SIZE).
SHEBANG_MAX = 256

FileKind = Literal["elf", "shebang", "text", "binary", "empty"]


def _parser() -> Parser:
    parser: Parser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = Parser(LANGUAGE)
        _local.parser = parser
    return parser


def classify(head: bytes) -> FileKind:
    """Kind of an executable from its first bytes."""
    if not head:
        return "empty"
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head.startswith(b"#!"):
        return "shebang"
    sample = head[:1024]
    if b"\0" in sample:
        return "binary"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a multi-byte character cut at the end of the sample
            return "binary"
    return "text"


@dataclass(frozen=True, slots=True)
class Shebang:
    interpreter: str
    argument: str | None  # Linux passes everything after the interpreter as one argument


def parse_shebang(head: bytes) -> Shebang | None:
    if not head.startswith(b"#!"):
        return None
    line = head[2:SHEBANG_MAX].split(b"\n", 1)[0].decode("utf-8", errors="replace").strip(" \t\r")
    if not line:
        return None
    parts = line.split(None, 1)
    argument = parts[1].strip(" \t") if len(parts) > 1 else None
    return Shebang(parts[0], argument or None)


@dataclass(frozen=True, slots=True)
class ParsedScript:
    tree: Tree
    source: bytes
    #: 1-based lines of syntax errors (at most a few)
    error_lines: tuple[int, ...]

    @property
    def root(self) -> Node:
        return self.tree.root_node


def _error_lines(root: Node, limit: int = 8) -> tuple[int, ...]:
    lines: list[int] = []
    cursor = root.walk()
    visited_children = False
    while True:
        node = cursor.node
        if not visited_children and node is not None:
            if node.is_error or node.is_missing:
                lines.append(node.start_point[0] + 1)
                if len(lines) >= limit:
                    break
            elif node.has_error and cursor.goto_first_child():
                continue
        if cursor.goto_next_sibling():
            visited_children = False
            continue
        if not cursor.goto_parent():
            break
        visited_children = True
    return tuple(sorted(set(lines)))


def parse_shell(source: bytes) -> ParsedScript:
    tree = _parser().parse(source)
    root = tree.root_node
    errors = _error_lines(root) if root.has_error else ()
    return ParsedScript(tree, source, errors)
