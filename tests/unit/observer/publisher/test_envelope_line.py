"""The publisher's fast envelope line is the same JSON as ``dump_runtime_envelope``."""

from __future__ import annotations

import orjson

from tests.harness.events import make_event
from zastava.config import ZastavaConfig
from zastava.contracts import AgentWarning, EventKind, LoadedLib, dump_runtime_envelope
from zastava.contracts.examples import example_runtime_event
from zastava.observer.publisher import EventPublisher


def test_fast_line_equals_the_contract_serializer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    publisher = EventPublisher(ZastavaConfig(), buffer_dir=tmp_path)
    full = example_runtime_event()
    events = [
        full,
        full.model_copy(update={"count": 3, "loaded_libs": [LoadedLib(path="/lib/ü.so", inode=1)]}),
        make_event(1, padding=100),
        make_event(2).model_copy(
            update={
                "kind": EventKind.AGENT_WARNING,
                "warning": AgentWarning(code="buffer.drop", message='gap \u2028 "quoted"', count=2),
            }
        ),
    ]
    for event in events:
        fast = publisher.envelope_line(event)
        assert orjson.loads(fast) == orjson.loads(dump_runtime_envelope(event))
        assert b"\n" not in fast
