"""Property: the ingest fast path (``zastava.backend.fastpath``) accepts exactly the envelopes that the
contracts' ``parse_runtime_envelope`` accepts, with the same field values; everything it declines is judged
(and worded) by ``parse_runtime_envelope`` itself, so rejection messages cannot differ."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zastava.backend.fastpath import fast_runtime_envelope
from zastava.contracts import (
    EnvelopeError,
    EventKind,
    LoadedLib,
    parse_runtime_envelope,
    runtime_envelope_wire,
)
from zastava.contracts.examples import example_runtime_event

_BASE = example_runtime_event()
_SEEDS: list[dict[str, Any]] = [
    runtime_envelope_wire(_BASE),
    runtime_envelope_wire(
        _BASE.model_copy(
            update={"loaded_libs": [LoadedLib(path="/lib/libc.so.6", inode=7, sha256="a" * 64)], "count": 3}
        )
    ),
    runtime_envelope_wire(_BASE.model_copy(update={"kind": EventKind.CONTAINER_STOP, "process": None})),
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
                        " zastava.runtime.event@v1.1",
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
    return "accept", (str(version), _strip_none(event.model_dump()))


@given(envelopes())
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
def test_fast_path_accepts_exactly_what_the_contracts_accept(data: Any) -> None:
    slow = _slow(data)
    fast = fast_runtime_envelope(data)
    if fast is not None:
        assert slow[0] == "accept", f"fast path accepted what the contracts reject: {slow[1]}"
        assert (str(fast[0]), _strip_none(fast[1])) == slow[1]
    elif (
        slow[0] == "accept"
        and isinstance(data, dict)
        and data.get("schemaVersion") == "zastava.runtime.event@v1.1"
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
            assert (str(fast[0]), _strip_none(fast[1])) == _slow(data)[1]


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
