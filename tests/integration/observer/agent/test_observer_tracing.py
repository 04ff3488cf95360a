"""OpenTelemetry tracing of ``zastava observer run``, switched on by ``runtime.tracing.otlpEndpoint``: the
spans of spec §8 (observe → batch → post) exported over OTLP/HTTP by the real exporter to a receiver in the
test (``tests/harness/otlp.py``: no collector can be installed here), and the log lines written inside a
span carrying its ids (``runtime.logging.includeActivityTracking``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import devstack
from tests.harness.otlp import OtlpReceiver
from tests.integration.observer.agent.test_agent_backend_e2e import Agent, of, run_container, wait_stored
from tests.integration.observer.agent.test_observer_endpoint import json_lines, wait_metric
from tests.integration.observer.publisher.real_backend import BackendProcess


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    try:
        yield server
    finally:
        server.stop()


def test_observe_batch_post_spans_and_log_correlation(
    docker_engine: devstack.DockerEngine,
    pushed_dynamic: str,
    receiver: OtlpReceiver,
    tmp_path: Path,
) -> None:
    backend = BackendProcess(tmp_path / "backend")
    agent = Agent(
        tmp_path / "agent",
        docker_engine,
        backend.url,
        runtime_extra=f"    tracing: {{otlpEndpoint: '{receiver.url}'}}\n",
    )
    container = None
    try:
        wait_metric(agent, "zastava_meter_info", 1)
        container = run_container(docker_engine, pushed_dynamic)
        # the backend is down: the posture lookup fails inside the observe span, the first post too
        wait_metric(agent, "zastava_backend_failures_total", 1, endpoint="events")
        backend.start()
        wait_stored(backend, of(container.id, "CONTAINER_START"), 30, agent)
    finally:
        if container is not None:
            container.remove(force=True)
        agent.stop()  # SIGTERM: the exporter sends what it holds
        backend.stop()
    assert agent.proc.returncode == 0, agent.log.read_text()[-3000:]
    receiver.wait_for("observe", "observe.publish", "batch", "post")

    observe = next(
        s for s in receiver.named("observe") if s.attributes["container"] == f"docker://{container.id}"
    )
    publish = next(
        s
        for s in receiver.named("observe.publish")
        if s.trace_id == observe.trace_id and s.attributes["kind"] == "CONTAINER_START"
    )
    assert publish.parent_span_id == observe.span_id
    batch = next(s for s in receiver.named("batch") if (publish.trace_id, publish.span_id) in s.links)
    post = next(s for s in receiver.named("post") if s.parent_span_id == batch.span_id)
    assert post.trace_id == batch.trace_id and post.attributes["events"] >= 1
    for span in (observe, publish, batch, post):
        assert span.service == "zastava-observer"
        assert (span.scope, span.scope_version) == ("StellaOps.Zastava", "1.0.0")  # runtime.metrics.meter*
        assert span.resource["deployment.environment"] == "e2e"
        assert span.resource["zastava.tenant"] == "tenant-01"

    in_observe = [line for line in json_lines(agent) if line.get("traceId") == observe.trace_id]
    assert any(line["logger"] == "zastava.observer.posture" for line in in_observe), in_observe
    assert all(len(str(line["spanId"])) == 16 for line in in_observe)


def test_without_activity_tracking_log_lines_carry_no_trace_ids(
    docker_engine: devstack.DockerEngine, pushed_dynamic: str, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    backend = BackendProcess(tmp_path / "backend")  # never started: posture lookups fail and are logged
    agent = Agent(
        tmp_path / "agent",
        docker_engine,
        backend.url,
        runtime_extra=f"    tracing: {{otlpEndpoint: '{receiver.url}'}}\n",
        activity_tracking=False,
    )
    container = None
    try:
        wait_metric(agent, "zastava_meter_info", 1)
        container = run_container(docker_engine, pushed_dynamic)
        wait_metric(agent, "zastava_backend_failures_total", 1, endpoint="policy")
        time.sleep(0.5)
    finally:
        if container is not None:
            container.remove(force=True)
        agent.stop()
    receiver.wait_for("observe")
    lines = json_lines(agent)
    assert any(line["logger"] == "zastava.observer.posture" for line in lines)
    assert not any("traceId" in line for line in lines)
