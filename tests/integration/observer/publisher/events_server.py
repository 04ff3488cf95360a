"""A real HTTP server playing the backend's runtime-events API, kept ONLY for behaviours the real reference
backend cannot be made to show on demand.

The publisher's delivery, outage, ``kill -9``, buffer-cap, corruption, rate-limit and CLI tests run against
the real backend (``real_backend.BackendProcess``: ``zastava backend serve`` subprocess). This server remains
for: forced 429 + ``Retry-After`` and 503 on every POST, answers slower than the client's timeout (after
storing), refusing chosen ``eventId``s (isolation of a rejected event), a backend advertising only
``zastava.runtime.event@v1.0`` (down-conversion), and counting POSTs/statuses (batching, per-request
headers, spans); ``bench/bench_publisher.py`` also uses it (``--no-validate``) to measure the publisher
rather than the backend's storage. Its wire contract:

* ``POST /api/v1/scanner/runtime/events`` — ND-JSON, optionally ``Content-Encoding: gzip``; each line is a
  runtime-event envelope validated with ``zastava.contracts.parse_runtime_envelope``; a batch with any invalid
  line, or with a line at a schema version the server does not advertise, is refused whole with 400; events
  are stored idempotently by ``eventId`` (SQLite, ``INSERT OR IGNORE``); answers 202 with a JSON body.
* ``GET /api/v1/scanner/runtime/events?since=<cursor>&limit=<n>`` — ``{"items": [envelope…], "cursor": …}``.
* Every response carries ``Zastava-Schema-Versions`` (configurable, to play a v1.0 backend).

Failure injection for tests: :meth:`EventsServer.stop`/:meth:`EventsServer.start` (same port, same database),
``fail_status``/``retry_after`` (answer e.g. 429/503 to every POST), ``delay_seconds`` (slow answer,
after storing),
``reject_event_ids`` (400 for any batch holding one of them), ``max_body_bytes`` (413).

Run it as a process (used by the benchmark): ``python -m tests.integration.observer.publisher.events_server
--port N --db FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import signal
import sqlite3
import threading
import zlib
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from tests.harness.servers import ThreadedServer
from zastava.contracts import RUNTIME_EVENT, SCHEMA_VERSIONS_HEADER, EnvelopeError, parse_runtime_envelope
from zastava.contracts import versions as contract_versions

__all__ = ["EVENTS_PATH", "EventsServer", "EventsStore"]

EVENTS_PATH = "/api/v1/scanner/runtime/events"


class EventsStore:
    """Events by ``eventId`` in SQLite, with arrival order."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT UNIQUE,"
            " node TEXT, kind TEXT, version TEXT, body BLOB)"
        )
        self._lock = threading.Lock()
        self.duplicates = 0
        self.received = 0

    def add(self, rows: list[tuple[str, str, str, str, bytes]]) -> int:
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO events (event_id, node, kind, version, body) VALUES (?,?,?,?,?)", rows
            )
            self._db.execute("COMMIT")
            stored = self._db.total_changes - before
            self.received += len(rows)
            self.duplicates += len(rows) - stored
            return stored

    def rows(self) -> list[tuple[int, str, str, str, str, bytes]]:
        with self._lock:
            return list(
                self._db.execute("SELECT seq, event_id, node, kind, version, body FROM events ORDER BY seq")
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def since(self, cursor: int, limit: int) -> list[tuple[int, bytes]]:
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, limit)
                )
            )

    def close(self) -> None:
        self._db.close()


class EventsServer:
    """uvicorn + Starlette in a background thread on 127.0.0.1; restartable on the same port."""

    def __init__(
        self,
        db_path: Path | str = ":memory:",
        *,
        schema_versions: str | None = None,
        port: int = 0,
        validate: bool = True,
    ) -> None:
        self.store = EventsStore(db_path)
        self.schema_versions = schema_versions or contract_versions.header_value(RUNTIME_EVENT)
        self.validate = validate
        self.fail_status: int | None = None
        self.retry_after: str | None = None
        self.delay_seconds = 0.0
        self.reject_event_ids: set[str] = set()
        self.max_body_bytes = 64 * 1024 * 1024
        self.posts = 0
        self.statuses: list[int] = []
        self.app = Starlette(
            routes=[Route(EVENTS_PATH, self._post, methods=["POST"]), Route(EVENTS_PATH, self._get)]
        )
        self.http = ThreadedServer(self.app, port=port, lifespan="off")
        self.port = self.http.port

    # ----------------------------------------------------------------------------------------- HTTP

    def _response(self, status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        self.statuses.append(status)
        all_headers = {SCHEMA_VERSIONS_HEADER: self.schema_versions, **(headers or {})}
        return Response(orjson.dumps(body), status, all_headers, media_type="application/json")

    def _accepted_versions(self) -> set[str]:
        return {v.strip() for v in self.schema_versions.split(",") if v.strip()}

    async def _post(self, request: Request) -> Response:
        self.posts += 1
        if self.fail_status is not None:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return self._response(self.fail_status, {"error": "injected failure"}, headers)
        try:
            raw = await request.body()
        except ClientDisconnect:
            return self._response(499, {"error": "client went away"})
        if request.headers.get("content-encoding", "").lower() == "gzip":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as exc:
                return self._response(400, {"error": f"bad gzip body: {exc}"})
        if len(raw) > self.max_body_bytes:
            return self._response(413, {"error": "body too large"})
        accepted = self._accepted_versions()
        rows: list[tuple[str, str, str, str, bytes]] = []
        for number, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                return self._response(400, {"error": f"line {number}: invalid JSON: {exc}"})
            version = data.get("schemaVersion") if isinstance(data, dict) else None
            if version not in accepted:
                return self._response(400, {"error": f"line {number}: unsupported schemaVersion {version!r}"})
            if self.validate:
                try:
                    _v, event = parse_runtime_envelope(data)
                except EnvelopeError as exc:
                    return self._response(400, {"error": f"line {number}: {exc}"})
                event_id, node, kind = event.event_id, event.node, event.kind.value
            else:
                body = data["event"]
                event_id, node, kind = body["eventId"], body["node"], body["kind"]
            if event_id in self.reject_event_ids:
                return self._response(400, {"error": f"line {number}: event {event_id} refused"})
            rows.append((event_id, node, kind, str(version), bytes(line)))
        stored = self.store.add(rows)
        if self.delay_seconds:  # slow to answer: stored, but the client may give up before the answer
            await asyncio.sleep(self.delay_seconds)
        return self._response(
            202, {"accepted": len(rows), "stored": stored, "duplicates": len(rows) - stored}
        )

    async def _get(self, request: Request) -> Response:
        try:
            cursor = int(request.query_params.get("since") or 0)
            limit = max(1, min(1000, int(request.query_params.get("limit") or 500)))
        except ValueError:
            return self._response(400, {"error": "since and limit must be integers"})
        rows = self.store.since(cursor, limit)
        items = [orjson.loads(body) for _seq, body in rows]
        next_cursor = str(rows[-1][0]) if rows else str(cursor)
        return self._response(200, {"items": items, "cursor": next_cursor})

    # ----------------------------------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EventsServer:
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()

    def close(self) -> None:
        self.stop()
        self.store.close()

    def __enter__(self) -> EventsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", default=":memory:")
    parser.add_argument("--no-validate", action="store_true", help="store without pydantic validation")
    args = parser.parse_args()
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    with EventsServer(args.db, port=args.port, validate=not args.no_validate):
        done.wait()


if __name__ == "__main__":
    main()
