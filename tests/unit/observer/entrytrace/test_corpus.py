"""Every corpus case traced against its root: expected programs, residents, chain, wrappers and flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zastava.contracts import Process
from zastava.observer.entrytrace import EntryTraceResult, trace_entrypoint

from .corpus import Case, load_cases

CASES = load_cases()


def _chain_matches(result: EntryTraceResult, chain: list[list[Any]]) -> tuple[bool, str]:
    steps = [(s.file, s.line, s.op, s.target) for s in result.steps]
    position = 0
    for expected in chain:
        file, line, op, target = expected
        while position < len(steps):
            f, ln, o, t = steps[position]
            position += 1
            if f == file and o == op and t == target and (line is None or ln == line):
                break
        else:
            return False, f"step {expected} not found in order among {steps}"
    return True, ""


def test_corpus_is_large_enough() -> None:
    regular = [c for c in CASES if not c.hostile]
    hostile = [c for c in CASES if c.hostile]
    assert len(regular) >= 40, len(regular)
    assert len(hostile) >= 6, len(hostile)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, corpus_roots: dict[str, tuple[Case, Path]]) -> None:
    _, root = corpus_roots[case.name]
    result = trace_entrypoint(case.spec["argv"], **case.trace_kwargs(root))
    expect = case.expect
    detail = result.to_json()

    programs = {t.resolved for t in result.programs()}
    assert programs == set(expect.get("programs", [])), detail
    residents = {t.resolved for t in result.terminals if t.resident}
    assert residents == set(expect.get("residents", [])), detail
    assert result.wrappers == expect.get("wrappers", []), detail
    assert result.ambiguous is bool(expect.get("ambiguous", False)), detail
    assert result.partial is bool(expect.get("partial", False)), detail
    codes = {d.code for d in result.diagnostics}
    assert set(expect.get("codes", [])) <= codes, detail
    ok, why = _chain_matches(result, expect.get("chain", []))
    assert ok, why
    default_confidence = 80 if not (result.partial or result.ambiguous) else 0
    assert result.confidence >= expect.get("min_confidence", default_confidence), detail
    if result.partial:
        assert result.confidence <= 60, detail
    for wanted in expect.get("terminals", []):
        matching = [t for t in result.terminals if t.resolved == wanted["resolved"]]
        assert matching, (wanted, detail)
        terminal = matching[0].to_json()
        for key, value in wanted.items():
            assert terminal.get(key) == value, (key, terminal, detail)
    # what the runtime event carries is valid against the contract
    fields = result.process_fields()
    process = Process(pid=1, entrypoint=case.spec["argv"], **fields)
    assert process.entry_trace_confidence == result.confidence
    for terminal in result.terminals:
        for path in (terminal.path, terminal.resolved):
            if path:
                assert path in fields["terminals"]
                assert path.startswith("/")
