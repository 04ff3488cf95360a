"""Canonical JSON (RFC 8785 / JCS) and multihash identifiers.

Everything Zastava hashes goes through :func:`canonical_bytes`. The reference implementation is the
pure-Python ``rfc8785`` package. Because it costs ~0.1 ms per KB, a fast path serialises with ``orjson`` when
the value can be proven to produce identical bytes: strings, booleans, ``None``, integers inside the IEEE-754
safe range, lists, and objects whose keys are all ASCII (so that UTF-16 code-unit key order, which RFC 8785
requires, equals orjson's sort order). Floats are embedded as ``orjson.Fragment`` holding the reference
number text (ECMAScript formatting). Non-ASCII keys and anything else take the reference path.
``tests/unit/contracts/test_canonical.py`` proves byte identity of both paths with hypothesis.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import OrderedDict
from typing import Any

import orjson
import rfc8785

__all__ = [
    "CanonicalIdMemo",
    "CanonicalizationError",
    "canonical_bytes",
    "canonical_id",
    "multihash_id",
    "parse_multihash_id",
]

_SAFE_INT = 2**53 - 1
_MAX_CONTAINERS = 1_000_000
_INF = float("inf")


class CanonicalizationError(ValueError):
    """The value cannot be expressed as canonical JSON (NaN, huge integer, lone surrogate, bad type)."""


def _scan(value: Any) -> int:
    """0: not eligible for the fast path; 1: eligible as is; 2: eligible once floats become fragments."""
    result = 1
    stack = [value]
    pop, extend = stack.pop, stack.extend
    containers = 0
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if -_SAFE_INT <= item <= _SAFE_INT:
                continue
            return 0
        if kind is dict:
            for key in item:
                if type(key) is not str or not key.isascii():
                    return 0
            extend(item.values())
        elif kind is list or kind is tuple:
            extend(item)
        elif kind is float:
            if item != item or item in (_INF, -_INF):
                return 0
            result = 2
            continue
        else:
            return 0
        containers += 1
        if containers > _MAX_CONTAINERS:
            return 0
    return result


def _with_fragments(value: Any) -> Any:
    """Copy-on-write: containers holding floats are copied with the floats as pre-formatted fragments."""
    kind = type(value)
    if kind is float:
        return orjson.Fragment(rfc8785.dumps(value))
    if kind is dict:
        out: dict[str, Any] | None = None
        for key, item in value.items():
            if type(item) in _CONTAINERS_OR_FLOAT:
                new = _with_fragments(item)
                if new is not item:
                    if out is None:
                        out = dict(value)
                    out[key] = new
        return value if out is None else out
    if kind is list or kind is tuple:
        items: list[Any] | None = None
        for index, item in enumerate(value):
            if type(item) in _CONTAINERS_OR_FLOAT:
                new = _with_fragments(item)
                if new is not item:
                    if items is None:
                        items = list(value)
                    items[index] = new
        return value if items is None else items
    return value


_CONTAINERS_OR_FLOAT = frozenset({dict, list, tuple, float})


def _reference(value: Any) -> bytes:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, rfc8785.IntegerDomainError, rfc8785.FloatDomainError) as exc:
        raise CanonicalizationError(str(exc)) from exc
    except (TypeError, ValueError, RecursionError) as exc:
        raise CanonicalizationError(f"not canonicalisable: {exc}") from exc


def canonical_bytes(value: Any, *, fast: bool = True) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON-compatible value."""
    mode = _scan(value) if fast else 0
    if mode:
        try:
            return orjson.dumps(value if mode == 1 else _with_fragments(value), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            # e.g. a lone surrogate in a string: let the reference path produce the error message.
            pass
    return _reference(value)


def _b64url(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def multihash_id(data: bytes, algorithm: str = "sha256") -> str:
    """``<algorithm>-<base64url digest, no padding>`` of raw bytes."""
    if algorithm != "sha256":
        raise ValueError(f"unsupported multihash algorithm {algorithm!r}; only sha256 is defined")
    return f"sha256-{_b64url(hashlib.sha256(data).digest())}"


def canonical_id(value: Any) -> str:
    """Reproducible id of a JSON value: ``sha256-<base64url(sha256(canonical_bytes(value)))>``."""
    return multihash_id(canonical_bytes(value))


_PLAIN = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


class CanonicalIdMemo:
    """:func:`canonical_id` of values that repeat (the Pod spec of every replica of a rollout), remembered by
    their plain ``orjson`` text: equal text is an equal JSON value, so it has the same canonical id. The text
    costs ~2 µs for a 2 KB Pod spec where the eligibility scan of :func:`canonical_bytes` costs ~40 µs.

    For values parsed from JSON text (``orjson.loads``): orjson writes a NaN as ``null``, which JSON text
    cannot hold; datetimes, dataclasses and subclasses of JSON types are passed to :func:`canonical_id`
    unremembered.

    Bounded: ``max_entries`` ids (LRU), and a value whose text is longer than ``max_text`` bytes is not
    remembered (its key would cost more memory than it saves). Thread-safe."""

    def __init__(self, max_entries: int = 4096, max_text: int = 64 * 1024) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_text = max_text
        self._ids: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def canonical_id(self, value: Any) -> str:
        """``canonical_id(value)``; raises :class:`CanonicalizationError` as it does."""
        try:
            text = orjson.dumps(value, option=_PLAIN)
        except (orjson.JSONEncodeError, TypeError):
            return canonical_id(value)  # not plain JSON to orjson: the reference path decides
        if len(text) > self.max_text:
            return canonical_id(value)
        with self._lock:
            found = self._ids.get(text)
            if found is not None:
                self._ids.move_to_end(text)
                return found
        made = canonical_id(value)
        with self._lock:
            self._ids[text] = made
            if len(self._ids) > self.max_entries:
                self._ids.popitem(last=False)
        return made


def parse_multihash_id(text: str) -> tuple[str, bytes]:
    """Split an id into (algorithm, digest bytes); raises ``ValueError`` when malformed."""
    algorithm, sep, encoded = text.partition("-")
    if not sep or algorithm != "sha256":
        raise ValueError(f"not a multihash id: {text!r}")
    try:
        digest = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a multihash id: {text!r}") from exc
    if len(digest) != 32 or _b64url(digest) != encoded:
        raise ValueError(f"not a multihash id: {text!r}")
    return algorithm, digest
