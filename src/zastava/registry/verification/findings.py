"""The outcome of checking one signature or attestation (what posture summarises)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["Finding"]


class Finding(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    #: ``cosign-signature`` (``.sig`` tag), ``cosign-attestation`` (``.att`` tag),
    #: ``sigstore-bundle`` (referrer)
    kind: Literal["cosign-signature", "cosign-attestation", "sigstore-bundle"]
    role: Literal["signature", "attestation"]
    digest: str  # the image digest checked against
    source: str  # tag or referrer manifest digest it came from
    verified: bool
    signer: str | None = None  # key name / fingerprint, or "subject (issuer)"
    signer_kind: Literal["key", "keyless"] | None = None
    predicate_type: str | None = None
    rekor_uuid: str | None = None
    reason: str | None = None
