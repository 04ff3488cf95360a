"""Event ingest: bounded body reading (gzip-bomb safe), envelope splitting, validation, correlation.

Flow of ``POST /api/v1/scanner/runtime/events``: :func:`read_body` (size caps before and after gzip) →
:func:`split_envelopes` (JSON array or ND-JSON; a bad line is a rejection by index, not a failed request) →
:meth:`Ingestor.prepare` (validate each envelope with the contracts' version negotiation, tenant check, dedupe
within the batch, catalog correlation, build-ids, used components, delta-scan requests) → rate caps →
:meth:`Store.ingest` (one transaction, idempotent by ``(tenant, eventId)``).
"""

from __future__ import annotations

import threading
import zlib
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, cast

import anyio.to_thread
import orjson

from ..contracts import (
    RUNTIME_EVENT,
    EnvelopeError,
    EventKind,
    IngestRejection,
    IngestResponse,
    SchemaVersion,
    dump_runtime_envelope,
    parse_runtime_envelope,
    versions,
)
from ..contracts.wire import loads
from .catalog import CatalogIndex, image_digest
from .event_fields import EventFields
from .fastpath import fast_runtime_envelope, fast_runtime_line
from .inventory import event_facts
from .store import (
    BuildIdSeen,
    CatalogHead,
    ComponentUse,
    DeltaScanRequest,
    EventRow,
    IngestWrite,
    Store,
)

__all__ = [
    "BodyError",
    "Ingestor",
    "Prepared",
    "read_body",
    "split_envelopes",
]

_MAX_ERROR = 1000
_JSON_SPACE = b" \t\r"  # JSON's own whitespace (around a line; "\n" splits lines)


class BodyError(Exception):
    """The request body as a whole cannot be read: ``status`` is 400, 413 or 415."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    content_length: str | None,
    content_encoding: str | None,
    max_bytes: int,
    max_decompressed: int,
    max_lines: int | None = None,
) -> bytes:
    """The (decompressed) body, never holding more than ``max_bytes`` compressed + ``max_decompressed``
    (and, decompressing, no more than ``max_lines`` newlines).

    Decompression runs in a worker thread (zlib releases the GIL while it inflates), so a large body never
    stalls the event loop."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise BodyError(415, f"unsupported Content-Encoding {encoding!r}: send identity or gzip")
    if content_length is not None:
        declared = content_length.strip()
        if not (declared.isascii() and declared.isdigit()) or len(declared) > 19:
            raise BodyError(400, "invalid Content-Length")
        if int(declared) > max_bytes:
            raise BodyError(413, f"body of {int(declared)} bytes exceeds the limit of {max_bytes} bytes")
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) > max_bytes:
            raise BodyError(413, f"body exceeds the limit of {max_bytes} bytes")
    if encoding == "identity":
        return bytes(buffer)
    body = bytes(buffer)
    return await anyio.to_thread.run_sync(lambda: gunzip_bounded(body, max_decompressed, max_lines=max_lines))


#: Gzip members accepted in one body. RFC 1952 allows concatenated members and the publisher sends one; each
#: member costs a fresh inflater, so a body of 15 MB of empty members (~750,000 of them) is refused outright.
MAX_GZIP_MEMBERS = 64
#: Compressed bytes handed to the inflater per call: what is left over after a member ends (``unused_data``)
#: is at most this, so the work stays linear in the body whatever the member layout.
_GZIP_FEED = 256 * 1024


#: Output of one inflate call: big enough to be cheap, small enough that no single allocation or copy holds
#: the GIL for long (a 60 MB bomb used to come back as one 60 MB object).
_GZIP_STEP = 1024 * 1024


