"""Fallback and reconnection for a primary engine (spec §12 "CRI socket missing").

:class:`ResilientEngine` serves the primary engine while it answers. When it is missing at start or vanishes
while running, it yields a ``degraded`` event, serves the fallback engine (log tail or Kubernetes metadata,
reduced fidelity) and retries the primary with exponential backoff; once the primary answers again it yields
``resync`` (the agent re-lists containers) and switches back. ``degraded``/``fallback_reason`` and the
``zastava_observer_engine_*`` metrics say which engine is in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from ...telemetry.logging import fields
from ...telemetry.metrics import ZastavaMetrics
from .base import (
    ContainerEngine,
    ContainerEvent,
    ContainerInfo,
    EngineCapabilities,
    EngineName,
    EngineUnavailable,
    engine_metrics,
)

__all__ = ["ResilientEngine"]

log = logging.getLogger("zastava.observer.engines")


class ResilientEngine:
    def __init__(
        self,
        primary: ContainerEngine,
        fallback: ContainerEngine | None,
        *,
        metrics: ZastavaMetrics | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.metrics = engine_metrics(metrics) if metrics is not None else None
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.degraded = False
        self.fallback_reason: str | None = None
        self.reconnects = 0

    @property
    def name(self) -> EngineName:
        if self.degraded and self.fallback is not None:
            return self.fallback.name
        return self.primary.name

    @property
    def capabilities(self) -> EngineCapabilities:
        if self.degraded and self.fallback is not None:
            return self.fallback.capabilities
        return self.primary.capabilities

    async def ping(self) -> None:
        """Readiness asks the configured engine itself (on the fallback the observer is not ready anyway)."""
        await self.primary.ping()

    def _mark(self, degraded: bool, reason: str | None = None) -> None:
        changed = degraded != self.degraded
        self.degraded = degraded
        self.fallback_reason = reason if degraded else None
        if self.metrics is not None:
            self.metrics.set_connected(self.primary.name, not degraded)
            if self.fallback is not None:
                self.metrics.set_fallback(self.fallback.name, degraded)
        if changed:
            if degraded:
                log.warning(
                    "container engine unavailable; using fallback",
                    extra=fields(
                        engine=self.primary.name,
                        fallback=self.fallback.name if self.fallback else None,
                        reason=reason,
                    ),
                )
            else:
                log.info("container engine reconnected", extra=fields(engine=self.primary.name))

    async def version(self) -> str | None:
        try:
            version = await self.primary.version()
        except EngineUnavailable as exc:
            self._mark(True, str(exc))
            return await self.fallback.version() if self.fallback is not None else None
        return version

    async def list_containers(self) -> list[ContainerInfo]:
        try:
            containers = await self.primary.list_containers()
        except EngineUnavailable as exc:
            self._mark(True, str(exc))
            if self.fallback is None:
                raise
            return await self.fallback.list_containers()
        if self.degraded:
            self._mark(False)
        return containers

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        if not self.degraded:
            try:
                return await self.primary.inspect(container_id)
            except EngineUnavailable as exc:
                self._mark(True, str(exc))
        if self.fallback is None:
            raise EngineUnavailable(self.fallback_reason or "engine unavailable")
        return await self.fallback.inspect(container_id)

    def events(self) -> AsyncIterator[ContainerEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ContainerEvent]:
        while True:
            stream = self.primary.events()
            try:
                async for event in stream:
                    if self.degraded:
                        self._mark(False)
                    yield event
                return
            except EngineUnavailable as exc:
                self._mark(True, str(exc))
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
            # subscribe to the fallback before announcing it, so the agent's re-list and the stream overlap
            fallback_stream = self.fallback.events() if self.fallback is not None else None
            yield self._marker("degraded")
            async for event in self._until_primary_back(fallback_stream):
                yield event
            self._mark(False)
            yield self._marker("resync")

    def _marker(self, kind: str) -> ContainerEvent:
        return ContainerEvent(
            kind=kind,  # type: ignore[arg-type]
            engine=self.primary.name,
            id="",
            when=datetime.now(UTC),
            source=self.fallback_reason or "",
        )

    async def _until_primary_back(
        self, fallback_stream: AsyncIterator[ContainerEvent] | None
    ) -> AsyncIterator[ContainerEvent]:
        """Fallback events until the primary answers ``version()`` again (exponential backoff)."""
        queue: asyncio.Queue[ContainerEvent | None] = asyncio.Queue(10_000)

        async def pump_fallback() -> None:
            if fallback_stream is None:
                return
            try:
                async for event in fallback_stream:
                    await queue.put(event)
            finally:
                with contextlib.suppress(Exception):
                    await fallback_stream.aclose()  # type: ignore[attr-defined]

        async def reconnect() -> None:
            delay = self.backoff_initial
            while True:
                await asyncio.sleep(delay)
                try:
                    await self.primary.version()
                except EngineUnavailable:
                    self.reconnects += 1
                    if self.metrics is not None:
                        self.metrics.reconnect(self.primary.name, "failed")
                    delay = min(self.backoff_max, delay * 2)
                    continue
                if self.metrics is not None:
                    self.metrics.reconnect(self.primary.name, "ok")
                await queue.put(None)
                return

        tasks = [asyncio.create_task(pump_fallback()), asyncio.create_task(reconnect())]
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.primary.aclose()
        if self.fallback is not None:
            await self.fallback.aclose()
