"""Named contracts: JSON Schema and a complete wire example of each (``zastava contracts …``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from .admission import AdmissionDecision, AdmissionImage
from .catalog import CatalogComponent, CatalogEntry, CatalogVulnerability
from .envelope import AdmissionDecisionEnvelope, RuntimeEventEnvelope, runtime_envelope_wire
from .ingest import IngestRejection, IngestResponse
from .policy import ImagePolicy, RekorRef, RuntimePolicyRequest, RuntimePolicyResponse
from .runtime_event import (
    Attestation,
    EntryTraceStep,
    EventKind,
    Evidence,
    LoadedLib,
    NewBinary,
    Owner,
    Posture,
    Process,
    RuntimeDelta,
    RuntimeEvent,
    RuntimeInfo,
    Workload,
)
from .versions import ADMISSION_DECISION, RUNTIME_EVENT, versions

__all__ = ["CONTRACTS", "Contract", "contract", "example_runtime_event"]

_DIGEST = "sha256:" + "ab" * 32


def example_runtime_event() -> RuntimeEvent:
    event = RuntimeEvent(
        event_id="pending",
        when=datetime(2025, 10, 17, 12, 34, 56, tzinfo=UTC),
        kind=EventKind.CONTAINER_START,
        tenant="tenant-01",
        node="ip-10-0-1-23",
        runtime=RuntimeInfo(engine="containerd", version="1.7.19"),
        workload=Workload(
            platform="kubernetes",
            namespace="payments",
            pod="api-7c9fbbd8b7-ktd84",
            container="api",
            container_id="containerd://" + "4f" * 32,
            image_ref=f"ghcr.io/acme/api@{_DIGEST}",
            owner=Owner(kind="Deployment", name="api"),
        ),
        process=Process(
            pid=12345,
            entrypoint=["/entrypoint.sh", "--serve"],
            entry_trace=[
                EntryTraceStep(file="/entrypoint.sh", line=3, op="exec", target="/usr/bin/python3"),
                EntryTraceStep(file="<argv>", op="python", target="/opt/app/server.py"),
            ],
            build_id="9f3a1cd4c0b7adfe91c0e3b51d2f45fb0f76a4c1",
            start_time=884211,
            terminals=["/usr/bin/python3"],
            entry_trace_confidence=100,
        ),
        loaded_libs=[
            LoadedLib(path="/lib/x86_64-linux-gnu/libssl.so.3", inode=123456, sha256="1a" * 32),
            LoadedLib(path="/usr/lib/x86_64-linux-gnu/libcrypto.so.3", inode=123457, sha256="2b" * 32),
        ],
        posture=Posture(
            image_signed=True,
            sbom_referrer="present",
            attestation=Attestation(uuid="24296fb24b8ad77a1ad0e9ae1ea6ad08", verified=True),
        ),
        delta=RuntimeDelta(
            baseline_image_digest=_DIGEST,
            changed_files=["/opt/app/server.py"],
            new_binaries=[NewBinary(path="/usr/local/bin/helper", sha256="3c" * 32)],
        ),
        evidence=[
            Evidence(signal="procfs.maps", value="/lib/x86_64-linux-gnu/libssl.so.3@0x7f3a5c000000"),
            Evidence(signal="cri.task.inspect", value="pid=12345"),
            Evidence(signal="registry.referrers", value="sbom: application/vnd.cyclonedx+json"),
        ],
    )
    return event.with_computed_id()


def _example_decision() -> AdmissionDecision:
    return AdmissionDecision(
        admission_id="705ab4f5-6393-11e8-b7cc-42010a800002",
        namespace="payments",
        pod_spec_digest="sha256-" + "q" * 43,
        images=[
            AdmissionImage(
                name="ghcr.io/acme/api:1.2.3",
                resolved=f"ghcr.io/acme/api@{_DIGEST}",
                signed=True,
                has_sbom_referrers=True,
                policy_verdict="pass",
                reasons=[],
                container="api",
                container_field="containers",
            )
        ],
        decision="Allow",
        ttl_seconds=300,
        enforced=True,
        outcome="allow",
        operation="CREATE",
        pod="api-7d9f8b6c5-",
        labels={"app": "api", "env": "prod"},
    )


@dataclass(frozen=True)
class Contract:
    name: str
    model: type[BaseModel]
    example: Callable[[], dict[str, Any]]
    description: str

    def json_schema(self) -> dict[str, Any]:
        schema = self.model.model_json_schema(by_alias=True, mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema.setdefault("title", self.name)
        schema["description"] = self.description
        return schema


CONTRACTS: dict[str, Contract] = {
    RUNTIME_EVENT: Contract(
        RUNTIME_EVENT,
        RuntimeEventEnvelope,
        lambda: runtime_envelope_wire(example_runtime_event()),
        f"Runtime event envelope (spec §2.1), current {versions.current(RUNTIME_EVENT)}",
    ),
    ADMISSION_DECISION: Contract(
        ADMISSION_DECISION,
        AdmissionDecisionEnvelope,
        lambda: {
            "schemaVersion": str(versions.current(ADMISSION_DECISION)),
            "decision": _example_decision().wire(),
        },
        f"Admission decision envelope (spec §2.2), current {versions.current(ADMISSION_DECISION)}",
    ),
    "zastava.policy.runtime.request": Contract(
        "zastava.policy.runtime.request",
        RuntimePolicyRequest,
        lambda: RuntimePolicyRequest(
            namespace="payments",
            labels={"app": "api", "env": "prod"},
            images=[f"ghcr.io/acme/api@{_DIGEST}", "ghcr.io/acme/nginx@sha256:" + "cd" * 32],
        ).wire(),
        "POST /api/v1/scanner/policy/runtime request (spec §5.2)",
    ),
    "zastava.policy.runtime.response": Contract(
        "zastava.policy.runtime.response",
        RuntimePolicyResponse,
        lambda: RuntimePolicyResponse(
            ttl_seconds=300,
            policy_revision="sha256-" + "p" * 43,
            results={
                f"ghcr.io/acme/api@{_DIGEST}": ImagePolicy(
                    signed=True,
                    has_sbom=True,
                    policy_verdict="pass",
                    reasons=[],
                    rekor=RekorRef(uuid="24296fb24b8ad77a1ad0e9ae1ea6ad08"),
                    build_ids=["9f3a1cd4c0b7adfe91c0e3b51d2f45fb0f76a4c1"],
                ),
                "ghcr.io/acme/nginx@sha256:" + "cd" * 32: ImagePolicy(
                    signed=False, has_sbom=False, policy_verdict="fail", reasons=["unsigned", "missing SBOM"]
                ),
            },
        ).wire(),
        "POST /api/v1/scanner/policy/runtime response (spec §5.2)",
    ),
    "zastava.ingest.response": Contract(
        "zastava.ingest.response",
        IngestResponse,
        lambda: IngestResponse(
            received=3,
            accepted=1,
            duplicates=1,
            rejected=[
                IngestRejection(
                    index=2,
                    error="unsupported major in schemaVersion zastava.runtime.event@v2.0: this build speaks "
                    "v1.x of zastava.runtime.event",
                )
            ],
            delta_scans_requested=[_DIGEST],
            schema_version=str(versions.current(RUNTIME_EVENT)),
        ).wire(),
        "POST /api/v1/scanner/runtime/events response (200, 202 with delta scans, 400 when nothing was read)",
    ),
    "zastava.catalog.entry": Contract(
        "zastava.catalog.entry",
        CatalogEntry,
        lambda: CatalogEntry(
            digest=_DIGEST,
            signed=True,
            has_sbom=True,
            rekor=RekorRef(uuid="24296fb24b8ad77a1ad0e9ae1ea6ad08"),
            base_image_digest="sha256:" + "ef" * 32,
            updated_at=datetime(2025, 10, 17, 12, 0, 0, tzinfo=UTC),
            components=[
                CatalogComponent(
                    bom_ref="pkg:deb/debian/libssl3@3.0.11",
                    name="libssl3",
                    version="3.0.11",
                    type="library",
                    purl="pkg:deb/debian/libssl3@3.0.11",
                    paths=["/lib/x86_64-linux-gnu/libssl.so.3"],
                    sha256=["1a" * 32],
                    used_by_entrypoint=True,
                    used_matched_by="path",
                    last_used=datetime(2025, 10, 17, 12, 34, 56, tzinfo=UTC),
                )
            ],
            vulnerabilities=[
                CatalogVulnerability(
                    id="CVE-2024-0001", severity="high", affects=["pkg:deb/debian/libssl3@3.0.11"]
                )
            ],
            build_ids=["9f3a1cd4c0b7adfe91c0e3b51d2f45fb0f76a4c1"],
        ).wire(),
        "GET /api/v1/scanner/catalog/images/{digest} response: the image's usage SBOM view",
    ),
}

_SHORT = {
    "runtime-event": RUNTIME_EVENT,
    "admission-decision": ADMISSION_DECISION,
    "policy-request": "zastava.policy.runtime.request",
    "policy-response": "zastava.policy.runtime.response",
    "ingest-response": "zastava.ingest.response",
    "catalog-entry": "zastava.catalog.entry",
}


def contract(name: str) -> Contract:
    """Look a contract up by full name (``zastava.runtime.event``) or short name (``runtime-event``)."""
    key = _SHORT.get(name, name)
    try:
        return CONTRACTS[key]
    except KeyError:
        known = ", ".join([*CONTRACTS, *_SHORT])
        raise KeyError(f"unknown contract {name!r}; known: {known}") from None
