"""The one fail-open/closed and dry-run decision: every answer of ``/admit`` to a parsed AdmissionReview is
settled here, whatever went wrong on the way.

A review ends in one of four states: nothing to object to, a gate denied (``deny``), the images could not be
verified — backend or registry down, slow or wrong, or an internal error of the webhook — (``unavailable``),
or the request itself is malformed — not shaped like a Pod, an empty ``image``, more containers than
allowed, an AdmissionReview with missing fields — (``invalid``). ``unavailable`` is admitted in the
namespaces of ``admission.failOpenNamespaces`` (fail-open) and denied elsewhere (fail-closed); ``deny`` and
``invalid`` are denied everywhere. With ``admission.enforce: false`` (dry run) every would-be denial is
admitted with a warning and recorded as ``dry-run-deny`` — the promise of a dry run is that it never blocks.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from ..config import Admission
from .review import AdmissionResponse, Status

__all__ = ["Decision", "DecisionLabel", "Decisions", "Problem"]

Problem = Literal["deny", "unavailable", "invalid"]
#: ``zastava_admission_decisions_total{decision}`` and ``auditAnnotations.decision``
DecisionLabel = Literal["allow", "skip", "deny", "fail-open", "fail-closed", "invalid", "dry-run-deny"]

MAX_WARNINGS = 16
MAX_WARNING_CHARS = 256
MAX_MESSAGE_CHARS = 4000
MAX_AUDIT_CHARS = 1000
DRY_RUN_PREFIX = "zastava dry-run (enforce: false) would deny: "


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Decision(NamedTuple):  # a named tuple: built on every review, ~1 µs cheaper than a frozen dataclass
    allowed: bool  # the answer the API server gets
    would_allow: bool  # the answer with enforcement on (what the §2.2 record says)
    label: DecisionLabel
    problem: Problem | None
    message: str | None  # what went wrong (a gate's reasons, what could not be verified, what is malformed)
    code: int  # status code of a denial: 403, or 400 for a malformed request

    def denial(self, namespace: str) -> str:
        """The ``status.message`` enforcement gives (or would give, in a dry run)."""
        if self.problem == "unavailable":
            return (
                f"zastava could not verify the Pod's images and namespace {namespace!r} is fail-closed: "
                f"{self.message}"
            )
        return self.message or ""


class Decisions:
    """The decision under ``admission`` (``enforce``, ``failOpenNamespaces``) and the response carrying it."""

    def __init__(self, admission: Admission) -> None:
        self.enforce = admission.enforce
        self.fail_open = frozenset(admission.fail_open_namespaces)

    def decide(self, problem: Problem | None, namespace: str, message: str | None = None) -> Decision:
        if problem is None:
            return Decision(True, True, "allow", None, None, 200)
        if problem == "unavailable" and namespace in self.fail_open:
            return Decision(True, True, "fail-open", problem, message, 200)
        code = 400 if problem == "invalid" else 403
        if not self.enforce:
            return Decision(True, False, "dry-run-deny", problem, message, code)
        label: DecisionLabel = "fail-closed" if problem == "unavailable" else problem
        return Decision(False, False, label, problem, message, code)

    def response(
        self, uid: str, decision: Decision, namespace: str, warnings: list[str] | None = None
    ) -> AdmissionResponse:
        """The AdmissionResponse: ``status`` when denied; the dry-run, fail-open or fail-closed warning first;
        ``auditAnnotations`` (``decision``, ``reasons``)."""
        notes = list(warnings or [])
        denial = None if decision.would_allow else decision.denial(namespace)
        if decision.label == "dry-run-deny":
            notes.insert(0, DRY_RUN_PREFIX + (denial or ""))
        elif decision.label == "fail-open":
            what = decision.message
            notes.insert(0, f"zastava could not verify images and admitted them fail-open: {what}")
        elif decision.label == "fail-closed":
            notes.insert(0, "zastava: policy backend or registry unavailable; Pod denied fail-closed")
        status = None
        if not decision.allowed:
            reason = "BadRequest" if decision.code == 400 else "Forbidden"
            status = Status(code=decision.code, reason=reason, message=_clip(denial or "", MAX_MESSAGE_CHARS))
        audit: dict[str, str] = {"decision": decision.label}
        if denial:
            audit["reasons"] = _clip(denial, MAX_AUDIT_CHARS)
        return AdmissionResponse(
            uid=uid,
            allowed=decision.allowed,
            status=status,
            warnings=[_clip(w, MAX_WARNING_CHARS) for w in notes[:MAX_WARNINGS]] or None,
            audit_annotations=audit,
        )
