"""Runtime-policy request/response (webhook/observer → backend ``/policy/runtime``), spec §5.2."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import ContractModel, OptionalField

__all__ = ["ImagePolicy", "RekorRef", "RuntimePolicyRequest", "RuntimePolicyResponse"]


class RuntimePolicyRequest(ContractModel):
    namespace: str | None = OptionalField()
    labels: dict[str, str] = Field(default_factory=dict)
    images: list[str] = Field(min_length=1, max_length=256)


class RekorRef(ContractModel):
    uuid: str | None = OptionalField()
    log_index: int | None = OptionalField(ge=0)
    verified: bool | None = OptionalField()


class ImagePolicy(ContractModel):
    signed: bool
    has_sbom: bool
    policy_verdict: Literal["pass", "warn", "fail"]
    reasons: list[str] = Field(default_factory=list)
    rekor: RekorRef | None = OptionalField()
    build_ids: list[str] | None = OptionalField(description="most recent GNU build-ids observed (spec §3.4)")
    base_image_digest: str | None = OptionalField()


class RuntimePolicyResponse(ContractModel):
    ttl_seconds: int = Field(ge=0)
    results: dict[str, ImagePolicy]
    policy_revision: str | None = OptionalField(
        description="changes whenever the backend policy changes, so caches can key on it"
    )
