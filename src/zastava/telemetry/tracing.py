"""OpenTelemetry tracing (extra ``zastava[otel]``; the image installs it).

``span("observe", pid=…)`` opens a span when tracing is on and costs one function call when it is off. The
spans of spec §8: observe → batch → post (observer; a batch links the observe spans of its events, the post
is the batch's child) and request → resolve → respond (webhook).

Tracing is switched on by ``zastava.runtime.tracing.otlpEndpoint`` (:func:`configure_tracing`, called by
the runtime core of every server). The instrumentation scope is ``runtime.metrics.meterName`` /
``meterVersion``, the resource carries the component and the tenant/environment/deployment scope.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..config import Tracing

__all__ = [
    "TracingUnavailable",
    "configure_tracing",
    "current_context",
    "current_ids",
    "enable_tracing",
    "resume",
    "shutdown_tracing",
    "span",
    "tracing_enabled",
    "use_tracer",
]

_tracer: Any = None
_provider: Any = None


class TracingUnavailable(RuntimeError):
    """Tracing is configured but cannot run (the OpenTelemetry SDK or its OTLP exporter is not installed)."""


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL: ``/v1/traces`` appended when ``endpoint`` has no path."""
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def enable_tracing(
    service_name: str,
    exporter: Any,
    *,
    sample_ratio: float = 1.0,
    scope_name: str = "zastava",
    scope_version: str | None = None,
    attributes: Mapping[str, str] | None = None,
    batch: bool = True,
) -> None:
    """Install a tracer provider exporting to ``exporter`` (raises :class:`TracingUnavailable` without the
    SDK). ``batch=False`` exports each span as it ends (tests)."""
    global _tracer, _provider
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
    except ImportError as exc:
        raise TracingUnavailable(
            f"the OpenTelemetry SDK is not installed ({exc.name}): install zastava[otel]"
        ) from None
    shutdown_tracing()
    resource = Resource.create({"service.name": service_name, **(attributes or {})})
    provider = TracerProvider(resource=resource, sampler=ParentBasedTraceIdRatio(sample_ratio))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    _provider = provider
    _tracer = provider.get_tracer(scope_name, scope_version)


def configure_tracing(
    settings: Tracing,
    *,
    component: str,
    scope_name: str,
    scope_version: str,
    attributes: Mapping[str, str],
) -> bool:
    """Tracing as ``zastava.runtime.tracing`` says: False (and nothing installed) when ``otlpEndpoint`` is
    not set; :class:`TracingUnavailable` when it is set but the exporter is not installed."""
    if settings.otlp_endpoint is None:
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise TracingUnavailable(
            f"the OTLP exporter is not installed ({exc.name}): install zastava[otel]"
        ) from None
    exporter = OTLPSpanExporter(
        endpoint=traces_url(settings.otlp_endpoint),
        certificate_file=settings.ca_bundle_path,
        timeout=settings.timeout_seconds,
    )
    enable_tracing(
        f"zastava-{component}",
        exporter,
        sample_ratio=settings.sample_ratio,
        scope_name=scope_name,
        scope_version=scope_version,
        attributes=attributes,
    )
    return True


def shutdown_tracing() -> None:
    """Export what is pending and uninstall (servers call it on the way out)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def use_tracer(tracer: Any) -> None:
    """Use an already built tracer (tests pass one with an in-memory exporter)."""
    global _tracer
    _tracer = tracer


def tracing_enabled() -> bool:
    return _tracer is not None


def current_context() -> Any:
    """The current span's context when tracing is on and a span is recording, else None (for links)."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return context if context.is_valid else None


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for log correlation; None outside a span."""
    context = current_context()
    if context is None:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


@contextmanager
def resume(ended: Any) -> Iterator[None]:
    """Make ``ended`` (a span from :func:`span`, possibly ended) current again, so that the spans opened
    meanwhile are its children; nothing when it is None (tracing off)."""
    if ended is None:
        yield
        return
    from opentelemetry import trace

    with trace.use_span(ended, end_on_exit=False):
        yield


#: what :func:`span` gives without tracing: one reusable no-op (a generator context manager per call cost
#: ~1 µs each, three per admission review)
_NO_SPAN: AbstractContextManager[Any] = nullcontext()


def span(
    name: str, *, links: Sequence[Any] = (), parent: Any = None, **attributes: Any
) -> AbstractContextManager[Any]:
    """A span named ``name``; ``links`` are span contexts (:func:`current_context`) it follows from,
    ``parent`` a span context to start under instead of the current span. Entering it gives the span (None
    without tracing)."""
    if _tracer is None:
        return _NO_SPAN
    return _span(name, links, parent, attributes)


@contextmanager
def _span(name: str, links: Sequence[Any], parent: Any, attributes: dict[str, Any]) -> Iterator[Any]:
    assert _tracer is not None
    from opentelemetry import trace

    context = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent is not None else None
    with _tracer.start_as_current_span(
        name, context=context, links=[trace.Link(link) for link in links if link is not None]
    ) as current:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(
                    key, value if isinstance(value, str | int | float | bool) else str(value)
                )
        yield current