def gunzip_bounded(
    data: bytes, limit: int, *, max_members: int = MAX_GZIP_MEMBERS, max_lines: int | None = None
) -> bytes:
    """Decompress one or more concatenated gzip members, refusing output beyond ``limit`` bytes and more than
    ``max_members`` members. Linear in ``len(data)`` (trailing zero padding is tolerated).

    ``max_lines``: an output larger than :data:`MAX_DOCUMENT_BYTES` can only be ND-JSON, so past that size
    more than ``max_lines`` newlines is refused as :func:`split_envelopes` would — counted as the output
    comes, so a bomb of newlines is refused before it is ever whole."""
    out: list[bytes] = []
    total = lines = 0
    view = memoryview(data)
    size = len(data)
    pos = members = 0
    while pos < size:
        # Trailing zero padding ends the body; a member starts with 0x1f, so the count (a pass over the rest,
        # holding the GIL: 64 of them over 3 MB held up /healthz ~100 ms) runs only where padding may begin.
        if members and data[pos] == 0 and data.count(0, pos) == size - pos:
            break
        members += 1
        if members > max_members:
            raise BodyError(400, f"gzip body has more than {max_members} members")
        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending: bytes | memoryview = b""
        while not decomp.eof:
            if not pending:
                if pos >= size:
                    raise BodyError(400, "gzip body is truncated")
                pending = view[pos : pos + _GZIP_FEED]
                pos += len(pending)
            try:
                piece = decomp.decompress(pending, min(_GZIP_STEP, limit - total + 1))
            except zlib.error as exc:
                raise BodyError(400, f"body is not valid gzip: {exc}") from None
            pending = decomp.unconsumed_tail
            out.append(piece)
            total += len(piece)
            if total > limit:
                raise BodyError(413, f"decompressed body exceeds the limit of {limit} bytes")
            if max_lines is not None:
                lines += piece.count(b"\n")
                if lines > max_lines and total > MAX_DOCUMENT_BYTES:
                    raise BodyError(413, f"more than {max_lines + 1} lines in the decompressed body")
        pos -= len(decomp.unused_data) + len(pending)  # the next member starts right after this one
    return b"".join(out)


@dataclass(slots=True)
class Item:
    index: int
    data: Any = None
    raw: bytes | None = None  # the envelope as received (ND-JSON line, stripped), when available
    error: str | None = None

    @property
    def unparsed(self) -> bool:
        """An ND-JSON line that :func:`split_envelopes` left for the caller to parse (``parse=False``)."""
        return self.data is None and self.error is None and self.raw is not None

    def parse(self) -> None:
        """Parse :attr:`raw` into :attr:`data`, or set :attr:`error` when it is not JSON."""
        assert self.raw is not None
        try:
            self.data = loads(self.raw)
        except ValueError as exc:
            self.error = f"line is not valid JSON: {exc}"[:_MAX_ERROR]

    def text(self) -> str:
        """The JSON text of the line as received, else ``data`` serialised (see :attr:`Prepared` for what
        the store keeps: the canonical form)."""
        return self.raw.decode("utf-8") if self.raw is not None else orjson.dumps(self.data).decode()


#: Longest envelope accepted: one ND-JSON line, or a whole JSON document (array or object) body. A parser call
#: holds the GIL for its whole input, so this bounds how long one request can hold up every other one: 4 MiB
#: is what ``zastava events send`` reads per line and above the publisher's largest record (a buffer segment).
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024


def split_envelopes(
    body: bytes, max_items: int, *, parse: bool = True, max_document: int = MAX_DOCUMENT_BYTES
) -> list[Item]:
    """A JSON array of envelopes, one JSON object, or ND-JSON (one per non-blank line).

    Indexes count envelopes from 0 (for ND-JSON: the position among non-blank lines). With ``parse=False``
    ND-JSON lines are left :attr:`Item.unparsed` (the ingest fast path validates them from their bytes).
    Bounded: a JSON document body may be at most ``max_document`` bytes, an ND-JSON body at most
    ``2 * max_items + 1`` lines, and a line longer than ``max_document`` is rejected by its index unread.
    """
    head = body.lstrip()
    if not head:
        raise BodyError(400, "empty body: send a JSON array of envelopes or ND-JSON, one envelope per line")
    if head[:1] in (b"[", b"{"):
        # a JSON array or one object, unless the body only parses line by line (ND-JSON whose first line
        # happens to be an array or object): then every line is judged on its own and nothing good is lost
        whole: Any = None
        if len(head) <= max_document:
            try:
                whole = loads(body)
            except ValueError:
                whole = None
        elif head[:1] == b"[" and not _first_line_parses(head, max_document):
            raise BodyError(
                413,
                f"a JSON array body is limited to {max_document} bytes: send ND-JSON (one envelope per line)",
            )
        if isinstance(whole, dict):
            return [Item(0, whole)]
        if isinstance(whole, list):
            if not whole:
                raise BodyError(400, "empty array: send at least one envelope")
            if len(whole) > max_items:
                raise BodyError(413, f"{len(whole)} envelopes in one request exceed the limit of {max_items}")
            return [Item(i, value) for i, value in enumerate(whole)]
    # blank lines are tolerated, but not without bound: splitting 64 MB of newlines would build a list of
    # 64 million lines before the envelope cap could say no
    if body.count(b"\n") > 2 * max_items:
        raise BodyError(413, f"more than {2 * max_items + 1} lines (the limit is {max_items} envelopes)")
    items: list[Item] = []
    for line in body.split(b"\n"):
        if not line.strip():
            continue
        if len(items) >= max_items:
            raise BodyError(413, f"more than {max_items} envelopes in one request")
        if len(line) > max_document:
            message = f"line of {len(line)} bytes exceeds the limit of {max_document}"
            items.append(Item(len(items), error=message))
            continue
        item = Item(len(items), raw=line.strip(_JSON_SPACE))
        if parse:
            item.parse()
        items.append(item)
    return items


