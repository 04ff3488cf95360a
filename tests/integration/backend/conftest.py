"""Backend fixtures: every test that takes ``store_url`` runs on SQLite and on the real PostgreSQL server.

PostgreSQL databases are cloned from a migrated template (``CREATE DATABASE … TEMPLATE``), one per test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import devstack
from zastava.backend.app import BackendApp, create_app
from zastava.backend.store import Store
from zastava.config import BackendServer

TEMPLATE = "zastava_backend_template"


@pytest.fixture(scope="session")
def pg_template(postgres: devstack.PostgresServer) -> devstack.PostgresServer:
    url = postgres.create_database(TEMPLATE)
    store = Store(url)  # applies the migrations once
    store.close()
    return postgres


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.real)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'backend.db'}"
        return
    server: devstack.PostgresServer = request.getfixturevalue("pg_template")
    name = f"t_{uuid.uuid4().hex[:16]}"
    server.psql(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}" STRATEGY FILE_COPY')
    try:
        yield server.url(name)
    finally:  # dropping discards the database's buffers: the server stops fast and the disk stays small
        server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    try:
        yield s
    finally:
        s.close()


class Clock:
    """A settable wall clock and monotonic clock for retention and rate-cap tests."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.mono = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


AppFactory = Callable[..., BackendApp]


@pytest.fixture
def make_app(store: Store, clock: Clock) -> AppFactory:
    def factory(**settings: Any) -> BackendApp:
        defaults: dict[str, Any] = {"store": "sqlite:///unused.db", "static_tenant": "tenant-01"}
        return create_app(
            BackendServer.model_validate({**defaults, **settings}),
            store=store,
            clock=clock.time,
            monotonic=clock.monotonic,
            purge=False,
        )

    return factory


@pytest.fixture
async def client(make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app()), base_url="http://backend"
    ) as c:
        yield c


def client_for(app: BackendApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backend")
