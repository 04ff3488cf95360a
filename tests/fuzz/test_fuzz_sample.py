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


#: Cases that crashed before their fix (target, case seed): they stay in CI.
FOUND = [
    ("shell-script", 232),  # a path with NUL: ValueError from os.open in RootFS
    ("shell-script", 904),  # the same through the tracer's quick lookup
    ("jwt-dpop", 3273),  # a non-ASCII cnf.jkt: TypeError from hmac.compare_digest
    ("jwt-dpop", 9257),  # a proof jwk with crv "None": KeyError from joserfc
]


@pytest.mark.parametrize(("name", "seed"), FOUND)
def test_fuzz_findings_stay_fixed(name: str, seed: int) -> None:
    import random
    import tempfile
    from pathlib import Path

    from tests.fuzz.targets import TARGETS

    target = TARGETS[name]()
    with tempfile.TemporaryDirectory() as tmp:
        target.setup(Path(tmp))
        try:
            outcome = target.case(random.Random(f"{name}:{seed}"))
        finally:
            target.close()
    assert outcome.kind == "ok", outcome.detail
