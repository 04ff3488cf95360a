"""Structured JSON logging with the static scope of spec §6 (``plane: runtime``) and common tags.

Use ``log.info("message", extra=fields(key=value, …))`` or :func:`event` to attach structured fields. Values
of keys that look like secrets (tokens, passwords, authorization headers, DPoP proofs) are redacted.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import orjson

__all__ = ["FIELDS_ATTR", "JsonFormatter", "configure_logging", "event", "fields", "redact"]

FIELDS_ATTR = "zastava_fields"
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|authorization|dpop|private|credential|cookie)", re.I)
_REDACTED = "***"


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` argument carrying structured fields for one log record."""
    return {FIELDS_ATTR: values}


def event(logger: logging.Logger, level: int, message: str, **values: Any) -> None:
    logger.log(level, message, extra=fields(**values))


def redact(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if _SECRET_KEY.search(key) and value not in (None, "", False):
            out[key] = _REDACTED
        elif isinstance(value, Mapping):
            out[key] = redact(value)
        else:
            out[key] = value
    return out


class JsonFormatter(logging.Formatter):
    def __init__(
        self,
        static_scope: Mapping[str, str] | None = None,
        common: Mapping[str, str] | None = None,
        include_scopes: bool = True,
    ) -> None:
        super().__init__()
        self.static = dict(static_scope or {})
        self.common = dict(common or {})
        self.include_scopes = include_scopes

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.include_scopes:
            data.update(self.static)
        data.update(self.common)
        extra = getattr(record, FIELDS_ATTR, None)
        if isinstance(extra, Mapping):
            data.update(redact(extra))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def configure_logging(
    level: str = "INFO",
    *,
    fmt: str = "json",
    static_scope: Mapping[str, str] | None = None,
    common: Mapping[str, str] | None = None,
    include_scopes: bool = True,
    stream: TextIO | None = None,
) -> None:
    """Install one handler on the ``zastava`` logger (idempotent)."""
    root = logging.getLogger("zastava")
    for handler in list(root.handlers):
        if getattr(handler, "_zastava", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._zastava = True  # type: ignore[attr-defined]
    if fmt == "json":
        handler.setFormatter(JsonFormatter(static_scope, common, include_scopes))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
