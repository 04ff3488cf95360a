"""Container path identity shared by the observer and the backend: one file, several names.

A usr-merged image (Debian ≥ 12, Fedora, Arch, recent Ubuntu) makes ``/lib``, ``/lib64``, ``/bin``,
``/sbin`` (and ``/lib32``, ``/libx32``) symlinks into ``/usr``, so the dynamic loader maps
``/lib/x86_64-linux-gnu/libc.so.6`` while the package database (and so the SBOM) lists
``/usr/lib/x86_64-linux-gnu/libc.so.6``. Both sides compare
paths through :func:`path_aliases`, so an SBOM path and an observed path match whichever name each used.
"""

from __future__ import annotations

__all__ = ["USR_MERGED_DIRS", "normalise_path", "path_aliases"]

#: top-level directories a usr-merged image links into /usr
USR_MERGED_DIRS = ("/lib", "/lib64", "/bin", "/sbin", "/lib32", "/libx32")


def normalise_path(path: str) -> str:
    """``path`` absolute, without empty and ``.`` components (``//usr/./lib/`` → ``/usr/lib``)."""
    return "/" + "/".join(p for p in path.split("/") if p and p != ".")


def path_aliases(path: str) -> tuple[str, ...]:
    """``path`` (normalised) and its merged-``/usr`` twin: ``/lib/x`` ⇄ ``/usr/lib/x``."""
    path = normalise_path(path)
    out = [path]
    for top in USR_MERGED_DIRS:
        if path.startswith(top + "/"):
            out.append("/usr" + path)
        elif path.startswith("/usr" + top + "/"):
            out.append(path.removeprefix("/usr"))
    return tuple(out)
