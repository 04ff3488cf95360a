"""Optional OpenTelemetry tracing (extra ``zastava[otel]``).

``span("observe", pid=…)`` opens a span when tracing was enabled with :func:`enable_tracing` and the SDK is
installed; otherwise it costs one function call and does nothing. The spans of spec §8: observe → batch → post
(observer) and request → resolve → respond (webhook).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["enable_tracing", "span", "tracing_enabled", "use_tracer"]

_tracer: Any = None


def enable_tracing(service_name: str, exporter: Any = None) -> bool:
    """Install a tracer provider. ``exporter`` defaults to OTLP when available, else console.

    Returns False when the OpenTelemetry SDK is not installed.
    """
    global _tracer
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        except ImportError:
            exporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = provider.get_tracer("zastava")
    return True


def use_tracer(tracer: Any) -> None:
    """Use an already built tracer (tests pass one with an in-memory exporter)."""
    global _tracer
    _tracer = tracer


def tracing_enabled() -> bool:
    return _tracer is not None


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name) as current:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(
                    key, value if isinstance(value, str | int | float | bool) else str(value)
                )
        yield current
