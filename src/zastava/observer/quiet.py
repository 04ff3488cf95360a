"""Quiet drift (issue 22): identical findings within a window become one event with a count.

A finding's identity is what an operator acts on — the container's image, the program and its parent program
(and the kind: ``EXEC`` or ``DRIFT``) — not the pid, so a cron job misbehaving every minute or an attacker's
loop spawning the same tool is one line, not thousands. The first finding of an identity is reported at once
(an alert must not wait for a window); repeats within ``window`` seconds of that first one are only counted,
and when the window closes one summary carries how many there were (``count``). A repeat after the window
opens a new window. At most ``max_keys`` identities are held (bounded memory): past that, the oldest window
is closed early.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Quieter", "Repeated"]

T = TypeVar("T")


@dataclass(slots=True)
class Repeated(Generic[T]):
    """A window's repeats of one identity: ``count`` findings after the first, the last one as a sample."""

    key: tuple[str, ...]
    opened: float
    last: float
    count: int
    sample: T


class Quieter(Generic[T]):
    def __init__(self, window: float, *, max_keys: int = 10_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self._open: dict[tuple[str, ...], Repeated[T]] = {}
        self.suppressed = 0

    def offer(self, key: tuple[str, ...], now: float, sample: T) -> tuple[bool, list[Repeated[T]]]:
        """(report this one now?, windows closed early to make room). A window of 0 reports everything."""
        if self.window <= 0:
            return True, []
        current = self._open.get(key)
        if current is not None and now - current.opened < self.window:
            current.count += 1
            current.last = now
            current.sample = sample
            self.suppressed += 1
            return False, []
        closed: list[Repeated[T]] = []
        if current is not None:
            del self._open[key]
            if current.count:
                closed.append(current)
        while len(self._open) >= self.max_keys:
            oldest = next(iter(self._open))
            evicted = self._open.pop(oldest)
            if evicted.count:
                closed.append(evicted)
        self._open[key] = Repeated(key, now, now, 0, sample)
        return True, closed

    def due(self, now: float) -> list[Repeated[T]]:
        """Windows that closed by ``now`` with repeats to report (and forget those without)."""
        out: list[Repeated[T]] = []
        for key in [k for k, r in self._open.items() if now - r.opened >= self.window]:
            repeated = self._open.pop(key)
            if repeated.count:
                out.append(repeated)
        return out

    def drain(self) -> list[Repeated[T]]:
        """Every open window with repeats (a container stops: say what was counted)."""
        out = [r for r in self._open.values() if r.count]
        self._open.clear()
        return out
