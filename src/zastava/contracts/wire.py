"""JSON as read from the wire: orjson's grammar (RFC 8259; no ``NaN``/``Infinity``; integers within 64 bits),
and a duplicate key is an error.

orjson keeps the last of two equal keys, so ``{"tenant":"tenant-02","tenant":"tenant-01"}`` would reach the
store as sent and a consumer reading the first key would see another tenant. Checking costs nothing for a
document that is already compact and in orjson's spelling (what the publisher, the webhook and the CLI send):
re-serialising it gives the same bytes, and a document with a duplicate key cannot. Any other document (pretty
printed, other escapes) is walked once more by the standard library's parser, which names the key.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["DuplicateKeyError", "WireJSONError", "loads"]

_SPACE = b" \t\r\n"


class WireJSONError(ValueError):
    """The bytes are not acceptable JSON; ``str()`` is fit for an API response."""


class DuplicateKeyError(WireJSONError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise DuplicateKeyError(f"duplicate key {key[:200]!r} in a JSON object")
            seen.add(key)
    return out


def loads(raw: bytes | bytearray | memoryview | str) -> Any:
    """Parse ``raw``; raises :class:`WireJSONError` (a ``ValueError``) for invalid JSON or a duplicate key."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireJSONError(str(exc)) from None
    if isinstance(data, dict | list) and data:
        text = raw.encode() if isinstance(raw, str) else bytes(raw)
        try:
            same = orjson.dumps(data) == text.strip(_SPACE)
        except TypeError:  # orjson writes at most 255 levels (it reads 1024): check the long way
            same = False
        if not same:
            try:
                json.loads(text, object_pairs_hook=_no_duplicates)
            except RecursionError:
                raise WireJSONError("JSON nested too deeply") from None
            except DuplicateKeyError:
                raise
            except ValueError as exc:  # DuplicateKeyError; json's own errors cannot occur after orjson's
                raise WireJSONError(str(exc)) from None
    return data
