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
# with keys whose UTF-16 order is not their code-point order (RFC 8785 sorts by UTF-16 code units)
_names = sorted({name for path in INSTANCE for name in path} | {"imageRef", "\U0001f600", "\ufb33"})


def _objects(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    values = _json if depth == 0 else _json | _objects(depth - 1)
    return st.dictionaries(st.sampled_from(_names) | st.text(max_size=6), values, max_size=6)


@settings(max_examples=500, deadline=None)
@given(_objects(2), _json)
def test_split_then_assemble_gives_the_canonical_envelope_back(event: dict[str, Any], version: Any) -> None:
    envelope = {"schemaVersion": version, "event": event}
    try:
        text = canonical_bytes(envelope)
    except ValueError:  # not canonicalisable (a lone surrogate): the contracts refuse it before the store
        return
    parts = split(text)
    assert parts is not None
    template, own = parts
    for path in INSTANCE:  # none of an event's own values stays in the template
        node: Any = template
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        assert not (isinstance(node, dict) and path[-1] in node)
    ident, stored = TemplateIds().of(template)
    assert ident == canonical_id(template) and stored.encode() == canonical_bytes(template)
    assert orjson.dumps(assemble(own, stored)) == text  # same value, same (canonical) key order


def test_envelopes_without_an_event_object_are_stored_whole() -> None:
    assert split(b'{"event":[1]}') is None and split(b"[1]") is None
    assert assemble(b'{"event":[1]}', None) == {"event": [1]}
