"""The host mounts of ``zastava.security.mounts`` (spec §3.2/§6), checked at observer start-up.

Each key is ``HOST:CONTAINER:ro`` (or ``PATH:ro`` when both are the same path). The config refuses values
without ``:ro``; at start-up the observer reads its own ``/proc/self/mountinfo`` and refuses to run when a
named container path is a mount point that is writable (spec §7: read-only host mounts, no write mounts).
A path that is not a mount point (a run on the host itself) is not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Mounts

__all__ = ["MountSpec", "mount_options", "parse_mount", "writable_mounts"]

_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class MountSpec:
    key: str  # e.g. zastava.security.mounts.proc
    host: str
    container: str


def parse_mount(key: str, value: str) -> MountSpec:
    parts = value.removesuffix(":ro").split(":")
    if len(parts) == 1:
        return MountSpec(key, parts[0], parts[0])
    if len(parts) == 2:
        return MountSpec(key, parts[0], parts[1])
    raise ValueError(f"{key}: expected HOST:CONTAINER:ro or PATH:ro, got {value!r}")


def specs(mounts: Mounts) -> list[MountSpec]:
    prefix = "zastava.security.mounts."
    return [
        parse_mount(prefix + "containerdSock", mounts.containerd_sock),
        parse_mount(prefix + "proc", mounts.proc),
        parse_mount(prefix + "runtimeState", mounts.runtime_state),
    ]


def mount_options(mountinfo: str) -> dict[str, frozenset[str]]:
    """Mount point → per-mount options (``rw``/``ro``, …) from ``/proc/<pid>/mountinfo`` text; the last
    mount on a point wins (it hides the ones under it)."""
    out: dict[str, frozenset[str]] = {}
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 6:
            continue
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        out[point] = frozenset(fields[5].split(","))
    return out


def writable_mounts(mounts: Mounts, mountinfo_path: str = "/proc/self/mountinfo") -> list[str]:
    """A message for each ``security.mounts`` entry mounted read-write here (empty: nothing to refuse)."""
    try:
        table = mount_options(Path(mountinfo_path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return []
    problems = []
    for spec in specs(mounts):
        if spec.container in ("/", "/proc"):
            continue  # the observer's own root and procfs (runtime.procfs: /proc with --pid host)
        options = table.get(spec.container.rstrip("/"))
        if options is not None and "rw" in options:
            problems.append(
                f"{spec.key}: {spec.container} is mounted read-write; host mounts must be read-only "
                f"(spec §7): mount {spec.host} at {spec.container} with :ro / readOnly: true"
            )
    return problems
