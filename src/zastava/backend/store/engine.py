"""The backend store: one class over SQLite (embedded, default) and PostgreSQL, same behaviour on both.

All methods are synchronous and thread-safe; the app calls them from worker threads. Opening a store applies
the packaged alembic migrations (under an advisory lock on PostgreSQL, so concurrent starts are safe).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, and_, create_engine, delete, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from .bulk import insert_events
from .checkpoint import WAL_PRAGMAS, WalCheckpointer, checkpoint
from .records import CatalogHead, CatalogRecord, DecisionRow, IngestWrite, Page
from .schema import (
    admission_decisions,
    build_ids,
    catalog_images,
    component_usage,
    delta_scans,
    runtime_events,
)
from .views import apply_decision_views, apply_event_views, purge_views

__all__ = ["Store", "StoreError", "normalise_url"]

_MIGRATIONS = "zastava.backend:migrations"
_PG_MIGRATION_LOCK = 0x7A617374  # "zast"


class StoreError(RuntimeError):
    """The store URL is unusable or the database cannot be reached."""


def normalise_url(url: str) -> str:
    """``sqlite:///PATH`` → pysqlite; ``postgresql://`` / ``postgres://`` → psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith(("postgresql+psycopg://", "sqlite://", "sqlite+pysqlite://")):
        return url
    raise StoreError(
        f"unsupported store URL scheme {url.split('://')[0]!r}: use sqlite:///PATH or postgresql://…"
    )


