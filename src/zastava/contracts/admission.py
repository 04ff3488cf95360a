"""Admission decision (webhook → API server / backend), spec §2.2.

Version history of ``zastava.admission.decision``:

* ``v1.0`` — the seed contract of the spec.
* ``v1.1`` — appends optional fields so that a recorded request can be replayed through the webhook's gates
  (policy simulation, issue 18): ``outcome`` (allow, deny, fail-open, fail-closed, dry-run-deny),
  ``operation``, ``pod`` (name or generateName) and ``labels`` of the Pod, and per image the ``container``
  name and ``containerField``. Nothing else of the Pod is recorded (no env, commands, annotations, volumes,
  service account or user): only what the gates read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import ContractModel, OptionalField

__all__ = ["AdmissionDecision", "AdmissionImage", "ContainerField", "Outcome", "PolicyVerdict"]

PolicyVerdict = Literal["pass", "warn", "fail"]
Outcome = Literal["allow", "deny", "fail-open", "fail-closed", "dry-run-deny"]
ContainerField = Literal["initContainers", "containers", "ephemeralContainers"]


class AdmissionImage(ContractModel):
    name: str = Field(min_length=1, description="image as written in the Pod spec")
    resolved: str | None = Field(default=None, description="'<repo>@sha256:…' when resolved, else null")
    signed: bool | None = Field(default=None)
    has_sbom_referrers: bool | None = Field(default=None)
    policy_verdict: PolicyVerdict
    reasons: list[str] = Field(default_factory=list)
    container: str | None = OptionalField(since="1.1", max_length=253, description="the container's name")
    container_field: ContainerField | None = OptionalField(since="1.1", description="where in the Pod spec")


class AdmissionDecision(ContractModel):
    admission_id: str = Field(min_length=1, description="the AdmissionReview request uid")
    namespace: str
    pod_spec_digest: str = Field(description="canonical id of the Pod spec (sha256-<base64url>)")
    images: list[AdmissionImage] = Field(default_factory=list)
    decision: Literal["Allow", "Deny"]
    ttl_seconds: int = Field(ge=0)
    enforced: bool | None = OptionalField(description="false when the decision was recorded in dry-run")
    outcome: Outcome | None = OptionalField(since="1.1", description="what the webhook answered, and why")
    operation: Literal["CREATE", "UPDATE"] | None = OptionalField(since="1.1")
    pod: str | None = OptionalField(since="1.1", max_length=253, description="the Pod's name or generateName")
    labels: dict[str, str] | None = OptionalField(
        since="1.1", max_length=256, description="the Pod's labels (backend rules match on them)"
    )
