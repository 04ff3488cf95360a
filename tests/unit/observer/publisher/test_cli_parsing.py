"""Input and response parsing of ``zastava events`` (no network)."""

from __future__ import annotations

import orjson
import pytest

from tests.harness.events import make_event
from zastava.contracts import dump_runtime_envelope
from zastava.observer.publisher.cli import parse_event_line, parse_page


def test_parse_event_line_accepts_envelopes_and_bare_events() -> None:
    event = make_event(1)
    assert parse_event_line(dump_runtime_envelope(event)) == event
    assert parse_event_line(orjson.dumps(event.wire())) == event


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{", "invalid JSON"),
        (b"[1]", "expected a JSON object"),
        (b'{"schemaVersion": "zastava.runtime.event@v2.0", "event": {}}', "unsupported major"),
        (b'{"kind": "CONTAINER_START"}', "not a runtime event"),
    ],
)
def test_parse_event_line_errors_are_clear(line: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_event_line(line)


def test_parse_page_shapes() -> None:
    envelope = {"schemaVersion": "zastava.runtime.event@v1.1", "event": {"eventId": "e1"}}
    page = {"items": [{"receivedAt": "2026-11-28T12:00:00Z", "envelope": envelope}], "total": 1}
    assert parse_page(page) == ([envelope], None)  # the backend's query items are unwrapped
    assert parse_page({"items": [], "total": 9, "nextCursor": 4}) == ([], "4")
    assert parse_page({"items": [envelope], "nextCursor": ""}) == ([envelope], None)
    for bad in ({"cursor": "1"}, {"items": {}}, "text", [1]):
        with pytest.raises(ValueError):
            parse_page(bad)


def test_oversized_input_lines_are_reported_and_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from zastava.observer.publisher import cli

    monkeypatch.setattr(cli, "MAX_LINE_BYTES", 64)
    stream = io.BytesIO(b"short\n" + b"x" * 500 + b"\nafter\n" + b"y" * 70)
    assert list(cli._lines(stream)) == [(1, b"short\n"), (2, None), (3, b"after\n"), (4, None)]


def test_line_rejections_of_an_ingest_answer() -> None:
    from zastava.observer.publisher.client import _line_rejections

    body = b'{"accepted": 1, "rejected": [{"index": 2, "error": "tenant"}, {"index": -1}, {"index": "x"}]}'
    assert _line_rejections(body) == ((2, "tenant"),)
    assert _line_rejections(b'{"accepted": 3}') == ()
    assert _line_rejections(b'{"rejected": "no"}') == ()
    assert _line_rejections(b'not json, but mentions "rejected"') == ()