def _first_line_parses(body: bytes, max_document: int) -> bool:
    """Whether the first line is JSON on its own (ND-JSON), looking at no more than ``max_document`` bytes."""
    end = body.find(b"\n", 0, max_document + 1)
    if end == -1:
        return False
    try:
        orjson.loads(body[:end])
    except orjson.JSONDecodeError:
        return False
    return True


@dataclass
class Prepared:
    write: IngestWrite
    response: IngestResponse
    per_node: Counter[str] = field(default_factory=Counter)


class _Valid(NamedTuple):
    """One validated event of a batch, new within it."""

    canonical: bytes  # the envelope's canonical JSON: what the store keeps
    schema_version: str
    event: EventFields
    digest: str | None  # of its image reference, when pinned


@dataclass
class _Validated:
    received: int = 0
    duplicates: int = 0
    rejected: list[IngestRejection] = field(default_factory=list)
    valid: list[_Valid] = field(default_factory=list)


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


class Ingestor:
    """Validation and correlation of one batch; keeps a small cache of catalog file indexes."""

    def __init__(self, store: Store, *, index_cache: int = 256) -> None:
        self.store = store
        self._cache: OrderedDict[tuple[str, str], tuple[int, CatalogIndex]] = OrderedDict()
        self._cache_size = index_cache
        self._lock = threading.Lock()

    def _index(self, tenant: str, head: CatalogHead) -> CatalogIndex | None:
        key = (tenant, head.digest)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == head.updated_us:
                self._cache.move_to_end(key)
                return hit[1]
        record = self.store.catalog_get(tenant, head.digest)
        if record is None:
            return None
        index = CatalogIndex.of(record.components)
        with self._lock:
            self._cache[key] = (record.updated_us, index)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return index

    def prepare(self, tenant: str, items: Iterable[Item], now_us: int) -> Prepared:
        """Validate ``items`` (:meth:`_validate`), then correlate each new event with the catalog and build
        its row (:meth:`_correlate`): everything the batch writes, in one :class:`IngestWrite`."""
        batch = self._validate(tenant, items)
        write = IngestWrite(tenant=tenant)
        requested, per_node = self._correlate(tenant, batch.valid, now_us, write)
        response = IngestResponse(
            received=batch.received,
            accepted=0,  # filled in once stored
            duplicates=batch.duplicates,
            rejected=batch.rejected,
            delta_scans_requested=sorted(requested),
            schema_version=str(versions.current(RUNTIME_EVENT)),
        )
        return Prepared(write, response, per_node)

    def _validate(self, tenant: str, items: Iterable[Item]) -> _Validated:
        """Each envelope validated (the fast path, else the contracts' parser and its error message), its
        columns checked, its tenant the caller's, duplicates within the batch counted once."""
        out = _Validated()
        seen: set[str] = set()
        digest_of: dict[str | None, str | None] = {}  # image reference → digest, once per batch
        schema: SchemaVersion
        event: EventFields
        canonical: bytes
        for item in items:
            out.received += 1
            fast = None
            if item.unparsed:  # an ND-JSON line: validated from its bytes, parsed only when declined
                assert item.raw is not None
                fast = fast_runtime_line(item.raw)
                if fast is None:
                    item.parse()
            if item.error is not None:
                out.rejected.append(IngestRejection(index=item.index, error=item.error))
                continue
            if fast is None:
                fast = fast_runtime_envelope(item.data)
            if fast is not None:
                schema, event, canonical = fast
            else:  # the contracts' parser: same decisions, and the error message on rejection
                try:
                    schema, model = parse_runtime_envelope(item.data)
                except (EnvelopeError, OverflowError, ValueError) as exc:
                    # OverflowError: a timestamp whose UTC conversion leaves the datetime range (the
                    # contracts' UTC normaliser raises it outside pydantic's error handling)
                    out.rejected.append(
                        IngestRejection(
                            index=item.index, error=str(exc)[:_MAX_ERROR], event_id=_peek_event_id(item.data)
                        )
                    )
                    continue
                event = cast("EventFields", model.model_dump())
                canonical = dump_runtime_envelope(model, schema)
            problem = _column_problem(event, canonical)
            if problem is not None:
                out.rejected.append(IngestRejection(index=item.index, error=problem))
                continue
            event_id = event["event_id"]
            if event["tenant"] != tenant:
                out.rejected.append(
                    IngestRejection(
                        index=item.index,
                        error=f"event tenant {event['tenant']!r} does not match the caller's tenant",
                        event_id=event_id,
                    )
                )
                continue
            if event_id in seen:
                out.duplicates += 1
                continue
            seen.add(event_id)
            ref = event["workload"].get("image_ref")
            if ref not in digest_of:
                digest_of[ref] = image_digest(ref)
            out.valid.append(_Valid(canonical, str(schema), event, digest_of[ref]))
        return out

    def _correlate(
        self, tenant: str, valid: list[_Valid], now_us: int, write: IngestWrite
    ) -> tuple[dict[str, str], Counter[str]]:
        """Rows, views, build-ids, used components and delta-scan requests of the valid events into
        ``write``; returns the delta scans requested (image → reason) and the events per node."""
        digests = {v.digest for v in valid if v.digest}
        heads = self.store.catalog_heads(tenant, sorted(digests)) if digests else {}
        requested: dict[str, str] = {}
        build_ids: dict[tuple[str, str], int] = {}
        usage: dict[tuple[str, str], tuple[str, int, str]] = {}
        per_node: Counter[str] = Counter()
        # containers of one image load the same files: match each distinct set once per batch, and write
        # each distinct correlation once
        matched: dict[tuple[str, tuple[tuple[str, str | None], ...], tuple[str, ...]], _Used] = {}
        correlations: dict[tuple[str | None, tuple[str, ...]], str | None] = {}
        for canonical, version, event, digest in valid:
            event_id = event["event_id"]
            workload = event["workload"]
            process = event.get("process")
            image = digest or workload.get("image_ref")
            head = heads.get(digest) if digest else None
            when_us = _us(event["when"])
            reason: str | None = None
            if image and (head is None or not head.has_sbom):
                reason = "no-sbom" if head is not None else "unknown-image" if digest else "unpinned-image"
                requested.setdefault(image, reason)
                write.delta_scans.append(DeltaScanRequest(image, reason, now_us, event_id))
            build_id = process.get("build_id") if process else None
            used_refs: tuple[str, ...] = ()
            if event["kind"] is EventKind.CONTAINER_START and digest:
                if build_id:
                    key = (digest, build_id)
                    build_ids[key] = max(build_ids.get(key, 0), when_us)
                if head is not None and head.has_sbom:
                    files = (
                        digest,
                        tuple((lib["path"], lib.get("sha256")) for lib in event.get("loaded_libs") or ()),
                        tuple((process.get("terminals") or ()) if process else ()),
                    )
                    used = matched.get(files)
                    if used is None:
                        used = matched[files] = _Used.of(self._used(tenant, head, files[1], files[2]))
                    for bom_ref, how in used.matches:
                        usage[(digest, bom_ref)] = (how, when_us, event_id)
                    used_refs = used.refs
            ckey = (image, used_refs)
            if ckey not in correlations:
                correlations[ckey] = _correlation(head, reason, used_refs)
            node = event["node"]
            per_node[node] += 1
            write.views.append(event_facts(event, digest, when_us))
            write.events.append(
                EventRow(
                    tenant=tenant,
                    event_id=event_id,
                    received_us=now_us,
                    when_us=when_us,
                    kind=event["kind"].value,
                    node=node,
                    namespace=workload.get("namespace"),
                    pod=workload.get("pod"),
                    container_id=workload.get("container_id"),
                    image=image,
                    image_digest=digest,
                    build_id=build_id,
                    schema_version=version,
                    body=canonical.decode(),
                    correlation=correlations[ckey],
                )
            )
        # one delta-scan upsert per image and batch
        write.delta_scans = list({d.image: d for d in write.delta_scans}.values())
        write.build_ids = [BuildIdSeen(d, b, t) for (d, b), t in build_ids.items()]
        write.usage = [ComponentUse(d, ref, how, t, eid) for (d, ref), (how, t, eid) in usage.items()]
        return requested, per_node

    def _used(
        self,
        tenant: str,
        head: CatalogHead,
        libs: tuple[tuple[str, str | None], ...],
        terminals: tuple[str, ...],
    ) -> list[tuple[str, str]]:
        index = self._index(tenant, head)
        if index is None:
            return []
        found: list[tuple[str, str]] = []
        for path, sha256 in libs:
            hit = index.match(path, sha256)
            if hit is not None:
                found.append(hit)
        for path in terminals:
            hit = index.match(path, None)
            if hit is not None:
                found.append(hit)
        return found

    def store_prepared(self, prepared: Prepared) -> IngestResponse:
        inserted = self.store.ingest(prepared.write)
        response = prepared.response
        stored = len(prepared.write.events)
        return response.model_copy(
            update={"accepted": inserted, "duplicates": response.duplicates + (stored - inserted)}
        )


