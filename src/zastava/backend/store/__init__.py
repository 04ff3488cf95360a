"""Persistence of the reference backend: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from .engine import Store, StoreError, normalise_url
from .records import (
    BuildIdSeen,
    CatalogHead,
    CatalogRecord,
    ComponentUse,
    DecisionRow,
    DeltaScanRequest,
    EventRow,
    IngestWrite,
    Page,
)

__all__ = [
    "BuildIdSeen",
    "CatalogHead",
    "CatalogRecord",
    "ComponentUse",
    "DecisionRow",
    "DeltaScanRequest",
    "EventRow",
    "IngestWrite",
    "Page",
    "Store",
    "StoreError",
    "normalise_url",
]
