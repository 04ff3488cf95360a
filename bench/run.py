"""Run every benchmark: ``python bench/run.py [NAME …] [--quick]`` (``make bench``).

Each ``bench/bench_<name>.py`` exposes ``main(quick: bool) -> list[str]`` returning printable lines with its
figures and the ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    files = sorted(HERE.glob("bench_*.py"))
    if args.names:
        files = [f for f in files if f.stem.removeprefix("bench_") in args.names]
    failed = 0
    for file in files:
        name = file.stem.removeprefix("bench_")
        spec = importlib.util.spec_from_file_location(f"bench_{name}", file)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            for line in module.main(quick=args.quick):
                print(f"   {line}", flush=True)
        except Exception as exc:  # a failing benchmark must not hide the others
            failed += 1
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)
        print(f"   ({time.perf_counter() - started:.1f}s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
