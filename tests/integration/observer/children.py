"""Real child processes for inspection tests (they wait on stdin; closing it or killing them ends them)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Imports extension modules that pull in libssl, libcrypto, libsqlite3, libffi.
PYTHON_WITH_LIBS = """
import ssl, sqlite3, ctypes, sys
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.read()
"""

#: Loads one library three ways: from a path with spaces, from a deleted file, and from a memfd.
PYTHON_ODD_MAPPINGS = """
import ctypes, os, shutil, sys
src, workdir = sys.argv[1], sys.argv[2]
spaced = os.path.join(workdir, "dir with space", "lib z.so")
os.makedirs(os.path.dirname(spaced))
shutil.copyfile(src, spaced)
ctypes.CDLL(spaced)
gone = os.path.join(workdir, "gone.so")
shutil.copyfile(src, gone)
ctypes.CDLL(gone)
os.unlink(gone)
data = open(src, "rb").read()
fd = os.memfd_create("payload")
os.write(fd, data)
ctypes.CDLL(f"/proc/self/fd/{fd}")
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.read()
"""

#: Execs ``sleep`` when told to (one line on stdin), to change the program under a live PID.
PYTHON_EXEC_ON_DEMAND = """
import os, sys
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
os.execv("/usr/bin/sleep", ["sleep", "1000"])
"""


@contextmanager
def python_child(code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ready", f"child did not start: {line!r}"
        yield child
    finally:
        child.kill()
        child.wait()


_MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)\s+(.*)$")


def independent_dsos(pid: int) -> dict[str, int]:
    """path → inode of the file-backed objects mapped executable, read with a regex (independently of
    zastava.observer.procfs): inode != 0, path absolute, not special, deduplicated by (dev, inode)."""
    seen: dict[tuple[str, str, int], str] = {}
    executable: set[tuple[str, str, int]] = set()
    with open(f"/proc/{pid}/maps") as handle:
        for line in handle.read().split("\n"):
            match = _MAPS_LINE.match(line)
            if not match:
                continue
            _lo, _hi, perms, _off, major, minor, inode_s, path = match.groups()
            inode = int(inode_s)
            if inode == 0 or not path.startswith("/"):
                continue
            key = (major, minor, inode)
            seen.setdefault(key, path)
            if "x" in perms:
                executable.add(key)
    return {seen[key]: key[2] for key in seen if key in executable}


def sha256sum(path: str | Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
    return out.split()[0]


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_size(path: str | Path) -> int:
    return os.stat(path).st_size
