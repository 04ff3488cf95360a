"""Event ingest on SQLite and real PostgreSQL: validation, bad input, dedupe, caps, correlation, queries."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import orjson
import pytest

from tests.harness.events import digest_of, envelope, make_event, ndjson, sbom
from tests.integration.backend.conftest import AppFactory, Clock, client_for
from zastava.backend.store import Store
from zastava.contracts import SCHEMA_VERSIONS_HEADER, EventKind, IngestResponse, versions

EVENTS = "/api/v1/scanner/runtime/events"
CATALOG = "/api/v1/scanner/catalog/images/"
API_DIGEST = digest_of("api")


async def put_catalog(client, digest: str = API_DIGEST, **body) -> None:  # type: ignore[no-untyped-def]
    body.setdefault("sbom", sbom())
    body.setdefault("signed", True)
    r = await client.put(CATALOG + digest, json=body)
    assert r.status_code == 200, r.text


async def test_round_trip_array_and_header(client, store: Store) -> None:  # type: ignore[no-untyped-def]
    events = [make_event(i) for i in range(3)]
    r = await client.post(EVENTS, content=orjson.dumps([envelope(e) for e in events]))
    assert r.headers[SCHEMA_VERSIONS_HEADER] == versions.header_value()
    body = IngestResponse.model_validate(r.json())
    assert (body.received, body.accepted, body.duplicates, body.rejected) == (3, 3, 0, [])
    assert r.status_code == 202 and body.delta_scans_requested == [API_DIGEST]  # image not in the catalog
    page = (await client.get(EVENTS)).json()
    assert page["total"] == 3
    stored = {item["envelope"]["event"]["eventId"] for item in page["items"]}
    assert stored == {e.event_id for e in events}
    # the stored envelope is exactly what was sent
    item = next(i for i in page["items"] if i["envelope"]["event"]["eventId"] == events[0].event_id)
    assert item["envelope"] == envelope(events[0])
    assert item["correlation"] == {"deltaScan": "unknown-image"}


async def test_every_supported_version_is_accepted(client) -> None:  # type: ignore[no-untyped-def]
    old = make_event(1)
    old = old.model_copy(
        update={
            "process": old.process.model_copy(
                update={"start_time": None, "terminals": None, "entry_trace_confidence": None}
            )
        }
    )
    old = old.with_computed_id()
    r = await client.post(
        EVENTS, content=ndjson([envelope(old, "zastava.runtime.event@v1.0"), envelope(make_event(2))])
    )
    assert r.json()["accepted"] == 2 and r.json()["rejected"] == []


async def test_exec_events_are_kept_apart_from_drift_and_need_v1_3(client) -> None:  # type: ignore[no-untyped-def]
    """EXEC (a process entered into a container from outside, issue 22) is stored and queried as its own kind;
    a line claiming v1.2 with it is rejected by index, naming the version it needs."""
    entered = make_event(1, kind=EventKind.EXEC)
    drift = make_event(2, kind=EventKind.DRIFT)
    old = envelope(make_event(3, kind=EventKind.EXEC), "zastava.runtime.event@v1.3")
    old["schemaVersion"] = "zastava.runtime.event@v1.2"
    r = await client.post(EVENTS, content=ndjson([envelope(entered), envelope(drift), old]))
    body = r.json()
    assert body["accepted"] == 2 and [x["index"] for x in body["rejected"]] == [2]
    assert "v1.3" in body["rejected"][0]["error"]
    assert (await client.get(EVENTS, params={"kind": "EXEC"})).json()["total"] == 1
    assert (await client.get(EVENTS, params={"kind": "DRIFT"})).json()["total"] == 1


async def test_ndjson_bad_lines_reported_by_index_good_kept(client, store: Store) -> None:  # type: ignore[no-untyped-def]
    good = [make_event(i) for i in range(3)]
    wrong_major = envelope(make_event(9))
    wrong_major["schemaVersion"] = "zastava.runtime.event@v2.0"
    bad_field = envelope(make_event(10))
    bad_field["event"]["kind"] = "EXPLODED"
    out_of_range = envelope(make_event(11))
    out_of_range["event"]["when"] = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC
    body = (
        orjson.dumps(envelope(good[0]))
        + b"\n{not json\n\n"
        + orjson.dumps(wrong_major)
        + b"\n"
        + orjson.dumps(envelope(good[1]))
        + b"\n"
        + orjson.dumps(bad_field)
        + b"\n"
        + orjson.dumps(envelope(good[2]))
        + b"\n"
        + orjson.dumps(out_of_range)
        + b"\n"
    )
    r = await client.post(EVENTS, content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202
    data = r.json()
    assert data["received"] == 7 and data["accepted"] == 3
    by_index = {rej["index"]: rej for rej in data["rejected"]}
    assert set(by_index) == {1, 2, 4, 6}
    assert "out of range" in by_index[6]["error"]
    assert "not valid JSON" in by_index[1]["error"]
    assert "unsupported major" in by_index[2]["error"] and "v2.0" in by_index[2]["error"]
    assert "event.kind" in by_index[4]["error"]
    assert by_index[2]["eventId"] == make_event(9).event_id
    assert store.count_events("tenant-01") == 3


async def test_wrong_major_only_is_400_and_nothing_stored(client, store: Store) -> None:  # type: ignore[no-untyped-def]
    env = envelope(make_event(1))
    env["schemaVersion"] = "zastava.runtime.event@v2.0"
    r = await client.post(EVENTS, content=orjson.dumps([env]))
    assert r.status_code == 400
    assert r.json()["rejected"][0]["index"] == 0
    assert store.count_events() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "empty array"),
        (b"", "empty body"),
        (b"  \n ", "empty body"),
    ],
)
async def test_unreadable_bodies_are_400(client, store: Store, body: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    r = await client.post(EVENTS, content=body)
    assert r.status_code == 400 and message in r.json()["error"]
    assert r.headers[SCHEMA_VERSIONS_HEADER]
    assert store.count_events() == 0


async def test_malformed_array_is_judged_as_one_line(client, store: Store) -> None:  # type: ignore[no-untyped-def]
    r = await client.post(EVENTS, content=b'[{"schemaVersion": ')
    assert r.status_code == 400
    assert r.json()["rejected"] == [{"index": 0, "error": r.json()["rejected"][0]["error"]}]
    assert "not valid JSON" in r.json()["rejected"][0]["error"]
    # ND-JSON whose first line is an array: the good lines after it are kept
    r = await client.post(EVENTS, content=b"[1]\n" + ndjson([envelope(make_event(1))]))
    assert r.status_code == 202 and r.json()["accepted"] == 1 and r.json()["rejected"][0]["index"] == 0
    assert store.count_events() == 1


async def test_huge_body_is_413_before_reading_it_all(make_app: AppFactory, store: Store) -> None:
    async with client_for(make_app(max_body_bytes=10_000)) as c:
        big = ndjson([envelope(make_event(i)) for i in range(40)])
        assert len(big) > 10_000
        r = await c.post(EVENTS, content=big)
        assert r.status_code == 413 and "exceeds the limit of 10000 bytes" in r.json()["error"]

        async def chunked():  # no Content-Length: the limit holds while streaming
            for _ in range(100):
                yield b" " * 1000

        r = await c.post(EVENTS, content=chunked())
        assert r.status_code == 413
        # a batch under the limit still goes through: nothing good lost
        r = await c.post(EVENTS, content=ndjson([envelope(make_event(1))]))
        assert r.json()["accepted"] == 1
    assert store.count_events() == 1


async def test_gzip_bomb_is_413(make_app: AppFactory, store: Store) -> None:
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]", compresslevel=9)
    assert len(bomb) < 100_000
    async with client_for(make_app(max_decompressed_bytes=1_000_000)) as c:
        r = await c.post(EVENTS, content=bomb, headers={"content-encoding": "gzip"})
        assert r.status_code == 413 and "decompressed body exceeds" in r.json()["error"]
        # gzip within bounds works, also as concatenated members
        part1 = gzip.compress(ndjson([envelope(make_event(1))]))
        part2 = gzip.compress(ndjson([envelope(make_event(2))]))
        r = await c.post(EVENTS, content=part1 + part2, headers={"content-encoding": "gzip"})
        assert r.json()["accepted"] == 2
        r = await c.post(EVENTS, content=part1[:-10], headers={"content-encoding": "gzip"})
        assert r.status_code == 400 and "truncated" in r.json()["error"]
        r = await c.post(EVENTS, content=b"not gzip at all", headers={"content-encoding": "gzip"})
        assert r.status_code == 400 and "gzip" in r.json()["error"]
        r = await c.post(EVENTS, content=zlib.compress(b"[]"), headers={"content-encoding": "br"})
        assert r.status_code == 415
    assert store.count_events() == 2


async def test_too_many_envelopes_is_413(make_app: AppFactory) -> None:
    async with client_for(make_app(max_events_per_request=5)) as c:
        r = await c.post(EVENTS, content=orjson.dumps([envelope(make_event(i)) for i in range(6)]))
        assert r.status_code == 413 and "limit of 5" in r.json()["error"]


async def test_other_tenant_and_oversized_fields_rejected(client) -> None:  # type: ignore[no-untyped-def]
    foreign = make_event(1, tenant="tenant-02")
    long_node = make_event(2, node="n" * 300)
    nul = make_event(3, node="a\x00b")
    r = await client.post(EVENTS, content=orjson.dumps([envelope(e) for e in (foreign, long_node, nul)]))
    assert r.status_code == 400
    errors = [rej["error"] for rej in r.json()["rejected"]]
    assert "does not match the caller's tenant" in errors[0]
    assert "longer than 253" in errors[1]
    assert "NUL" in errors[2]


async def test_nul_and_oversized_fields_rejected_in_ndjson_lines(client) -> None:  # type: ignore[no-untyped-def]
    """The ND-JSON path validates lines from their bytes and skips the NUL scan when the line has no
    ``\\u0000`` escape: a NUL must still be found, and a line that only mentions the escape is kept."""
    lines = [
        envelope(make_event(1, node="a\x00b")),
        envelope(make_event(2, node="n" * 300)),
        envelope(make_event(3, node="literal-\\u0000-text")),
    ]
    body = b"\n".join(orjson.dumps(line) for line in lines)
    assert body.count(b"\\u0000") == 2  # the NUL escape, and the escaped backslash before "u0000"
    r = await client.post(EVENTS, content=body, headers={"content-type": "application/x-ndjson"})
    result = r.json()
    assert [rej["index"] for rej in result["rejected"]] == [0, 1]
    assert "NUL" in result["rejected"][0]["error"] and "longer than 253" in result["rejected"][1]["error"]
    assert result["accepted"] == 1


async def test_resend_is_stored_once(client, store: Store) -> None:  # type: ignore[no-untyped-def]
    batch = orjson.dumps([envelope(make_event(i)) for i in range(10)] + [envelope(make_event(0))])
    first = (await client.post(EVENTS, content=batch)).json()
    assert (first["accepted"], first["duplicates"]) == (10, 1)
    second = (await client.post(EVENTS, content=batch)).json()
    assert (second["accepted"], second["duplicates"]) == (0, 11)
    assert store.count_events() == 10


async def test_concurrent_resend_dedupe(make_app: AppFactory, store: Store) -> None:
    batch = ndjson([envelope(make_event(i)) for i in range(200)])
    app = make_app()
    async with client_for(app) as c:
        responses = await asyncio.gather(*(c.post(EVENTS, content=batch) for _ in range(8)))
    results = [r.json() for r in responses]
    assert all(r.status_code in (200, 202) for r in responses)
    assert sum(r["accepted"] for r in results) == 200
    assert all(r["accepted"] + r["duplicates"] == 200 for r in results)
    assert store.count_events() == 200


async def test_rate_cap_per_node_and_tenant(make_app: AppFactory, clock: Clock, store: Store) -> None:
    app = make_app(
        node_rate={"eventsPerSecond": 10, "burst": 20},
        tenant_rate={"eventsPerSecond": 30, "burst": 50},
    )
    async with client_for(app) as c:
        r = await c.post(EVENTS, content=ndjson([envelope(make_event(i, node="a")) for i in range(20)]))
        assert r.json()["accepted"] == 20
        r = await c.post(EVENTS, content=ndjson([envelope(make_event(100 + i, node="a")) for i in range(5)]))
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1 and "rate cap" in r.json()["error"]
        # another node of the same tenant is not held back by node a …
        r = await c.post(EVENTS, content=ndjson([envelope(make_event(200 + i, node="b")) for i in range(20)]))
        assert r.json()["accepted"] == 20
        # … until the tenant cap (50) is reached
        r = await c.post(EVENTS, content=ndjson([envelope(make_event(300 + i, node="c")) for i in range(15)]))
        assert r.status_code == 429
        clock.advance(2)  # node a refills 20 tokens
        r = await c.post(EVENTS, content=ndjson([envelope(make_event(100 + i, node="a")) for i in range(5)]))
        assert r.json()["accepted"] == 5
    assert store.count_events() == 45  # refused batches stored nothing


async def test_202_for_unknown_image_200_when_catalogued(client) -> None:  # type: ignore[no-untyped-def]
    other = digest_of("other")
    await put_catalog(client)
    r = await client.post(EVENTS, content=ndjson([envelope(make_event(1))]))
    assert r.status_code == 200 and r.json()["deltaScansRequested"] == []
    r = await client.post(EVENTS, content=ndjson([envelope(make_event(2, image=other))]))
    assert r.status_code == 202 and r.json()["deltaScansRequested"] == [other]
    # catalogued without an SBOM: still a delta scan, reason no-sbom
    nosbom = digest_of("nosbom")
    assert (await client.put(CATALOG + nosbom, json={"signed": True})).status_code == 200
    r = await client.post(EVENTS, content=ndjson([envelope(make_event(3, image=nosbom))]))
    assert r.status_code == 202
    scans = (await client.get("/api/v1/scanner/delta-scans")).json()
    assert {(s["image"], s["reason"], s["status"]) for s in scans["items"]} == {
        (other, "unknown-image", "pending"),
        (nosbom, "no-sbom", "pending"),
    }
    # an SBOM arriving for the image completes its request
    await put_catalog(client, other)
    pending = (await client.get("/api/v1/scanner/delta-scans?status=pending")).json()
    assert [s["image"] for s in pending["items"]] == [nosbom]


@pytest.mark.parametrize("by_hash", [False, True])
async def test_used_by_entrypoint_derived(client, by_hash: bool) -> None:  # type: ignore[no-untyped-def]
    components = [
        ("/lib/x86_64-linux-gnu/libc.so.6", "libc6"),
        ("/usr/lib/x86_64-linux-gnu/libz.so.1", "zlib1g"),
        ("/usr/lib/x86_64-linux-gnu/libunused.so", "unused"),
    ]
    await put_catalog(client, sbom=sbom(components=components, by_hash=by_hash))
    event = make_event(1)
    r = await client.post(EVENTS, content=ndjson([envelope(event)]))
    assert r.status_code == 200
    entry = (await client.get(CATALOG + API_DIGEST)).json()
    used = {c["name"]: c for c in entry["components"]}
    assert used["libc6"]["usedByEntrypoint"] and used["zlib1g"]["usedByEntrypoint"]
    assert not used["unused"]["usedByEntrypoint"]
    assert used["libc6"]["usedMatchedBy"] == ("sha256" if by_hash else "path")
    assert entry["buildIds"] == [event.process.build_id]
    stored = (await client.get(EVENTS)).json()["items"][0]
    assert stored["correlation"]["usedComponents"] == ["pkg:deb/debian/libc6", "pkg:deb/debian/zlib1g"]
    assert stored["correlation"]["catalog"]["hasSbom"] is True


async def test_event_queries_filters_pagination_total(client) -> None:  # type: ignore[no-untyped-def]
    events = [make_event(i, node=f"node-{i % 2}", namespace="ns-a" if i < 6 else "ns-b") for i in range(10)]
    events.append(make_event(10, kind=EventKind.CONTAINER_STOP, image=digest_of("x")))
    await client.post(EVENTS, content=ndjson([envelope(e) for e in events]))
    assert (await client.get(EVENTS, params={"node": "node-0"})).json()["total"] == 5
    assert (await client.get(EVENTS, params={"namespace": "ns-b"})).json()["total"] == 4
    assert (await client.get(EVENTS, params={"kind": "CONTAINER_STOP"})).json()["total"] == 1
    assert (await client.get(EVENTS, params={"image": digest_of("x")})).json()["total"] == 1
    assert (await client.get(EVENTS, params={"since": "2025-10-17T12:00:08Z"})).json()["total"] == 3
    assert (await client.get(EVENTS, params={"tenant": "tenant-01"})).json()["total"] == 11
    assert (await client.get(EVENTS, params={"tenant": "tenant-02"})).status_code == 403
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(EVENTS, params=params)).json()
        assert page["total"] == 11
        seen += [i["envelope"]["event"]["eventId"] for i in page["items"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert len(seen) == 11 and set(seen) == {e.event_id for e in events}
    for bad in (
        {"limit": "0"},
        {"limit": "x"},
        {"cursor": "abc"},
        {"since": "yesterday"},
        {"kind": "NOPE"},
        {"since": "2025-10-17T12:00:08"},
    ):
        r = await client.get(EVENTS, params=bad)
        assert r.status_code == 400, bad


async def test_retention_purge(make_app: AppFactory, clock: Clock, store: Store) -> None:
    app = make_app(
        retention={"eventsSeconds": 3600, "admissionDecisionsSeconds": 7200, "deltaScansSeconds": 3600}
    )
    async with client_for(app) as c:
        await c.post(EVENTS, content=ndjson([envelope(make_event(i)) for i in range(5)]))
        clock.advance(1800)
        await c.post(
            EVENTS, content=ndjson([envelope(make_event(i, image=digest_of("b"))) for i in range(5, 8)])
        )
        first = app.service.purge_once()
        assert {k: first[k] for k in ("runtime_events", "admission_decisions", "delta_scans")} == {
            "runtime_events": 0,
            "admission_decisions": 0,
            "delta_scans": 0,
        }
        clock.advance(1801)
        counts = app.service.purge_once()
        assert counts["runtime_events"] == 5 and counts["delta_scans"] == 1
        assert counts["event_templates"] == 1  # the first image's: no event references it any more
        remaining = (await c.get(EVENTS)).json()
        assert remaining["total"] == 3
        assert {i["envelope"]["event"]["workload"]["imageRef"].split("@")[1] for i in remaining["items"]} == {
            digest_of("b")
        }
        # purged ids can be ingested again (retention is by receive time)
        r = await c.post(EVENTS, content=ndjson([envelope(make_event(0))]))
        assert r.json()["accepted"] == 1
        again = (await c.get(EVENTS, params={"image": API_DIGEST})).json()["items"]
        assert [i["envelope"] for i in again] == [envelope(make_event(0))]  # its template stored again


async def test_shared_parts_are_stored_once_and_read_back_unchanged(client, store: Store) -> None:  # type: ignore[no-untyped-def]
    """Ten containers of each of two images: the shared rest of their envelopes is stored once per image
    (``event_templates``), and the API returns every envelope as it was sent — same value, same key order —
    next to a row stored whole, as before migration 0003."""
    from sqlalchemy import func, select

    from zastava.backend.store import EventRow
    from zastava.backend.store.bulk import insert_events
    from zastava.backend.store.schema import event_templates, runtime_events

    other = digest_of("other")
    events = [make_event(i, node=f"node-{i % 3}", pid=100 + i) for i in range(10)]
    events += [make_event(i, image=other, pid=200 + i) for i in range(10, 20)]
    r = await client.post(EVENTS, content=ndjson([envelope(e) for e in events]))
    assert r.json()["accepted"] == 20
    legacy = make_event(99)
    whole = orjson.dumps(envelope(legacy)).decode()
    with store.transaction() as conn:
        row = EventRow(
            tenant="tenant-01",
            event_id=legacy.event_id,
            received_us=1,
            when_us=1,
            kind="CONTAINER_START",
            node="n",
            namespace=None,
            pod=None,
            container_id=None,
            image=None,
            image_digest=None,
            build_id=None,
            schema_version="1.2",
            body=whole,
            correlation=None,
        )
        assert insert_events(conn, [row]) == 1
    page = (await client.get(EVENTS, params={"limit": 100})).json()
    assert page["total"] == 21
    sent = {e.event_id: orjson.dumps(envelope(e)) for e in [*events, legacy]}
    got = {i["envelope"]["event"]["eventId"]: orjson.dumps(i["envelope"]) for i in page["items"]}
    assert got == sent
    with store.engine.connect() as conn:
        templates = conn.execute(select(func.count()).select_from(event_templates)).scalar_one()
        shared = conn.execute(
            select(func.count()).select_from(runtime_events).where(runtime_events.c.template_ref.is_not(None))
        ).scalar_one()
        stored = conn.execute(
            select(func.sum(func.length(runtime_events.c.body))).where(
                runtime_events.c.event_id != legacy.event_id
            )
        ).scalar_one()
    assert (templates, shared) == (2, 20)
    assert stored < 0.3 * sum(len(sent[e.event_id]) for e in events)
