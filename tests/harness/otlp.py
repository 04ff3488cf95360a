"""An OTLP/HTTP traces receiver for tests: ``POST /v1/traces`` with an ``ExportTraceServiceRequest``
(protobuf, as the OpenTelemetry exporters send it), decoded with the official ``opentelemetry-proto``
messages and kept in memory.

Why not a collector: no OpenTelemetry Collector (or Jaeger) can be installed on this machine (no Go
toolchain, no binary in the package registries). The exporter under test is the real one; only the far end
is this small server, which answers exactly what a collector answers (an empty
``ExportTraceServiceResponse``, HTTP 200).
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.harness.servers import ThreadedServer


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    links: list[tuple[str, str]]  # (trace id, span id)
    service: str
    resource: dict[str, Any]
    scope: str
    scope_version: str


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attrs(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


@dataclass
class OtlpReceiver:
    server: ThreadedServer = field(default_factory=lambda: ThreadedServer(None))
    spans: list[ReceivedSpan] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> OtlpReceiver:
        self.server.app = Starlette(routes=[Route("/v1/traces", self._traces, methods=["POST"])])
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    async def _traces(self, request: Request) -> Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        data = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            data = gzip.decompress(data)
        message = ExportTraceServiceRequest()
        message.ParseFromString(data)
        received = []
        for resource_spans in message.resource_spans:
            resource = _attrs(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes=_attrs(span.attributes),
                            links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                            service=str(resource.get("service.name")),
                            resource=resource,
                            scope=scope_spans.scope.name,
                            scope_version=scope_spans.scope.version,
                        )
                    )
        with self._lock:
            self.spans.extend(received)
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    def named(self, name: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.name == name]

    def wait_for(self, *names: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.named(name) for name in names):
            with self._lock:
                seen = sorted({s.name for s in self.spans})
            assert time.monotonic() < deadline, f"spans {names} not all received; got {seen}"
            time.sleep(0.1)