@dataclass(frozen=True, slots=True)
class _Used:
    """Catalog components one set of loaded files matched: ``(bom-ref, how)`` pairs and the sorted refs."""

    matches: list[tuple[str, str]]
    refs: tuple[str, ...]

    @classmethod
    def of(cls, matches: list[tuple[str, str]]) -> _Used:
        return cls(matches, tuple(sorted({ref for ref, _ in matches})))


def _correlation(head: CatalogHead | None, delta_scan: str | None, used: tuple[str, ...]) -> str | None:
    """The ``correlation`` column: catalog facts, the delta-scan reason and used components (JSON)."""
    out: dict[str, Any] = {}
    if head is not None:
        out["catalog"] = {
            "digest": head.digest,
            "signed": head.signed,
            "hasSbom": head.has_sbom,
            **({"baseImageDigest": head.base_digest} if head.base_digest else {}),
        }
    if delta_scan is not None:
        out["deltaScan"] = delta_scan
    if used:
        out["usedComponents"] = list(used)
    return orjson.dumps(out).decode() if out else None


def _column_problem(event: EventFields, raw: bytes | None) -> str | None:
    """``event``: validated fields by name (absent optional fields may be missing or None); ``raw``: its
    JSON text when known (JSON writes NUL only as the escape ``\\u0000``, so its absence settles that check).

    The longest value the store indexes, per event field: longer values are refused, never truncated.
    """
    nul = raw is None or b"\\u0000" in raw
    workload = event["workload"]
    for name, limit, value in (
        ("eventId", 128, event["event_id"]),
        ("node", 253, event["node"]),
        ("workload.namespace", 253, workload.get("namespace")),
        ("workload.pod", 253, workload.get("pod")),
        ("workload.containerId", 512, workload.get("container_id")),
        ("workload.imageRef", 1024, workload.get("image_ref")),
    ):
        if value is None:
            continue
        if len(value) > limit:
            return f"event.{name} is longer than {limit} characters"
        if nul and "\x00" in value:
            return f"event.{name} contains a NUL character"
    return None


def _peek_event_id(data: Any) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("event"), dict):
        value = data["event"].get("eventId")
        if isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return None
