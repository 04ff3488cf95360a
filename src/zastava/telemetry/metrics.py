"""The metrics of spec §8, defined once.

Spec names use dots (``zastava.runtime.events.total``); Prometheus exposes them with underscores
(``zastava_runtime_events_total``). ``SPEC_NAMES`` maps one to the other. Every metric carries the configured
``commonTags`` as labels. Each component builds one :class:`ZastavaMetrics` on its own registry (tests build
fresh ones); :func:`default_metrics` is the process-wide instance served on ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

__all__ = ["SPEC_NAMES", "Bound", "ZastavaMetrics", "default_metrics", "render", "reset_default_metrics"]

M = TypeVar("M", bound=MetricWrapperBase)

LATENCY_MS_BUCKETS = (0.5, 1, 2, 4, 8, 16, 32, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
DEPTH_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)

#: spec name → Prometheus sample name
SPEC_NAMES: dict[str, str] = {
    "zastava.runtime.events.total": "zastava_runtime_events_total",
    "zastava.runtime.backend.latency.ms": "zastava_runtime_backend_latency_ms",
    "zastava.proc_maps.samples.total": "zastava_proc_maps_samples_total",
    "zastava.entrytrace.depth": "zastava_entrytrace_depth",
    "zastava.hash.bytes.total": "zastava_hash_bytes_total",
    "zastava.buffer.drops.total": "zastava_buffer_drops_total",
    "zastava.admission.decisions.total": "zastava_admission_decisions_total",
    "zastava.admission.cache.hits.total": "zastava_admission_cache_hits_total",
    "zastava.backend.failures.total": "zastava_backend_failures_total",
}


class Bound(Generic[M]):
    """A metric whose common-tag labels are already filled in."""

    def __init__(self, metric: M, common: Mapping[str, str]) -> None:
        self.metric = metric
        self._common = dict(common)

    def labels(self, **labels: str) -> Any:
        if not labels and not self._common and not getattr(self.metric, "_labelnames", ()):
            return self.metric  # a metric with no label names at all (no common tags configured)
        return self.metric.labels(**self._common, **labels)

    # convenience for metrics without labels of their own
    def inc(self, amount: float = 1) -> None:
        self.labels().inc(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def observe(self, value: float) -> None:
        self.labels().observe(value)


class ZastavaMetrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, common_tags: Mapping[str, str] | None = None
    ):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.common_tags = dict(common_tags or {})
        common = tuple(self.common_tags)

        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Bound[Counter]:
            return Bound(Counter(name, doc, (*common, *labels), registry=self.registry), self.common_tags)

        def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Bound[Gauge]:
            return Bound(Gauge(name, doc, (*common, *labels), registry=self.registry), self.common_tags)

        def histogram(
            name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]
        ) -> Bound[Histogram]:
            return Bound(
                Histogram(name, doc, (*common, *labels), buckets=buckets, registry=self.registry),
                self.common_tags,
            )

        # Observer (spec §8)
        self.events_total = counter("zastava_runtime_events", "Runtime events produced, by kind", ("kind",))
        self.backend_latency_ms = histogram(
            "zastava_runtime_backend_latency_ms",
            "Backend call latency in ms",
            ("endpoint",),
            LATENCY_MS_BUCKETS,
        )
        self.proc_maps_samples = counter(
            "zastava_proc_maps_samples", "Samples of /proc/<pid>/maps, by result", ("result",)
        )
        self.entrytrace_depth = histogram(
            "zastava_entrytrace_depth", "Depth of EntryTrace exec chains", (), DEPTH_BUCKETS
        )
        self.hash_bytes = counter("zastava_hash_bytes", "Bytes hashed (sha256) by the observer")
        self.buffer_drops = counter(
            "zastava_buffer_drops", "Events dropped from the disk ring buffer past its cap"
        )
        # Webhook (spec §8)
        self.admission_decisions = counter(
            "zastava_admission_decisions", "Admission decisions, by decision", ("decision",)
        )
        self.admission_cache_hits = counter("zastava_admission_cache_hits", "Admission cache hits")
        self.backend_failures = counter(
            "zastava_backend_failures", "Failed backend calls, by endpoint", ("endpoint",)
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


_default: ZastavaMetrics | None = None


def default_metrics(common_tags: Mapping[str, str] | None = None) -> ZastavaMetrics:
    """The process-wide metrics; the first call fixes the common tags."""
    global _default
    if _default is None:
        _default = ZastavaMetrics(common_tags=common_tags)
    return _default


def reset_default_metrics() -> None:
    global _default
    _default = None


def render(metrics: ZastavaMetrics | None = None) -> bytes:
    return (metrics or default_metrics()).render()
