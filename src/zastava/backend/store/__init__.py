"""Persistence of the reference backend: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from .engine import Store, StoreError, normalise_url
from .records import CatalogHead, CatalogRecord, DecisionRow, EventRow, IngestWrite, Page

__all__ = [
    "CatalogHead",
    "CatalogRecord",
    "DecisionRow",
    "EventRow",
    "IngestWrite",
    "Page",
    "Store",
    "StoreError",
    "normalise_url",
]
