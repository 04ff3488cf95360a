"""The real reference backend (``zastava backend serve``, issue 5) as a subprocess, for the publisher's tests.

:class:`BackendProcess` starts ``python -m zastava backend serve --config … --store sqlite:///… --listen
127.0.0.1:PORT`` in its own temp directory, waits for ``/readyz``, and stops it by its PID (SIGTERM, then
SIGKILL) — an outage is ``stop()`` then ``start()`` on the same port and the same SQLite store. Stored events
are read back from the store file opened read-only (``mode=ro``), in arrival order (``id``), or through the
query API (:meth:`query_all`, newest first, paginated with ``nextCursor``).

The backend's per-node and per-tenant rate caps are raised in the config so that the tests measure the
publisher, not the backend's 429s (those are covered by the backend's own suite).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.harness.devstack import free_port
from zastava.backend.store.templates import assemble

EVENTS_PATH = "/api/v1/scanner/runtime/events"

_CONFIG = """\
zastava:
  backendServer:
    tenantRate: {eventsPerSecond: 1000000, burst: 10000000}
    nodeRate: {eventsPerSecond: 1000000, burst: 10000000}
    maxConcurrentRequests: 256
"""


class BackendProcess:
    """``zastava backend serve`` on loopback over a SQLite store; restartable on the same port."""

    def __init__(self, directory: Path, *, config_text: str = _CONFIG, scheme: str = "http") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.db_path = directory / "backend.sqlite"
        self.config_path = directory / "backend.yaml"
        self.config_path.write_text(config_text)
        self.port = free_port()
        self.scheme = scheme
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "serve.log"

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it to be ready."""
        assert self.proc is None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "zastava",
                    "backend",
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--store",
                    f"sqlite:///{self.db_path}",
                    "--listen",
                    f"127.0.0.1:{self.port}",
                    "--log-level",
                    "WARNING",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.directory,
            )
        self.starts += 1
        return self.proc

    def wait_ready(self, within: float = 60.0, **client: Any) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + within
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1, **client).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"backend did not start: {self.log_path.read_text()[-4000:]}")
            time.sleep(0.1)

    def start(self, **client: Any) -> BackendProcess:
        self.spawn()
        self.wait_ready(**client)
        return self

    def stop(self) -> None:
        """Stop the process this object started, by its PID."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    # ------------------------------------------------------------------------------------- read back

    def rows(self) -> list[tuple[int, str, str, str, str, str]]:
        """``(id, eventId, node, kind, schemaVersion, envelope JSON)`` in arrival order (read-only open).
        A row stored as its own values plus a shared template (what every container of an image repeats)
        is read back whole, as the backend's read APIs assemble it."""
        if not self.db_path.exists():
            return []
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            rows = list(
                db.execute(
                    "SELECT e.id, e.event_id, e.node, e.kind, e.schema_version, e.body, t.body"
                    " FROM runtime_events e LEFT JOIN event_templates t"
                    " ON t.tenant = e.tenant AND t.id = e.template_ref ORDER BY e.id"
                )
            )
        finally:
            db.close()
        return [(*row[:5], orjson.dumps(assemble(row[5], row[6])).decode()) for row in rows]

    def count(self) -> int:
        return len(self.rows())

    def event_ids(self) -> list[str]:
        return [row[1] for row in self.rows()]

    def query_all(self, client: httpx.Client | None = None, **params: Any) -> tuple[list[Any], int]:
        """Every item of ``GET /api/v1/scanner/runtime/events`` (newest first), following ``nextCursor``;
        returns the items and the ``total`` of the first page."""
        own = client is None
        http = client or httpx.Client(timeout=30)
        try:
            items: list[Any] = []
            total: int | None = None
            cursor: str | None = None
            while True:
                query = {"limit": 1000, **params, **({"cursor": cursor} if cursor else {})}
                response = http.get(self.url + EVENTS_PATH, params=query)
                assert response.status_code == 200, response.text
                page = orjson.loads(response.content)
                total = page["total"] if total is None else total
                items.extend(page["items"])
                cursor = page.get("nextCursor")
                if not cursor:
                    return items, int(total)
        finally:
            if own:
                http.close()

    def __enter__(self) -> BackendProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
