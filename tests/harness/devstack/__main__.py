"""``python -m tests.harness.devstack install|run``.

``install``: the Debian packages of the real-component suites (root only). ``run``: ``make run``.
"""

from __future__ import annotations

import sys

from .packages import SERVICE_PACKAGES, ensure_packages, is_root, missing_packages
from .process import PrerequisiteMissing


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "install"
    if command == "install":
        missing = missing_packages(SERVICE_PACKAGES)
        if not missing:
            print("devstack: all service packages present")
            return 0
        if not is_root():
            print(f"devstack: not root, cannot install: {' '.join(missing)}", file=sys.stderr)
            return 0
        print(f"devstack: installing {' '.join(missing)}")
        try:
            ensure_packages(SERVICE_PACKAGES)
        except PrerequisiteMissing as exc:
            print(f"devstack: {exc}", file=sys.stderr)
            return 1
        return 0
    if command == "run":
        from .run import main as run_main

        return run_main(argv[1:])
    print(
        f"usage: python -m tests.harness.devstack install|run (unknown command {command!r})", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
