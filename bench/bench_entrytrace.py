"""EntryTrace over the test corpus: median time per script (goal ≤ 1 ms), against the raw tree-sitter parse of
the same scripts measured in the same run; hostile scripts: worst time and peak memory."""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

from tests.unit.observer.entrytrace.corpus import build_all, script_files

from bench.common import median, ms, pct, timeit, us
from zastava.observer.entrytrace import trace_entrypoint
from zastava.observer.entrytrace.parser import parse_shell


def main(quick: bool = False) -> list[str]:
    repeat = 5 if quick else 40
    with tempfile.TemporaryDirectory(prefix="zastava-bench-entrytrace-") as tmp:
        cases = build_all(Path(tmp))
        regular = {n: c for n, c in cases.items() if not c[0].hostile}
        hostile = {n: c for n, c in cases.items() if c[0].hostile}

        per_case: dict[str, float] = {}
        for name, (case, root) in regular.items():
            kwargs = case.trace_kwargs(root)
            argv = case.spec["argv"]
            per_case[name] = median(timeit(lambda a=argv, k=kwargs: trace_entrypoint(a, **k), repeat=repeat))
        times = sorted(per_case.values())
        slowest = max(per_case, key=lambda n: per_case[n])

        scripts = script_files(regular)
        parse = sorted(median(timeit(lambda d=data: parse_shell(d), repeat=repeat)) for data in scripts)

        worst_hostile = 0.0
        worst_name = ""
        peak = 0
        peak_name = ""
        for name, (case, root) in hostile.items():
            kwargs = case.trace_kwargs(root)
            argv = case.spec["argv"]
            elapsed = median(timeit(lambda a=argv, k=kwargs: trace_entrypoint(a, **k), repeat=3, warmup=1))
            if elapsed > worst_hostile:
                worst_hostile, worst_name = elapsed, name
            tracemalloc.start()
            trace_entrypoint(argv, **kwargs)
            _, used = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            if used > peak:
                peak, peak_name = used, name

    trace_median = median(times)
    parse_median = median(parse)
    return [
        f"corpus: {len(regular)} entrypoints ({len(scripts)} shell scripts), {len(hostile)} hostile",
        f"trace per entrypoint: median {us(trace_median)}, p90 {us(pct(times, 90))}, "
        f"max {us(times[-1])} ({slowest})",
        f"baseline tree-sitter parse per script: median {us(parse_median)}, max {us(parse[-1])}",
        f"ratio trace/parse (medians): {trace_median / parse_median:.1f}x",
        f"goal median <= 1 ms: {'met' if trace_median <= 1e-3 else 'NOT met'}",
        f"hostile: worst {ms(worst_hostile)} ({worst_name}), peak traced memory {peak / 2**20:.1f} MiB "
        f"({peak_name})",
    ]
