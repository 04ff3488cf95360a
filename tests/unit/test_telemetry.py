"""Structured logging, metrics of spec §8, tracing helper."""

from __future__ import annotations

import io
import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from zastava.telemetry import SPEC_NAMES, ZastavaMetrics, configure_logging, fields, span, tracing


def test_json_logs_carry_scope_tags_and_fields_and_redact_secrets() -> None:
    stream = io.StringIO()
    configure_logging("INFO", static_scope={"plane": "runtime"}, common={"cluster": "c1"}, stream=stream)
    log = logging.getLogger("zastava.test")
    log.info(
        "posted", extra=fields(node="n1", count=3, token="eyJhbGciOi", headers={"Authorization": "Bearer x"})
    )
    log.debug("hidden")
    record = json.loads(stream.getvalue().strip())
    assert record["msg"] == "posted" and record["level"] == "info" and record["logger"] == "zastava.test"
    assert record["plane"] == "runtime" and record["cluster"] == "c1"
    assert record["node"] == "n1" and record["count"] == 3
    assert record["token"] == "***" and record["headers"]["Authorization"] == "***"
    assert record["ts"].endswith("Z")
    assert "hidden" not in stream.getvalue()


def test_every_spec_metric_is_exposed_under_its_prometheus_name() -> None:
    metrics = ZastavaMetrics(common_tags={"cluster": "c1"})
    metrics.events_total.labels(kind="CONTAINER_START").inc()
    metrics.backend_latency_ms.labels(endpoint="events").observe(3.2)
    metrics.backend_latency_ms.labels(endpoint="policy").observe(1.0)
    metrics.proc_maps_samples.labels(result="ok").inc()
    metrics.entrytrace_depth.observe(3)
    metrics.hash_bytes.inc(1024)
    metrics.buffer_drops.inc(2)
    metrics.admission_decisions.labels(decision="Allow").inc()
    metrics.admission_cache_hits.inc()
    metrics.backend_failures.labels(endpoint="policy").inc()
    text = metrics.render().decode()
    samples = {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}
    for spec_name, prom_name in SPEC_NAMES.items():
        name = prom_name + ("_count" if spec_name.endswith((".ms", ".depth")) else "")
        assert name in samples, f"{spec_name} missing as {name}"
        assert samples[name].labels.get("cluster") == "c1"
    assert samples["zastava_buffer_drops_total"].value == 2
    assert samples["zastava_hash_bytes_total"].value == 1024


def test_span_is_a_no_op_without_tracing_and_records_with_it() -> None:
    with span("observe", pid=1) as current:
        assert current is None
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer(provider.get_tracer("test"))
    try:
        with span("observe", pid=7, node="n1"), span("batch"):
            pass
    finally:
        tracing.use_tracer(None)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"observe", "batch"}
    assert spans["observe"].attributes["pid"] == 7
    assert spans["batch"].parent.span_id == spans["observe"].context.span_id


def test_unlabelled_metrics_work_with_and_without_common_tags() -> None:
    for tags in ({}, {"cluster": "c1"}):
        metrics = ZastavaMetrics(common_tags=tags)
        metrics.hash_bytes.inc(5)
        metrics.buffer_drops.inc()
        metrics.entrytrace_depth.observe(2)
        text = metrics.render().decode()
        samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples["zastava_hash_bytes_total"] == 5
        assert samples["zastava_buffer_drops_total"] == 1
        assert samples["zastava_entrytrace_depth_count"] == 1
