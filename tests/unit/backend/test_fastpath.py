"""Property: the ingest fast path (``zastava.backend.fastpath``) accepts exactly the envelopes that the
contracts' ``parse_runtime_envelope`` accepts, with the same field values; everything it declines is judged
(and worded) by ``parse_runtime_envelope`` itself, so rejection messages cannot differ. The same holds for
ND-JSON lines validated from their bytes (``fast_runtime_line``) against the wire reader
(``zastava.contracts.wire.loads``: orjson, duplicate keys refused) + the contracts; and the canonical bytes
the fast path returns are the contracts' own serialisation of the same envelope."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zastava.backend.fastpath import fast_runtime_envelope, fast_runtime_line
from zastava.contracts import (
    RUNTIME_EVENT,
    EnvelopeError,
    EventKind,
    LoadedLib,
    dump_runtime_envelope,
    parse_runtime_envelope,
    runtime_envelope_wire,
    versions,
)
from zastava.contracts.examples import example_runtime_event
from zastava.contracts.wire import WireJSONError, loads

_BASE = example_runtime_event()
_SEEDS: list[dict[str, Any]] = [
    runtime_envelope_wire(_BASE),
    runtime_envelope_wire(
        _BASE.model_copy(
            update={"loaded_libs": [LoadedLib(path="/lib/libc.so.6", inode=7, sha256="a" * 64)], "count": 3}
        )
    ),
    runtime_envelope_wire(_BASE.model_copy(update={"kind": EventKind.CONTAINER_STOP, "process": None})),
    runtime_envelope_wire(  # v1.2: what the gates read
        _BASE.model_copy(
            update={
                "workload": _BASE.workload.model_copy(
                    update={"labels": {"app": "api", "team": "a"}, "image_name": "ghcr.io/acme/api:1.2.3"}
                )
            }
        )
    ),
    runtime_envelope_wire(_BASE, "zastava.runtime.event@v1.0"),
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "",
            "a" * 64,
            "A" * 64,
            "2025-10-17T00:00:00Z",
            "2025-10-17T00:00:00",
            "9999-12-31T23:59:59-05:00",
            "CONTAINER_START",
            "AGENT_WARNING",
            "docker",
            "1",
            "true",
            "\x00",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            out.extend(_paths(sub, (*prefix, key)))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out.extend(_paths(sub, (*prefix, i)))
    return out


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    data: Any = copy.deepcopy(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "delete", "add", "rename", "version"]))
        if op == "version":
            data = data if isinstance(data, dict) else {}
            data["schemaVersion"] = draw(
                st.sampled_from(
                    [
                        "zastava.runtime.event@v1.0",
                        "zastava.runtime.event@v1.1",
                        "zastava.runtime.event@v1.2",
                        " zastava.runtime.event@v1.2",
                        "zastava.runtime.event@v2.0",
                        "zastava.admission.decision@v1.0",
                        None,
                        11,
                    ]
                )
            )
            continue
        if not path:
            if op == "replace":
                data = draw(json_values)
            continue
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if op == "replace":
            parent[last] = draw(json_values)
        elif op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "eventId", "schema_version", "loadedLibs", "count"]))] = (
                draw(json_values)
            )
        elif op == "rename" and isinstance(parent, dict) and isinstance(last, str):
            parent[_snake(last)] = parent.pop(last)
    return data


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def _slow(data: Any) -> tuple[str, Any]:
    try:
        version, event = parse_runtime_envelope(data)
    except (EnvelopeError, OverflowError, ValueError) as exc:
        return "reject", str(exc)
    return "accept", (str(version), _strip_none(event.model_dump()), dump_runtime_envelope(event, version))


@given(envelopes())
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
def test_fast_path_accepts_exactly_what_the_contracts_accept(data: Any) -> None:
    slow = _slow(data)
    fast = fast_runtime_envelope(data)
    if fast is not None:
        assert slow[0] == "accept", f"fast path accepted what the contracts reject: {slow[1]}"
        assert (str(fast[0]), _strip_none(fast[1]), fast[2]) == slow[1]
    elif (
        slow[0] == "accept"
        and isinstance(data, dict)
        and data.get("schemaVersion") == str(versions.current(RUNTIME_EVENT))
    ):
        pytest.fail("the fast path declined a valid current-version envelope (it must not be dead code)")


def test_fast_path_handles_the_wire_form_and_json_round_trip() -> None:
    for seed in _SEEDS:
        data = orjson.loads(orjson.dumps(seed))
        fast = fast_runtime_envelope(data)
        if seed["schemaVersion"].endswith("@v1.0"):
            assert fast is None  # older minors take the contracts' path (their extra field checks)
        else:
            assert fast is not None
            assert (str(fast[0]), _strip_none(fast[1]), fast[2]) == _slow(data)[1]
            assert fast[2] == orjson.dumps(seed)  # the wire form is already canonical


def test_fast_path_declines_shapes_the_contracts_refuse() -> None:
    seed = _SEEDS[0]
    for bad in (
        [seed],
        {**seed, "extra": 1},
        {"schema_version": seed["schemaVersion"], "event": seed["event"]},
        {**seed, "event": {**seed["event"], "tenant": ""}},
        {**seed, "event": {**seed["event"], "surprise": True}},
        {**seed, "event": {**seed["event"], "when": "2025-10-17T00:00:00"}},
    ):
        assert fast_runtime_envelope(bad) is None
        assert _slow(bad)[0] == "reject"


#: JSON text that a serialiser never writes but a hostile client can: where orjson and pydantic-core's own
#: parser disagree (NaN/Infinity literals, numbers beyond 64 bits or beyond double range) or are delicate.
_RAW_TOKENS = [
    "NaN",
    "-Infinity",
    "Infinity",
    "1e400",
    "-1e400",
    "123456789012345678901234567890",
    "18446744073709551616",
    "1.0",
    "1e2",
    "-0",
    '"\\ud800"',
    '"\\u0000"',
    '"2025-10-17T00:00:00.123456789Z"',
    "[]",
    "{}",
]
_RAW_MARK = "\u0001raw{}\u0001"


def _raw_marker(token: str) -> str:
    return _RAW_MARK.format(_RAW_TOKENS.index(token))


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    data: Any = draw(envelopes())
    if isinstance(data, dict) and isinstance(data.get("event"), dict):
        event = data["event"]
        for _ in range(draw(st.integers(0, 2))):
            paths = [p for p in _paths(event) if p]
            if not paths:
                break
            path = draw(st.sampled_from(paths))
            parent = event
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = _raw_marker(draw(st.sampled_from(_RAW_TOKENS)))
    separators = draw(st.sampled_from([None, (",", ":")]))
    text = json.dumps(data, ensure_ascii=draw(st.booleans()), separators=separators)
    for i, token in enumerate(_RAW_TOKENS):
        text = text.replace(json.dumps(_RAW_MARK.format(i)), token)
    if draw(st.booleans()):  # a duplicated key: refused by both
        text = text.replace('"eventId":', '"eventId": "sha256-dup", "eventId":', 1)
    return text.encode("utf-8", errors="surrogatepass") + draw(st.sampled_from([b"", b" ", b"\t\r"]))


def _slow_line(line: bytes) -> tuple[str, Any]:
    try:
        data = loads(line)
    except WireJSONError as exc:
        return "reject", str(exc)
    return _slow(data)


_BIG_INT = re.compile(rb"\d{16,}")


@given(lines())
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
def test_line_fast_path_accepts_exactly_what_orjson_and_the_contracts_accept(line: bytes) -> None:
    slow = _slow_line(line)
    fast = fast_runtime_line(line)
    if fast is None:
        if slow[0] == "accept" and loads(line).get("schemaVersion") == str(versions.current(RUNTIME_EVENT)):
            pytest.fail(f"the line fast path declined a valid current-version envelope: {line[:300]!r}")
        return
    assert slow[0] == "accept", f"line fast path accepted what the wire reader + contracts reject: {slow[1]}"
    if not _BIG_INT.search(line):  # orjson reads integers beyond 64 bits as floats: same verdict, other value
        assert (str(fast[0]), _strip_none(fast[1]), fast[2]) == slow[1]


def test_line_fast_path_on_seeds_and_hostile_literals() -> None:
    current = next(seed for seed in _SEEDS if seed["schemaVersion"] == str(versions.current(RUNTIME_EVENT)))
    line = orjson.dumps(current)
    fast = fast_runtime_line(line)
    assert fast is not None and (str(fast[0]), _strip_none(fast[1]), fast[2]) == _slow(current)[1]
    assert fast[2] == line  # canonical already: stored as received
    for token in ("NaN", "Infinity", "1e400"):
        bad = line.replace(b'"pid":12345', b'"pid":' + token.encode(), 1)
        assert bad != line
        assert fast_runtime_line(bad) is None and _slow_line(bad)[0] == "reject"
    assert fast_runtime_line(orjson.dumps(_SEEDS[-1])) is None  # v1.0: the contracts' path
    assert fast_runtime_line(b"\xef\xbb\xbf" + line) is None  # a BOM, refused by orjson too
