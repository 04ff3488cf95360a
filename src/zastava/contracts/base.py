"""Common base for contract models: camelCase on the wire, unknown fields refused, None omitted, strict types.

Strict on the wire: a JSON string is never read as an integer or a boolean (``"pid": "12345"``,
``"signed": "yes"``), nor a number as a boolean or a timestamp; timestamps are RFC 3339 strings only
(:data:`UtcDatetime`). Duplicate keys are the JSON reader's business (:mod:`.wire`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
)
from pydantic.alias_generators import to_camel

__all__ = ["ContractModel", "OptionalField", "UtcDatetime", "format_utc", "since"]


def _is_none(value: Any) -> bool:
    return value is None


def OptionalField(default: Any = None, *, since: str | None = None, **kwargs: Any) -> Any:
    """A field that is absent on the wire when unset.

    ``since`` marks a field appended in a later minor of the schema (recorded in the JSON Schema as
    ``x-since``); such fields are removed when writing an older minor.
    """
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    if since is not None:
        extra["x-since"] = since
    return Field(default, exclude_if=_is_none, json_schema_extra=extra or None, **kwargs)


def since(version: str, **kwargs: Any) -> Any:
    """A required field appended in a later minor (kept for completeness; prefer optional additions)."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra["x-since"] = version
    return Field(json_schema_extra=extra, **kwargs)


def format_utc(value: datetime) -> str:
    """RFC 3339 UTC with a ``Z``; fractional seconds only when present (microsecond precision)."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is out of range once converted to UTC") from None


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 ``date-time`` string (or a datetime built in Python) is a timestamp: pydantic alone
    would also read ``1700000000``, ``"1700000000"`` and ``"2025-10-17 12:34:56Z"``."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError("timestamp must be an RFC 3339 date-time string such as 2025-10-17T12:34:56Z")


#: A timezone-aware timestamp normalised to UTC and written as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.
UtcDatetime = Annotated[
    AwareDatetime,
    Strict(False),  # the string is parsed (after the RFC 3339 check); the model's strict mode would refuse it
    BeforeValidator(_rfc3339),
    AfterValidator(_to_utc),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]


class ContractModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        validate_assignment=False,
        ser_json_inf_nan="strings",
        strict=True,  # no "12345" → 12345, no "yes"/1 → True; enums and timestamps opt out field by field
    )

    def wire(self) -> dict[str, Any]:
        """The JSON-compatible dict exactly as sent (aliases, unset optionals omitted)."""
        return self.model_dump(mode="json", by_alias=True)
