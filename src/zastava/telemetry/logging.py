"""Structured JSON logging with the static scope of spec §6 (``plane: runtime``) and common tags.

Use ``log.info("message", extra=fields(key=value, …))`` or :func:`event` to attach structured fields. Values
of keys that look like secrets (tokens, passwords, authorization headers, DPoP proofs) are redacted.

One format for every record a server writes: Zastava's own loggers at the configured level, and the
libraries' (uvicorn, httpx, grpc, …) through the root logger at WARNING and above. With activity tracking
(``runtime.logging.includeActivityTracking``) a record written inside a trace span carries its ``traceId``
and ``spanId``, so that logs and traces join.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import orjson

from .tracing import current_ids

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
        activity_tracking: bool = False,
    ) -> None:
        super().__init__()
        self.static = dict(static_scope or {})
        self.common = dict(common or {})
        self.include_scopes = include_scopes
        self.activity_tracking = activity_tracking

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
        if self.activity_tracking:
            ids = current_ids()
            if ids is not None:
                data["traceId"], data["spanId"] = ids
        extra = getattr(record, FIELDS_ATTR, None)
        if isinstance(extra, Mapping):
            data.update(redact(extra))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to the *current* ``sys.stderr`` (not the one at set-up time, which a test runner may close)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


#: Libraries whose INFO records are per request (httpx: one line per call): WARNING and above only.
LIBRARY_LEVEL = logging.WARNING


def configure_logging(
    level: str = "INFO",
    *,
    fmt: str = "json",
    static_scope: Mapping[str, str] | None = None,
    common: Mapping[str, str] | None = None,
    include_scopes: bool = True,
    activity_tracking: bool = False,
    stream: TextIO | None = None,
) -> None:
    """One handler on the ``zastava`` logger (at ``level``) and the same on the root logger for libraries
    (WARNING and above, DEBUG when ``level`` is DEBUG). Idempotent."""
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler._zastava = True  # type: ignore[attr-defined]
    if fmt == "json":
        handler.setFormatter(JsonFormatter(static_scope, common, include_scopes, activity_tracking))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    own, root = logging.getLogger("zastava"), logging.getLogger()
    for logger in (own, root):
        for old in list(logger.handlers):
            if getattr(old, "_zastava", False):
                logger.removeHandler(old)
        logger.addHandler(handler)
    own.setLevel(level.upper())
    own.propagate = False
    root.setLevel(logging.DEBUG if level.upper() == "DEBUG" else LIBRARY_LEVEL)
    # uvicorn's loggers log through the root handler (servers pass log_config=None to uvicorn)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
