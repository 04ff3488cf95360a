"""Zastava's data contracts (spec §2): models, envelopes, version negotiation, canonical JSON, ids.

This package depends on nothing else of Zastava's; every plane imports it.
"""

from .admission import AdmissionDecision, AdmissionImage, PolicyVerdict
from .canonical import (
    CanonicalIdMemo,
    CanonicalizationError,
    canonical_bytes,
    canonical_id,
    multihash_id,
    parse_multihash_id,
)
from .catalog import CatalogComponent, CatalogEntry, CatalogVulnerability
from .envelope import (
    AdmissionDecisionEnvelope,
    EnvelopeError,
    RuntimeEventEnvelope,
    dump_runtime_envelope,
    parse_admission_envelope,
    parse_runtime_envelope,
    runtime_envelope_wire,
)
from .ingest import IngestRejection, IngestResponse
from .policy import ImagePolicy, RekorRef, RuntimePolicyRequest, RuntimePolicyResponse
from .runtime_event import (
    KINDS_V1_0,
    AgentWarning,
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
from .versions import (
    ADMISSION_DECISION,
    RUNTIME_EVENT,
    SCHEMA_VERSIONS_HEADER,
    ContractVersionError,
    SchemaVersion,
    UnsupportedSchemaVersion,
    ZastavaContractVersions,
    versions,
)

__all__ = [
    "ADMISSION_DECISION",
    "KINDS_V1_0",
    "RUNTIME_EVENT",
    "SCHEMA_VERSIONS_HEADER",
    "AdmissionDecision",
    "AdmissionDecisionEnvelope",
    "AdmissionImage",
    "AgentWarning",
    "Attestation",
    "CanonicalIdMemo",
    "CanonicalizationError",
    "CatalogComponent",
    "CatalogEntry",
    "CatalogVulnerability",
    "ContractVersionError",
    "EntryTraceStep",
    "EnvelopeError",
    "EventKind",
    "Evidence",
    "ImagePolicy",
    "IngestRejection",
    "IngestResponse",
    "LoadedLib",
    "NewBinary",
    "Owner",
    "PolicyVerdict",
    "Posture",
    "Process",
    "RekorRef",
    "RuntimeDelta",
    "RuntimeEvent",
    "RuntimeEventEnvelope",
    "RuntimeInfo",
    "RuntimePolicyRequest",
    "RuntimePolicyResponse",
    "SchemaVersion",
    "UnsupportedSchemaVersion",
    "Workload",
    "ZastavaContractVersions",
    "canonical_bytes",
    "canonical_id",
    "dump_runtime_envelope",
    "multihash_id",
    "parse_admission_envelope",
    "parse_multihash_id",
    "parse_runtime_envelope",
    "runtime_envelope_wire",
    "versions",
]
