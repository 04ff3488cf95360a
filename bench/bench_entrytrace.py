"""EntryTrace over the real corpus (published entrypoints of official and vendor images).

Accuracy: the labelled program is among the non-wrapper terminals (goal >= 97 % of the corpus) and is the
only one (goal >= 90 %). Time per entrypoint (median of ``repeat`` full traces, wall and CPU): p99 goal
<= 50 ms, max <= 250 ms; baseline in the same run: the raw tree-sitter-bash parse of the same entrypoint's
scripts. Also: the imitation corpus (median) and its hostile scripts (worst time, peak memory).
"""

from __future__ import annotations

import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from tests.unit.observer.entrytrace.corpus import build_all
from tests.unit.observer.entrytrace.realcorpus import build_real, score

from bench.common import median, ms, pct
from zastava.observer.entrytrace import trace_entrypoint
from zastava.observer.entrytrace.parser import parse_shell


def _samples(call: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """(wall, cpu) seconds per call, after one warm-up call."""
    call()
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        call()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return wall, cpu


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"median {ms(median(ordered))}, p90 {ms(pct(ordered, 90))}, p99 {ms(pct(ordered, 99))}, "
        f"max {ms(ordered[-1])}"
    )


def main(quick: bool = False) -> list[str]:
    repeat = 5 if quick else 20
    load_before = os.getloadavg()[0]
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="zastava-bench-entrytrace-") as tmp:
        real = build_real(Path(tmp) / "real")
        found = only = 0
        misses: list[str] = []
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        worst_call = (0.0, "")
        parse: dict[str, float] = {}
        for name, (case, root) in real.items():
            kwargs = case.trace_kwargs(root)
            argv = case.argv
            verdict = score(case, trace_entrypoint(argv, **kwargs))
            found += verdict.found
            only += verdict.only
            if not verdict.only:
                misses.append(
                    f"{name} ({'found' if verdict.found else 'MISSED'}: {', '.join(verdict.programs)})"
                )
            w, c = _samples(lambda a=argv, k=kwargs: trace_entrypoint(a, **k), repeat)
            wall[name], cpu[name] = median(w), median(c)
            if max(w) > worst_call[0]:
                worst_call = (max(w), name)
            scripts = case.scripts()
            if scripts:
                pw, _ = _samples(lambda s=scripts: [parse_shell(d) for d in s], repeat)
                parse[name] = median(pw)
        total = len(real)
        scripted = [n for n in real if n in parse]
        slowest = max(wall, key=lambda n: wall[n])
        ratios = sorted(wall[n] / parse[n] for n in scripted)
        p99_wall = pct(list(wall.values()), 99)
        max_wall = max(wall.values())
        lines += [
            f"real corpus: {total} entrypoints ({len(scripted)} with shell scripts), {repeat} traces each, "
            f"load average {load_before:.1f} at start",
            f"accuracy: right program {found}/{total} = {100 * found / total:.1f} % (goal >= 97 %), "
            f"only non-wrapper terminal {only}/{total} = {100 * only / total:.1f} % (goal >= 90 %)",
            *(f"  not only: {m}" for m in misses),
            f"trace per entrypoint, wall: {_spread(list(wall.values()))} ({slowest})",
            f"trace per entrypoint, CPU:  {_spread(list(cpu.values()))}",
            f"slowest single trace: {ms(worst_call[0])} ({worst_call[1]})",
            f"baseline tree-sitter parse of the same scripts: {_spread(list(parse.values()))}",
            f"ratio trace/parse per scripted entrypoint: median {median(ratios):.1f}x, "
            f"p90 {pct(ratios, 90):.1f}x, max {ratios[-1]:.1f}x; "
            f"p99 trace / p99 parse {p99_wall / pct(list(parse.values()), 99):.1f}x",
            f"goal p99 <= 50 ms: {'met' if p99_wall <= 0.050 else 'NOT met'}; "
            f"goal max <= 250 ms: {'met' if max_wall <= 0.250 else 'NOT met'}",
        ]

        imitation = build_all(Path(tmp) / "imitation")
        regular = {n: c for n, c in imitation.items() if not c[0].hostile}
        hostile = {n: c for n, c in imitation.items() if c[0].hostile}
        per_case = []
        for case, root in regular.values():
            kwargs, argv = case.trace_kwargs(root), case.spec["argv"]
            per_case.append(median(_samples(lambda a=argv, k=kwargs: trace_entrypoint(a, **k), repeat)[0]))
        worst_hostile, worst_name, peak, peak_name = 0.0, "", 0, ""
        for name, (case, root) in hostile.items():
            kwargs, argv = case.trace_kwargs(root), case.spec["argv"]
            elapsed = median(_samples(lambda a=argv, k=kwargs: trace_entrypoint(a, **k), 3)[0])
            if elapsed > worst_hostile:
                worst_hostile, worst_name = elapsed, name
            tracemalloc.start()
            trace_entrypoint(argv, **kwargs)
            _, used = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            if used > peak:
                peak, peak_name = used, name
        lines += [
            f"imitation corpus: {len(regular)} entrypoints, trace {_spread(per_case)}",
            f"hostile ({len(hostile)}): worst {ms(worst_hostile)} ({worst_name}), "
            f"peak traced memory {peak / 2**20:.1f} MiB ({peak_name})",
            f"load average at end {os.getloadavg()[0]:.1f}",
        ]
    return lines
