"""Envelopes: ``{"schemaVersion": "<schema>@vM.m", "<payload>": {...}}`` and their (de)serialisation.

Writing at an older minor drops the fields appended after it; reading refuses unknown majors, and payload
fields that the declared minor does not have, with an error that names them.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, Field, ValidationError

from .admission import AdmissionDecision
from .base import ContractModel
from .runtime_event import KIND_SINCE, RuntimeEvent, kind_known_at
from .versions import (
    ADMISSION_DECISION,
    RUNTIME_EVENT,
    ContractVersionError,
    SchemaVersion,
    versions,
)

__all__ = [
    "AdmissionDecisionEnvelope",
    "EnvelopeError",
    "RuntimeEventEnvelope",
    "dump_runtime_envelope",
    "parse_admission_envelope",
    "parse_runtime_envelope",
    "runtime_envelope_wire",
]

P = TypeVar("P", bound=ContractModel)


class EnvelopeError(ValueError):
    """An envelope could not be read; ``str()`` is a message fit for an API response."""


class RuntimeEventEnvelope(ContractModel):
    schema_version: str = Field(pattern=r"^zastava\.runtime\.event@v\d+\.\d+$")
    event: RuntimeEvent


class AdmissionDecisionEnvelope(ContractModel):
    schema_version: str = Field(pattern=r"^zastava\.admission\.decision@v\d+\.\d+$")
    decision: AdmissionDecision


def _since_paths(model: type[BaseModel], minor: int, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Alias paths of fields appended after ``1.<minor>`` (lists are walked transparently)."""
    out: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        alias = field.alias or name
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        since = extra.get("x-since")
        if isinstance(since, str) and int(since.split(".")[1]) > minor:
            out.append((*prefix, alias))
            continue
        for sub in _models_in(field.annotation):
            out.extend(_since_paths(sub, minor, (*prefix, alias)))
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_models_in(arg))
    return found


def _drop(data: Any, path: tuple[str, ...]) -> list[str]:
    """Remove ``path`` from data; returns the paths (dotted) that actually held a value."""
    if isinstance(data, list):
        removed: list[str] = []
        for item in data:
            removed.extend(_drop(item, path))
        return removed
    if not isinstance(data, dict) or path[0] not in data:
        return []
    if len(path) == 1:
        data.pop(path[0])
        return [path[0]]
    return [f"{path[0]}.{p}" for p in _drop(data[path[0]], path[1:])]


#: per older minor of the current major: the field paths appended after it
_RUNTIME_DROPS = {
    v.minor: _since_paths(RuntimeEvent, v.minor)
    for v in versions.supported(RUNTIME_EVENT)
    if v.minor < versions.current(RUNTIME_EVENT).minor
}


def runtime_envelope_wire(event: RuntimeEvent, version: SchemaVersion | str | None = None) -> dict[str, Any]:
    """The envelope dict for ``event`` written at ``version`` (default: the current version)."""
    target = versions.check(version or versions.current(RUNTIME_EVENT), RUNTIME_EVENT)
    body = event.wire()
    if not kind_known_at(event.kind, target.minor):
        raise ContractVersionError(f"event kind {event.kind} cannot be written at {target}")
    for path in _RUNTIME_DROPS.get(target.minor, ()):
        _drop(body, path)
    return {"schemaVersion": str(target), "event": body}


def dump_runtime_envelope(event: RuntimeEvent, version: SchemaVersion | str | None = None) -> bytes:
    """One ND-JSON line (without the newline) for ``event``."""
    return orjson.dumps(runtime_envelope_wire(event, version))


def _format_validation(exc: ValidationError, prefix: str) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:10]:
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"… and {more} more")
    return "; ".join(parts)


class _Reader(Generic[P]):
    def __init__(self, schema: str, key: str, model: type[P]) -> None:
        self.schema, self.key, self.model = schema, key, model

    def read(self, data: Any) -> tuple[SchemaVersion, P]:
        if not isinstance(data, dict):
            raise EnvelopeError(f"envelope must be a JSON object, got {type(data).__name__}")
        raw_version = data.get("schemaVersion")
        if raw_version is None:
            raise EnvelopeError("envelope has no schemaVersion")
        try:
            version = versions.check(raw_version, self.schema)
        except ContractVersionError as exc:
            raise EnvelopeError(str(exc)) from None
        unknown = sorted(set(data) - {"schemaVersion", self.key})
        if unknown:
            raise EnvelopeError(f"unknown envelope field(s): {', '.join(unknown)}")
        payload = data.get(self.key)
        if not isinstance(payload, dict):
            raise EnvelopeError(f"envelope field {self.key!r} must be an object")
        if self.model is RuntimeEvent and version.minor in _RUNTIME_DROPS:
            extra = [".".join(p) for p in _RUNTIME_DROPS[version.minor] if _has(payload, p)]
            if extra:
                raise EnvelopeError(
                    f"field(s) {', '.join(extra)} need {self.schema}@v1.{version.minor + 1} or later"
                )
        try:
            return version, self.model.model_validate(payload)
        except ValidationError as exc:
            raise EnvelopeError(_format_validation(exc, self.key)) from None


def _has(data: Any, path: tuple[str, ...]) -> bool:
    if isinstance(data, list):
        return any(_has(item, path) for item in data)
    if not isinstance(data, dict) or path[0] not in data:
        return False
    return True if len(path) == 1 else _has(data[path[0]], path[1:])


_runtime_reader = _Reader(RUNTIME_EVENT, "event", RuntimeEvent)
_admission_reader = _Reader(ADMISSION_DECISION, "decision", AdmissionDecision)


def parse_runtime_envelope(data: Any) -> tuple[SchemaVersion, RuntimeEvent]:
    """Validate a decoded runtime-event envelope; raises :class:`EnvelopeError` with a clear message."""
    version, event = _runtime_reader.read(data)
    if not kind_known_at(event.kind, version.minor):
        raise EnvelopeError(
            f"event kind {event.kind} needs {RUNTIME_EVENT}@v1.{KIND_SINCE[event.kind]} or later"
        )
    return version, event


def parse_admission_envelope(data: Any) -> tuple[SchemaVersion, AdmissionDecision]:
    return _admission_reader.read(data)
