"""``zastava webhook serve`` as an operator runs it, with tracing on (``runtime.tracing.otlpEndpoint``): the
spans of spec §8 (request → resolve → respond) exported by the real OTLP exporter to a receiver in the test
(``tests/harness/otlp.py``), the decision log line joined to its trace, every line one JSON object with the
deployment scope; and ``mode.webhook: false`` refusing start-up."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from tests.harness import devstack
from tests.harness.devstack import free_port, signing
from tests.harness.devstack.signing import OCI_MANIFEST
from tests.harness.otlp import OtlpReceiver
from tests.harness.polling import wait_ready
from tests.unit.webhook.reviews import body, pod_with, review
from zastava.webhook.certs import generate_certs, write_certs

from .conftest import RealBackend

ZASTAVA = [sys.executable, "-m", "zastava"]
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    try:
        yield server
    finally:
        server.stop()


def config(tmp_path: Path, backend: RealBackend, port: int, **extra: object) -> Path:
    write_certs(generate_certs(extra_dns=["localhost"], ip_addresses=["127.0.0.1"]), tmp_path / "tls")
    data: dict[str, object] = {
        "backend": {"baseAddress": backend.url, "allowInsecureHttp": True, "requestTimeoutSeconds": 2},
        "runtime": {
            "environment": "staging",
            "deployment": "cluster-b",
            "authority": {"requireMutualTls": False},
        },
        "admission": {"failOpenNamespaces": ["dev"], "resolveTags": False},
        "webhook": {
            "listen": f"127.0.0.1:{port}",
            "certPath": str(tmp_path / "tls" / "tls.crt"),
            "keyPath": str(tmp_path / "tls" / "tls.key"),
        },
    }
    for key, value in extra.items():
        section = data.setdefault(key, {})
        assert isinstance(section, dict) and isinstance(value, dict)
        section.update(value)
    path = tmp_path / "webhook.yaml"
    path.write_text(yaml.safe_dump({"zastava": data}))
    return path


def signed_image(backend: RealBackend, registry: devstack.RegistryServer) -> str:
    """A one-layer OCI image pushed to the loopback registry and signed with the backend's trusted key (the
    backend verifies signatures; a catalog flag is never a signature)."""
    pusher = signing.OciPusher(registry.url)
    try:
        layer = pusher.blob("telemetry/app", b"layer", "application/vnd.oci.image.layer.v1.tar")
        config = pusher.blob("telemetry/app", b'{"architecture":"amd64","os":"linux"}', OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}
        digest = pusher.manifest("telemetry/app", "1", manifest, OCI_MANIFEST)
    finally:
        pusher.close()
    pinned = f"{registry.host}/telemetry/app@{digest}"
    backend.sign(pinned)
    return pinned


def test_request_resolve_respond_spans_and_json_logs(
    tmp_path: Path, real_backend: RealBackend, registry: devstack.RegistryServer, receiver: OtlpReceiver
) -> None:
    port = free_port()
    path = config(
        tmp_path,
        real_backend,
        port,
        runtime={
            "environment": "staging",
            "deployment": "cluster-b",
            "authority": {"requireMutualTls": False},
            "tracing": {"otlpEndpoint": receiver.url},
        },
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*ZASTAVA, "webhook", "serve", "--config", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")},
        )
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.crt"))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=5) as client:
            wait_ready(client, process, log_path)
            pinned = signed_image(real_backend, registry)
            real_backend.put_catalog(pinned.split("@")[1], sbom=True)
            document = review(pod_with({"a": pinned}))
            answer = client.post("/admit?timeout=5s", content=body(document))
            assert orjson.loads(answer.content)["response"]["allowed"] is True, answer.content
            metrics = client.get("/metrics").text
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(20) == 0, log_path.read_text()
    receiver.wait_for("request", "resolve", "respond")
    uid = document["request"]["uid"]
    request = next(s for s in receiver.named("request") if s.attributes["uid"] == uid)
    resolve = next(s for s in receiver.named("resolve") if s.parent_span_id == request.span_id)
    respond = next(s for s in receiver.named("respond") if s.parent_span_id == request.span_id)
    assert resolve.trace_id == respond.trace_id == request.trace_id
    assert request.service == "zastava-webhook" and request.scope == "StellaOps.Zastava"
    assert request.resource["deployment.environment"] == "staging"
    assert 'zastava_meter_info{component="webhook",meter="StellaOps.Zastava",version="1.0.0"} 1.0' in metrics

    lines = [orjson.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    for line in lines:
        assert line["component"] == "webhook", line
        assert (line["environment"], line["deployment"]) == ("staging", "cluster-b"), line
    decision = next(line for line in lines if line["msg"] == "admission decision")
    assert decision["traceId"] == request.trace_id


def test_mode_webhook_false_refuses_start_up(tmp_path: Path, real_backend: RealBackend) -> None:
    path = config(tmp_path, real_backend, free_port(), mode={"webhook": False})
    result = subprocess.run(
        [*ZASTAVA, "webhook", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "zastava.mode.webhook: false: this configuration does not run the webhook" in result.stderr
