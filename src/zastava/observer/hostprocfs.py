"""Which procfs shows the host's processes: ``runtime.procfs`` (``/host/proc`` in the DaemonSet), or ``/proc``
when the observer runs on the host itself.

The engines report host PIDs. Reading them in a procfs of another PID namespace finds nothing (or, worse,
another process with the same number), so the fallback to ``/proc`` is taken only when ``/proc`` is the
initial PID namespace's: there, and only there, PID 2 is the kernel's ``kthreadd``. Otherwise start-up
stops with a message naming the key to set, instead of reporting containers without libraries.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..telemetry.logging import fields

__all__ = ["HOST_PROC", "ProcfsUnavailable", "host_pid_namespace", "is_procfs", "resolve_procfs"]

log = logging.getLogger("zastava.observer.procfs")

HOST_PROC = "/proc"


class ProcfsUnavailable(ValueError):
    """No procfs showing the host's processes; the message names ``zastava.runtime.procfs``."""


def is_procfs(path: str) -> bool:
    return Path(path, "self").is_dir() and Path(path, "stat").is_file()


def host_pid_namespace(procfs: str) -> bool:
    """Whether ``procfs`` shows the initial PID namespace (PID 2 is ``kthreadd``, child of PID 0)."""
    try:
        comm = Path(procfs, "2", "comm").read_text(encoding="ascii", errors="replace").strip()
        status = Path(procfs, "2", "status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return comm == "kthreadd" and "\nPPid:\t0\n" in status


def resolve_procfs(configured: str, *, host_proc: str = HOST_PROC) -> str:
    """``configured`` when it is a procfs; else ``host_proc`` when that shows the host's PID namespace (a
    run on the host, or a container with ``--pid host``), with a warning; else :class:`ProcfsUnavailable`."""
    if is_procfs(configured):
        return configured
    if configured != host_proc and is_procfs(host_proc) and host_pid_namespace(host_proc):
        log.warning(
            f"zastava.runtime.procfs: {configured} is not a procfs mount; reading the host's {host_proc}",
            extra=fields(key="zastava.runtime.procfs", configured=configured, using=host_proc),
        )
        return host_proc
    if configured == host_proc:
        raise ProcfsUnavailable(f"zastava.runtime.procfs: {configured} is not a procfs mount")
    raise ProcfsUnavailable(
        f"zastava.runtime.procfs: {configured} is not a procfs mount, and {host_proc} shows another PID "
        f"namespace than the host's (PID 2 is not kthreadd): mount the host's /proc there read-only "
        f"(docker run -v /proc:{configured}:ro), or run in the host PID namespace (--pid host), or set "
        f"zastava.runtime.procfs: {host_proc} if the container engine shares this PID namespace"
    )
