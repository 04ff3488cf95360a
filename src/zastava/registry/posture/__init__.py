"""Posture: fetch the material of an image digest from its registry, then verify it (``check_posture`` for one
set of signers; :class:`ImageVerifier` for trust policies, cached, as admission and the backend use it)."""

from .fetch import fetch_material
from .summary import ImagePosture, VerificationCache, check_posture
from .verifier import ImageVerifier, VerificationKey, VerifyOutcome

__all__ = [
    "ImagePosture",
    "ImageVerifier",
    "VerificationCache",
    "VerificationKey",
    "VerifyOutcome",
    "check_posture",
    "fetch_material",
]
