"""Tag → digest resolution behind a small protocol, so that ``zastava.registry``'s client drops in.

Any object with ``async resolve(image: str) -> str`` (returning ``sha256:…``) is a :class:`TagResolver`.
Failures (registry down, throttled, unknown tag) raise :class:`ResolveError` or any exception; the admitter
treats both as "registry unavailable" and applies fail-open/closed per namespace (spec §12).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["ResolveError", "TagResolver"]


class ResolveError(RuntimeError):
    """A tag could not be resolved to a digest."""


@runtime_checkable
class TagResolver(Protocol):
    async def resolve(self, image: str) -> str:
        """The manifest digest (``sha256:<hex>``) the tag of ``image`` points to now."""
        ...
