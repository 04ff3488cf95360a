"""Image catalog: CycloneDX JSON SBOM + posture facts → catalog entry, and the file index used for usage.

Only the parts of CycloneDX the backend needs are read, with bounds: components (nested ones included) with
their ``bom-ref``, name, version, type, purl, SHA-256 hashes and file paths, and ``vulnerabilities`` with the
highest severity of their ratings. File paths come from ``evidence.occurrences[].location`` (CycloneDX 1.5+),
from properties naming a path (``syft:location:N:path``, ``aquasecurity:trivy:FilePath``, …), and from the
name of ``type: file`` components.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from ..contracts import CatalogComponent, CatalogEntry, CatalogVulnerability, RekorRef
from ..contracts.base import ContractModel, OptionalField, format_utc
from ..contracts.paths import path_aliases
from ..registry.errors import InvalidReference
from ..registry.reference import parse_reference
from .store import CatalogRecord

__all__ = [
    "DIGEST_RE",
    "MAX_COMPONENTS",
    "SEVERITIES",
    "CatalogIndex",
    "CatalogPut",
    "SbomError",
    "build_entry",
    "build_record",
    "image_digest",
    "parse_sbom",
    "reference_digest",
]

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_COMPONENTS = 100_000
MAX_DEPTH = 32
#: Severity order, lowest first (CycloneDX 1.4+ rating severities).
SEVERITIES = ("none", "unknown", "info", "low", "medium", "high", "critical")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class SbomError(ValueError):
    """The SBOM is not CycloneDX JSON the catalog can read."""


class CatalogPut(ContractModel):
    """Body of ``PUT /api/v1/scanner/catalog/images/{digest}``."""

    sbom: dict[str, Any] | None = OptionalField(description="CycloneDX JSON document; absent = no SBOM known")
    signed: bool = False
    rekor: RekorRef | None = OptionalField()
    base_image_digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")


def reference_digest(image: str) -> str | None:
    """The catalog key an image names: ``sha256:…`` itself, or the digest a reference pins (parsed by the one
    reference model, ``zastava.registry.reference``); None for a tag-only reference or a digest the catalog
    does not key by (sha512). An invalid reference is an :class:`InvalidReference` naming what is wrong."""
    if DIGEST_RE.match(image):
        return image
    digest = parse_reference(image).digest
    return digest if digest is not None and DIGEST_RE.match(digest) else None


def image_digest(image: str | None) -> str | None:
    """:func:`reference_digest`, with None also for an invalid reference (ingest, CLI)."""
    if not image:
        return None
    try:
        return reference_digest(image)
    except InvalidReference:
        return None


def _paths_of(component: dict[str, Any]) -> list[str]:
    paths: list[str] = []
    evidence = component.get("evidence")
    if isinstance(evidence, dict):
        for occ in evidence.get("occurrences") or []:
            if isinstance(occ, dict) and isinstance(occ.get("location"), str):
                paths.append(occ["location"])
    for prop in component.get("properties") or []:
        if not isinstance(prop, dict):
            continue
        name, value = prop.get("name"), prop.get("value")
        if isinstance(name, str) and isinstance(value, str) and name.lower().endswith(("path", ":location")):
            paths.append(value)
    if component.get("type") == "file" and isinstance(component.get("name"), str):
        paths.append(component["name"])
    out: list[str] = []
    for path in paths:
        norm = "/" + path.lstrip("/") if path and not path.startswith("/") else path
        if norm and norm not in out and len(norm) <= 4096:
            out.append(norm)
    return out


def _sha256_of(component: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for item in component.get("hashes") or []:
        if not isinstance(item, dict):
            continue
        alg = str(item.get("alg", "")).upper().replace("_", "-")
        content = item.get("content")
        if alg == "SHA-256" and isinstance(content, str) and _HEX64.match(content):
            value = content.lower()
            if value not in out:
                out.append(value)
    return out


def _walk(components: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if not isinstance(components, list):
        return
    if depth > MAX_DEPTH:
        raise SbomError(f"sbom components are nested deeper than {MAX_DEPTH} levels")
    for component in components:
        if isinstance(component, dict):
            yield component
            yield from _walk(component.get("components"), depth + 1)


def _severity(vuln: dict[str, Any]) -> str:
    best = "unknown"
    for rating in vuln.get("ratings") or []:
        if isinstance(rating, dict):
            sev = str(rating.get("severity", "")).lower()
            if sev in SEVERITIES and SEVERITIES.index(sev) > SEVERITIES.index(best):
                best = sev
    return best


def parse_sbom(sbom: dict[str, Any]) -> tuple[list[CatalogComponent], list[CatalogVulnerability]]:
    if sbom.get("bomFormat") != "CycloneDX":
        raise SbomError("sbom must be a CycloneDX JSON document (bomFormat: CycloneDX)")
    components: list[CatalogComponent] = []
    seen: set[str] = set()
    for index, raw in enumerate(_walk(sbom.get("components"))):
        if len(components) >= MAX_COMPONENTS:
            raise SbomError(f"sbom has more than {MAX_COMPONENTS} components")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise SbomError(f"sbom component #{index} has no name")
        raw_ref, raw_purl = raw.get("bom-ref"), raw.get("purl")
        ref: str = (
            raw_ref
            if isinstance(raw_ref, str) and raw_ref
            else raw_purl
            if isinstance(raw_purl, str) and raw_purl
            else f"component-{index}"
        )
        if len(ref) > 1024 or "\x00" in ref:
            raise SbomError(f"sbom component #{index} has a bom-ref longer than 1024 characters or with NUL")
        if ref in seen:
            ref = f"{ref}#{index}"
        seen.add(ref)
        version, ctype, purl = raw.get("version"), raw.get("type"), raw.get("purl")
        components.append(
            CatalogComponent(
                bom_ref=ref,
                name=name,
                version=version if isinstance(version, str) else None,
                type=ctype if isinstance(ctype, str) else None,
                purl=purl if isinstance(purl, str) else None,
                paths=_paths_of(raw),
                sha256=_sha256_of(raw),
            )
        )
    vulnerabilities: list[CatalogVulnerability] = []
    raw_vulns = sbom.get("vulnerabilities") or []
    if not isinstance(raw_vulns, list):
        raise SbomError("sbom vulnerabilities must be a list")
    for index, raw in enumerate(raw_vulns[:MAX_COMPONENTS]):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise SbomError(f"sbom vulnerability #{index} has no id")
        affects = [
            a["ref"]
            for a in raw.get("affects") or []
            if isinstance(a, dict) and isinstance(a.get("ref"), str)
        ]
        vulnerabilities.append(CatalogVulnerability(id=raw["id"], severity=_severity(raw), affects=affects))
    return components, vulnerabilities


def build_record(digest: str, put: CatalogPut, now_us: int) -> CatalogRecord:
    components: list[CatalogComponent] = []
    vulnerabilities: list[CatalogVulnerability] = []
    if put.sbom is not None:
        components, vulnerabilities = parse_sbom(put.sbom)
    return CatalogRecord(
        digest=digest,
        signed=put.signed,
        has_sbom=put.sbom is not None,
        rekor=put.rekor.wire() if put.rekor else None,
        base_digest=put.base_image_digest,
        updated_us=now_us,
        components=[c.wire() for c in components],
        vulnerabilities=[v.wire() for v in vulnerabilities],
    )


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def build_entry(
    record: CatalogRecord, usage: dict[str, tuple[str, int]], build_ids: list[str]
) -> CatalogEntry:
    components = []
    for raw in record.components:
        used = usage.get(raw["bomRef"])
        if used is not None:
            raw = {
                **raw,
                "usedByEntrypoint": True,
                "usedMatchedBy": used[0],
                "lastUsed": format_utc(_dt(used[1])),
            }
        components.append(CatalogComponent.model_validate(raw))
    return CatalogEntry(
        digest=record.digest,
        signed=record.signed,
        has_sbom=record.has_sbom,
        rekor=RekorRef.model_validate(record.rekor) if record.rekor else None,
        base_image_digest=record.base_digest,
        updated_at=_dt(record.updated_us),
        components=components,
        vulnerabilities=[CatalogVulnerability.model_validate(v) for v in record.vulnerabilities],
        build_ids=build_ids,
    )


@dataclass
class CatalogIndex:
    """Path and sha256 → bom-ref of one catalog entry (to derive ``usedByEntrypoint``)."""

    by_path: dict[str, str] = field(default_factory=dict)
    by_sha256: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, components: Iterable[dict[str, Any]]) -> CatalogIndex:
        index = cls()
        for comp in components:
            ref = comp["bomRef"]
            for path in comp.get("paths") or []:
                for alias in (path, *path_aliases(path)[1:]):  # as listed, and its usr-merge twin
                    index.by_path.setdefault(alias, ref)
            for digest in comp.get("sha256") or []:
                index.by_sha256.setdefault(digest, ref)
        return index

    def match(self, path: str, sha256: str | None) -> tuple[str, str] | None:
        """(bom-ref, matched_by) of the component that ships this file, preferring the exact sha256."""
        if sha256 and sha256 in self.by_sha256:
            return self.by_sha256[sha256], "sha256"
        ref = self.by_path.get(path)
        return (ref, "path") if ref else None
