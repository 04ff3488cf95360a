"""Tag → digest resolution behind a small protocol; :class:`RegistryTagResolver` is ``zastava.registry``'s.

Any object with ``async resolve(image: str) -> str`` (returning ``sha256:…``) is a :class:`TagResolver`.
Failures (registry down, throttled, unknown tag) raise :class:`ResolveError` or any exception; the admitter
treats both as "registry unavailable" and applies fail-open/closed per namespace (spec §12).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..config import ZastavaConfig
    from ..registry import RegistryClient

__all__ = ["RegistryTagResolver", "ResolveError", "TagResolver"]


class ResolveError(RuntimeError):
    """A tag could not be resolved to a digest."""


@runtime_checkable
class TagResolver(Protocol):
    async def resolve(self, image: str) -> str:
        """The manifest digest (``sha256:<hex>``) the tag of ``image`` points to now."""
        ...


class RegistryTagResolver:
    """:class:`TagResolver` over :class:`zastava.registry.RegistryClient` (credentials, retries with
    ``Retry-After``, tag cache, size limits). The digest is the one the tag names (the index digest for a
    multi-platform tag): pinning the reference to it pulls what the tag pulls on every platform."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    @classmethod
    def from_config(cls, config: ZastavaConfig) -> RegistryTagResolver:
        """From the ``zastava.registry`` section (insecure registries, docker config, timeouts, retries)."""
        from ..registry import RegistryClient
        from ..registry.settings import client_config, credentials

        section = config.registry
        return cls(RegistryClient(client_config(section), credentials(section)))

    async def resolve(self, image: str) -> str:
        from ..registry import RegistryError

        try:
            resolved = await self.client.resolve(image)
        except RegistryError as exc:
            raise ResolveError(str(exc) or type(exc).__name__) from None
        return resolved.digest

    async def aclose(self) -> None:
        await self.client.close()
