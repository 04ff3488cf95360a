"""Starting real components for tests, with one policy for missing prerequisites.

When ``ZASTAVA_REQUIRE_REAL=1`` (``make test`` sets it when run as root, as in CI) a missing prerequisite is a
test *error*; otherwise the test is skipped with a reason naming what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn, TypeVar

import pytest

from tests.harness.devstack import PrerequisiteMissing

T = TypeVar("T")


def require_real() -> bool:
    return os.environ.get("ZASTAVA_REQUIRE_REAL", "0") == "1"


def missing(reason: str) -> NoReturn:
    if require_real():
        pytest.fail(f"real-component prerequisite missing (ZASTAVA_REQUIRE_REAL=1): {reason}", pytrace=False)
    pytest.skip(f"prerequisite missing: {reason}")


def start_real(factory: Callable[[], T]) -> T:
    try:
        return factory()
    except PrerequisiteMissing as exc:
        missing(str(exc))
