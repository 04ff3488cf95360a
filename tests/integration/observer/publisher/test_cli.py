"""``zastava events send|tail`` against the real reference backend (``zastava backend serve`` subprocess)."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from tests.harness.events import make_event
from zastava.cli import app
from zastava.contracts import dump_runtime_envelope

from .real_backend import BackendProcess

runner = CliRunner()


def write_events(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_send_file_delivers_envelopes_and_bare_events_and_reports_bad_lines(
    backend: BackendProcess, tmp_path: Path
) -> None:
    good = [make_event(i) for i in range(30)]
    lines = [dump_runtime_envelope(e) for e in good[:20]]
    lines += [orjson.dumps(e.wire()) for e in good[20:]]  # bare events are accepted too
    lines.insert(5, b"{not json")
    lines.insert(9, b'{"schemaVersion": "zastava.runtime.event@v9.0", "event": {}}')
    lines.insert(12, b"")  # blank lines are ignored
    source = write_events(tmp_path / "events.ndjson", lines)
    result = runner.invoke(app, ["events", "send", str(source), "--backend", backend.url])
    assert result.exit_code == 1, result.output
    assert "line 6: invalid JSON" in result.output
    assert "line 10:" in result.output and "v9.0" in result.output
    assert "30 read, 30 delivered" in result.output
    assert backend.event_ids() == [e.event_id for e in good]


def test_send_from_stdin_is_idempotent(backend: BackendProcess) -> None:
    data = b"\n".join(dump_runtime_envelope(make_event(i)) for i in range(10)) + b"\n"
    for _ in range(2):
        result = runner.invoke(app, ["events", "send", "-", "--backend", backend.url], input=data)
        assert result.exit_code == 0, result.output
    assert backend.count() == 10  # the second run's events were duplicates, stored once


def test_send_with_backend_down_keeps_the_buffer_and_a_later_run_delivers_it(
    backend: BackendProcess, tmp_path: Path
) -> None:
    backend.stop()
    source = write_events(tmp_path / "e.ndjson", [dump_runtime_envelope(make_event(i)) for i in range(15)])
    buffer_dir = tmp_path / "buffer"
    args = [
        "events",
        "send",
        "--backend",
        backend.url,
        "--buffer-dir",
        str(buffer_dir),
        "--timeout",
        "0.5",
    ]
    result = runner.invoke(app, [*args, str(source)])
    assert result.exit_code == 3, result.output
    assert f"undelivered events kept in {buffer_dir}" in result.output
    backend.start()
    empty = write_events(tmp_path / "empty.ndjson", [])
    result = runner.invoke(app, [*args[:-1], "10", str(empty)])
    assert result.exit_code == 0, result.output
    assert backend.count() == 15


def test_send_refuses_plain_http_to_a_remote_host(tmp_path: Path) -> None:
    source = write_events(tmp_path / "e.ndjson", [])
    result = runner.invoke(app, ["events", "send", str(source), "--backend", "http://scanner.example:8080"])
    assert result.exit_code == 2 and "--allow-insecure-http" in result.output
    result = runner.invoke(
        app, ["events", "send", str(tmp_path / "missing"), "--backend", "http://127.0.0.1:1"]
    )
    assert result.exit_code == 2 and "cannot read" in result.output


def test_tail_prints_stored_envelopes_oldest_first_across_pages_and_follows(
    backend: BackendProcess, tmp_path: Path
) -> None:
    events = [make_event(i) for i in range(7)]
    data = b"\n".join(dump_runtime_envelope(e) for e in events) + b"\n"
    assert runner.invoke(app, ["events", "send", "-", "--backend", backend.url], input=data).exit_code == 0
    result = runner.invoke(app, ["events", "tail", "--backend", backend.url, "--once", "--limit", "3"])
    assert result.exit_code == 0, result.output
    printed = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [p["event"]["eventId"] for p in printed] == [e.event_id for e in events]  # 3 pages, oldest first
    assert printed[0]["schemaVersion"].startswith("zastava.runtime.event@")  # envelopes, not query items
    result = runner.invoke(app, ["events", "tail", "--backend", backend.url, "--once", "--backlog", "2"])
    assert [orjson.loads(line)["event"]["eventId"] for line in result.stdout.splitlines()] == [
        e.event_id for e in events[5:]
    ]
    since = events[4].when.isoformat().replace("+00:00", "Z")
    result = runner.invoke(app, ["events", "tail", "--backend", backend.url, "--once", "--since", since])
    assert [orjson.loads(line)["event"]["eventId"] for line in result.stdout.splitlines()] == [
        e.event_id for e in events[4:]
    ]


def test_tail_follows_new_events_without_repeating(backend: BackendProcess, tmp_path: Path) -> None:
    import subprocess
    import sys

    first = b"\n".join(dump_runtime_envelope(make_event(i)) for i in range(3)) + b"\n"
    later = b"\n".join(dump_runtime_envelope(make_event(i)) for i in range(3, 6)) + b"\n"
    assert runner.invoke(app, ["events", "send", "-", "--backend", backend.url], input=first).exit_code == 0
    cmd = [sys.executable, "-m", "zastava", "events", "tail", "--interval", "0.2", "--max-events", "6"]
    proc = subprocess.Popen(
        [*cmd, "--backend", backend.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        backlog = [proc.stdout.readline() for _ in range(3)]  # the backlog is printed before more arrive
        assert (
            runner.invoke(app, ["events", "send", "-", "--backend", backend.url], input=later).exit_code == 0
        )
        rest, err = proc.communicate(timeout=60)
        out = b"".join(backlog) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    ids = [orjson.loads(line)["event"]["eventId"] for line in out.splitlines()]
    assert ids == [make_event(i).event_id for i in range(6)]


def test_tail_reports_an_unreachable_backend(backend: BackendProcess) -> None:
    backend.stop()
    result = runner.invoke(app, ["events", "tail", "--backend", backend.url, "--once"])
    assert result.exit_code == 3 and "ConnectError" in result.output
