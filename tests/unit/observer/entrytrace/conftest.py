"""Corpus roots are built once per session (each case's root = the base root plus its own files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .corpus import Case, build_all


@pytest.fixture(scope="session")
def corpus_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Case, Path]]:
    return build_all(tmp_path_factory.mktemp("entrytrace-corpus"))
