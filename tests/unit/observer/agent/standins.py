"""TEMPORARY stand-ins for modules being built on other branches, used only by the observer-agent tests.

* :class:`StaticTracer` stands in for EntryTrace (``zastava.observer.entrytrace.trace_entrypoint``): it maps a
  known entrypoint argv to the terminal programs the test states. Delete once EntryTrace lands; the agent then
  uses ``tracer_from_function(trace_entrypoint, ...)``.
* :func:`policy_app` stands in for the reference backend's ``POST /api/v1/scanner/policy/runtime`` and
  ``GET /api/v1/scanner/catalog/images/{digest}`` (spec §5.2): a Starlette app answering from a dict. Delete
  once
  the reference backend lands; tests then run against it.
* :class:`Collector` is the ``publish`` coroutine of the tests (the durable publisher is on another branch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zastava.contracts import EntryTraceStep, RuntimeEvent
from zastava.observer.engines.base import ContainerInfo
from zastava.observer.rootfs import RootFS


@dataclass(frozen=True)
class TraceResult:
    steps: Sequence[EntryTraceStep]
    terminals: Sequence[str]
    confidence: int
    ambiguous: bool = False


class StaticTracer:
    """TEMPORARY (until EntryTrace lands): entrypoint argv → stated terminals."""

    def __init__(self, table: Mapping[tuple[str, ...], Sequence[str]]) -> None:
        self.table = dict(table)
        self.calls: list[tuple[tuple[str, ...], str]] = []

    async def trace(self, info: ContainerInfo, root: RootFS) -> TraceResult | None:
        self.calls.append((info.entrypoint, str(root.root)))
        terminals = self.table.get(info.entrypoint)
        if terminals is None:
            return None
        steps = [EntryTraceStep(file=info.entrypoint[0], op="exec", target=t) for t in terminals]
        return TraceResult(steps=steps, terminals=list(terminals), confidence=90)


@dataclass
class Collector:
    """The tests' ``publish``: keeps events and wakes waiters."""

    events: list[RuntimeEvent] = field(default_factory=list)
    fail: bool = False
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(self, event: RuntimeEvent) -> None:
        if self.fail:
            raise ConnectionError("publisher down")
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[RuntimeEvent], bool], timeout: float = 10) -> RuntimeEvent:  # noqa: ASYNC109
        async def scan() -> RuntimeEvent:
            async with self._changed:
                while True:
                    for event in self.events:
                        if predicate(event):
                            return event
                    await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)


def policy_app(
    results: dict[str, dict[str, Any]],
    catalog: dict[str, Any] | None = None,
    revision: str = "rev-1",
    ttl: int = 300,
) -> Starlette:
    """TEMPORARY (until the reference backend lands): ``/policy/runtime`` answering from ``results``
    (image ref → ImagePolicy wire dict; unknown images get ``fail``) and the catalog from ``catalog``."""
    state = {"revision": revision, "calls": 0}

    async def policy(request: Request) -> Response:
        body = await request.json()
        state["calls"] += 1
        out = {
            image: results.get(
                image,
                {"signed": False, "hasSbom": False, "policyVerdict": "fail", "reasons": ["unknown image"]},
            )
            for image in body["images"]
        }
        return JSONResponse({"ttlSeconds": ttl, "results": out, "policyRevision": state["revision"]})

    async def image(request: Request) -> Response:
        entry = (catalog or {}).get(request.path_params["digest"])
        if entry is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(entry)

    app = Starlette(
        routes=[
            Route("/api/v1/scanner/policy/runtime", policy, methods=["POST"]),
            Route("/api/v1/scanner/catalog/images/{digest}", image, methods=["GET"]),
        ]
    )
    app.state.policy_state = state
    return app
