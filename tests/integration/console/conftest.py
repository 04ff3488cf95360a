"""A real browser for the console tests: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright for
Python with the system executable — no browser download. Screenshots go to ``$ZASTAVA_TEST_ARTIFACTS``
(default ``build/test-artifacts``) under ``console/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.devstack.packages import ensure_packages
from tests.harness.real import missing, start_real

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API runs an event loop in this thread while it is open, which would
    break every asyncio test that runs after the console's modules."""
    start_real(lambda: ensure_packages(["chromium"]))
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright Python package (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    directory = Path(os.environ.get("ZASTAVA_TEST_ARTIFACTS", "build/test-artifacts")) / "console"
    directory.mkdir(parents=True, exist_ok=True)
    return directory
