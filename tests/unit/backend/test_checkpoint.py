"""The SQLite store's background WAL checkpointer, on real SQLite files: writers never checkpoint on their
own, the background thread copies the log into the database, the log stays bounded when the thread falls
behind, and closing leaves an empty log with every row readable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.harness.polling import wait_for
from zastava.backend.catalog import CatalogPut, build_record
from zastava.backend.store import Store
from zastava.backend.store.checkpoint import WAL_PRAGMAS, WalCheckpointer


def _db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for pragma in WAL_PRAGMAS:
        conn.execute(pragma)
    conn.execute("CREATE TABLE t (v BLOB)")
    return conn


def _fill(conn: sqlite3.Connection, rows: int) -> None:
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?)", [(bytes(2048),)] * rows)
    conn.execute("COMMIT")


def test_writes_are_checkpointed_in_the_background_and_close_truncates(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    conn = _db(path)
    wal = Path(f"{path}-wal")
    checkpointer = WalCheckpointer(str(path), interval=60)
    try:
        db_size_before = path.stat().st_size
        _fill(conn, 2000)  # ~4 MB: past SQLite's own 1,000-page autocheckpoint, which is off
        assert wal.stat().st_size > 4_000_000
        assert path.stat().st_size == db_size_before  # the commit did not copy the log
        assert checkpointer.wrote() is False  # under the bound: the writer does not checkpoint
        assert wait_for(lambda: checkpointer.checkpoints >= 1), "no background checkpoint after a write"
        assert path.stat().st_size > db_size_before + 4_000_000  # the pages reached the database file
    finally:
        checkpointer.close()
    assert wal.stat().st_size == 0  # final TRUNCATE checkpoint
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2000,)
    conn.close()


def test_a_log_past_its_bound_makes_the_writer_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    conn = _db(path)
    checkpointer = WalCheckpointer(str(path), interval=60, max_wal_bytes=100_000)
    try:
        _fill(conn, 100)
        assert checkpointer.wrote() is True
    finally:
        checkpointer.close()
    conn.close()


def test_store_checkpoints_and_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Store(f"sqlite:///{path}")
    with store.engine.connect() as conn:  # writers leave checkpoints to the background thread
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    sbom = {
        "bomFormat": "CycloneDX",
        "components": [{"bom-ref": f"c{i}", "name": f"pkg{i}", "version": "1" * 200} for i in range(300)],
    }
    digests = [f"sha256:{i:064x}" for i in range(40)]
    for digest in digests:
        store.catalog_put("t", build_record(digest, CatalogPut.model_validate({"sbom": sbom}), 1))
    wal = Path(f"{path}-wal")
    assert wait_for(lambda: store._checkpointer is not None and store._checkpointer.checkpoints >= 1)
    store.close()
    assert not wal.exists() or wal.stat().st_size == 0
    reopened = Store(f"sqlite:///{path}")
    try:
        assert all(reopened.catalog_get("t", d) is not None for d in digests)
    finally:
        reopened.close()
