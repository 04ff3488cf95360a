"""What program a process runs, by program and not by file.

A multi-call binary (busybox, toybox, uutils ``coreutils``) is one file that is many programs: ``/bin/sh``,
``/bin/sleep`` and ``/bin/busybox`` all resolve to ``/bin/busybox``, and the kernel shows that same path as
``/proc/<pid>/exe`` whichever of them runs. The binary picks its *applet* from the basename of ``argv[0]``, or
from ``argv[1]`` when it is called by its own name (``busybox sh``). So the identity of such a program is its
path *and* its applet; for every other program it is the path alone.

:func:`program_key` gives that identity as one string, the key EntryTrace baselines and process drift compare.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

__all__ = ["MULTI_CALL", "SHELLS", "applet_of", "is_multi_call", "program_key"]

#: program names of shells (as a basename or a multi-call applet): drift never lets a shell run container-wide
SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "hush"})

#: basenames of multi-call binaries (as installed by Alpine/BusyBox, toybox, uutils-coreutils, Debian's
#: busybox-static); a file called so dispatches on argv[0]
MULTI_CALL = frozenset({"busybox", "busybox.static", "busybox.nosuid", "busybox.suid", "toybox", "coreutils"})

# NUL cannot occur in a path, so a key with an applet can never collide with the key of a plain file
_SEPARATOR = "\0"


def is_multi_call(path: str | None) -> bool:
    return bool(path) and posixpath.basename(path or "") in MULTI_CALL


def applet_of(exe: str | None, argv: Sequence[str] | None, comm: str | None = None) -> str | None:
    """The applet a multi-call binary ``exe`` runs for ``argv`` (``comm`` when argv is unknown), else None."""
    if not is_multi_call(exe):
        return None
    if argv:
        name = posixpath.basename(argv[0]) if argv[0] else ""
        if name.startswith("-"):  # a login shell's argv[0] is "-sh"
            name = name[1:]
        if name and name not in MULTI_CALL:
            return name
        if len(argv) > 1 and argv[1] and not argv[1].startswith("-"):
            return posixpath.basename(argv[1])
        return name or None
    return comm or None


def program_key(path: str, applet: str | None = None) -> str:
    """``path``, or ``path`` and ``applet`` for a multi-call binary (one string, a set member)."""
    if applet and is_multi_call(path):
        return f"{path}{_SEPARATOR}{applet}"
    return path
