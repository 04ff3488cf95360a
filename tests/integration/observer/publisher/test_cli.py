"""``zastava events send|tail`` against the real HTTP test server (stand-in for the issue-5 backend)."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from zastava.cli import app
from zastava.contracts import dump_runtime_envelope

from .events_server import EventsServer, make_event

runner = CliRunner()


def write_events(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_send_file_delivers_envelopes_and_bare_events_and_reports_bad_lines(
    events_server: EventsServer, tmp_path: Path
) -> None:
    good = [make_event(i) for i in range(30)]
    lines = [dump_runtime_envelope(e) for e in good[:20]]
    lines += [orjson.dumps(e.wire()) for e in good[20:]]  # bare events are accepted too
    lines.insert(5, b"{not json")
    lines.insert(9, b'{"schemaVersion": "zastava.runtime.event@v9.0", "event": {}}')
    lines.insert(12, b"")  # blank lines are ignored
    source = write_events(tmp_path / "events.ndjson", lines)
    result = runner.invoke(app, ["events", "send", str(source), "--backend", events_server.url])
    assert result.exit_code == 1, result.output
    assert "line 6: invalid JSON" in result.output
    assert "line 10:" in result.output and "v9.0" in result.output
    assert "30 read, 30 delivered" in result.output
    assert [row[1] for row in events_server.store.rows()] == [e.event_id for e in good]


def test_send_from_stdin_is_idempotent(events_server: EventsServer) -> None:
    data = b"\n".join(dump_runtime_envelope(make_event(i)) for i in range(10)) + b"\n"
    for _ in range(2):
        result = runner.invoke(app, ["events", "send", "-", "--backend", events_server.url], input=data)
        assert result.exit_code == 0, result.output
    assert events_server.store.count() == 10 and events_server.store.duplicates == 10


def test_send_with_backend_down_keeps_the_buffer_and_a_later_run_delivers_it(
    events_server: EventsServer, tmp_path: Path
) -> None:
    events_server.stop()
    source = write_events(tmp_path / "e.ndjson", [dump_runtime_envelope(make_event(i)) for i in range(15)])
    buffer_dir = tmp_path / "buffer"
    args = [
        "events",
        "send",
        "--backend",
        events_server.url,
        "--buffer-dir",
        str(buffer_dir),
        "--timeout",
        "0.5",
    ]
    result = runner.invoke(app, [*args, str(source)])
    assert result.exit_code == 3, result.output
    assert f"undelivered events kept in {buffer_dir}" in result.output
    events_server.start()
    empty = write_events(tmp_path / "empty.ndjson", [])
    result = runner.invoke(app, [*args[:-1], "10", str(empty)])
    assert result.exit_code == 0, result.output
    assert events_server.store.count() == 15


def test_send_refuses_plain_http_to_a_remote_host(tmp_path: Path) -> None:
    source = write_events(tmp_path / "e.ndjson", [])
    result = runner.invoke(app, ["events", "send", str(source), "--backend", "http://scanner.example:8080"])
    assert result.exit_code == 2 and "--allow-insecure-http" in result.output
    result = runner.invoke(
        app, ["events", "send", str(tmp_path / "missing"), "--backend", "http://127.0.0.1:1"]
    )
    assert result.exit_code == 2 and "cannot read" in result.output


def test_tail_prints_stored_envelopes_and_follows_the_cursor(
    events_server: EventsServer, tmp_path: Path
) -> None:
    events = [make_event(i) for i in range(7)]
    data = b"\n".join(dump_runtime_envelope(e) for e in events) + b"\n"
    assert (
        runner.invoke(app, ["events", "send", "-", "--backend", events_server.url], input=data).exit_code == 0
    )
    result = runner.invoke(app, ["events", "tail", "--backend", events_server.url, "--once", "--limit", "3"])
    assert result.exit_code == 0, result.output
    printed = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [p["event"]["eventId"] for p in printed] == [e.event_id for e in events]  # 3 pages followed
    result = runner.invoke(app, ["events", "tail", "--backend", events_server.url, "--since", "5", "--once"])
    assert [orjson.loads(line)["event"]["eventId"] for line in result.stdout.splitlines()] == [
        e.event_id for e in events[5:]
    ]
    result = runner.invoke(app, ["events", "tail", "--backend", events_server.url, "--max-events", "2"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2


def test_tail_reports_an_unreachable_backend(events_server: EventsServer) -> None:
    events_server.stop()
    result = runner.invoke(app, ["events", "tail", "--backend", events_server.url, "--once"])
    assert result.exit_code == 3 and "ConnectError" in result.output
