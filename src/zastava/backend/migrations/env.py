"""Alembic environment: always run programmatically by ``zastava.backend.store`` on a given connection."""

from __future__ import annotations

from alembic import context

from zastava.backend.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running the alembic CLI by hand
    raise RuntimeError("run migrations through zastava.backend.store.Store.migrate()")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
