"""The wheel built from this tree (as the Dockerfile builds it: pyproject, README, LICENSE and ``src`` only)
holds the ``zastava`` package and its metadata, nothing of the test harness or the dev stack."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_only_the_production_package(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(tree),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("zastava-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = sorted(n.removeprefix("zastava/") for n in names if n.endswith(".py"))
    shipped = sorted(str(p.relative_to(ROOT / "src/zastava")) for p in (ROOT / "src/zastava").rglob("*.py"))
    assert modules == shipped
    assert all(n.startswith(("zastava/", "zastava-")) for n in names), [
        n for n in names if "zastava" not in n
    ]
    assert not [n for n in names if "devstack" in n or n.startswith("tests/")]