def _upsert(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class Store:
    def __init__(self, url: str, *, migrate: bool = True, pool_size: int = 8) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                raise StoreError("an in-memory SQLite store is not shared between threads; give a file path")
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory of {database}: {exc.strerror or exc}"
                ) from None
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                pool_timeout=10,
                connect_args={"connect_timeout": 10},
            )
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # SQLite allows one writer; serialising here avoids busy errors under concurrent requests.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        self._checkpointer: WalCheckpointer | None = None
        if migrate:
            self.migrate()
        if self.dialect == "sqlite":
            self._checkpointer = WalCheckpointer(parsed.database or "")

    # ------------------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.engine.dispose()

    def _alembic(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", _MIGRATIONS)
        return cfg

    def migrate(self) -> str:
        """Bring the schema to the newest packaged revision; returns it."""
        cfg = self._alembic()
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except Exception as exc:
            raise StoreError(f"cannot migrate the store at {self.redacted_url}: {exc}") from exc
        return self.head_revision()

    def head_revision(self) -> str:
        head = ScriptDirectory.from_config(self._alembic()).get_current_head()
        return head or ""

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @property
    def redacted_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def ready(self) -> bool:
        try:
            return self.current_revision() == self.head_revision()
        except Exception:
            return False

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction (serialised on SQLite like every write of the store)."""
        return self._write()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._write_lock:
            with self.engine.begin() as conn:
                yield conn
            if self._checkpointer is not None and self._checkpointer.wrote():
                with self.engine.connect() as conn:
                    checkpoint(conn.connection.driver_connection, "PASSIVE")  # type: ignore[arg-type]

    # ------------------------------------------------------------------------------------------- ingest

    def ingest(self, write: IngestWrite) -> int:
        """Store a batch of events and what they imply; returns how many events were new."""
        tenant = write.tenant
        with self._write() as conn:
            inserted = insert_events(conn, write.events)
            if write.views and inserted:
                apply_event_views(
                    conn,
                    tenant,
                    write.views,
                    write.events[0].received_us,
                    all_inserted=inserted == len(write.events),
                )
            upsert = _upsert(conn)
            if write.build_ids:
                stmt = upsert(build_ids)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["tenant", "digest", "build_id"],
                    set_={"last_seen_us": func.max(stmt.excluded.last_seen_us, build_ids.c.last_seen_us)}
                    if self.dialect == "sqlite"
                    else {
                        "last_seen_us": func.greatest(stmt.excluded.last_seen_us, build_ids.c.last_seen_us)
                    },
                )
                conn.execute(
                    stmt,
                    [
                        {
                            "tenant": tenant,
                            "digest": seen.digest,
                            "build_id": seen.build_id,
                            "last_seen_us": seen.last_seen_us,
                        }
                        for seen in sorted(write.build_ids)
                    ],
                )
            if write.usage:
                stmt = upsert(component_usage)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["tenant", "digest", "bom_ref"],
                    set_={
                        "matched_by": stmt.excluded.matched_by,
                        "last_seen_us": stmt.excluded.last_seen_us,
                        "last_event_id": stmt.excluded.last_event_id,
                    },
                )
                conn.execute(
                    stmt,
                    [
                        {
                            "tenant": tenant,
                            "digest": use.digest,
                            "bom_ref": use.bom_ref,
                            "matched_by": use.matched_by,
                            "last_seen_us": use.last_seen_us,
                            "last_event_id": use.event_id,
                        }
                        for use in sorted(write.usage)
                    ],
                )
            if write.delta_scans:
                stmt = upsert(delta_scans)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["tenant", "image"],
                    set_={
                        "reason": stmt.excluded.reason,
                        "status": "pending",
                        "last_requested_us": stmt.excluded.last_requested_us,
                        "count": delta_scans.c.count + 1,
                        "last_event_id": stmt.excluded.last_event_id,
                    },
                )
                conn.execute(
                    stmt,
                    [
                        {
                            "tenant": tenant,
                            "image": request.image,
                            "reason": request.reason,
                            "status": "pending",
                            "requested_us": request.requested_us,
                            "last_requested_us": request.requested_us,
                            "count": 1,
                            "last_event_id": request.event_id,
                        }
                        for request in sorted(write.delta_scans)
                    ],
                )
        return inserted

    # ------------------------------------------------------------------------------------------ catalog

    def catalog_put(self, tenant: str, record: CatalogRecord) -> None:
        values = {
            "tenant": tenant,
            "digest": record.digest,
            "signed": record.signed,
            "has_sbom": record.has_sbom,
            "rekor": _json(record.rekor) if record.rekor is not None else None,
            "base_digest": record.base_digest,
            "updated_us": record.updated_us,
            "components": _json(record.components),
            "vulnerabilities": _json(record.vulnerabilities),
        }
        with self._write() as conn:
            stmt = _upsert(conn)(catalog_images).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=["tenant", "digest"],
                set_={k: v for k, v in values.items() if k not in ("tenant", "digest")},
            )
            conn.execute(stmt)
            if record.has_sbom:  # a scan delivered what the delta-scan request asked for
                conn.execute(
                    delta_scans.update()
                    .where(and_(delta_scans.c.tenant == tenant, delta_scans.c.image == record.digest))
                    .values(status="done")
                )

    def catalog_heads(self, tenant: str, digests: Sequence[str]) -> dict[str, CatalogHead]:
        if not digests:
            return {}
        c = catalog_images.c
        stmt = select(
            c.digest, c.signed, c.has_sbom, c.base_digest, c.rekor, c.updated_us, c.vulnerabilities
        ).where(c.tenant == tenant, c.digest.in_(sorted(set(digests))))
        with self.engine.connect() as conn:
            return {
                row.digest: CatalogHead(
                    row.digest,
                    bool(row.signed),
                    bool(row.has_sbom),
                    row.base_digest,
                    orjson.loads(row.rekor) if row.rekor else None,
                    row.updated_us,
                    _severities(row.vulnerabilities),
                )
                for row in conn.execute(stmt)
            }

    def catalog_get(self, tenant: str, digest: str) -> CatalogRecord | None:
        c = catalog_images.c
        with self.engine.connect() as conn:
            row = conn.execute(select(catalog_images).where(c.tenant == tenant, c.digest == digest)).first()
        if row is None:
            return None
        return CatalogRecord(
            digest=row.digest,
            signed=bool(row.signed),
            has_sbom=bool(row.has_sbom),
            rekor=orjson.loads(row.rekor) if row.rekor else None,
            base_digest=row.base_digest,
            updated_us=row.updated_us,
            components=orjson.loads(row.components),
            vulnerabilities=orjson.loads(row.vulnerabilities),
        )

    def component_usage(self, tenant: str, digest: str) -> dict[str, tuple[str, int]]:
        """bom-ref → (matched_by, last_seen_us)."""
        u = component_usage.c
        stmt = select(u.bom_ref, u.matched_by, u.last_seen_us).where(u.tenant == tenant, u.digest == digest)
        with self.engine.connect() as conn:
            return {row.bom_ref: (row.matched_by, row.last_seen_us) for row in conn.execute(stmt)}

    def recent_build_ids(self, tenant: str, digests: Sequence[str], limit: int = 8) -> dict[str, list[str]]:
        if not digests:
            return {}
        b = build_ids.c
        stmt = (
            select(b.digest, b.build_id)
            .where(b.tenant == tenant, b.digest.in_(sorted(set(digests))))
            .order_by(b.digest, b.last_seen_us.desc(), b.build_id)
        )
        out: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                ids = out.setdefault(row.digest, [])
                if len(ids) < limit:
                    ids.append(row.build_id)
        return out

    # ------------------------------------------------------------------------------------------ queries

    def query_events(
        self,
        tenant: str,
        *,
        node: str | None = None,
        namespace: str | None = None,
        kind: str | None = None,
        image: str | None = None,
        since_us: int | None = None,
        limit: int = 100,
        cursor: int | None = None,
    ) -> Page:
        e = runtime_events.c
        conditions = [e.tenant == tenant]
        if node is not None:
            conditions.append(e.node == node)
        if namespace is not None:
            conditions.append(e.namespace == namespace)
        if kind is not None:
            conditions.append(e.kind == kind)
        if image is not None:
            conditions.append((e.image_digest == image) | (e.image == image))
        if since_us is not None:
            conditions.append(e.when_us >= since_us)
        where = and_(*conditions)
        page = select(e.id, e.received_us, e.body, e.correlation).where(where)
        if cursor is not None:
            page = page.where(e.id < cursor)
        page = page.order_by(e.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            total = int(
                conn.execute(select(func.count()).select_from(runtime_events).where(where)).scalar_one()
            )
            rows = conn.execute(page).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            {
                "receivedUs": row.received_us,
                "envelope": orjson.loads(row.body),
                "correlation": orjson.loads(row.correlation) if row.correlation else None,
            }
            for row in rows
        ]
        return Page(items, total, str(rows[-1].id) if more and rows else None)

    def count_events(self, tenant: str | None = None) -> int:
        stmt = select(func.count()).select_from(runtime_events)
        if tenant is not None:
            stmt = stmt.where(runtime_events.c.tenant == tenant)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def query_delta_scans(
        self, tenant: str, *, status: str | None = None, limit: int = 100, cursor: int | None = None
    ) -> Page:
        d = delta_scans.c
        conditions = [d.tenant == tenant]
        if status is not None:
            conditions.append(d.status == status)
        where = and_(*conditions)
        page = select(delta_scans).where(where)
        if cursor is not None:
            page = page.where(d.id < cursor)
        page = page.order_by(d.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(delta_scans).where(where)).scalar_one())
            rows = conn.execute(page).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            {
                "image": row.image,
                "reason": row.reason,
                "status": row.status,
                "requestedUs": row.requested_us,
                "lastRequestedUs": row.last_requested_us,
                "count": row.count,
                "lastEventId": row.last_event_id,
            }
            for row in rows
        ]
        return Page(items, total, str(rows[-1].id) if more and rows else None)

    # ------------------------------------------------------------------------------- admission decisions

    def insert_decisions(self, rows: Sequence[DecisionRow]) -> int:
        if not rows:
            return 0
        with self._write() as conn:
            stmt = (
                _upsert(conn)(admission_decisions)
                .on_conflict_do_nothing(index_elements=["tenant", "admission_id"])
                .returning(admission_decisions.c.id)
            )
            inserted: list[DecisionRow] = []
            for row in sorted(rows, key=lambda r: r.admission_id):
                if conn.execute(stmt, row._asdict()).all():
                    inserted.append(row)
            for tenant in sorted({r.tenant for r in inserted}):
                apply_decision_views(
                    conn, tenant, [(r.received_us, r.outcome or "") for r in inserted if r.tenant == tenant]
                )
            return len(inserted)

    def query_decisions(
        self,
        tenant: str,
        *,
        namespace: str | None = None,
        decision: str | None = None,
        since_us: int | None = None,
        limit: int = 100,
        cursor: int | None = None,
    ) -> Page:
        a = admission_decisions.c
        conditions = [a.tenant == tenant]
        if namespace is not None:
            conditions.append(a.namespace == namespace)
        if decision is not None:
            conditions.append(a.decision == decision)
        if since_us is not None:
            conditions.append(a.received_us >= since_us)
        where = and_(*conditions)
        page = select(a.id, a.received_us, a.body).where(where)
        if cursor is not None:
            page = page.where(a.id < cursor)
        page = page.order_by(a.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            total = int(
                conn.execute(select(func.count()).select_from(admission_decisions).where(where)).scalar_one()
            )
            rows = conn.execute(page).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [{"receivedUs": row.received_us, "envelope": orjson.loads(row.body)} for row in rows]
        return Page(items, total, str(rows[-1].id) if more and rows else None)

    # ---------------------------------------------------------------------------------------- retention

    def purge(self, now_us: int, *, events_s: int, decisions_s: int, delta_scans_s: int) -> dict[str, int]:
        """Delete records older than their retention; returns the number deleted per table."""
        with self._write() as conn:
            counts = {
                "runtime_events": conn.execute(
                    delete(runtime_events).where(runtime_events.c.received_us < now_us - events_s * 1_000_000)
                ).rowcount,
                "admission_decisions": conn.execute(
                    delete(admission_decisions).where(
                        admission_decisions.c.received_us < now_us - decisions_s * 1_000_000
                    )
                ).rowcount,
                "delta_scans": conn.execute(
                    delete(delta_scans).where(
                        delta_scans.c.last_requested_us < now_us - delta_scans_s * 1_000_000
                    )
                ).rowcount,
            }
            counts.update(purge_views(conn, now_us, events_s=events_s, decisions_s=decisions_s))
            return counts


def _severities(vulnerabilities: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for vuln in orjson.loads(vulnerabilities):
        counts[vuln["severity"]] = counts.get(vuln["severity"], 0) + 1
    return counts


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    for pragma in WAL_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()
