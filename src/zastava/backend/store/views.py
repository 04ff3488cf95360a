"""The console's views in the store: maintained in the ingest transaction, read by indexed, paginated queries.

Writes (:func:`apply_event_views`, :func:`apply_decision_views`) run inside the ingest transaction on the
events and decisions that were actually inserted, so a resent batch never counts twice. Reads never scan
``runtime_events`` beyond one page: lists are keyset-paginated on an index, totals are counted up to
:data:`COUNT_CAP`, charts read the per-minute rollups.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, and_, case, delete, false, func, select
from sqlalchemy.dialects import postgresql, sqlite

from ..inventory import DRIFT_KINDS, EventFacts, NodeDelta, merge_container, minute_of
from .schema import (
    console_login_links,
    console_sessions,
    containers,
    decision_minutes,
    drift_events,
    event_minutes,
    nodes,
    runtime_events,
)

__all__ = [
    "COUNT_CAP",
    "apply_decision_views",
    "apply_event_views",
    "count_capped",
    "purge_views",
]

#: Totals shown on list pages are exact up to this many rows, then "10,000+": counting all matching rows
#: of a million-event table would cost more than the page itself.
COUNT_CAP = 10_000
_IN_CHUNK = 500  # ids per IN (...) list


def _upsert(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _greatest(conn: Connection, a: Any, b: Any) -> Any:
    return func.greatest(a, b) if conn.dialect.name == "postgresql" else func.max(a, b)


# ------------------------------------------------------------------------------------------------ writes


def apply_event_views(
    conn: Connection, tenant: str, facts: Sequence[EventFacts], now_us: int, *, all_inserted: bool
) -> None:
    """Fold the batch's new events into containers, nodes and the per-minute rollup."""
    if not facts:
        return
    if (
        not all_inserted
    ):  # some were resends: keep only the rows this transaction inserted (same receive time)
        e = runtime_events.c
        new: set[str] = set()
        ids = [f.event_id for f in facts]
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            new.update(
                conn.execute(
                    select(e.event_id).where(
                        e.tenant == tenant, e.received_us == now_us, e.event_id.in_(chunk)
                    )
                ).scalars()
            )
        facts = [f for f in facts if f.event_id in new]
        if not facts:
            return
    _apply_containers(conn, tenant, facts)
    _apply_nodes(conn, tenant, facts, now_us)
    drifts = [
        {
            "tenant": tenant,
            "event_id": f.event_id,
            "kind": f.kind,
            "node": f.node,
            "namespace": f.container.namespace if f.container else None,
            "image_digest": f.container.image_digest if f.container else None,
            "image": f.container.image if f.container else None,
            "when_us": f.when_us,
            "received_us": now_us,
        }
        for f in facts
        if f.kind in DRIFT_KINDS
    ]
    if drifts:
        conn.execute(drift_events.insert(), drifts)
    minute = minute_of(now_us)
    counts = Counter((f.node, f.kind) for f in facts)
    stmt = _upsert(conn)(event_minutes)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant", "minute", "node", "kind"],
        set_={"events": event_minutes.c.events + stmt.excluded.events},
    )
    conn.execute(
        stmt,
        [
            {"tenant": tenant, "minute": minute, "node": node, "kind": kind, "events": n}
            for (node, kind), n in sorted(counts.items())
        ],
    )


