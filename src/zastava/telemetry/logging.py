"""Structured JSON logging with the static scope of spec §6 (``plane: runtime``) and common tags.

Use ``log.info("message", extra=fields(key=value, …))`` or :func:`event` to attach structured fields. Values
of keys that look like secrets (tokens, passwords, authorization headers, DPoP proofs) are redacted.

One format for every record a server writes: Zastava's own loggers at the configured level, and the
libraries' (uvicorn, httpx, grpc, …) through the root logger at WARNING and above. With activity tracking
(``runtime.logging.includeActivityTracking``) a record written inside a trace span carries its ``traceId``
and ``spanId``, so that logs and traces join.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import orjson

from .tracing import current_ids

__all__ = ["FIELDS_ATTR", "JsonFormatter", "configure_logging", "emit_many", "event", "fields", "redact"]

FIELDS_ATTR = "zastava_fields"
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|authorization|dpop|private|credential|cookie)", re.I)
_REDACTED = "***"


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` argument carrying structured fields for one log record."""
    return {FIELDS_ATTR: values}


def event(logger: logging.Logger, level: int, message: str, **values: Any) -> None:
    logger.log(level, message, extra=fields(**values))


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


#: values redact() need not look into (isinstance against Mapping, an ABC, costs ~0.5 µs a value)
_PLAIN_VALUES = frozenset({str, int, float, bool, type(None), list, orjson.Fragment})


def redact(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if (_secret_key(key) if isinstance(key, str) else _SECRET_KEY.search(key)) and value not in (
            None,
            "",
            False,
        ):
            out[key] = _REDACTED
        elif type(value) not in _PLAIN_VALUES and isinstance(value, Mapping):
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
        return self.render(
            record.created,
            record.msecs,
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, FIELDS_ATTR, None),
            self.formatException(record.exc_info) if record.exc_info else None,
        )

    def render(
        self,
        created: float,
        msecs: float,
        levelname: str,
        name: str,
        message: str,
        extra: object = None,
        exc: str | None = None,
    ) -> str:
        """One line, from a record's parts."""
        data: dict[str, Any] = {
            "ts": _timestamp(created, msecs),
            "level": levelname.lower(),
            "logger": name,
            "msg": message,
        }
        if self.include_scopes:
            data.update(self.static)
        data.update(self.common)
        if self.activity_tracking:
            ids = current_ids()
            if ids is not None:
                data["traceId"], data["spanId"] = ids
        if isinstance(extra, Mapping):
            data.update(redact(extra))
        if exc is not None:
            data["exc"] = exc
        return orjson.dumps(data, default=str).decode()

    def render_many(
        self, created: float, levelname: str, name: str, message: str, rows: list[dict[str, Any]]
    ) -> str:
        """The lines :meth:`render` writes for each row of fields, at one time: the part every line shares
        (time, level, logger, message, scope, common tags) is serialised once and each row's fields appended
        to it — the same text as :meth:`render` when no row names a shared key (such a row, or any row
        under activity tracking, is rendered by :meth:`render`)."""
        msecs = (created - int(created)) * 1000
        if self.activity_tracking and current_ids() is not None:
            return "".join(self.render(created, msecs, levelname, name, message, r) + "\n" for r in rows)
        shared: dict[str, Any] = {
            "ts": _timestamp(created, msecs),
            "level": levelname.lower(),
            "logger": name,
            "msg": message,
        }
        if self.include_scopes:
            shared.update(self.static)
        shared.update(self.common)
        head = orjson.dumps(shared, default=str)[:-1]
        out: list[bytes] = []
        for row in rows:
            if not row:
                out.append(head + b"}\n")
            elif shared.keys().isdisjoint(row):
                out.append(head + b"," + orjson.dumps(redact(row), default=str)[1:] + b"\n")
            else:
                out.append((self.render(created, msecs, levelname, name, message, row) + "\n").encode())
        return b"".join(out).decode()


def _timestamp(created: float, msecs: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(msecs):03d}Z"


def _direct_handlers(logger: logging.Logger, level: int) -> list[logging.StreamHandler[TextIO]] | None:
    """The handlers a record of ``logger`` at ``level`` reaches, when every one is a JSON stream handler of
    :func:`configure_logging` and no filter is on the way (else None: records go through ``logging``)."""
    found: list[logging.StreamHandler[TextIO]] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if level < handler.level:
                continue
            if (
                not getattr(handler, "_zastava", False)
                or handler.filters
                or not isinstance(handler, logging.StreamHandler)
                or not isinstance(handler.formatter, JsonFormatter)
            ):
                return None
            found.append(handler)
        current = current.parent if current.propagate else None
    return found


def emit_many(logger: logging.Logger, level: int, message: str, rows: list[dict[str, Any]]) -> None:
    """One log line per row of fields — the lines ``logger.log(level, message, extra=fields(**row))`` writes
    — in one write per handler: a line through ``logging`` costs ~20 µs (a record, the caller's frame, a lock
    and a flush per line), rendered here ~3 µs (the webhook logs one per admission decision, in batches).
    Records get the batch's time. Falls back to ``logging`` when a handler or filter that is not
    :func:`configure_logging`'s would see the records (tests' capture handlers, custom set-ups)."""
    if not rows or not logger.isEnabledFor(level):
        return
    handlers = _direct_handlers(logger, level)
    if handlers is None:
        for row in rows:
            logger.log(level, message, extra=fields(**row))
        return
    created = time.time()
    levelname = logging.getLevelName(level)
    for handler in handlers:
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)
        text = formatter.render_many(created, levelname, logger.name, message, rows)
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except Exception:
            handler.handleError(logging.makeLogRecord({"msg": message, "name": logger.name}))
        finally:
            handler.release()


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
