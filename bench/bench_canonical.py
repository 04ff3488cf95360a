"""Canonical JSON of a realistic runtime event: orjson fast path vs the rfc8785 reference (same run)."""

from __future__ import annotations

from bench.common import median, timeit, us
from zastava.contracts import LoadedLib, canonical_bytes
from zastava.contracts.examples import example_runtime_event


def _event_body() -> dict[str, object]:
    event = example_runtime_event()
    libs = [
        LoadedLib(
            path=f"/usr/lib/x86_64-linux-gnu/libexample{i}.so.{i % 7}", inode=100000 + i, sha256=f"{i:064x}"
        )
        for i in range(40)
    ]
    return event.model_copy(update={"loaded_libs": libs}).wire()


def main(quick: bool = False) -> list[str]:
    body = _event_body()
    size = len(canonical_bytes(body))
    assert canonical_bytes(body) == canonical_bytes(body, fast=False)
    repeat = 200 if quick else 2000
    fast = median(timeit(lambda: canonical_bytes(body), repeat=repeat))
    reference = median(timeit(lambda: canonical_bytes(body, fast=False), repeat=repeat // 4))
    return [
        f"event of {size} canonical bytes",
        f"fast path (orjson, eligibility walk): {us(fast)} median",
        f"reference (rfc8785): {us(reference)} median",
        f"ratio reference/fast: {reference / fast:.1f}x",
    ]
