"""Telemetry: structured logs, the metrics of spec §8, optional tracing."""

from .logging import configure_logging, event, fields
from .metrics import SPEC_NAMES, ZastavaMetrics, default_metrics
from .setup import settle_heap
from .tracing import enable_tracing, span

__all__ = [
    "SPEC_NAMES",
    "ZastavaMetrics",
    "configure_logging",
    "default_metrics",
    "enable_tracing",
    "event",
    "fields",
    "settle_heap",
    "span",
]
