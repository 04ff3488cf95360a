"""Events stored once per shape: the parts of a runtime event that repeat for every container of an image
(loaded libraries, EntryTrace, posture, delta, the image and owner) are kept once, content-addressed by their
canonical id, in ``event_templates`` (as JSON text in the envelope's own key order, the event's own values
left as ``null``); the event row keeps only what is its own (:data:`INSTANCE`: ids, times, node, pod,
container id, pid, evidence — which names pids and counts) and the template's id.

:func:`split` runs at ingest on the canonical envelope; :func:`assemble` gives the read APIs the
envelope back equal, key order included, to what the row held before this existed (a row with no
template holds the whole envelope, as rows written before migration 0003 do).

Templates are purged by their ``last_used_us``: every event referencing one was received no later than
that, so once it is older than the events' retention no event references it any more.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import orjson

from ...contracts import canonical_id

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
    """(the template: ``envelope`` with each :data:`INSTANCE` value present replaced by ``null`` — the key
    stays where it was, so the envelope comes back in its own key order —, those values as nested JSON), or
    None when ``envelope`` is not an object with an ``event`` object (stored whole)."""
    whole = orjson.loads(envelope)
    event = whole.get("event") if isinstance(whole, dict) else None
    if not isinstance(event, dict):
        return None
    own = _take(event, _OWN)
    for name, keys in _NESTED:
        inner = event.get(name)
        if isinstance(inner, dict):
            values = _take(inner, keys)
            if values:
                own[name] = values
    return whole, orjson.dumps({"event": own})


def _take(into: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    taken: dict[str, Any] = {}
    for key in keys:
        if key in into:
            taken[key] = into[key]
            into[key] = None
    return taken


def assemble(instance: str | bytes, template: str | bytes | None) -> Any:
    """The envelope of a row: ``instance`` is the row's body, ``template`` its template's body (None: the
    body is the whole envelope). Equal to the envelope :func:`split` took apart, key order included."""
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
            into[key] = value  # the key is there (a placeholder): it keeps its place


class TemplateIds:
    """Canonical id of templates, remembered by their JSON text (what is stored: the containers of one image
    repeat the same template, so ~2 µs for the text and a lookup instead of ~40 µs of canonical
    serialisation). Bounded LRU; thread-safe."""

    def __init__(self, max_entries: int = 4096, max_text: int = 256 * 1024) -> None:
        self.max_entries = max_entries
        self.max_text = max_text
        self._known: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, template: dict[str, Any]) -> tuple[str, str]:
        """(canonical id, JSON text to store) of ``template``. The text keeps the envelope's key order; the
        id is that of the value (RFC 8785), so equal templates share one row whatever their order."""
        plain = orjson.dumps(template)
        with self._lock:
            known = self._known.get(plain)
            if known is not None:
                self._known.move_to_end(plain)
                return known, plain.decode()
        made = canonical_id(template)
        if len(plain) <= self.max_text:
            with self._lock:
                self._known[plain] = made
                if len(self._known) > self.max_entries:
                    self._known.popitem(last=False)
        return made, plain.decode()
