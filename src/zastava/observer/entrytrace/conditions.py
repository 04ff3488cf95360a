"""``test`` / ``[ … ]`` / ``[[ … ]]`` decided statically, in three-valued logic.

An operand is ``None`` when its value cannot be known (an unset environment of unknown content, a command
substitution); any result that depends on it is ``None`` — the caller then follows both branches. File tests
are answered from the container root.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import stat
from dataclasses import dataclass

from ..rootfs import RootFS, RootFSError

__all__ = ["Token", "evaluate_test", "match_pattern"]

Tri = bool | None


@dataclass(frozen=True, slots=True)
class Token:
    value: str | None
    pattern: bool = False  # unquoted: a glob pattern on the right of == / != inside [[ ]]


_UNARY_FILE = frozenset("-e -f -d -x -r -w -s -L -h -p -S -b -c -g -u -k -O -G -N -a".split())  # noqa: SIM905
_UNARY_STRING = frozenset({"-z", "-n"})
_BINARY = frozenset("= == != < > -eq -ne -lt -le -gt -ge =~ -nt -ot -ef".split())  # noqa: SIM905


def _not(value: Tri) -> Tri:
    return None if value is None else not value


def _and(left: Tri, right: Tri) -> Tri:
    if left is False or right is False:
        return False
    if left is None or right is None:
        return None
    return True


def _or(left: Tri, right: Tri) -> Tri:
    if left is True or right is True:
        return True
    if left is None or right is None:
        return None
    return False


def match_pattern(value: str, pattern: str) -> bool:
    """Shell pattern match (``case``, ``[[ x == pat ]]``): ``*``, ``?``, ``[…]`` with ``!``/``^``."""
    if "[^" in pattern:
        pattern = pattern.replace("[^", "[!")
    return fnmatch.fnmatchcase(value, pattern)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


#: directories whose content exists only at run time (sockets, pid files, tmpfs mounts): a file test on a
#: path there that the image lacks cannot be decided statically
_RUNTIME_DIRS = ("/run/", "/var/run/", "/tmp/", "/dev/shm/", "/var/lock/", "/var/tmp/")  # noqa: S108

Created = frozenset[tuple[str, bool]]  # (path, is a directory) made by the script itself (mkdir, touch)


class _Evaluator:
    def __init__(self, tokens: list[Token], root: RootFS, cwd: str, extended: bool, created: Created) -> None:
        self.tokens = tokens
        self.pos = 0
        self.root = root
        self.cwd = cwd
        self.extended = extended
        self.created = created

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def is_op(self, offset: int, ops: frozenset[str] | set[str]) -> bool:
        token = self.peek(offset)
        return token is not None and token.value in ops

    def parse_or(self) -> Tri:
        value = self.parse_and()
        while self.is_op(0, {"-o", "||"}):
            self.pos += 1
            value = _or(value, self.parse_and())
        return value

    def parse_and(self) -> Tri:
        value = self.parse_not()
        while self.is_op(0, {"-a", "&&"}) and self.pos + 1 < len(self.tokens):
            self.pos += 1
            value = _and(value, self.parse_not())
        return value

    def parse_not(self) -> Tri:
        if self.is_op(0, {"!"}) and self.pos + 1 < len(self.tokens):
            self.pos += 1
            return _not(self.parse_not())
        return self.parse_primary()

    def parse_primary(self) -> Tri:
        token = self.peek()
        if token is None:
            return False
        # binary first: `[ "$x" = -n ]` compares strings
        if self.is_op(1, _BINARY) and self.peek(2) is not None:
            left, op, right = token, self.peek(1), self.peek(2)
            assert op is not None and right is not None
            self.pos += 3
            return self.binary(left, op.value or "", right)
        if token.value == "(" and self.pos + 1 < len(self.tokens):
            self.pos += 1
            value = self.parse_or()
            if self.is_op(0, {")"}):
                self.pos += 1
            return value
        if token.value in _UNARY_FILE | _UNARY_STRING and self.peek(1) is not None:
            operand = self.peek(1)
            assert operand is not None
            self.pos += 2
            return self.unary(token.value or "", operand.value)
        self.pos += 1
        return None if token.value is None else token.value != ""

    def unary(self, op: str, value: str | None) -> Tri:
        if op == "-z":
            return None if value is None else value == ""
        if op == "-n":
            return None if value is None else value != ""
        if value is None:
            return None
        if value == "":
            return False
        path = posixpath.normpath(value if value.startswith("/") else posixpath.join(self.cwd, value))
        if path.startswith(("/proc/", "/dev/", "/sys/")):
            return None  # run-time state, not in the image
        made = next((is_dir for p, is_dir in self.created if p == path), None)
        if made is not None:  # created earlier by the script (mkdir -p, touch)
            return {
                "-d": made,
                "-f": not made,
                "-s": None if not made else True,
                "-L": False,
                "-h": False,
            }.get(op, True if op in ("-e", "-a", "-r", "-w", "-x") else None)
        try:
            info = self.root.lstat(path) if op in ("-L", "-h") else self.root.stat(path)
        except RootFSError:
            return None if (path + "/").startswith(_RUNTIME_DIRS) or op in ("-S", "-p") else False
        mode = info.st_mode
        if op in ("-e", "-a", "-r", "-w", "-O", "-G", "-N"):
            return True
        if op == "-f":
            return stat.S_ISREG(mode)
        if op == "-d":
            return stat.S_ISDIR(mode)
        if op == "-x":
            return bool(mode & 0o111) or stat.S_ISDIR(mode)
        if op == "-s":
            return info.st_size > 0
        if op in ("-L", "-h"):
            return stat.S_ISLNK(mode)
        if op == "-p":
            return stat.S_ISFIFO(mode)
        if op == "-S":
            return stat.S_ISSOCK(mode)
        if op == "-b":
            return stat.S_ISBLK(mode)
        if op == "-c":
            return stat.S_ISCHR(mode)
        if op == "-g":
            return bool(mode & stat.S_ISGID)
        if op == "-u":
            return bool(mode & stat.S_ISUID)
        if op == "-k":
            return bool(mode & stat.S_ISVTX)
        return None

    def binary(self, left: Token, op: str, right: Token) -> Tri:
        a, b = left.value, right.value
        if op in ("=", "=="):
            if a is None or b is None:
                return None
            return match_pattern(a, b) if self.extended and right.pattern else a == b
        if op == "!=":
            if a is None or b is None:
                return None
            return not match_pattern(a, b) if self.extended and right.pattern else a != b
        if op in ("<", ">"):
            if a is None or b is None:
                return None
            return a < b if op == "<" else a > b
        if op == "=~":
            if a is None or b is None:
                return None
            try:
                return re.search(b, a) is not None
            except re.error:
                return None
        if op in ("-eq", "-ne", "-lt", "-le", "-gt", "-ge"):
            x, y = _int(a), _int(b)
            if x is None or y is None:
                return None
            return {
                "-eq": x == y,
                "-ne": x != y,
                "-lt": x < y,
                "-le": x <= y,
                "-gt": x > y,
                "-ge": x >= y,
            }[op]
        return None  # -nt, -ot, -ef: times and inodes at run time


def evaluate_test(
    tokens: list[Token], root: RootFS, cwd: str, *, extended: bool = False, created: Created = frozenset()
) -> Tri:
    """Value of a ``test`` expression (``tokens`` without the brackets); ``None`` when undecidable.
    ``created`` are paths the script made itself before the test."""
    if not tokens:
        return False
    evaluator = _Evaluator(tokens, root, cwd, extended, created)
    value = evaluator.parse_or()
    if evaluator.pos < len(tokens):
        return None  # trailing tokens: a malformed expression fails at run time with status 2
    return value
