"""Strict contracts on the wire (issue 21): no string→int/bool coercion, timestamps only as RFC 3339 strings,
duplicate keys refused by the wire reader — for every contract model, not only the runtime event."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zastava.contracts import (
    AdmissionDecision,
    EnvelopeError,
    RuntimePolicyResponse,
    parse_admission_envelope,
    parse_runtime_envelope,
    runtime_envelope_wire,
)
from zastava.contracts.base import ContractModel
from zastava.contracts.examples import example_runtime_event
from zastava.contracts.wire import DuplicateKeyError, WireJSONError, loads


def _envelope(**event: Any) -> dict[str, Any]:
    data = runtime_envelope_wire(example_runtime_event())
    data["event"].update(event)
    return data


@pytest.mark.parametrize(
    "change",
    [
        {"process": {"pid": "12345"}},
        {"process": {"pid": 12345.0}},
        {"process": {"pid": True}},
        {"count": "2"},
        {"posture": {"imageSigned": "yes"}},
        {"posture": {"imageSigned": 1}},
        {"posture": {"imageSigned": "true"}},
        {"when": 1700000000},
        {"when": "1700000000"},
        {"when": "2025-10-17 12:34:56Z"},
        {"when": "2025-10-17T12:34Z"},
        {"when": "2025-10-17T12:34:56"},
        {"when": "Fri, 17 Oct 2025 12:34:56 GMT"},
    ],
)
def test_runtime_events_refuse_coercion(change: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError):
        parse_runtime_envelope(_envelope(**change))


@pytest.mark.parametrize(
    ("when", "stored"),
    [
        ("2025-10-17T12:34:56Z", "2025-10-17T12:34:56Z"),
        ("2025-10-17t12:34:56z", "2025-10-17T12:34:56Z"),
        ("2025-10-17T14:34:56+02:00", "2025-10-17T12:34:56Z"),
        ("2025-10-17T12:34:56.5Z", "2025-10-17T12:34:56.500000Z"),
    ],
)
def test_rfc3339_timestamps_are_normalised(when: str, stored: str) -> None:
    _version, event = parse_runtime_envelope(_envelope(when=when))
    assert event.wire()["when"] == stored


def test_decisions_and_policy_answers_are_strict_too() -> None:
    decision = {
        "schemaVersion": "zastava.admission.decision@v1.0",
        "decision": {
            "admissionId": "a",
            "namespace": "n",
            "podSpecDigest": "d",
            "decision": "Allow",
            "ttlSeconds": "300",
        },
    }
    with pytest.raises(EnvelopeError, match="ttlSeconds"):
        parse_admission_envelope(decision)
    with pytest.raises(ValueError):
        AdmissionDecision.model_validate({**decision["decision"], "ttlSeconds": 300, "enforced": "false"})
    with pytest.raises(ValueError):
        RuntimePolicyResponse.model_validate({"ttlSeconds": "300", "results": {}})


def test_every_contract_model_is_strict() -> None:
    """A model added later inherits strict mode (only enum and timestamp fields opt out, explicitly)."""
    seen = 0
    stack = list(ContractModel.__subclasses__())
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        assert model.model_config.get("strict") is True, model.__name__
        seen += 1
    assert seen >= 15


def test_duplicate_keys_are_refused_and_named() -> None:
    with pytest.raises(DuplicateKeyError, match="'tenant'"):
        loads(b'{"event": {"tenant": "tenant-02", "tenant": "tenant-01"}}')
    with pytest.raises(DuplicateKeyError):
        loads(b'[{"a": 1}, {"b": 2, "b": 2}]')
    with pytest.raises(WireJSONError, match="deep"):
        loads(
            b"[" * 1020 + b'{"a":1,"a":2}' + b"]" * 1020
        )  # orjson takes it; the duplicate check needs depth
    assert loads(b' {"a": 1, "b": [1, 2]} ') == {"a": 1, "b": [1, 2]}
    deep = b"[" * 300 + b"1" + b"]" * 300  # deeper than orjson writes (255), shallower than it reads (1024)
    assert loads(deep) is not None
    for bad in (b"NaN", b"[1e400]", b'{"a": 1', b"\xff"):
        with pytest.raises(WireJSONError):
            loads(bad)


@given(
    st.recursive(
        st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
        max_leaves=10,
    )
)
def test_wire_reader_agrees_with_orjson_on_documents_without_duplicates(value: Any) -> None:
    text = orjson.dumps(value)
    assert loads(text) == orjson.loads(text)
    assert loads(orjson.dumps(value, option=orjson.OPT_INDENT_2)) == value