def _apply_containers(conn: Connection, tenant: str, facts: Sequence[EventFacts]) -> None:
    ordered = sorted((f for f in facts if f.container is not None), key=lambda f: f.when_us)
    if not ordered:
        return
    c = containers.c
    ids = sorted({f.container.container_id for f in ordered if f.container is not None})
    rows: dict[str, dict[str, Any]] = {}
    columns = [col for col in containers.c if col.name != "tenant"]
    for start in range(0, len(ids), _IN_CHUNK):
        stmt = select(*columns).where(c.tenant == tenant, c.container_id.in_(ids[start : start + _IN_CHUNK]))
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        for row in conn.execute(stmt).mappings():
            rows[row["container_id"]] = dict(row)
    for f in ordered:
        assert f.container is not None
        cid = f.container.container_id
        rows[cid] = merge_container(rows.get(cid), f.container, f.kind, f.when_us, f.node)
    if conn.dialect.name == "sqlite":
        _upsert_containers_sqlite(conn, tenant, [rows[cid] for cid in ids])
        return
    values = [{"tenant": tenant, **rows[cid]} for cid in ids]
    # executemany of one compiled statement: a multi-row VALUES statement measured 2.4x slower here, its
    # compilation (thousands of bound parameters, every chunk) costing more than the per-row steps it saves;
    # the driver-level multi-row statement SQLite uses doubled the store's CPU per event here (psycopg
    # handling ~20,000 parameters per statement: 155 against 70-74 µs per event, in process, same session)
    stmt = _upsert(conn)(containers)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant", "container_id"],
        set_={col.name: stmt.excluded[col.name] for col in columns if col.name != "container_id"},
    )
    conn.execute(stmt, values)


_CONTAINER_COLUMNS = tuple(col.name for col in containers.c)
_CONTAINER_SET = ", ".join(f"{name} = excluded.{name}" for name in _CONTAINER_COLUMNS[2:])


@lru_cache(maxsize=64)
def _sqlite_container_upsert(rows: int) -> str:
    assert _CONTAINER_COLUMNS[:2] == ("tenant", "container_id")
    row = f"({', '.join('?' for _ in _CONTAINER_COLUMNS)})"
    return (  # column names are constants, values are parameters
        f"INSERT INTO containers ({', '.join(_CONTAINER_COLUMNS)}) "  # noqa: S608
        f"VALUES {', '.join([row] * rows)} "
        f"ON CONFLICT (tenant, container_id) DO UPDATE SET {_CONTAINER_SET}"
    )


def _upsert_containers_sqlite(conn: Connection, tenant: str, rows: list[dict[str, Any]]) -> None:
    """The same upsert as the SQLAlchemy statement, as one multi-row statement per chunk of a text cached by
    row count: SQLAlchemy's per-row parameter processing cost ~17 µs per container (cProfile of
    ``bench/run.py backend``'s in-process ingest; store CPU per event 54-58 -> 43-46 µs), and
    ``executemany`` hands the GIL over once per row (see ``bulk.py``). Booleans are stored as SQLite
    integers, as SQLAlchemy's ``Boolean`` stores them."""
    dbapi: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
    names = _CONTAINER_COLUMNS[1:]
    chunk = min(1000, dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_CONTAINER_COLUMNS))
    cursor = dbapi.cursor()
    try:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params: list[Any] = []
            for row in part:
                params.append(tenant)
                params.extend([row[name] for name in names])
            cursor.execute(_sqlite_container_upsert(len(part)), params)
    finally:
        cursor.close()


