"""The one builder of runtime events (and their envelopes, ND-JSON bodies and SBOMs) for every test and
benchmark: realistic, reproducible, distinct per index."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from zastava.contracts import (
    EventKind,
    Evidence,
    LoadedLib,
    RuntimeEvent,
    runtime_envelope_wire,
)
from zastava.contracts.examples import example_runtime_event

LIBS = [
    ("/lib/x86_64-linux-gnu/libc.so.6", "libc6"),
    ("/lib/x86_64-linux-gnu/libssl.so.3", "libssl3"),
    ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "libssl3-crypto"),
    ("/usr/lib/x86_64-linux-gnu/libz.so.1", "zlib1g"),
]


BASE_TIME = datetime(2025, 10, 17, 12, 0, tzinfo=UTC)


def digest_of(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def sha_of(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def make_event(
    i: int,
    *,
    tenant: str = "tenant-01",
    node: str = "node-1",
    image: str | None = None,
    kind: EventKind | str = EventKind.CONTAINER_START,
    namespace: str = "payments",
    build_id: str | None = "9f3a1cd4c0b7adfe91c0e3b51d2f45fb0f76a4c1",
    libs: int = 4,
    pid: int | None = None,
    when_us: int | None = None,
    padding: int = 0,
) -> RuntimeEvent:
    """Event number ``i`` (its own pod, container and pid, and a ``seq`` evidence line naming ``i``);
    ``when_us`` replaces the default time (one second per index) by microseconds after the base; ``padding``
    adds an evidence line of that many bytes."""
    base = example_runtime_event()
    kind = EventKind(kind)
    workload = base.workload.model_copy(
        update={
            "namespace": namespace,
            "pod": f"api-{i}",
            "container_id": f"containerd://{i:064x}",
            "image_ref": f"ghcr.io/acme/api@{image or digest_of('api')}",
        }
    )
    process = (
        base.process.model_copy(update={"pid": pid if pid is not None else 1000 + i, "build_id": build_id})
        if base.process
        else None
    )
    loaded = [LoadedLib(path=p, inode=100 + n, sha256=sha_of(p)) for n, (p, _) in enumerate(LIBS[:libs])]
    event = base.model_copy(
        update={
            "when": BASE_TIME
            + (timedelta(microseconds=when_us) if when_us is not None else timedelta(seconds=i)),
            "tenant": tenant,
            "node": node,
            "kind": kind,
            "workload": workload,
            "process": process if kind is EventKind.CONTAINER_START else None,
            "loaded_libs": loaded if kind is EventKind.CONTAINER_START else None,
            "evidence": [
                *base.evidence,
                Evidence(signal="seq", value=str(i)),
                *([Evidence(signal="padding", value="x" * padding)] if padding else []),
            ],
        }
    )
    return event.with_computed_id()


def envelope(event: RuntimeEvent, version: str | None = None) -> dict[str, Any]:
    return runtime_envelope_wire(event, version)


def ndjson(envelopes: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in envelopes)


def sbom(
    *,
    components: list[tuple[str, str]] | None = None,
    vulns: list[tuple[str, str, str]] | None = None,
    by_hash: bool = False,
) -> dict[str, Any]:
    """CycloneDX with one component per (path, name); vulns are (id, severity, bom-ref)."""
    comps = []
    for path, name in components if components is not None else LIBS:
        comp: dict[str, Any] = {
            "bom-ref": f"pkg:deb/debian/{name}",
            "type": "library",
            "name": name,
            "version": "1",
        }
        if by_hash:
            comp["hashes"] = [{"alg": "SHA-256", "content": sha_of(path)}]
        else:
            comp["evidence"] = {"occurrences": [{"location": path.removeprefix("/usr")}]}
        comps.append(comp)
    doc: dict[str, Any] = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": comps}
    if vulns:
        doc["vulnerabilities"] = [
            {"id": vid, "ratings": [{"severity": sev}], "affects": [{"ref": ref}]} for vid, sev, ref in vulns
        ]
    return doc
