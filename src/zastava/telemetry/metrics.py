"""The metrics of spec §8, defined once.

Spec names use dots (``zastava.runtime.events.total``); Prometheus exposes them with underscores
(``zastava_runtime_events_total``). ``SPEC_NAMES`` maps one to the other. Every metric carries the configured
``commonTags`` as labels. Each component builds one :class:`ZastavaMetrics` on its own registry (tests build
fresh ones); :func:`default_metrics` is the process-wide instance served on ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.metrics import MetricWrapperBase

__all__ = [
    "SPEC_NAMES",
    "Bound",
    "ZastavaMetrics",
    "default_metrics",
    "multiprocess_mode",
    "render",
    "reset_default_metrics",
]


def multiprocess_mode() -> bool:
    """True when prometheus-client keeps values in ``PROMETHEUS_MULTIPROC_DIR`` files (decided when it was
    first imported: the webhook's worker processes, :mod:`zastava.webhook.workers`)."""
    return values.ValueClass is not values.MutexValue


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
        if not self._common and not labels and not self.metric._labelnames:
            return self.metric  # a metric without any label is its own child
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
            # several processes (webhook workers): the sum over the live ones, like one process's value
            gauge = Gauge(name, doc, (*common, *labels), registry=self.registry, multiprocess_mode="livesum")
            return Bound(gauge, self.common_tags)

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
        self.exec_drops = counter(
            "zastava_drift_exec_drops",
            "Exec records not judged: queue (the judge fell behind), kernel (socket buffer overflow)",
            ("reason",),
        )
        self.hash_bytes = counter("zastava_hash_bytes", "Bytes hashed (sha256) by the observer")
        self.buffer_drops = counter(
            "zastava_buffer_drops", "Events dropped from the disk ring buffer past its cap"
        )
        # Observer event publisher (beyond spec §8)
        self.buffer_bytes = gauge("zastava_buffer_bytes", "Bytes of the disk ring buffer in use")
        self.buffer_pending = gauge(
            "zastava_buffer_pending_events", "Events in the disk buffer not yet acknowledged by the backend"
        )
        self.buffer_corrupt = counter(
            "zastava_buffer_corrupt_records", "Torn or corrupt disk-buffer records skipped"
        )
        self.events_delivered = counter(
            "zastava_runtime_events_delivered", "Runtime events acknowledged by the backend"
        )
        self.events_rejected = counter(
            "zastava_runtime_events_rejected", "Runtime events refused by the backend (400/413) and skipped"
        )
        self.events_coalesced = counter(
            "zastava_runtime_events_coalesced", "Repeated identical events folded into one by the rate limit"
        )
        self.events_limited = counter(
            "zastava_runtime_events_limited",
            "Events past the local rate limit, by outcome (queued, dropped: perNodeQueue full)",
            ("outcome",),
        )
        self.limit_queue = gauge(
            "zastava_runtime_events_limit_queue", "Distinct events waiting in the rate-limit queue"
        )
        # Webhook (spec §8)
        self.admission_decisions = counter(
            "zastava_admission_decisions", "Admission decisions, by decision", ("decision",)
        )
        self.admission_cache_hits = counter("zastava_admission_cache_hits", "Admission cache hits")
        self.backend_failures = counter(
            "zastava_backend_failures", "Failed backend calls, by endpoint", ("endpoint",)
        )

        # Reference Authority (beyond spec §8): tokens by client and result ("issued" or the OAuth error code
        # of the refusal) and token/JWKS/discovery latency like the backend's request latency
        self.authority_tokens = counter(
            "zastava_authority_tokens",
            "Token requests, by client (configured ids; others 'unknown') and result (issued, or the OAuth "
            "error of the refusal)",
            ("client", "result"),
        )
        self.authority_latency_ms = histogram(
            "zastava_authority_request_latency_ms",
            "Authority request latency in ms, by endpoint",
            ("endpoint",),
            LATENCY_MS_BUCKETS,
        )

    def describe(self, component: str, meter_name: str, meter_version: str) -> None:
        """``zastava_meter_info{component, meter, version} 1``: which component and meter (spec §6
        ``runtime.metrics.meterName``/``meterVersion``) these series come from; plus the process metrics
        (``process_resident_memory_bytes``, CPU, open fds) of the serving process."""
        if getattr(self, "_described", False):
            return
        from prometheus_client import ProcessCollector

        info = Gauge(
            "zastava_meter_info",
            "The component and meter (runtime.metrics.meterName/meterVersion) of these metrics",
            (*self.common_tags, "component", "meter", "version"),
            registry=self.registry,
            multiprocess_mode="max",  # 1 however many workers
        )
        info.labels(**self.common_tags, component=component, meter=meter_name, version=meter_version).set(1)
        if not multiprocess_mode():  # one worker's memory and CPU are not the webhook's
            ProcessCollector(registry=self.registry)
        self._described = True

    def render(self) -> bytes:
        """The exposition text; in multiprocess mode the sum over every process's files (any worker's
        ``/metrics`` answers for all of them)."""
        if multiprocess_mode():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
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
