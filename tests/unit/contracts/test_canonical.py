"""Canonical JSON (RFC 8785) and multihash ids."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zastava.contracts.canonical import (
    CanonicalIdMemo,
    CanonicalizationError,
    canonical_bytes,
    canonical_id,
    multihash_id,
    parse_multihash_id,
)

# RFC 8785 §3.2.2 (the main example, with the escaped string) — input text and expected bytes.
RFC_MAIN_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
RFC_MAIN_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
).encode()

# RFC 8785 §3.2.3, property sorting by UTF-16 code units.
RFC_SORT_INPUT = r"""{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"""
RFC_SORT_OUTPUT = (
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",'
    '"€":"Euro Sign","\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
).encode()

# RFC 8785 Appendix B number serialisation samples (IEEE-754 value → text).
RFC_NUMBERS = [
    (0.0, "0"),
    (-0.0, "0"),
    (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (9007199254740992.0, "9007199254740992"),
    (-9007199254740992.0, "-9007199254740992"),
    (295147905179352830000.0, "295147905179352830000"),
    (9.999999999999997e22, "9.999999999999997e+22"),
    (1e23, "1e+23"),
    (1e21, "1e+21"),
    (999999999999999700000.0, "999999999999999700000"),
    (0.000001, "0.000001"),
    (1e-7, "1e-7"),
    (4.50, "4.5"),
    (2e-3, "0.002"),
    (1e-27, "1e-27"),
    (333333333.33333329, "333333333.3333333"),
]


def test_rfc_main_example() -> None:
    assert canonical_bytes(json.loads(RFC_MAIN_INPUT)) == RFC_MAIN_OUTPUT


def test_rfc_sorting_example() -> None:
    assert canonical_bytes(json.loads(RFC_SORT_INPUT)) == RFC_SORT_OUTPUT


@pytest.mark.parametrize(("value", "text"), RFC_NUMBERS)
def test_rfc_numbers(value: float, text: str) -> None:
    assert canonical_bytes(value) == text.encode()


@pytest.mark.parametrize(
    ("source", "expected"), [(RFC_MAIN_INPUT, RFC_MAIN_OUTPUT), (RFC_SORT_INPUT, RFC_SORT_OUTPUT)]
)
def test_cli_canon_reproduces_rfc_examples(source: str, expected: bytes) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "zastava", "canon"], input=source.encode(), capture_output=True, check=True
    )
    assert out.stdout == expected
    ident = subprocess.run(
        [sys.executable, "-m", "zastava", "canon", "--id"],
        input=source.encode(),
        capture_output=True,
        check=True,
    )
    assert ident.stdout.decode().strip() == multihash_id(expected)


@pytest.mark.parametrize("bad", ["{", '{"a": NaN}', '{"a": 1, "a": 2}', "[Infinity]"])
def test_cli_canon_rejects_bad_input(bad: str) -> None:
    out = subprocess.run([sys.executable, "-m", "zastava", "canon"], input=bad.encode(), capture_output=True)
    assert out.returncode == 2
    assert b"error" in out.stderr
    assert out.stdout == b""


@pytest.mark.parametrize("value", [math.nan, math.inf, 2**53, "\ud800", {1: "x"}, object()])
def test_non_canonicalisable_values_raise(value: object) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_bytes(value)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=2000, deadline=None)
@given(json_values)
def test_fast_path_is_byte_identical_to_reference(value: object) -> None:
    """The orjson fast path is taken only where it provably gives the RFC 8785 bytes."""
    try:
        reference = canonical_bytes(value, fast=False)
    except CanonicalizationError:
        with pytest.raises(CanonicalizationError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == reference


@settings(max_examples=500, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**53) + 1, 2**53 - 1)
        | st.text(alphabet=st.characters(codec="utf-8")),
        lambda c: (
            st.lists(c, max_size=4) | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127)), c)
        ),
        max_leaves=20,
    )
)
def test_fast_path_eligible_values(value: object) -> None:
    assert canonical_bytes(value) == canonical_bytes(value, fast=False)


_MEMO = CanonicalIdMemo(max_entries=64)


@settings(max_examples=2000, deadline=None)
@given(json_values)
def test_memo_gives_the_canonical_id_of_json_text(value: object) -> None:
    """The memo, asked twice (miss, then hit) about a value read from JSON text, answers what the RFC 8785
    reference serialiser's id is, or raises as it does; a value equal to one remembered under another key
    order gets the same id."""
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return  # not JSON text (orjson refuses integers beyond 64 bits): nothing the memo is given
    parsed = orjson.loads(text)
    try:
        expected = multihash_id(canonical_bytes(parsed, fast=False))
    except CanonicalizationError:
        for _ in range(2):
            with pytest.raises(CanonicalizationError):
                _MEMO.canonical_id(parsed)
        return
    assert _MEMO.canonical_id(parsed) == expected
    assert _MEMO.canonical_id(orjson.loads(text)) == expected
    if isinstance(parsed, dict):
        assert _MEMO.canonical_id(dict(reversed(parsed.items()))) == expected
    assert len(_MEMO) <= 64


def test_memo_bounds_and_fallbacks() -> None:
    memo = CanonicalIdMemo(max_entries=2, max_text=20)
    for n in range(5):
        assert memo.canonical_id({"n": n}) == canonical_id({"n": n})
    assert len(memo) == 2  # least recently used ids evicted
    large = {"k": "x" * 100}
    assert memo.canonical_id(large) == canonical_id(large) and len(memo) == 2  # too long to remember
    with pytest.raises(CanonicalizationError):
        memo.canonical_id({1: "a non-string key"})
    with pytest.raises(ValueError):
        CanonicalIdMemo(max_entries=0)


def test_key_order_is_independent_of_insertion_order() -> None:
    assert canonical_bytes({"b": 1, "a": {"d": 2, "c": 3}}) == canonical_bytes(
        {"a": {"c": 3, "d": 2}, "b": 1}
    )
    assert canonical_id({"b": 1, "a": 2}) == canonical_id({"a": 2, "b": 1})


def test_multihash_id_format_and_round_trip() -> None:
    ident = canonical_id({"hello": "world"})
    digest = hashlib.sha256(b'{"hello":"world"}').digest()
    assert ident.startswith("sha256-") and "=" not in ident and len(ident) == 7 + 43
    assert parse_multihash_id(ident) == ("sha256", digest)
    for bad in ["sha256-", "md5-abc", "sha256-" + "A" * 42, "nohyphen", "sha256-" + "*" * 43]:
        with pytest.raises(ValueError):
            parse_multihash_id(bad)
