"""The EntryTrace corpus: entrypoint scripts written by the team imitating widely used official images, each
with its expected programs and chain, plus hostile scripts. Shared by the unit tests and the benchmark.

Every case is a directory ``corpus/<name>/`` with a ``case.yaml``::

    about: what the case imitates
    argv: [ENTRYPOINT + CMD]
    env: {K: V}           # optional; when present the environment is complete, when absent unknown
    user: 0               # optional image USER
    workdir: /            # optional
    files:                # container path → file of the case directory (mode 0755), or {text, mode}, or "elf"
      /docker-entrypoint.sh: entrypoint.sh
    links: {container path: symlink target}
    dirs: [container paths]
    expect:
      programs: [resolved paths of the non-resident terminals]       # compared as a set
      residents: [resolved paths of resident terminals]               # compared as a set (default: none)
      chain: [[file, line, op, target], …]   # must appear in this order among the steps (line may be null)
      wrappers: [...]                        # default: none
      ambiguous: false                       # default false
      partial: false                         # default false
      codes: [diagnostic codes that must be present]
      min_confidence: 80                     # default 80 unless partial/ambiguous
      terminals: [{resolved: …, kind: …, script: …, jar: …, path: …}]  # fields of matching terminals

The base root (:func:`build_base`) holds stand-in executables: 64-byte ELF headers, symlinks laid out as in
Debian/Alpine images, shebang scripts for Python/Ruby/Node console scripts, and /etc/passwd.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57

BINARIES = [
    "/bin/bash",
    "/bin/dash",
    "/bin/busybox",
    "/usr/bin/env",
    "/usr/bin/id",
    "/bin/mkdir",
    "/bin/chown",
    "/bin/chmod",
    "/bin/rm",
    "/bin/cat",
    "/bin/ls",
    "/usr/bin/find",
    "/usr/bin/sort",
    "/usr/bin/basename",
    "/usr/bin/dirname",
    "/usr/bin/nice",
    "/usr/bin/numactl",
    "/usr/sbin/chroot",
    "/usr/bin/setpriv",
    "/sbin/runuser",
    "/bin/su",
    "/usr/local/bin/gosu",
    "/sbin/su-exec",
    "/usr/bin/tini",
    "/usr/bin/dumb-init",
    "/bin/run-parts",
    "/usr/bin/timeout",
    "/usr/bin/grep",
    "/usr/bin/sed",
    "/usr/bin/touch",
    "/usr/local/bin/python3.12",
    "/usr/bin/python3.11",
    "/usr/local/bin/node",
    "/usr/lib/jvm/java-17/bin/java",
    "/opt/java/openjdk/bin/java",
    "/usr/local/bin/ruby",
    "/usr/local/bin/php",
    "/usr/local/sbin/php-fpm",
    "/usr/bin/perl",
    "/usr/share/dotnet/dotnet",
    "/usr/sbin/nginx",
    "/usr/sbin/nginx-debug",
    "/usr/lib/postgresql/16/bin/postgres",
    "/usr/lib/postgresql/16/bin/initdb",
    "/usr/local/bin/redis-server",
    "/usr/sbin/mysqld",
    "/usr/bin/mongod",
    "/usr/local/apache2/bin/httpd",
    "/usr/sbin/cron",
    "/command/s6-svscan",
    "/command/s6-supervise",
    "/command/with-contenv",
    "/usr/local/bin/app",
    "/opt/app/bin/app",
    "/usr/sbin/sshd",
    "/usr/bin/sleep",
    "/usr/sbin/haproxy",
    "/usr/bin/rabbitmq-server",
]
SYMLINKS = {
    "/bin/sh": "dash",
    "/usr/local/bin/python3": "python3.12",
    "/usr/local/bin/python": "python3",
    "/usr/bin/python3": "python3.11",
    "/etc/alternatives/java": "/usr/lib/jvm/java-17/bin/java",
    "/usr/bin/java": "/etc/alternatives/java",
    "/usr/bin/dotnet": "../share/dotnet/dotnet",
    "/usr/local/bin/npm": "../lib/node_modules/npm/bin/npm-cli.js",
    "/usr/local/bin/docker-php-entrypoint": "/usr/local/bin/docker-php-entrypoint.real",
}
SCRIPTS = {
    "/usr/bin/supervisord": b"#!/usr/bin/python3\nfrom supervisor.supervisord import main\nmain()\n",
    "/usr/local/bin/gunicorn": b"#!/usr/local/bin/python3.12\nfrom gunicorn.app.wsgiapp import run\nrun()\n",
    "/usr/local/bin/celery": b"#!/usr/local/bin/python3.12\nfrom celery.__main__ import main\nmain()\n",
    "/usr/local/bin/bundle": b"#!/usr/local/bin/ruby\nload Gem.bin_path('bundler', 'bundle')\n",
    "/usr/local/lib/node_modules/npm/bin/npm-cli.js": (
        b"#!/usr/bin/env node\nrequire('../lib/cli.js')(process)\n"
    ),
    "/usr/local/bin/docker-php-entrypoint.real": (
        b'#!/bin/sh\nset -e\n\n# first arg is `-f` or `--some-option`\nif [ "${1#-}" != "$1" ]; then\n'
        b'\tset -- php-fpm "$@"\nfi\n\nexec "$@"\n'
    ),
}
PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
    "nginx:x:101:101:nginx:/nonexistent:/bin/false\n"
    "postgres:x:999:999::/var/lib/postgresql:/bin/bash\n"
    "mysql:x:998:998::/var/lib/mysql:/bin/false\n"
    "redis:x:997:997::/data:/bin/false\n"
    "mongodb:x:996:996::/data/db:/bin/false\n"
    "node:x:1000:1000::/home/node:/bin/sh\n"
    "app:x:1001:1001::/app:/bin/sh\n"
    "elasticsearch:x:1002:0::/usr/share/elasticsearch:/bin/bash\n"
)


def _put(root: Path, path: str, data: bytes, mode: int) -> None:
    dest = root / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    dest.write_bytes(data)
    dest.chmod(mode)


def _link(root: Path, path: str, target: str) -> None:
    dest = root / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    dest.symlink_to(target)


def build_base(root: Path) -> Path:
    for path in BINARIES:
        _put(root, path, ELF, 0o755)
    for path, data in SCRIPTS.items():
        _put(root, path, data, 0o755)
    for path, target in SYMLINKS.items():
        _link(root, path, target)
    _put(root, "/etc/passwd", PASSWD.encode(), 0o644)
    for directory in ("/tmp", "/var/run", "/root"):
        (root / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class Case:
    name: str
    directory: Path
    spec: dict[str, Any]

    @property
    def expect(self) -> dict[str, Any]:
        return dict(self.spec.get("expect") or {})

    @property
    def hostile(self) -> bool:
        return self.name.startswith("hostile-")

    def build(self, root: Path) -> Path:
        """The case's root: the base plus its own files."""
        build_base(root)
        for directory in self.spec.get("dirs") or []:
            (root / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for path, source in (self.spec.get("files") or {}).items():
            if source == "elf":
                _put(root, path, ELF, 0o755)
            elif isinstance(source, dict):
                generate = source.get("generate")
                data = GENERATORS[generate]() if generate else source["text"].encode()
                _put(root, path, data, int(str(source.get("mode", "0o644")), 0))
            else:
                dest = root / path.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.is_symlink() or dest.exists():
                    dest.unlink()
                shutil.copyfile(self.directory / source, dest)
                dest.chmod(0o755)
        for path, target in (self.spec.get("links") or {}).items():
            _link(root, path, target)
        return root

    def trace_kwargs(self, root: Path) -> dict[str, Any]:
        return {
            "root": str(root),
            "env": self.spec.get("env"),
            "workdir": self.spec.get("workdir", "/"),
            "user": self.spec.get("user"),
        }


def _huge() -> bytes:
    line = b'echo "padding line that makes this script larger than the interpreter accepts"\n'
    return b"#!/bin/sh\n" + line * ((2 << 20) // len(line) + 1) + b"exec /usr/local/bin/app\n"


def _garbage() -> bytes:
    # deterministic pseudo-random bytes with NULs, no ELF magic, no #!
    state = 0x2545F491
    out = bytearray(b"\x01\x02")
    for _ in range(8190):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(state >> 16 & 0xFF)
    return bytes(out)


def _shebang_garbage() -> bytes:
    return b"#!/bin/sh\n" + _garbage()


def _nested() -> bytes:
    depth = 3000
    return b"#!/bin/sh\n" + b"( " * depth + b"exec /usr/local/bin/app" + b" )" * depth + b"\n"


def _branches() -> bytes:
    lines = [b"#!/bin/sh"]
    for i in range(40):
        lines.append(f'if [ -n "$FLAG_{i}" ]; then OPT_{i}=on; else OPT_{i}=off; fi'.encode())
    lines.append(b'exec /usr/local/bin/app "$@"')
    return b"\n".join(lines) + b"\n"


GENERATORS = {
    "huge": _huge,
    "garbage": _garbage,
    "shebang-garbage": _shebang_garbage,
    "nested": _nested,
    "branches": _branches,
}


def load_cases() -> list[Case]:
    cases = []
    for directory in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        spec = yaml.safe_load((directory / "case.yaml").read_text())
        cases.append(Case(directory.name, directory, spec))
    return cases


def build_all(base: Path) -> dict[str, tuple[Case, Path]]:
    """Every case's root under ``base`` (one directory per case)."""
    out = {}
    for case in load_cases():
        root = base / case.name
        if not root.exists():
            root.mkdir(parents=True)
            case.build(root)
        out[case.name] = (case, root)
    return out


def script_files(cases: dict[str, tuple[Case, Path]]) -> list[bytes]:
    """The shell scripts of the corpus (for the parse-only baseline of the benchmark)."""
    out = []
    for case, _ in cases.values():
        for source in (case.spec.get("files") or {}).values():
            if isinstance(source, str) and source != "elf":
                out.append((case.directory / source).read_bytes())
    return out


__all__ = ["CORPUS", "Case", "build_all", "build_base", "load_cases", "script_files"]
