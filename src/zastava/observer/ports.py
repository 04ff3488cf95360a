"""The observer agent's parts as Protocols, and the adapters that make the real modules fit them.

:class:`~zastava.observer.agent.ObserverAgent` depends only on these shapes, so a test drops in a table of
containers or a stated trace, and the agent's logic never imports the modules that do the work:

* the engine — :class:`~.engines.base.ContainerEngine` (Docker, CRI, log tail, pod metadata). What an
  engine can tell is *declared* (:class:`~.engines.base.EngineCapabilities`, ``degraded``,
  ``fallback_reason``, ``ping``), not probed with ``getattr``;
* :class:`Inspector` — a live process: loaded libs, hashes, build-id (:func:`.inspect.inspect_process`
  through :func:`inspector_from_function`);
* :class:`EntryTracer` — EntryTrace: the entrypoint's exec chain and terminal programs
  (:func:`.entrytrace.trace_entrypoint` through :func:`tracer_from_function` and :func:`entrytrace_view`);
* :class:`PostureSource` — the backend's ``/policy/runtime`` answer and an image's usage-SBOM paths
  (:class:`.posture_client.BackendPosture`);
* :data:`Publish` — where events go (the durable publisher's ``publish`` coroutine).

Each missing part is reported by the agent as evidence on the events (``*.unavailable``), never as null.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..contracts import EntryTraceStep, Evidence, ImagePolicy, LoadedLib, Process, RuntimeEvent
from .engines.base import ContainerEngine, ContainerInfo, EngineCapabilities
from .rootfs import RootFS

__all__ = [
    "ContainerEngine",
    "EngineCapabilities",
    "EntryTraceLike",
    "EntryTracer",
    "InspectionLike",
    "Inspector",
    "PostureAnswerLike",
    "PostureSource",
    "Publish",
    "TraceView",
    "entrytrace_view",
    "inspector_from_function",
    "tracer_from_function",
]


@runtime_checkable
class InspectionLike(Protocol):
    """What :func:`zastava.observer.inspect.inspect_process` returns (the fields the agent reads)."""

    @property
    def process(self) -> Process: ...
    @property
    def loaded_libs(self) -> Sequence[LoadedLib]: ...
    @property
    def evidence(self) -> Sequence[Evidence]: ...
    @property
    def exe_path(self) -> str | None: ...
    @property
    def partial(self) -> bool: ...


class Inspector(Protocol):
    async def inspect(self, pid: int) -> InspectionLike | None: ...


@runtime_checkable
class EntryTraceLike(Protocol):
    """What :func:`entrytrace_view` returns (the fields the agent reads)."""

    @property
    def steps(self) -> Sequence[EntryTraceStep]: ...
    @property
    def terminals(self) -> Sequence[str]: ...
    @property
    def confidence(self) -> int: ...
    @property
    def ambiguous(self) -> bool: ...


class EntryTracer(Protocol):
    async def trace(self, info: ContainerInfo, root: RootFS) -> EntryTraceLike | None: ...


class PostureAnswerLike(Protocol):
    @property
    def policy(self) -> ImagePolicy: ...
    @property
    def policy_revision(self) -> str | None: ...


class PostureSource(Protocol):
    """The backend view of an image (see :class:`zastava.observer.posture_client.BackendPosture`)."""

    async def lookup(
        self, image_ref: str, *, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> PostureAnswerLike | None: ...

    async def usage_paths(self, digest: str) -> frozenset[str] | None: ...


Publish = Callable[[RuntimeEvent], Awaitable[None]]


# -------------------------------------------------------------------------------------------- adapters


def inspector_from_function(fn: Callable[..., Any], **kwargs: Any) -> Inspector:
    """Adapt ``inspect_process(pid, *, procfs, max_libs, max_hash_bytes, cache, metrics)`` (blocking) to
    :class:`Inspector`; ``kwargs`` are passed on every call. Runs in a worker thread."""

    class _FunctionInspector:
        async def inspect(self, pid: int) -> InspectionLike | None:
            result: InspectionLike | None = await asyncio.to_thread(fn, pid, **kwargs)
            return result

    return _FunctionInspector()


def tracer_from_function(fn: Callable[..., Any], **kwargs: Any) -> EntryTracer:
    """Adapt ``trace_entrypoint(argv, *, root, env, workdir, user, max_depth, metrics)`` (blocking) to
    :class:`EntryTracer`; ``kwargs`` (max_depth, metrics) are passed on every call. Runs in a worker
    thread."""

    class _FunctionTracer:
        async def trace(self, info: ContainerInfo, root: RootFS) -> EntryTraceLike | None:
            if not info.entrypoint:
                return None
            result: EntryTraceLike | None = await asyncio.to_thread(
                fn,
                list(info.entrypoint),
                root=root,
                env=dict(info.env),
                workdir=info.workdir or "/",
                user=info.user,
                **kwargs,
            )
            return result

    return _FunctionTracer()


@dataclass(frozen=True)
class TraceView:
    """An :class:`~.entrytrace.EntryTraceResult` as the agent reads it: terminals are the drift baseline
    paths (as found and with symlinks resolved inside the root)."""

    steps: Sequence[EntryTraceStep]
    terminals: Sequence[str]
    confidence: int
    ambiguous: bool
    #: the non-resident terminals (the programs pid 1 ends in), and the scripts resident shells run (the
    #: drift baseline: :mod:`.baseline`)
    finals: Sequence[str] = ()
    scripts: Sequence[str] = ()


def entrytrace_view(argv: list[str], **kwargs: Any) -> TraceView:
    """:func:`~.entrytrace.trace_entrypoint` read as :class:`EntryTraceLike` (for
    :func:`tracer_from_function`)."""
    from .entrytrace import trace_entrypoint

    result = trace_entrypoint(argv, **kwargs)
    finals = [p for t in result.programs() for p in (t.path, t.resolved) if p]
    scripts = [
        a for t in result.terminals if t.kind == "shell" and t.argv for a in t.argv[1:] if a.startswith("/")
    ]
    terminals = result.terminal_paths()
    return TraceView(result.steps, terminals, result.confidence, result.ambiguous, finals, scripts)
