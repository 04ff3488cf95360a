"""Warm answers: the whole answer to a Pod CREATE review whose every image verdict is cached, remembered
per (policy context, images) and served without the admission machinery while those verdicts stay cached.

A warm review of a rollout's replica differs from the previous one only in its ``uid``, the Pod's name and
its spec's other fields (the API server gives each replica its own ``kube-api-access-*`` volume): what the
gates read — the namespace and labels (:class:`~.cache.PolicyContext`, the verdict cache's own key, issue 15)
and each container's place, name and image — is the same. :class:`WarmAnswer` keeps what the slow path
settled for that input: the response body after the ``uid``, the decision's label, and the §2.2 record's
wire form with the per-review fields left to fill. It is valid exactly as long as every verdict it was
built from is the entry the cache still holds (same object: not expired, not evicted, same policy
revision), which :meth:`WarmAnswers.get` checks on every use — so a warm answer never outlives the
verdict, and never serves one context's verdict to another (the context is part of the key).

The slow path (pydantic envelope, gates, the decision, the response model) costs ~100 µs a review on this
machine; a warm answer ~10 µs (docs/benchmarks.md, issue 19).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cache import CacheEntry, PolicyContext, PolicyKey
from .images import ContainerImage

__all__ = ["WarmAnswer", "WarmAnswers", "WarmKey"]

WarmKey = tuple[PolicyContext, tuple[ContainerImage, ...]]


@dataclass(frozen=True, slots=True)
class WarmAnswer:
    #: the cached verdicts the answer was built from, as the cache held them
    verdicts: tuple[tuple[PolicyKey, CacheEntry], ...]
    #: the response body after ``RESPONSE_HEAD`` + the uid's JSON string
    tail: bytes
    #: ``zastava_admission_decisions_total{decision}`` and ``auditAnnotations.decision``
    label: str
    #: the §2.2 record's wire dict; ``admissionId``, ``podSpecDigest`` and ``pod`` are filled per review
    #: (``images`` is pre-serialised: an ``orjson.Fragment``)
    record: dict[str, Any]


class WarmAnswers:
    """Bounded (``max_entries``; the oldest half is forgotten when full — entries are rebuilt by the next
    slow review). Not thread-safe: used on the event loop only."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._answers: dict[WarmKey, WarmAnswer] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: WarmKey, cached: Callable[[PolicyKey], CacheEntry | None]) -> WarmAnswer | None:
        """The answer for ``key`` when every verdict it read is still the one ``cached`` (the verdict cache's
        ``get``) returns; a stale answer is forgotten."""
        answer = self._answers.get(key)
        if answer is None:
            return None
        for policy_key, entry in answer.verdicts:
            if cached(policy_key) is not entry:
                del self._answers[key]
                return None
        return answer

    def put(self, key: WarmKey, answer: WarmAnswer) -> None:
        if len(self._answers) >= self.max_entries:
            for old in list(self._answers)[: self.max_entries // 2 or 1]:
                del self._answers[old]
        self._answers[key] = answer

    def clear(self) -> None:
        self._answers.clear()
