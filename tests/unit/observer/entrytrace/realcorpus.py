"""The real EntryTrace corpus: entrypoint scripts as published by official and vendor images' repositories.

Each case is a directory ``real/<name>/`` holding the scripts verbatim (third-party files under their own
licenses, test fixtures only, never shipped) and a ``case.yaml``::

    image: postgres:16-bullseye          # the image the files come from
    category: database                   # database, queue, web, runtime, ci, init, app
    license: MIT                         # SPDX identifier of the source repository's license
    source:
      repository: docker-library/postgres
      dockerfile: {path: 16/bullseye/Dockerfile, commit: <sha>}
      files:                             # every stored file: where it was read and where it goes in the image
        docker-entrypoint.sh: {path: 16/bullseye/docker-entrypoint.sh, commit: <sha>, to: /usr/local/bin/…}
        # optional per file: repository, license (when it comes from another repository), mode
    config:                              # the image configuration, from the Dockerfile
      entrypoint: [docker-entrypoint.sh]
      cmd: [postgres]
      user: ""                           # "" = root, as Docker runs it
      workdir: /                         # optional
      env: {PATH: …, …}                  # the complete environment (as ``docker inspect`` shows it)
    run:                                 # optional: what the documented `docker run` adds
      env: {POSTGRES_PASSWORD: example}
    root:                                # the fake image root the trace reads (nothing in it ever runs)
      base: debian                       # debian (usr-merged), debian-legacy, rhel, alpine (busybox), scratch
      elf: [paths]                       # 64-byte ELF headers standing in for binaries
      links: {path: target}
      files: {path: text}                # small executable scripts written by us (stubs), mode 0755
      text: {path: text}                 # configuration files, mode 0644
      dirs: [paths]
      users: {name: uid}                 # added to /etc/passwd
    label:                               # the judged answer
      program: /usr/lib/postgresql/16/bin/postgres   # resolved path of the exec'd program
      programs: [a, b]                   # instead of program: everything a supervisor keeps running
      applet: sh                         # for a multi-call binary (busybox …)
      jar / script / module: …           # what an interpreter runs, when that is the point
      user: postgres                     # the identity the program ends up with (informative)
      wrappers: [gosu]                   # wrappers on the way (informative)
      residents: [tini]                  # wrappers that stay resident as parents (informative)
      exits: true                        # every path ends without a long-running program
      note: why

The benchmark (``bench/bench_entrytrace.py``) and ``test_real_corpus.py`` score every case with :func:`score`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zastava.observer.entrytrace import EntryTraceResult, Terminal

HERE = Path(__file__).resolve().parent
REAL = HERE / "real"

ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57

#: coreutils and friends every Debian-like base has (directory chosen per base below)
_COMMON = (
    "bash dash env id mkdir chown chmod rm cat ls find sort basename dirname date mktemp touch sed "
    "grep mawk sleep ln install getent xargs tr cut head tail uname nproc stat readlink realpath tee "
    "cp mv kill ps hostname wc expr seq gzip gunzip tar chgrp df du dd md5sum sha1sum sha256sum "
    "whoami nice ionice taskset timeout setpriv su runuser chroot mount umount mountpoint nohup "
    "setsid stdbuf printf test true false echo ulimit cmp diff tac tput awk sha512sum base64 od pwd"
)
_SBIN = frozenset({"runuser", "chroot"})
#: busybox applets of an Alpine base (what `busybox --install -s` links)
_APPLETS_BIN = (
    "sh ash cat chmod chown cp date dd df echo false grep hostname kill ln ls mkdir mktemp mount "
    "mountpoint mv ps pwd rm sed sleep stat su touch true umount uname base64 watch"
)
_APPLETS_USR_BIN = (
    "env id find sort basename dirname awk xargs tr cut head tail nproc readlink realpath tee wc "
    "expr seq install timeout nice whoami md5sum sha1sum sha256sum sha512sum test [ printf nohup "
    "setsid getent cmp diff tac od wget unzip less vi which"
)
_APPLETS_SBIN = "chroot"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "nobody:x:65534:65534::/:/bin/false\n"
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


def build_base(root: Path, base: str) -> None:
    """Lay out a distribution's skeleton: shells and core tools as ELF stubs, where that base puts them."""
    if base in ("debian", "rhel"):
        # usr-merged (Debian 12+, Ubuntu 22.04+, UBI 8+, Oracle Linux 8+): /bin, /sbin, /lib link into /usr
        for name in _COMMON.split():
            _put(root, f"/usr/{'sbin' if name in _SBIN else 'bin'}/{name}", ELF, 0o755)
        _link(root, "/usr/bin/[", "test")
        for top in ("bin", "sbin", "lib"):
            (root / "usr" / top).mkdir(parents=True, exist_ok=True)
            _link(root, f"/{top}", f"usr/{top}")
        if base == "debian":
            _link(root, "/usr/bin/sh", "dash")
            _link(root, "/etc/alternatives/awk", "/usr/bin/mawk")
            _link(root, "/usr/bin/awk", "/etc/alternatives/awk")
        else:
            _link(root, "/usr/bin/sh", "bash")
    elif base == "debian-legacy":
        # before usr-merge (Debian ≤ 11, Ubuntu ≤ 20.04): the essential tools live in /bin
        essential = frozenset(
            [
                "bash",
                "dash",
                "cat",
                "chmod",
                "chown",
                "cp",
                "date",
                "dd",
                "echo",
                "false",
                "grep",
                "ln",
                "ls",
                "mkdir",
                "mktemp",
                "mv",
                "pwd",
                "readlink",
                "rm",
                "sed",
                "sleep",
                "touch",
                "true",
                "uname",
                "su",
                "mount",
                "umount",
                "mountpoint",
                "kill",
                "ps",
                "hostname",
                "df",
                "gzip",
                "gunzip",
                "tar",
            ]
        )
        for name in _COMMON.split():
            where = "/bin" if name in essential else ("/usr/sbin" if name in _SBIN else "/usr/bin")
            _put(root, f"{where}/{name}", ELF, 0o755)
        _link(root, "/usr/bin/[", "test")
        _link(root, "/bin/sh", "dash")
        _link(root, "/usr/bin/awk", "mawk")
    elif base == "alpine":
        _put(root, "/bin/busybox", ELF, 0o755)
        for directory, applets in (
            ("/bin", _APPLETS_BIN),
            ("/usr/bin", _APPLETS_USR_BIN),
            ("/usr/sbin", _APPLETS_SBIN),
        ):
            for name in applets.split():
                _link(root, f"{directory}/{name}", "/bin/busybox")
        _put(root, "/etc/alpine-release", b"3.20.3\n", 0o644)
    elif base != "scratch":
        raise ValueError(f"unknown base {base!r}")
    for directory in ("tmp", "root", "var/run", "run", "proc", "dev", "sys"):
        (root / directory).mkdir(parents=True, exist_ok=True)


