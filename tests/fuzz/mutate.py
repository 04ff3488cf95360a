"""Seeded mutators for the fuzz targets: the same seed gives the same cases (a finding is reproducible)."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

#: Values that break parsers: type confusion, limits of number types, odd strings, deep structures.
#: (Never handed out as is: callers deep-copy, so a mutation cannot change this list.)
INTERESTING: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    1.5,
    1e308,
    "",
    "1",
    "12345",
    "yes",
    "true",
    "null",
    "\x00",
    "\ud7ff",
    "²",
    "1700000000",
    "2025-10-17T12:34:56Z",
    "2025-10-17 12:34:56Z",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "a" * 300,
    "../../etc/passwd",
    "sha256:" + "a" * 64,
    [],
    {},
    [[[[[]]]]],
    {"a": {"b": {"c": {}}}},
)

_RAW_TOKENS = [b"NaN", b"-Infinity", b"1e400", b"123456789012345678901234567890", b'"\\ud800"', b"-0", b"1.0"]


def mutate_bytes(rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    """Bit flips, byte insertions/deletions/duplications, truncation and splices of ``data``."""
    out = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 8)):
        if not out:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            continue
        op = rng.randrange(7)
        pos = rng.randrange(len(out))
        if op == 0:
            out[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[pos] = rng.randrange(256)
        elif op == 2:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3:
            del out[pos : pos + rng.randint(1, 16)]
        elif op == 4:
            end = min(len(out), pos + rng.randint(1, 64))
            out[pos:pos] = out[pos:end] * rng.randint(1, 8)
        elif op == 5:
            del out[pos:]
        else:
            out[pos:pos] = rng.choice([b"{", b"[", b'"', b"\\", b"\n", b",", b":", b"}", b"]", b"\x00"])
    return bytes(out)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            out.extend(_paths(sub, (*prefix, key)))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            out.extend(_paths(sub, (*prefix, index)))
    return out


def mutate_json(rng: random.Random, value: Any, rounds: int | None = None) -> Any:
    """Structural mutations of a JSON value: replace, delete, add, duplicate and deepen fields."""
    value = copy.deepcopy(value)
    for _ in range(rounds if rounds is not None else rng.randint(1, 4)):
        paths = [p for p in _paths(value) if p]
        if not paths:
            return copy.deepcopy(rng.choice(INTERESTING))
        path = rng.choice(paths)
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        op = rng.randrange(5)
        if op == 0:
            parent[last] = copy.deepcopy(rng.choice(INTERESTING))
        elif op == 1:
            del parent[last]
        elif op == 2 and isinstance(parent, dict):
            key = rng.choice(["extra", "eventId", "tenant", "uid", "kind", "schemaVersion"])
            parent[key] = copy.deepcopy(rng.choice(INTERESTING))
        elif op == 3 and len(repr(parent[last])) < 2000:  # repeated, not exponentially
            parent[last] = [copy.deepcopy(parent[last]) for _ in range(rng.randint(1, 50))]
        else:
            nested: Any = parent[last]
            for _ in range(rng.randint(1, 40)):
                nested = {"x": nested} if rng.random() < 0.5 else [nested]
            parent[last] = nested
    return value


def json_text(rng: random.Random, value: Any) -> bytes:
    """``value`` as JSON text, sometimes with spelling a serialiser never writes: indentation, duplicate keys,
    NaN and out-of-range literals, raw splices."""
    indent = 2 if rng.random() < 0.2 else None
    separators = None if indent else (",", ":")
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=rng.random() < 0.5)
    text = text.encode("utf-8", "surrogatepass")
    roll = rng.random()
    if roll < 0.1 and b'":' in text:  # a duplicate key in front of the first one
        pos = text.index(b'":')
        start = text.rfind(b'"', 0, pos)
        key = text[start : pos + 2]
        text = text[:start] + key + b'"dup",' + text[start:]
    elif roll < 0.2 and b":" in text:
        pos = rng.choice([i for i in range(len(text)) if text[i : i + 1] == b":"])
        end = pos + 1
        while end < len(text) and text[end : end + 1] not in (b",", b"}", b"]"):
            end += 1
        text = text[: pos + 1] + rng.choice(_RAW_TOKENS) + text[end:]
    elif roll < 0.3:
        text = mutate_bytes(rng, text, rng.randint(1, 3))
    return text
