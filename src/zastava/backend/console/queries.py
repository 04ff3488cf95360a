"""The console's reads: one indexed, keyset-paginated query per list, rollups for charts, all tenant-scoped.

Every function takes the caller's tenant first and puts it in every ``WHERE``: there is no query here that
can return another tenant's row. Cursors are opaque to the browser (base64url of the last sort key or id).
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, and_, false, func, select, true, union_all

from ..inventory import DRIFT_KINDS, minute_of
from ..store import Store
from ..store.engine import event_template_bodies
from ..store.schema import (
    admission_decisions,
    containers,
    decision_minutes,
    drift_events,
    event_minutes,
    nodes,
    runtime_events,
)
from ..store.templates import assemble
from ..store.views import COUNT_CAP, count_capped

__all__ = [
    "DRIFT_KINDS",
    "OUTCOMES",
    "Page",
    "decision",
    "decision_page",
    "decision_series",
    "drift_page",
    "event_series",
    "health",
    "inventory_facets",
    "inventory_page",
    "recent_decisions",
    "running_workloads",
]

OUTCOMES = ("allow", "deny", "dry-run-deny", "fail-open", "fail-closed")
FACET_LIMIT = 15


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    capped: bool
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(value: str | None) -> str | None:
    if not value:
        return None
    if len(value) > 4096:
        raise ValueError("cursor too long")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("cursor is not one this console issued") from None


def _int_cursor(value: str | None) -> int | None:
    text = decode_cursor(value)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 19:
        raise ValueError("cursor is not one this console issued")
    return int(text)


def _json(text: str | None) -> Any:
    return orjson.loads(text) if text else None


# ------------------------------------------------------------------------------------------- inventory


def inventory_page(
    store: Store,
    tenant: str,
    *,
    node: str | None = None,
    namespace: str | None = None,
    workload: str | None = None,
    image: str | None = None,
    running: bool = True,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    c = containers.c
    conditions = [c.tenant == tenant, c.running == (true() if running else false())]
    if node:
        conditions.append(c.node == node)
    if namespace:
        conditions.append(c.namespace == namespace)
    if workload:
        conditions.append(c.workload == workload)
    if image:
        conditions.append(c.image_digest == image if image.startswith("sha256:") else c.image == image)
    where = and_(*conditions)
    after = decode_cursor(cursor)
    stmt = select(containers).where(where)
    if after is not None:
        stmt = stmt.where(c.sort_key > after)
    stmt = stmt.order_by(c.sort_key).limit(limit + 1)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
        total, capped = count_capped(conn, select(c.container_id).where(where))
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        row["labels"] = _json(row["labels"]) or {}
        row["posture"] = _json(row["posture"]) or {}
    return Page(rows, total, capped, encode_cursor(rows[-1]["sort_key"]) if more and rows else None)


def inventory_facets(store: Store, tenant: str) -> dict[str, list[tuple[str, int]]]:
    """The most common nodes, namespaces, workloads and images among running containers (with counts):
    one walk of the running containers' narrow columns, counted here (four GROUP BYs cost 4x the reads)."""
    c = containers.c
    names = ("node", "namespace", "workload", "image")
    counters: dict[str, Counter[str]] = {name: Counter() for name in names}
    stmt = select(c.node, c.namespace, c.workload, c.image_digest).where(
        c.tenant == tenant, c.running == true()
    )
    with store.engine.connect() as conn:
        for row in conn.execute(stmt):
            for name, value in zip(names, row, strict=True):
                if value is not None:
                    counters[name][str(value)] += 1
    return {
        name: sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:FACET_LIMIT]
        for name, counter in counters.items()
    }


