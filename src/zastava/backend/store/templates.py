"""Events stored once per shape: the parts of a runtime event that repeat for every container of an image
(loaded libraries, EntryTrace, posture, delta, the image and owner) are kept once, content-addressed by their
canonical id, in ``event_templates``; the event row keeps only what is its own (:data:`INSTANCE`: ids,
times, node, pod, container id, pid, evidence — which names pids and counts) and the template's id.

:func:`split` runs at ingest on the canonical envelope; :func:`assemble` gives the read APIs the
envelope back, equal as a value and in key order to the one stored before this existed (a row with no
template holds the whole envelope, as rows written before migration 0003 do).

Templates are purged by their ``last_used_us``: every event referencing one was received no later than
that, so once it is older than the events' retention no event references it any more.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import orjson

from ...contracts import canonical_bytes, multihash_id

__all__ = ["INSTANCE", "TemplateIds", "assemble", "split"]

#: (path inside the envelope): the values of one container's event that are not shared with the other
#: containers of the same image and workload.
INSTANCE: tuple[tuple[str, ...], ...] = (
    ("event", "eventId"),
    ("event", "when"),
    ("event", "node"),
    ("event", "count"),
    ("event", "evidence"),
    ("event", "workload", "pod"),
    ("event", "workload", "containerId"),
    ("event", "process", "pid"),
    ("event", "process", "startTime"),
)


#: :data:`INSTANCE` as (keys of the event, {sub-object: its keys}): what :func:`split` walks
_OWN = ("eventId", "when", "node", "count", "evidence")
_NESTED = (("workload", ("pod", "containerId")), ("process", ("pid", "startTime")))
assert {("event", k) for k in _OWN} | {("event", o, k) for o, keys in _NESTED for k in keys} == set(INSTANCE)


def split(envelope: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(the template: ``envelope`` without the :data:`INSTANCE` values, those values as nested JSON), or None
    when ``envelope`` is not an object with an ``event`` object (stored whole)."""
    whole = orjson.loads(envelope)
    event = whole.get("event") if isinstance(whole, dict) else None
    if not isinstance(event, dict):
        return None
    own = {key: event.pop(key) for key in _OWN if key in event}
    for name, keys in _NESTED:
        inner = event.get(name)
        if isinstance(inner, dict):
            values = {key: inner.pop(key) for key in keys if key in inner}
            if values:
                own[name] = values
    return whole, orjson.dumps({"event": own})


def assemble(instance: str | bytes, template: str | bytes | None) -> Any:
    """The envelope of a row: ``instance`` is the row's body, ``template`` its template's body (None: the
    body is the whole envelope). Keys come back in canonical (sorted) order, as in the whole envelope."""
    values = orjson.loads(instance)
    if template is None:
        return values
    whole = orjson.loads(template)
    _merge(whole, values)
    return whole


def _merge(into: dict[str, Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        inner = into.get(key)
        if isinstance(value, dict) and isinstance(inner, dict):
            _merge(inner, value)
        else:
            into[key] = value
    # RFC 8785 order: by UTF-16 code units (the contracts' field names are ASCII, where that is plain order)
    items = sorted(into.items(), key=_utf16)
    into.clear()
    into.update(items)


def _utf16(item: tuple[str, Any]) -> bytes:
    return item[0].encode("utf-16-be", "surrogatepass")


class TemplateIds:
    """Canonical id and canonical bytes of templates, remembered by their plain JSON text (the containers of
    one image repeat the same template: ~2 µs for the text and a lookup instead of ~40 µs of canonical
    serialisation). Bounded LRU; thread-safe."""

    def __init__(self, max_entries: int = 4096, max_text: int = 256 * 1024) -> None:
        self.max_entries = max_entries
        self.max_text = max_text
        self._known: OrderedDict[bytes, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, template: dict[str, Any]) -> tuple[str, str]:
        """(canonical id, canonical JSON text) of ``template`` (parsed from canonical JSON text)."""
        plain = orjson.dumps(template)
        with self._lock:
            known = self._known.get(plain)
            if known is not None:
                self._known.move_to_end(plain)
                return known
        text = canonical_bytes(template)
        made = (multihash_id(text), text.decode())
        if len(plain) <= self.max_text:
            with self._lock:
                self._known[plain] = made
                if len(self._known) > self.max_entries:
                    self._known.popitem(last=False)
        return made
