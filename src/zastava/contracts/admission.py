"""Admission decision (webhook → API server / backend), spec §2.2."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import ContractModel, OptionalField

__all__ = ["AdmissionDecision", "AdmissionImage", "PolicyVerdict"]

PolicyVerdict = Literal["pass", "warn", "fail"]


class AdmissionImage(ContractModel):
    name: str = Field(min_length=1, description="image as written in the Pod spec")
    resolved: str | None = Field(default=None, description="'<repo>@sha256:…' when resolved, else null")
    signed: bool | None = Field(default=None)
    has_sbom_referrers: bool | None = Field(default=None)
    policy_verdict: PolicyVerdict
    reasons: list[str] = Field(default_factory=list)


class AdmissionDecision(ContractModel):
    admission_id: str = Field(min_length=1, description="the AdmissionReview request uid")
    namespace: str
    pod_spec_digest: str = Field(description="canonical id of the Pod spec (sha256-<base64url>)")
    images: list[AdmissionImage] = Field(default_factory=list)
    decision: Literal["Allow", "Deny"]
    ttl_seconds: int = Field(ge=0)
    enforced: bool | None = OptionalField(description="false when the decision was recorded in dry-run")