def running_workloads(store: Store, tenant: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Running containers (what the simulation replays), at most ``limit``; (rows, truncated)."""
    c = containers.c
    stmt = (
        select(
            c.container_id,
            c.node,
            c.platform,
            c.namespace,
            c.pod,
            c.container,
            c.workload,
            c.image,
            c.image_name,
            c.image_digest,
            c.labels,
        )
        .where(c.tenant == tenant, c.running == true())
        .order_by(c.sort_key)
        .limit(limit + 1)
    )
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    for row in rows:
        row["labels"] = _json(row["labels"]) or {}
    return rows[:limit], len(rows) > limit


# ---------------------------------------------------------------------------------------------- drift


def drift_page(
    store: Store,
    tenant: str,
    *,
    kind: str | None = None,
    node: str | None = None,
    namespace: str | None = None,
    image: str | None = None,
    since_us: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    d = drift_events.c
    kinds: Sequence[str] = (kind,) if kind else DRIFT_KINDS
    conditions = [d.tenant == tenant]
    if node:
        conditions.append(d.node == node)
    if namespace:
        conditions.append(d.namespace == namespace)
    if image:
        conditions.append((d.image_digest == image) | (d.image == image))
    if since_us is not None:
        conditions.append(d.when_us >= since_us)
    before = _int_cursor(cursor)
    columns = (d.id, d.event_id, d.received_us, d.when_us, d.kind, d.node, d.namespace)
    # one (tenant, kind, id) index range per kind, newest first, merged: filters on node and namespace are
    # read from the index entries themselves
    parts = []
    for k in kinds:
        part = select(*columns).where(*conditions, d.kind == k)
        if before is not None:
            part = part.where(d.id < before)
        parts.append(select(part.order_by(d.id.desc()).limit(limit + 1).subquery()))
    merged = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    stmt = select(merged).order_by(merged.c.id.desc()).limit(limit + 1)
    e = runtime_events.c
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
        counts = [count_capped(conn, select(d.id).where(*conditions, d.kind == k)) for k in kinds]
        ids = [r["event_id"] for r in rows[:limit]]
        found = (
            conn.execute(
                select(e.event_id, e.body, e.template_ref).where(e.tenant == tenant, e.event_id.in_(ids))
            ).all()
            if ids
            else []
        )
        templates = event_template_bodies(conn, tenant, {r.template_ref for r in found if r.template_ref})
    bodies = {
        r.event_id: assemble(r.body, templates[r.template_ref] if r.template_ref else None) for r in found
    }
    total = sum(n for n, _ in counts)
    capped = any(c for _, c in counts) or total > COUNT_CAP
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        envelope = bodies.get(row["event_id"])
        row["event"] = (envelope.get("event") if isinstance(envelope, dict) else None) or {}
    return Page(rows, min(total, COUNT_CAP), capped, encode_cursor(rows[-1]["id"]) if more and rows else None)


# ------------------------------------------------------------------------------------------ decisions


def decision_page(
    store: Store,
    tenant: str,
    *,
    outcome: str | None = None,
    namespace: str | None = None,
    since_us: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    a = admission_decisions.c
    conditions = [a.tenant == tenant]
    if outcome:
        conditions.append(a.outcome == outcome)
    if namespace:
        conditions.append(a.namespace == namespace)
    if since_us is not None:
        conditions.append(a.received_us >= since_us)
    where = and_(*conditions)
    before = _int_cursor(cursor)
    stmt = select(a.id, a.received_us, a.namespace, a.pod, a.decision, a.outcome, a.body).where(where)
    if before is not None:
        stmt = stmt.where(a.id < before)
    stmt = stmt.order_by(a.id.desc()).limit(limit + 1)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
        total, capped = count_capped(conn, select(a.id).where(where))
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        row["record"] = (_json(row.pop("body")) or {}).get("decision") or {}
    return Page(rows, total, capped, encode_cursor(rows[-1]["id"]) if more and rows else None)


def decision(store: Store, tenant: str, decision_id: int) -> dict[str, Any] | None:
    a = admission_decisions.c
    stmt = select(
        a.id, a.received_us, a.namespace, a.pod, a.decision, a.outcome, a.schema_version, a.body
    ).where(a.tenant == tenant, a.id == decision_id)
    with store.engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["record"] = (_json(out.pop("body")) or {}).get("decision") or {}
    return out


def recent_decisions(
    store: Store, tenant: str, since_us: int, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Decision records received since ``since_us``, newest first, at most ``limit``; (records, truncated)."""
    a = admission_decisions.c
    stmt = (
        select(a.id, a.received_us, a.body)
        .where(a.tenant == tenant, a.received_us >= since_us)
        .order_by(a.id.desc())
        .limit(limit + 1)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out = [
        {"id": r.id, "receivedUs": r.received_us, "record": (_json(r.body) or {}).get("decision") or {}}
        for r in rows[:limit]
    ]
    return out, len(rows) > limit


# --------------------------------------------------------------------------------------------- health


def _series(
    conn: Connection, table: Any, column: Any, value: Any, tenant: str, since_minute: int
) -> dict[int, dict[str, int]]:
    stmt = (
        select(table.c.minute, column, func.sum(value))
        .where(table.c.tenant == tenant, table.c.minute >= since_minute)
        .group_by(table.c.minute, column)
    )
    out: dict[int, dict[str, int]] = {}
    for minute, key, n in conn.execute(stmt):
        out.setdefault(int(minute), {})[str(key)] = int(n)
    return out


def event_series(store: Store, tenant: str, now_us: int, minutes: int = 60) -> dict[int, dict[str, int]]:
    """minute → kind → events received, over the last ``minutes``."""
    with store.engine.connect() as conn:
        return _series(
            conn,
            event_minutes,
            event_minutes.c.kind,
            event_minutes.c.events,
            tenant,
            minute_of(now_us) - minutes + 1,
        )


def decision_series(store: Store, tenant: str, now_us: int, minutes: int = 60) -> dict[int, dict[str, int]]:
    """minute → outcome → decisions received, over the last ``minutes``."""
    with store.engine.connect() as conn:
        return _series(
            conn,
            decision_minutes,
            decision_minutes.c.outcome,
            decision_minutes.c.decisions,
            tenant,
            minute_of(now_us) - minutes + 1,
        )


def health(store: Store, tenant: str, now_us: int, rate_minutes: int = 5) -> list[dict[str, Any]]:
    """Per node: agent facts, running containers and the ingest rate over the last ``rate_minutes``."""
    n, c, m = nodes.c, containers.c, event_minutes.c
    since = minute_of(now_us) - rate_minutes + 1
    with store.engine.connect() as conn:
        rows = [
            dict(r) for r in conn.execute(select(nodes).where(n.tenant == tenant).order_by(n.node)).mappings()
        ]
        running: dict[str, int] = dict(
            conn.execute(
                select(c.node, func.count()).where(c.tenant == tenant, c.running == true()).group_by(c.node)
            ).all()
        )
        recent: dict[str, int] = dict(
            conn.execute(
                select(m.node, func.sum(m.events))
                .where(m.tenant == tenant, m.minute >= since)
                .group_by(m.node)
            ).all()
        )
    for row in rows:
        row["running"] = int(running.get(row["node"], 0))
        row["rate_per_minute"] = int(recent.get(row["node"], 0) or 0) / rate_minutes
    return rows
