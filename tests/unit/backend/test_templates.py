"""Splitting an envelope into its own values and a shared template, and putting it back together."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from zastava.backend.store.templates import INSTANCE, TemplateIds, assemble, split
from zastava.contracts import canonical_bytes, canonical_id

_leaf = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8)
_json = st.recursive(
    _leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=12,
)
_names = sorted({name for path in INSTANCE for name in path} | {"imageRef", "\U0001f600", "\ufb33"})


def _objects(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    values = _json if depth == 0 else _json | _objects(depth - 1)
    return st.dictionaries(st.sampled_from(_names) | st.text(max_size=6), values, max_size=6)


@settings(max_examples=500, deadline=None)
@given(_objects(2), _json)
def test_split_then_assemble_gives_the_envelope_back(event: dict[str, Any], version: Any) -> None:
    """Whatever the key order (the store keeps the contracts' field order, not RFC 8785's), the envelope
    comes back equal and in the same order; the template's id is the canonical id of its value."""
    envelope = {"schemaVersion": version, "event": event}
    try:
        text = orjson.dumps(envelope)
        canonical_bytes(envelope)
    except (orjson.JSONEncodeError, ValueError):  # a lone surrogate: refused before the store
        return
    parts = split(text)
    assert parts is not None
    template, own = parts
    for path in INSTANCE:  # none of an event's own values stays in the template: a null holds its place
        node: Any = template
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        assert not isinstance(node, dict) or node.get(path[-1]) is None
    ids = TemplateIds()
    ident, stored = ids.of(template)
    assert ident == canonical_id(template) and orjson.loads(stored) == template
    assert ids.of(orjson.loads(stored)) == (ident, stored)  # remembered
    assert orjson.dumps(assemble(own, stored)) == text  # same value, same key order


def test_envelopes_without_an_event_object_are_stored_whole() -> None:
    assert split(b'{"event":[1]}') is None and split(b"[1]") is None
    assert assemble(b'{"event":[1]}', None) == {"event": [1]}
