"""The OpenAPI 3.1 document of the backend (``GET /openapi.json``), built from the contract models.

Also defines the backend's own response shapes (query pages, errors) so the document and the handlers agree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..contracts import (
    SCHEMA_VERSIONS_HEADER,
    AdmissionDecisionEnvelope,
    CatalogEntry,
    IngestResponse,
    RuntimeEventEnvelope,
    RuntimePolicyRequest,
    RuntimePolicyResponse,
)
from ..contracts.base import ContractModel, OptionalField, UtcDatetime
from .catalog import CatalogPut

__all__ = ["DecisionPage", "DeltaScan", "DeltaScanPage", "ErrorBody", "EventPage", "StoredEvent", "document"]


class ErrorBody(ContractModel):
    error: str = Field(description="what is wrong, fit for logs")
    status: int


class StoredEvent(ContractModel):
    received_at: UtcDatetime
    envelope: dict[str, Any] = Field(description="the runtime-event envelope exactly as received")
    correlation: dict[str, Any] | None = OptionalField(
        description="catalog facts at ingest time, usedComponents, deltaScan reason"
    )


class EventPage(ContractModel):
    items: list[StoredEvent]
    total: int = Field(ge=0, description="events matching the filters (all pages)")
    next_cursor: str | None = OptionalField()


class DeltaScan(ContractModel):
    image: str
    reason: Literal["unknown-image", "no-sbom", "unpinned-image"] | str
    status: Literal["pending", "done"] | str
    requested_at: UtcDatetime
    last_requested_at: UtcDatetime
    count: int = Field(ge=1, description="ingest requests that asked for it")
    last_event_id: str | None = OptionalField()


class DeltaScanPage(ContractModel):
    items: list[DeltaScan]
    total: int = Field(ge=0)
    next_cursor: str | None = OptionalField()


class StoredDecision(ContractModel):
    received_at: UtcDatetime
    envelope: dict[str, Any] = Field(description="the admission-decision envelope exactly as received")


class DecisionPage(ContractModel):
    items: list[StoredDecision]
    total: int = Field(ge=0)
    next_cursor: str | None = OptionalField()


_MODELS: list[type[BaseModel]] = [
    RuntimeEventEnvelope,
    AdmissionDecisionEnvelope,
    IngestResponse,
    RuntimePolicyRequest,
    RuntimePolicyResponse,
    CatalogPut,
    CatalogEntry,
    EventPage,
    DeltaScanPage,
    DecisionPage,
    ErrorBody,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel] | dict[str, Any], description: str) -> dict[str, Any]:
    schema = model if isinstance(model, dict) else _ref(model)
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request (message names the problem)",
        401: "Not authenticated",
        403: "Forbidden (tenant or scope)",
        404: "Not found",
        413: "Body, decompressed body or envelope count too large",
        415: "Unsupported Content-Encoding",
        429: "Rate cap reached; retry after Retry-After seconds",
        503: "Store unavailable (nothing stored); retry after Retry-After seconds",
        504: "The simulation took longer than simulationTimeoutSeconds",
    }
    out = {str(code): _json(ErrorBody, text[code]) for code in codes}
    for code in (429, 503):
        if code in codes:
            out[str(code)]["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    return out


def _rejected_or_error(description: str) -> dict[str, Any]:
    schema = {"oneOf": [_ref(IngestResponse), _ref(ErrorBody)]}
    return {"400": _json(schema, description)}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "page size"),
    _query("cursor", {"type": "string"}, "nextCursor of the previous page"),
]
_DIGEST_PARAM = {
    "name": "digest",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
}


def document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "serialization") for m in _MODELS],
        by_alias=True,
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = defs.get("$defs", {})
    events_body = {
        "description": "JSON array of runtime-event envelopes, or ND-JSON (one envelope per line); "
        "Content-Encoding: gzip accepted",
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": _ref(RuntimeEventEnvelope)}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
    decisions_body = {
        "description": "one admission-decision envelope, a JSON array of them, or ND-JSON",
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _ref(AdmissionDecisionEnvelope),
                        {"type": "array", "items": _ref(AdmissionDecisionEnvelope)},
                    ]
                }
            }
        },
    }
    plain = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
    paths: dict[str, Any] = {
        "/healthz": {"get": {"operationId": "healthz", "responses": {"200": _json(plain, "alive")}}},
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "responses": {"200": _json(plain, "store reachable and migrated"), **_errors(503)},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/v1/scanner/runtime/events": {
            "post": {
                "operationId": "ingestRuntimeEvents",
                "requestBody": events_body,
                "responses": {
                    "200": _json(IngestResponse, "stored (bad envelopes listed in rejected)"),
                    "202": _json(
                        IngestResponse, "stored; delta scans requested for unknown images / no SBOM"
                    ),
                    **_errors(401, 403, 413, 415, 429, 503),
                    **_rejected_or_error(
                        "body unreadable (ErrorBody), or every envelope rejected (IngestResponse)"
                    ),
                },
            },
            "get": {
                "operationId": "listRuntimeEvents",
                "parameters": [
                    _query("tenant", {"type": "string"}, "must be the caller's tenant"),
                    _query("node", {"type": "string"}, "node name"),
                    _query("namespace", {"type": "string"}, "Kubernetes namespace"),
                    _query("kind", {"type": "string"}, "event kind, e.g. CONTAINER_START"),
                    _query("image", {"type": "string"}, "image digest or reference"),
                    _query("since", {"type": "string", "format": "date-time"}, "event time at or after"),
                    *_PAGING,
                ],
                "responses": {"200": _json(EventPage, "newest first"), **_errors(400, 401, 403, 503)},
            },
        },
        "/api/v1/scanner/policy/runtime": {
            "post": {
                "operationId": "runtimePolicy",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(RuntimePolicyRequest)}},
                },
                "responses": {
                    "200": _json(RuntimePolicyResponse, "per-image verdicts (spec §5.2)"),
                    **_errors(400, 401, 403, 413, 415, 503),
                },
            }
        },
        "/api/v1/scanner/policy/simulations": {
            "post": {
                "operationId": "simulatePolicy",
                "description": "Replay a candidate admission configuration through the webhook's gates"
                " against the running workloads and the recorded admission requests (docs/console.md).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["config"],
                                "properties": {
                                    "config": {"type": "string", "description": "candidate YAML"},
                                    "baseline": {"type": "string", "description": "compare with this YAML"},
                                    "days": {"type": "integer", "minimum": 1, "maximum": 366, "default": 7},
                                    "include": {
                                        "type": "array",
                                        "items": {"type": "string", "enum": ["workloads", "requests"]},
                                        "minItems": 1,
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"type": "object"}, "the simulation report"),
                    **_errors(401, 403, 413, 415, 429, 503, 504),
                    "400": _json(
                        {
                            "type": "object",
                            "required": ["error", "status"],
                            "properties": {
                                "error": {"type": "string"},
                                "status": {"type": "integer"},
                                "errors": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "path": {"type": "string"},
                                            "message": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                        "Bad request; errors[] names each key path of an invalid configuration",
                    ),
                },
            }
        },
        "/api/v1/scanner/console/login-links": {
            "post": {
                "operationId": "createConsoleLoginLink",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["url", "expiresAt", "tenant", "subject"],
                            "properties": {
                                "url": {"type": "string"},
                                "expiresAt": {"type": "string"},
                                "tenant": {"type": "string"},
                                "subject": {"type": "string"},
                            },
                        },
                        "a one-time console login link for the caller",
                    ),
                    **_errors(401, 403, 503),
                },
            }
        },
        "/api/v1/scanner/catalog/images/{digest}": {
            "put": {
                "operationId": "putCatalogImage",
                "parameters": [_DIGEST_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(CatalogPut)}},
                },
                "responses": {
                    "200": _json(CatalogEntry, "the stored catalog entry"),
                    **_errors(400, 401, 403, 413, 415, 503),
                },
            },
            "get": {
                "operationId": "getCatalogImage",
                "parameters": [_DIGEST_PARAM],
                "responses": {
                    "200": _json(CatalogEntry, "usage SBOM view"),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
        "/api/v1/scanner/delta-scans": {
            "get": {
                "operationId": "listDeltaScans",
                "parameters": [
                    _query("status", {"type": "string", "enum": ["pending", "done"]}, "filter"),
                    *_PAGING,
                ],
                "responses": {"200": _json(DeltaScanPage, "newest first"), **_errors(400, 401, 403, 503)},
            }
        },
        "/api/v1/scanner/admission/decisions": {
            "post": {
                "operationId": "ingestAdmissionDecisions",
                "requestBody": decisions_body,
                "responses": {
                    "200": _json(IngestResponse, "stored (bad envelopes listed in rejected)"),
                    **_errors(401, 403, 413, 415, 503),
                    **_rejected_or_error(
                        "body unreadable (ErrorBody), or every envelope rejected (IngestResponse)"
                    ),
                },
            },
            "get": {
                "operationId": "listAdmissionDecisions",
                "parameters": [
                    _query("namespace", {"type": "string"}, "namespace"),
                    _query("decision", {"type": "string", "enum": ["Allow", "Deny"]}, "decision"),
                    _query("since", {"type": "string", "format": "date-time"}, "received at or after"),
                    *_PAGING,
                ],
                "responses": {"200": _json(DecisionPage, "newest first"), **_errors(400, 401, 403, 503)},
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Zastava reference backend",
            "version": __version__,
            "description": f"Every response carries the {SCHEMA_VERSIONS_HEADER} header listing the accepted "
            "schema versions.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
