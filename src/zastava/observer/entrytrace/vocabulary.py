"""The vocabulary the tracer and the shell interpreter share: limits, identities, the context a command runs
in, outcomes and how they combine, and the :class:`Follower` interface the interpreter calls back into.

It lives in its own module so that :mod:`.interpreter` and :mod:`.tracer` do not import each other: the
interpreter knows the tracer only as a :class:`Follower`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..rootfs import RootFS
from .result import Decision, Terminal

if TYPE_CHECKING:
    from .parser import ParsedScript

__all__ = [
    "DEFAULT_PATH",
    "SHELLS",
    "UNKNOWN",
    "Arg",
    "Context",
    "Decision",
    "Follower",
    "Limits",
    "Outcome",
    "User",
    "as_resident",
    "clean",
    "clean_opt",
    "combine",
    "dedupe",
    "with_resident",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHELLS = frozenset({"sh", "bash", "dash", "ash", "ksh", "mksh", "zsh", "busybox-sh", "rbash"})

Arg = str | None
Outcome = frozenset[Terminal]
UNKNOWN = Terminal(None, None, "unknown")


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 48
    max_script_bytes: int = 1 << 20
    time_budget: float = 2.0  # seconds of wall clock per trace
    max_operations: int = 200_000  # interpreter statements and expansions
    #: live interpreter states past which states that differ only in variable values are joined (those values
    #: become unknown), and the hard cap on the states that remain (undecided branches)
    join_states: int = 4
    max_states: int = 32
    max_outcomes: int = 64
    #: passes over a loop body that still change the state before the changed variables are widened to
    #: "unknown" (the loop is then summarised in one more pass instead of run to the end)
    loop_unroll: int = 8
    #: items of a `for` list walked one by one; a longer list is summarised like a loop over unknown items
    max_loop_items: int = 256
    max_loop_iterations: int = 1000  # hard stop for a loop that neither ends nor reaches a fixpoint
    max_call_depth: int = 32  # shell function nesting
    max_source_depth: int = 16
    max_eval_depth: int = 8
    max_steps: int = 1024
    max_glob: int = 1024
    max_decisions: int = 8  # undecided conditions recorded per path (the JSON "when" of a terminal)


@dataclass(frozen=True, slots=True)
class User:
    """Who a command runs as. ``stepped`` marks an identity a wrapper switched to whose uid is not known
    statically (``gosu "$user"``): it is a new identity, distinct from the one before the switch."""

    uid: int | None = None
    name: str | None = None
    stepped: bool = False

    @property
    def known(self) -> bool:
        return self.uid is not None or self.name is not None

    def label(self) -> str | None:
        if self.name is not None:
            return self.name
        return str(self.uid) if self.uid is not None else None


@dataclass(frozen=True, slots=True)
class Context:
    """Where a command runs: root (and its prefix after chroot), environment, directory, user, the passes of
    scripts already on the exec chain, and the undecided conditions that led here."""

    root: RootFS
    env: Mapping[str, Arg]
    env_complete: bool  # variables absent from env are unset (else unknown)
    cwd: str
    user: User
    prefix: str = ""
    chain: tuple[tuple[object, ...], ...] = ()
    decisions: tuple[Decision, ...] = ()

    @property
    def path_env(self) -> str:
        value = self.env.get("PATH")
        if value is None:
            return DEFAULT_PATH
        return value

    def with_(self, **changes: object) -> Context:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


class Follower(Protocol):
    """What the interpreter needs from the tracer: following an argv, lookups, reading scripts, accounting."""

    limits: Limits
    #: per function body (its text): whether calling it can change the caller's state, shared by every
    #: pass over the trace's scripts
    purity: dict[bytes, bool]

    @property
    def exhausted(self) -> str | None: ...

    def tick(self, amount: int = 1) -> bool: ...

    def diagnose(
        self,
        code: str,
        message: str,
        file: str | None = None,
        line: int | None = None,
        *,
        partial: bool = False,
    ) -> None: ...

    def step(self, file: str, line: int | None, op: str, target: str) -> None: ...

    def locate(self, name: str, ctx: Context) -> str | None: ...

    def locate_in(self, root: RootFS, name: str, path_env: str, cwd: str) -> str | None: ...

    def read_script(
        self, ctx: Context, path: str, file: str | None, line: int | None
    ) -> ParsedScript | None: ...

    def follow(
        self,
        argv: list[Arg],
        ctx: Context,
        depth: int,
        file: str = "<argv>",
        line: int | None = None,
        script_of: str | None = None,
    ) -> list[Outcome]: ...


def clean(text: str) -> str:
    """Text safe for JSON and the contracts: bytes that were not UTF-8 (kept as surrogates) become U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def clean_opt(text: str | None) -> str | None:
    return None if text is None else clean(text)


def combine(parts: Iterable[list[Outcome]], cap: int = 16) -> list[Outcome]:
    """Outcomes of running several things together: every combination, or one union past ``cap``."""
    result: list[Outcome] = [frozenset()]
    for options in parts:
        if not options:
            continue
        if len(result) * len(options) > cap:
            merged = frozenset(itertools.chain.from_iterable(options))
            result = [o | merged for o in result]
        else:
            result = [a | b for a in result for b in options]
    return result


def dedupe(outcomes: Iterable[Outcome], cap: int) -> list[Outcome]:
    seen: dict[frozenset[tuple[object, ...]], Outcome] = {}
    for outcome in outcomes:
        key = frozenset(t.identity() for t in outcome)
        if key not in seen:
            seen[key] = outcome
            if len(seen) >= cap:
                break
    return list(seen.values())


def with_resident(outcomes: list[Outcome], resident: Iterable[Terminal]) -> list[Outcome]:
    extra = frozenset(resident)
    return [o | extra for o in outcomes] if outcomes else []


def as_resident(outcomes: list[Outcome], role: str) -> list[Outcome]:
    return [frozenset(dataclasses.replace(t, resident=True, role=role) for t in o) for o in outcomes]
