"""OCI 1.1 referrers: the ``/v2/<name>/referrers/<digest>`` API, and the tag-schema fallback.

A registry without the API (Debian's distribution 2.8 among them) answers 404 there; the client then reads the
``sha256-<hex>`` tag, which must be an OCI image index. The fallback answer is validated: it must be an index,
and every entry must be a manifest whose ``subject`` names the digest asked about (entries that do not are
dropped and reported in :attr:`Referrers.rejected` — anyone with push access can write that tag).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from ..errors import InvalidManifest, RegistryError
from ..reference import ImageReference, fallback_tag
from .manifest import OCI_INDEX, Descriptor, Manifest

if TYPE_CHECKING:
    from .client import RegistryClient

__all__ = [
    "SBOM_MEDIA_TYPES",
    "Referrers",
    "is_sbom_media_type",
    "list_referrers",
]

#: SBOM media types recognised as an SBOM referrer (parameters such as ``;version=1.5`` are ignored).
SBOM_MEDIA_TYPES = frozenset(
    {
        "application/vnd.cyclonedx+json",
        "application/vnd.cyclonedx+xml",
        "application/vnd.cyclonedx",
        "application/spdx+json",
        "application/spdx+xml",
        "text/spdx",
        "text/spdx+json",
        "text/spdx+xml",
        "application/vnd.spdx+json",
    }
)
_MAX_PAGES = 20
_MAX_REFERRERS = 1000
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def is_sbom_media_type(media_type: str | None) -> bool:
    return bool(media_type) and media_type.split(";", 1)[0].strip().lower() in SBOM_MEDIA_TYPES  # type: ignore[union-attr]


@dataclass(slots=True)
class Referrers:
    """Referrer descriptors of ``subject``; ``source`` says where they came from."""

    subject: str
    source: Literal["api", "fallback", "none"]
    descriptors: list[Descriptor] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Descriptor]:
        return iter(self.descriptors)

    def __len__(self) -> int:
        return len(self.descriptors)

    def of_type(self, artifact_type: str) -> list[Descriptor]:
        return [d for d in self.descriptors if _type_matches(d.artifact_type, artifact_type)]


def _type_matches(actual: str | None, wanted: str | None) -> bool:
    if wanted is None:
        return True
    if actual is None:
        return False
    return actual.split(";", 1)[0].strip() == wanted.split(";", 1)[0].strip()


def _index_entries(manifest: Manifest, where: str) -> list[Descriptor]:
    if not manifest.is_index:
        raise InvalidManifest(f"{where} is a {manifest.media_type}, not an image index")
    entries = manifest.manifests()
    if len(entries) > _MAX_REFERRERS:
        raise InvalidManifest(f"{where} lists {len(entries)} referrers (bound {_MAX_REFERRERS})")
    return entries


async def _api(
    client: RegistryClient, ref: ImageReference, digest: str, artifact_type: str | None
) -> list[Descriptor] | None:
    first = f"/v2/{ref.repository}/referrers/{digest}"
    if artifact_type:
        first += "?artifactType=" + quote(artifact_type, safe="")
    path: str | None = first
    out: list[Descriptor] = []
    pages = 0
    while path is not None and pages < _MAX_PAGES:
        pages += 1
        status, headers, body = await client.request(
            "GET",
            ref.api_host,
            path,
            repository=ref.repository,
            headers={"Accept": OCI_INDEX},
            max_bytes=client.config.max_manifest_bytes,
        )
        if status in (404, 405, 400, 501) and pages == 1:
            return None  # no referrers API here
        if status != 200:
            raise RegistryError(f"referrers API for {digest}: unexpected status {status}")
        content_type = (headers.get("content-type") or "").split(";", 1)[0].strip()
        if content_type and content_type != OCI_INDEX:
            raise InvalidManifest(f"referrers API answered {content_type!r}, not an OCI image index")
        page = Manifest.parse(body, OCI_INDEX)
        out.extend(_index_entries(page, "referrers API answer"))
        if len(out) > _MAX_REFERRERS:
            raise InvalidManifest(f"more than {_MAX_REFERRERS} referrers for {digest}")
        link = headers.get("link")
        match = _LINK_NEXT.search(link) if link else None
        path = match.group(1) if match else None
        if path is not None and path.startswith(("http://", "https://")):
            # only follow links to the same registry
            base = client.base_url(ref.api_host)
            path = path[len(base) :] if path.startswith(base + "/") else None
    return out


async def list_referrers(
    client: RegistryClient, ref: ImageReference, digest: str, artifact_type: str | None = None
) -> Referrers:
    """Referrers of ``digest`` in ``ref``'s repository, filtered by ``artifact_type`` when given."""
    api = await _api(client, ref, digest, artifact_type)
    if api is not None:
        result = Referrers(digest, "api", [d for d in api if _type_matches(d.artifact_type, artifact_type)])
        return result
    index = await client.find_manifest(ref.with_tag(fallback_tag(digest)))
    if index is None:
        return Referrers(digest, "none")
    entries = _index_entries(index, f"fallback tag {fallback_tag(digest)}")
    result = Referrers(digest, "fallback")

    async def check(entry: Descriptor) -> tuple[Descriptor, str | None]:
        try:
            manifest = await client.manifest(ref.with_digest(entry.digest))
            subject = manifest.subject
        except RegistryError as exc:
            return entry, f"{entry.digest}: {exc}"
        if subject is None or subject.digest != digest:
            return entry, f"{entry.digest}: its subject is not {digest}"
        return entry, None

    for entry, problem in await asyncio.gather(*(check(e) for e in entries)):
        if problem is not None:
            result.rejected.append(problem)
        elif _type_matches(entry.artifact_type, artifact_type):
            result.descriptors.append(entry)
    return result
