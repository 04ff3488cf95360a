"""CI's sample of the long-run fuzz targets (``make fuzz``: 100,000 cases each): a few hundred cases per
target, seconds in all. No case may crash its entry point or answer 5xx."""

from __future__ import annotations

import os

import pytest

from tests.fuzz.targets import TARGETS, run

CASES = int(os.environ.get("ZASTAVA_FUZZ_CASES", "300"))


@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz_sample(name: str) -> None:
    report = run(name, CASES, seed=int(os.environ.get("ZASTAVA_FUZZ_SEED", "0")))
    assert report.cases == CASES
    assert report.crashes == 0 and report.server_errors == 0, "\n".join(report.findings or [])
