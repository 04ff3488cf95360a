"""Debian packages the real components need, installed when running as root and missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

from .process import PrerequisiteMissing

__all__ = ["SERVICE_PACKAGES", "ensure_packages", "is_root", "missing_packages"]

#: Debian packages behind the real-component suites and ``make run``.
SERVICE_PACKAGES = (
    "docker.io",  # dockerd, containerd, runc, ctr
    "busybox-static",  # a static busybox for FROM-scratch images
    "docker-registry",  # distribution registry 2.8
    "skopeo",
    "musl-tools",  # musl-linked test programs
    "containernetworking-plugins",
    "postgresql",
    "apache2-utils",  # htpasswd for registry basic auth
    "debootstrap",  # a Debian base image for the Dockerfile, built here (no registry reachable)
    "chromium",  # the console's browser tests (Playwright drives /usr/bin/chromium; no browser download)
    # the static pause binary and the inspection suites' test programs (gcc -static needs libc6-dev's libc.a);
    # readelf (binutils) is the build-id oracle of test_inspect_process. This machine had them from its
    # image; a fresh one may not
    "gcc",
    "libc6-dev",
    "binutils",
)

_lock = threading.Lock()
_updated = False


def is_root() -> bool:
    return os.geteuid() == 0


def missing_packages(packages: tuple[str, ...] | list[str]) -> list[str]:
    if shutil.which("dpkg-query") is None:
        return list(packages)
    missing = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
        )
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def ensure_packages(packages: tuple[str, ...] | list[str]) -> None:
    """Install missing packages with apt-get when root; raise :class:`PrerequisiteMissing` otherwise."""
    global _updated
    with _lock:
        missing = missing_packages(packages)
        if not missing:
            return
        if not is_root():
            raise PrerequisiteMissing(
                f"Debian packages missing and not root to install them: {' '.join(missing)}"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if not _updated:
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
            _updated = True
        result = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PrerequisiteMissing(f"apt-get install {' '.join(missing)} failed:\n{result.stderr[-2000:]}")
