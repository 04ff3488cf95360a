"""``python -m tests.fuzz [--cases N] [--seed S] [TARGET …]`` — the long-run fuzz targets of issue 21
(``make fuzz`` runs 100,000 cases of each). Prints cases, crashes, 5xx and the worst single-case latency per
target; exits 1 when any case crashed or answered 5xx (the failing seeds go to ``--findings``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.fuzz.targets import TARGETS, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz")
    parser.add_argument("targets", nargs="*", choices=[*TARGETS, []], help="default: all")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"))
    args = parser.parse_args(argv)
    failed = False
    print(f"{'target':<22} {'cases':>9} {'crashes':>8} {'5xx':>6} {'worst ms':>9} {'seconds':>8}")
    for name in args.targets or list(TARGETS):
        report = run(name, args.cases, args.seed, args.findings)
        print(
            f"{name:<22} {report.cases:>9} {report.crashes:>8} {report.server_errors:>6} "
            f"{report.worst_ms:>9.1f} {report.seconds:>8.1f}",
            flush=True,
        )
        for note in report.findings or []:
            print(f"  {note}")
        failed |= bool(report.crashes or report.server_errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
