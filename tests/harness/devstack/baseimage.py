"""A Debian base image built here (no registry reachable): debootstrap from the Debian mirror + docker import.

Also a wheelhouse of this project's dependencies built on the host, so that ``docker build`` of the
``Dockerfile`` needs no network (``PIP_NO_INDEX=1``, ``PIP_FIND_LINKS=/src/.wheelhouse``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .packages import ensure_packages, is_root
from .process import PrerequisiteMissing

if TYPE_CHECKING:
    from .engines import DockerEngine

__all__ = ["DEBIAN_MIRROR", "build_wheelhouse", "debian_base_image"]

DEBIAN_MIRROR = "http://deb.debian.org/debian"


def debian_base_image(
    engine: DockerEngine,
    tag: str = "zastava-local/debian-python:bookworm",
    suite: str = "bookworm",
    mirror: str = DEBIAN_MIRROR,
) -> str:
    """debootstrap a minimal Debian with python3 + venv and import it as ``tag``; returns the tag.

    Once per engine: when ``tag`` is already there (another suite of the session built it: the Zastava image
    and the drift services suite share this base) it is returned as is — debootstrap is the costly step."""
    if engine.docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    if not is_root():
        raise PrerequisiteMissing("debootstrap needs root")
    ensure_packages(["debootstrap"])
    with tempfile.TemporaryDirectory(prefix="zastava-debootstrap-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                suite,
                str(rootfs),
                mirror,
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            raise PrerequisiteMissing(f"debootstrap failed: {result.stdout[-1500:]}{result.stderr[-1500:]}")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / cache).glob("*.deb"):
                item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            engine.docker(
                "import",
                "--change",
                'CMD ["/bin/sh"]',
                "-",
                tag,
                input_bytes=tar.stdout.read() if tar.stdout else b"",
            )
        finally:
            tar.wait()
    return tag


def build_wheelhouse(project: Path, target: Path | None = None) -> Path:
    """``pip wheel`` of the project, its runtime dependencies and its ``otel`` extra into
    ``project/.wheelhouse``."""
    target = target or project / ".wheelhouse"
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        # the project's build requirements too: the image's pip builds the project with no index
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--wheel-dir",
            str(target),
            f"{project}[otel]",  # the image installs the otel extra (tracing)
            "setuptools>=77",  # the build-system requirement of pyproject.toml
            "wheel",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise PrerequisiteMissing(f"pip wheel failed: {result.stderr[-2000:]}")
    for built in target.glob("zastava-*.whl"):
        built.unlink()  # the image builds the project itself from source
    shutil.rmtree(project / "build", ignore_errors=True)
    return target
