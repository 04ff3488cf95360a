"""Image catalog entry (backend → observer / CLI): ``GET /api/v1/scanner/catalog/images/{digest}``.

The observer's library-drift check (spec §10) reads ``components`` as the image's "usage SBOM view": the file
paths and sha256 of every SBOM component, and whether a running entrypoint was seen loading it.
"""

from __future__ import annotations

from pydantic import Field

from .base import ContractModel, OptionalField, UtcDatetime
from .policy import RekorRef

__all__ = ["CatalogComponent", "CatalogEntry", "CatalogVulnerability"]


class CatalogComponent(ContractModel):
    bom_ref: str = Field(description="CycloneDX bom-ref (or a stable synthetic ref when the SBOM has none)")
    name: str
    version: str | None = OptionalField()
    type: str | None = OptionalField()
    purl: str | None = OptionalField()
    paths: list[str] = Field(default_factory=list, description="file paths inside the image")
    sha256: list[str] = Field(default_factory=list, description="lower-case hex SHA-256 hashes")
    used_by_entrypoint: bool = Field(
        False, description="a CONTAINER_START of this image loaded it (matched by path or sha256)"
    )
    used_matched_by: str | None = OptionalField(description="'path' or 'sha256'")
    last_used: UtcDatetime | None = OptionalField()


class CatalogVulnerability(ContractModel):
    id: str
    severity: str = Field(description="critical, high, medium, low, info, none or unknown")
    affects: list[str] = Field(default_factory=list, description="bom-refs")


class CatalogEntry(ContractModel):
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    signed: bool
    has_sbom: bool
    rekor: RekorRef | None = OptionalField()
    base_image_digest: str | None = OptionalField()
    updated_at: UtcDatetime
    components: list[CatalogComponent] = Field(default_factory=list)
    vulnerabilities: list[CatalogVulnerability] = Field(default_factory=list)
    build_ids: list[str] = Field(default_factory=list, description="most recent GNU build-ids observed")