@dataclass
class RealCase:
    name: str
    directory: Path
    spec: dict[str, Any]

    @property
    def label(self) -> dict[str, Any]:
        return dict(self.spec["label"])

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.spec["config"])

    @property
    def argv(self) -> list[str]:
        config = self.config
        return [str(a) for a in (config.get("entrypoint") or []) + (config.get("cmd") or [])]

    def build(self, root: Path) -> Path:
        spec_root = dict(self.spec.get("root") or {})
        build_base(root, spec_root.get("base", "debian"))
        users = dict(spec_root.get("users") or {})
        passwd = PASSWD + "".join(f"{n}:x:{u}:{u}::/home/{n}:/bin/sh\n" for n, u in users.items())
        _put(root, "/etc/passwd", passwd.encode(), 0o644)
        for directory in spec_root.get("dirs") or []:
            (root / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for path in spec_root.get("elf") or []:
            _put(root, path, ELF, 0o755)
        for path, text in (spec_root.get("files") or {}).items():
            _put(root, path, text.encode(), 0o755)
        for path, text in (spec_root.get("text") or {}).items():
            _put(root, path, text.encode(), 0o644)
        for name, entry in (self.spec["source"].get("files") or {}).items():
            dest = root / str(entry["to"]).lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_symlink() or dest.exists():
                dest.unlink()
            shutil.copyfile(self.directory / name, dest)
            dest.chmod(int(str(entry.get("mode", "0o755")), 0))
        for path, target in (spec_root.get("links") or {}).items():
            _link(root, path, target)
        return root

    def trace_kwargs(self, root: Path) -> dict[str, Any]:
        """What the observer passes for a container of this image: its complete environment, working directory
        and user (Docker's empty USER is root)."""
        config = self.config
        env = {str(k): str(v) for k, v in (config.get("env") or {}).items()}
        run = dict(self.spec.get("run") or {})
        env.update({str(k): str(v) for k, v in (run.get("env") or {}).items()})
        return {
            "root": str(root),
            "env": env,
            "workdir": config.get("workdir") or "/",
            "user": str(config.get("user") or "0"),
        }

    def scripts(self) -> list[bytes]:
        """The case's stored files that are shell scripts (for the parse-only baseline)."""
        out = []
        for name in self.spec["source"].get("files") or {}:
            data = (self.directory / name).read_bytes()
            if data.startswith(b"#!") and any(s in data.split(b"\n", 1)[0] for s in (b"sh", b"bash")):
                out.append(data)
        return out


def load_real_cases() -> list[RealCase]:
    return [
        RealCase(d.name, d, yaml.safe_load((d / "case.yaml").read_text()))
        for d in sorted(p for p in REAL.iterdir() if p.is_dir())
    ]


def build_real(base: Path) -> dict[str, tuple[RealCase, Path]]:
    """Every real case's root under ``base`` (one directory each)."""
    out = {}
    for case in load_real_cases():
        root = base / case.name
        if not root.exists():
            root.mkdir(parents=True)
            case.build(root)
        out[case.name] = (case, root)
    return out


# ---------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Score:
    """How a trace compares with the label: ``found`` — the labelled program is among the non-wrapper
    terminals; ``only`` — it is the only one (no resident shell, no second guess)."""

    found: bool
    only: bool
    programs: tuple[str, ...]


def _program_id(terminal: Terminal) -> str:
    path = terminal.resolved or terminal.path or "<unknown>"
    return f"{path}[{terminal.applet}]" if terminal.applet else path


def non_wrapper_terminals(result: EntryTraceResult) -> list[Terminal]:
    """Terminals other than resident wrappers and supervisors (a resident *shell* counts: it is a program)."""
    return [t for t in result.terminals if not t.resident or t.kind == "shell"]


def score(case: RealCase, result: EntryTraceResult) -> Score:
    label = case.label
    programs = tuple(sorted({_program_id(t) for t in non_wrapper_terminals(result)}))
    if label.get("exits"):
        return Score(found=not programs, only=not programs, programs=programs)
    if label.get("programs"):  # a supervisor: every supervised program (and a shell that really stays)
        wanted = tuple(sorted(str(p) for p in label["programs"]))
        return Score(found=set(wanted) <= set(programs), only=programs == wanted, programs=programs)
    single = str(label["program"]) + (f"[{label['applet']}]" if label.get("applet") else "")
    return Score(found=single in programs, only=programs == (single,), programs=programs)


__all__ = [
    "REAL",
    "RealCase",
    "Score",
    "build_base",
    "build_real",
    "load_real_cases",
    "non_wrapper_terminals",
    "score",
]
