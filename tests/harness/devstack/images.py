"""Container images built locally, with no registry to pull from (spec test matrix §11).

* :func:`busybox_image` — ``FROM scratch`` + static busybox; its entrypoint script execs a long-running
  process.
* :func:`dynamic_image` — bash and coreutils' ``sleep`` with the shared libraries ``ldd`` lists.
* :func:`pause_image` — a static C ``pause`` for CRI sandboxes, tagged ``registry.k8s.io/pause:3.6``.
* :func:`build_image` — any rootfs from host files and bytes; :func:`push_image` to a loopback registry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .engines import PAUSE_IMAGE
from .packages import ensure_packages
from .process import PrerequisiteMissing

if TYPE_CHECKING:
    from .engines import DockerEngine

__all__ = [
    "PAUSE_C",
    "FileSpec",
    "build_image",
    "busybox_image",
    "dynamic_image",
    "elf_closure",
    "pause_image",
    "push_image",
    "save_image",
]

#: container path → host file to copy, or (bytes, mode)
FileSpec = Mapping[str, "Path | str | tuple[bytes, int]"]

PAUSE_C = r"""
/* Minimal pause for CRI sandboxes: sleep until SIGTERM/SIGINT, reap children. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
    return 0;
}
"""

_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def elf_closure(binaries: Iterable[str]) -> list[str]:
    """The binaries plus every shared object ``ldd`` lists for them (host paths, in order, unique)."""
    seen: dict[str, None] = {}
    for binary in binaries:
        seen[binary] = None
        result = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
        for line in result.stdout.splitlines():
            match = _LDD_LINE.search(line)
            if match:
                seen[match.group(1)] = None
    return list(seen)


def build_image(
    engine: DockerEngine,
    tag: str,
    files: FileSpec,
    *,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    symlinks: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    instructions: Iterable[str] = (),
) -> str:
    """``FROM scratch`` image from the given files; returns the image id (config digest). ``instructions``
    are further Dockerfile lines (``EXPOSE 8080``, ``HEALTHCHECK …``)."""
    with tempfile.TemporaryDirectory(prefix="zastava-image-") as tmp:
        context = Path(tmp)
        rootfs = context / "rootfs"
        rootfs.mkdir()
        for target, source in files.items():
            dest = rootfs / target.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, tuple):
                data, mode = source
                dest.write_bytes(data)
                dest.chmod(mode)
            else:
                shutil.copyfile(os.path.realpath(source), dest)
                shutil.copymode(os.path.realpath(source), dest)
        for link, target in (symlinks or {}).items():
            dest = rootfs / link.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_symlink() or dest.exists():
                dest.unlink()
            dest.symlink_to(target)
        lines = ["FROM scratch", "COPY rootfs/ /"]
        for key, value in (env or {}).items():
            lines.append(f"ENV {key}={json.dumps(value)}")
        if workdir:
            lines.append(f"WORKDIR {workdir}")
        for key, value in (labels or {}).items():
            lines.append(f"LABEL {json.dumps(key)}={json.dumps(value)}")
        lines += list(instructions)
        if entrypoint is not None:
            lines.append(f"ENTRYPOINT {json.dumps(entrypoint)}")
        if cmd is not None:
            lines.append(f"CMD {json.dumps(cmd)}")
        (context / "Dockerfile").write_text("\n".join(lines) + "\n")
        engine.docker("build", "--quiet", "--tag", tag, str(context))
    return str(engine.client().images.get(tag).id)


def busybox_image(engine: DockerEngine, tag: str = "zastava-test/busybox:1") -> str:
    """Static busybox; ``/entry.sh`` execs ``sleep`` (a long-running process)."""
    ensure_packages(["busybox-static"])
    busybox = shutil.which("busybox") or "/bin/busybox"
    script = b"#!/bin/sh\nset -e\nexec sleep 1000000\n"
    return build_image(
        engine,
        tag,
        {"/bin/busybox": busybox, "/entry.sh": (script, 0o755)},
        symlinks={
            f"/bin/{tool}": "busybox" for tool in ("sh", "sleep", "ls", "cat", "cp", "nc", "chmod", "id")
        },
        entrypoint=["/entry.sh"],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )


def dynamic_image(engine: DockerEngine, tag: str = "zastava-test/dynamic:1") -> str:
    """bash + ``sleep`` and their shared libraries; ``/entry.sh`` (bash) execs sleep."""
    binaries = ["/bin/bash", shutil.which("sleep") or "/usr/bin/sleep"]
    files: dict[str, Path | str | tuple[bytes, int]] = {path: path for path in elf_closure(binaries)}
    files["/usr/bin/sleep"] = binaries[1]
    files["/entry.sh"] = (b"#!/bin/bash\nset -e\nexec /usr/bin/sleep 1000000\n", 0o755)
    return build_image(
        engine,
        tag,
        files,
        symlinks={"/bin/sh": "bash"},
        entrypoint=["/entry.sh"],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )


def pause_image(engine: DockerEngine, tag: str = PAUSE_IMAGE) -> str:
    if shutil.which("gcc") is None:
        raise PrerequisiteMissing("gcc is needed to build the static pause binary")
    with tempfile.TemporaryDirectory(prefix="zastava-pause-") as tmp:
        source = Path(tmp) / "pause.c"
        source.write_text(PAUSE_C)
        binary = Path(tmp) / "pause"
        result = subprocess.run(
            ["gcc", "-static", "-O2", "-o", str(binary), str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PrerequisiteMissing(f"static gcc build of pause failed: {result.stderr[-500:]}")
        return build_image(engine, tag, {"/pause": binary}, entrypoint=["/pause"])


def save_image(engine: DockerEngine, tag: str) -> bytes:
    """``docker save`` archive of an image (for ``ctr images import``)."""
    return engine.docker("save", tag).stdout


def push_image(engine: DockerEngine, tag: str, registry_host: str, repository: str | None = None) -> str:
    """Tag and push to ``registry_host``; returns ``<registry>/<repo>@sha256:…``."""
    name = repository or tag
    target = f"{registry_host}/{name}"
    engine.docker("tag", tag, target)
    out = engine.docker("push", target).stdout.decode()
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", out)
    if match is None:
        raise RuntimeError(f"push of {target} printed no digest:\n{out}")
    repo = target.rsplit(":", 1)[0] if ":" in target.rsplit("/", 1)[-1] else target
    return f"{repo}@{match.group(1)}"