def _apply_nodes(conn: Connection, tenant: str, facts: Sequence[EventFacts], now_us: int) -> None:
    deltas: dict[str, NodeDelta] = {}
    for f in facts:
        d = deltas.get(f.node)
        if d is None:
            d = deltas[f.node] = NodeDelta(engine=f.engine, last_event_us=f.when_us)
        d.events += 1
        if f.when_us >= d.last_event_us:
            d.last_event_us, d.engine = f.when_us, f.engine
        if f.warning is not None:
            code, message, count = f.warning
            if code == "buffer.drop":
                d.drops += count
                d.gaps += 1
            else:
                d.warnings += 1
            if d.last_warning is None or f.when_us >= d.last_warning[0]:
                d.last_warning = (f.when_us, code, message)
    n = nodes.c
    stmt = _upsert(conn)(nodes)
    x = stmt.excluded
    newer_warning = and_(
        x.last_warning_us.is_not(None),
        (n.last_warning_us.is_(None)) | (x.last_warning_us >= n.last_warning_us),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant", "node"],
        set_={
            "engine": case((x.last_event_us >= n.last_event_us, x.engine), else_=n.engine),
            "last_event_us": _greatest(conn, n.last_event_us, x.last_event_us),
            "last_received_us": _greatest(conn, n.last_received_us, x.last_received_us),
            "events": n.events + x.events,
            "drops": n.drops + x.drops,
            "gaps": n.gaps + x.gaps,
            "warnings": n.warnings + x.warnings,
            "last_warning_us": case((newer_warning, x.last_warning_us), else_=n.last_warning_us),
            "last_warning_code": case((newer_warning, x.last_warning_code), else_=n.last_warning_code),
            "last_warning_message": case(
                (newer_warning, x.last_warning_message), else_=n.last_warning_message
            ),
        },
    )
    conn.execute(
        stmt,
        [
            {
                "tenant": tenant,
                "node": node,
                "engine": d.engine,
                "last_event_us": d.last_event_us,
                "last_received_us": now_us,
                "events": d.events,
                "drops": d.drops,
                "gaps": d.gaps,
                "warnings": d.warnings,
                "last_warning_us": d.last_warning[0] if d.last_warning else None,
                "last_warning_code": d.last_warning[1] if d.last_warning else None,
                "last_warning_message": d.last_warning[2] if d.last_warning else None,
            }
            for node, d in sorted(deltas.items())
        ],
    )


def apply_decision_views(conn: Connection, tenant: str, outcomes: Iterable[tuple[int, str]]) -> None:
    """Count inserted decisions per receive minute and outcome: ``outcomes`` is ``(received_us, outcome)``."""
    counts = Counter((minute_of(us), outcome) for us, outcome in outcomes)
    if not counts:
        return
    stmt = _upsert(conn)(decision_minutes)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant", "minute", "outcome"],
        set_={"decisions": decision_minutes.c.decisions + stmt.excluded.decisions},
    )
    conn.execute(
        stmt,
        [
            {"tenant": tenant, "minute": m, "outcome": o, "decisions": n}
            for (m, o), n in sorted(counts.items())
        ],
    )


def purge_views(conn: Connection, now_us: int, *, events_s: int, decisions_s: int) -> dict[str, int]:
    """Retention of the views: stopped containers and silent nodes after the event retention, rollups with
    their records, expired console sessions and login links."""
    events_cut = now_us - events_s * 1_000_000
    decisions_cut = now_us - decisions_s * 1_000_000
    c, n = containers.c, nodes.c
    return {
        "containers": conn.execute(
            delete(containers).where(c.last_seen_us < events_cut, c.running == false())
        ).rowcount,
        "nodes": conn.execute(delete(nodes).where(n.last_received_us < events_cut)).rowcount,
        "drift_events": conn.execute(
            delete(drift_events).where(drift_events.c.received_us < events_cut)
        ).rowcount,
        "event_minutes": conn.execute(
            delete(event_minutes).where(event_minutes.c.minute < minute_of(events_cut))
        ).rowcount,
        "decision_minutes": conn.execute(
            delete(decision_minutes).where(decision_minutes.c.minute < minute_of(decisions_cut))
        ).rowcount,
        "console_sessions": conn.execute(
            delete(console_sessions).where(console_sessions.c.expires_us < now_us)
        ).rowcount,
        "console_login_links": conn.execute(
            delete(console_login_links).where(console_login_links.c.expires_us < now_us)
        ).rowcount,
    }


# ------------------------------------------------------------------------------------------------- reads


def count_capped(conn: Connection, stmt: Any) -> tuple[int, bool]:
    """(count, capped): rows of ``stmt`` counted up to :data:`COUNT_CAP` (+1 to know it was exceeded)."""
    limited = stmt.limit(COUNT_CAP + 1).subquery()
    total = int(conn.execute(select(func.count()).select_from(limited)).scalar_one())
    return min(total, COUNT_CAP), total > COUNT_CAP
