"""The ``zastava`` command's foundation commands."""

from __future__ import annotations

import subprocess
import sys

from zastava import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zastava", *args], capture_output=True, text=True)


def test_version() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"zastava {__version__}"


def test_console_script_is_installed() -> None:
    import shutil

    exe = shutil.which("zastava") or str(__import__("pathlib").Path(sys.executable).parent / "zastava")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"zastava {__version__}"


def test_help_lists_groups() -> None:
    out = run("--help")
    assert out.returncode == 0
    for group in ("contracts", "canon", "config"):
        assert group in out.stdout


def test_contracts_list() -> None:
    out = run("contracts", "list")
    speaks = (
        "zastava.runtime.event@v1.0, zastava.runtime.event@v1.1, zastava.runtime.event@v1.2, "
        "zastava.runtime.event@v1.3"
    )
    assert f"zastava.runtime.event\t{speaks}" in out.stdout
