"""Batched event inserts, idempotent by ``(tenant, eventId)``: ``executemany`` on SQLite, ``COPY`` on PG.

Both return how many rows were actually inserted; rows whose id is already stored are skipped, also when a
concurrent request inserts the same ids at the same time (PostgreSQL's ``ON CONFLICT`` waits for the other
transaction; SQLite writers are serialised by the store).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from .records import EVENT_COLUMNS, EventRow

__all__ = ["insert_events"]

_COLS = ", ".join(EVENT_COLUMNS)
_SQLITE_INSERT = (  # column names are constants
    f"INSERT INTO runtime_events ({_COLS}) VALUES ({', '.join('?' for _ in EVENT_COLUMNS)}) "  # noqa: S608
    "ON CONFLICT (tenant, event_id) DO NOTHING"
)
_PG_TEMP = (
    "CREATE TEMP TABLE IF NOT EXISTS _zastava_ingest_events "
    "(LIKE runtime_events INCLUDING DEFAULTS EXCLUDING CONSTRAINTS EXCLUDING INDEXES) ON COMMIT DELETE ROWS"
)
_PG_COPY = f"COPY _zastava_ingest_events ({_COLS}) FROM STDIN"
_PG_MOVE = (  # column names are constants
    f"INSERT INTO runtime_events ({_COLS}) SELECT {_COLS} FROM _zastava_ingest_events "  # noqa: S608
    "ORDER BY event_id ON CONFLICT (tenant, event_id) DO NOTHING"
)


def insert_events(conn: Connection, rows: Sequence[EventRow]) -> int:
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return _insert_postgres(conn, rows)
    return _insert_sqlite(conn, rows)


def _insert_sqlite(conn: Connection, rows: Sequence[EventRow]) -> int:
    dbapi: Any = conn.connection.driver_connection
    cursor = dbapi.cursor()
    try:
        cursor.executemany(_SQLITE_INSERT, rows)
        return int(cursor.rowcount)
    finally:
        cursor.close()


def _insert_postgres(conn: Connection, rows: Sequence[EventRow]) -> int:
    dbapi: Any = conn.connection.driver_connection
    with dbapi.cursor() as cursor:
        cursor.execute(_PG_TEMP)
        with cursor.copy(_PG_COPY) as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(_PG_MOVE)
        return int(cursor.rowcount)  # the temp table empties itself on commit
