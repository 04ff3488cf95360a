"""Python stubs for containerd's events API, generated from Zastava's own minimal ``.proto`` on first use.

``grpcio-tools`` compiles ``protos/zastava_containerd_events.proto`` into a per-user cache directory keyed by
the proto's sha256 (so an edited proto is recompiled). Without ``grpcio-tools`` :func:`load_events_module`
raises :class:`StubsUnavailable` and the CRI engine falls back to polling.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from importlib import resources
from pathlib import Path
from types import ModuleType

__all__ = ["PROTO_NAME", "StubsUnavailable", "cache_dir", "load_events_module"]

PROTO_NAME = "zastava_containerd_events.proto"
_MODULE = "zastava_containerd_events_pb2"
_lock = threading.Lock()
_loaded: ModuleType | None = None


class StubsUnavailable(RuntimeError):
    """The stubs could not be generated (grpcio-tools missing or protoc failed)."""


def cache_dir() -> Path:
    base = os.environ.get("ZASTAVA_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "zastava" / "protos"


def _proto_text() -> bytes:
    return resources.files(__package__).joinpath("protos").joinpath(PROTO_NAME).read_bytes()


def generate(target: Path) -> Path:
    """Compile the proto into ``target``; returns the path of the generated ``_pb2`` module."""
    try:
        from grpc_tools import protoc  # type: ignore[import-untyped]
    except ImportError as exc:
        raise StubsUnavailable(
            "grpcio-tools is not installed; cannot generate containerd event stubs"
        ) from exc
    proto = _proto_text()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zastava-proto-") as tmp:
        source = Path(tmp) / PROTO_NAME
        source.write_bytes(proto)
        include = str(resources.files("grpc_tools").joinpath("_proto"))
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
        code = protoc.main(["protoc", f"-I{tmp}", f"-I{include}", f"--python_out={staging}", str(source)])
        if code != 0:
            raise StubsUnavailable(f"protoc failed with exit code {code}")
        produced = staging / f"{_MODULE}.py"
        final = target / f"{_MODULE}.py"
        produced.replace(final)  # atomic within one directory tree
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    return final


def load_events_module() -> ModuleType:
    """The generated message module (``SubscribeRequest``, ``Envelope``, ``TaskStart``, ``TaskExit``, …)."""
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        digest = hashlib.sha256(_proto_text()).hexdigest()[:16]
        target = cache_dir() / digest
        module_path = target / f"{_MODULE}.py"
        if not module_path.is_file():
            try:
                module_path = generate(target)
            except OSError as exc:  # read-only home: generate into a private temp dir instead
                module_path = generate(Path(tempfile.mkdtemp(prefix="zastava-protos-")) / digest)
                del exc
        spec = importlib.util.spec_from_file_location(_MODULE, module_path)
        if spec is None or spec.loader is None:
            raise StubsUnavailable(f"cannot load {module_path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(_MODULE, module)
        spec.loader.exec_module(module)
        _loaded = module
        return module
