"""The reference runtime backend (issue 5): event ingest, runtime policy, image catalog; SQLite or PostgreSQL.

Modules: ``app`` (Starlette ASGI app and routes), ``ingest`` (body reading, envelope validation, correlation),
``policy`` (backend policy file and verdicts), ``catalog`` (CycloneDX SBOM → catalog entry), ``auth`` (the
principal seam), ``ratelimit`` (per-tenant and per-node token buckets), ``store`` (persistence),
``migrations`` (alembic, applied on start), ``cli`` (``zastava backend|catalog|runtime …``).
"""
