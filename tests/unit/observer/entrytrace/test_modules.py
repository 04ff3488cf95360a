"""The building blocks on their own: file kinds and shebangs, test expressions, wrappers, launchers, and
expansions of the interpreter checked through small scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from zastava.observer.entrytrace import trace_entrypoint
from zastava.observer.entrytrace.conditions import Token, evaluate_test, match_pattern
from zastava.observer.entrytrace.launchers import identify_launcher, parse_launch
from zastava.observer.entrytrace.parser import classify, parse_shebang, parse_shell
from zastava.observer.entrytrace.wrappers import unwrap
from zastava.observer.rootfs import RootFS

from .corpus import ELF, build_base


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("base"))


# ------------------------------------------------------------------------------------------------ parser


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (ELF, "elf"),
        (b"#!/bin/sh\n", "shebang"),
        (b"echo hi\n", "text"),
        (b"\x01\x02\x00\xff", "binary"),
        (b"", "empty"),
        (b"\xff\xfe\xfd garbage \xfa" * 10, "binary"),
    ],
)
def test_classify(head: bytes, kind: str) -> None:
    assert classify(head) == kind


def test_shebang_forms() -> None:
    assert parse_shebang(b"#!/bin/sh -e\n") == parse_shebang(b"#! /bin/sh  -e \r\nrest")
    sb = parse_shebang(b"#!/usr/bin/env -S python3 -u\n")
    assert sb is not None and sb.interpreter == "/usr/bin/env" and sb.argument == "-S python3 -u"
    assert parse_shebang(b"#!\n") is None
    assert parse_shebang(b"echo") is None
    long = parse_shebang(b"#!/bin/" + b"x" * 400)
    assert long is not None and len(long.interpreter) < 256  # only the kernel's 256 bytes are read


def test_parse_errors_are_reported_with_lines() -> None:
    assert parse_shell(b"echo ok\nif then fi fi\n").error_lines
    assert parse_shell(b"echo ok\n").error_lines == ()


# -------------------------------------------------------------------------------------------- conditions


def _test(words: list[str | None], root: RootFS, extended: bool = False) -> bool | None:
    return evaluate_test([Token(w) for w in words], root, "/", extended=extended)


def test_test_expressions(base: Path) -> None:
    root = RootFS(base)
    assert _test(["-z", ""], root) is True
    assert _test(["-n", None], root) is None
    assert _test(["a", "=", "a", "-a", "1", "-lt", "2"], root) is True
    assert _test(["a", "=", "b", "-o", None, "=", "x"], root) is None
    assert _test(["a", "=", "b", "-a", None, "=", "x"], root) is False  # false regardless of the unknown
    assert _test(["!", "-f", "/etc/passwd"], root) is False
    assert _test(["-x", "/usr/bin/tini"], root) is True
    assert _test(["-d", "/nonexistent"], root) is False
    assert _test(["-e", "/proc/1/fd/1"], root) is None  # run-time state, not in the image
    assert _test(["x", "-gt", "1"], root) is None
    assert _test(["(", "1", "-eq", "1", ")"], root) is True
    assert _test(["a", "b", "c"], root) is None  # malformed


def test_patterns() -> None:
    assert match_pattern("-c", "-*")
    assert match_pattern("mongod", "mongo*")
    assert not match_pattern("x.conf", "*.[!c]onf")
    assert match_pattern("b", "[^a]")


# ------------------------------------------------------------------------------------------------ wrappers


@pytest.mark.parametrize(
    ("name", "args", "inner", "resident", "user"),
    [
        (
            "tini",
            ["-g", "-p", "SIGTERM", "--", "java", "-jar", "a.jar"],
            ["java", "-jar", "a.jar"],
            True,
            None,
        ),
        ("tini", ["-s", "nginx"], ["nginx"], True, None),
        ("dumb-init", ["--rewrite", "15:2", "node", "x.js"], ["node", "x.js"], True, None),
        ("gosu", ["postgres", "postgres", "-c", "x=1"], ["postgres", "-c", "x=1"], False, "postgres"),
        ("su-exec", ["1000:1000", "app"], ["app"], False, "1000:1000"),
        ("setpriv", ["--reuid=1000", "--init-groups", "app", "-v"], ["app", "-v"], False, "1000"),
        ("runuser", ["-u", "app", "--", "app", "serve"], ["app", "serve"], True, "app"),
        ("su", ["-", "app", "-c", "exec app"], ["/bin/sh", "-c", "exec app"], True, "app"),
        ("su", ["-s", "/bin/bash", "-c", "run", "app"], ["/bin/bash", "-c", "run"], True, "app"),
        ("nice", ["-n", "5", "worker"], ["worker"], False, None),
        ("timeout", ["-s", "KILL", "1h", "job", "--x"], ["job", "--x"], True, None),
        ("chroot", ["--userspec=1:1", "/jail", "/bin/x"], ["/bin/x"], False, "1"),
        ("taskset", ["-c", "0-3", "app"], ["app"], False, None),
        ("s6-setuidgid", ["nobody", "svc"], ["svc"], False, "nobody"),
        ("sudo", ["-u", "app", "app"], ["app"], True, "app"),
    ],
)
def test_unwrap(name: str, args: list[str], inner: list[str], resident: bool, user: str | None) -> None:
    unwrapped = unwrap(name, list(args))
    assert unwrapped is not None
    assert unwrapped.argv == inner
    assert unwrapped.resident is resident
    assert unwrapped.user == user


def test_unwrap_env() -> None:
    unwrapped = unwrap("env", ["-i", "-u", "X", "A=1", "B=two words", "prog", "C=3"])
    assert unwrapped is not None
    assert unwrapped.env_clear and unwrapped.env_unset == ["X"]
    assert unwrapped.env_set == {"A": "1", "B": "two words"}
    assert unwrapped.argv == ["prog", "C=3"]
    split = unwrap("env", ["-S", "python3 -u", "/app.py"])
    assert split is not None and split.argv == ["python3", "-u", "/app.py"]


def test_unwrap_unknown_arguments() -> None:
    unwrapped = unwrap("gosu", [None, "app"])
    assert unwrapped is not None and unwrapped.argv == ["app"] and unwrapped.user is None
    assert unwrap("tini", ["-p", None, "x"]) is not None
    assert unwrap("su", ["app", "-c", None]).argv is None  # type: ignore[union-attr]
    assert unwrap("not-a-wrapper", ["x"]) is None


# ----------------------------------------------------------------------------------------------- launchers


@pytest.mark.parametrize(
    ("name", "language"),
    [
        ("python3.11", "python"),
        ("python", "python"),
        ("pypy3", "python"),
        ("node", "node"),
        ("java", "java"),
        ("ruby3.2", "ruby"),
        ("php8.2", "php"),
        ("php-fpm", None),
        ("perl5.36", "perl"),
        ("dotnet", "dotnet"),
        ("pythonista", None),
    ],
)
def test_identify_launcher(name: str, language: str | None) -> None:
    assert identify_launcher(name) == language


@pytest.mark.parametrize(
    ("language", "args", "field", "value"),
    [
        ("python", ["-u", "-W", "ignore", "app.py", "--x"], "script", "/w/app.py"),
        ("python", ["-m", "uvicorn", "main:app"], "module", "uvicorn"),
        ("python", ["-muvicorn"], "module", "uvicorn"),
        ("python", ["-c", "print(1)"], "inline", True),
        (
            "node",
            ["--require", "./otel.js", "--inspect=0.0.0.0", "dist/index.js"],
            "script",
            "/w/dist/index.js",
        ),
        ("node", ["-e", "1"], "inline", True),
        ("java", ["-Xmx1g", "-jar", "/app.jar"], "jar", "/app.jar"),
        ("java", ["-cp", "a:b", "-Dx=y", "com.x.Main", "arg"], "main_class", "com.x.Main"),
        ("java", ["--module-path", "mods", "-m", "app/com.x.Main"], "module", "app/com.x.Main"),
        ("java", ["Hello.java"], "script", "/w/Hello.java"),
        ("ruby", ["-I", "lib", "-r", "bundler/setup", "app.rb"], "script", "/w/app.rb"),
        ("php", ["-d", "x=1", "-f", "index.php"], "script", "/w/index.php"),
        ("perl", ["-Ilib", "-w", "srv.pl"], "script", "/w/srv.pl"),
        ("dotnet", ["Api.dll", "--urls", "http://+:80"], "script", "/w/Api.dll"),
        ("python", [None], "known", False),
    ],
)
def test_parse_launch(language: str, args: list[str | None], field: str, value: object) -> None:
    assert getattr(parse_launch(language, list(args), "/w"), field) == value


# -------------------------------------------------------------------------------------- interpreter bits


def _run(base: Path, script: str, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    """Trace a one-off bash script written into the shared base root under a name of its own."""
    name = f"/s-{abs(hash(script)):x}.sh"
    (base / name.lstrip("/")).write_text("#!/bin/bash\n" + script + "\n")
    (base / name.lstrip("/")).chmod(0o755)
    result = trace_entrypoint([name, *argv], root=str(base), env=env or {"PATH": "/usr/bin:/bin"}, user=0)
    [program] = result.programs()
    assert program.argv is not None, result.to_json()
    return list(program.argv)


@pytest.mark.parametrize(
    ("script", "argv", "expected"),
    [
        (
            'exec /usr/local/bin/app "${1#-}" "${1##*/}" "${2%.*}" "${2%%.*}"',
            ["-a/b/c", "x.tar.gz"],
            ["a/b/c", "c", "x.tar", "x"],
        ),
        (
            'exec /usr/local/bin/app "${1:1}" "${1:0:2}" "${1: -2}" "${#1}"',
            ["abcdef"],
            ["bcdef", "ab", "ef", "6"],
        ),
        (
            'Y=; exec /usr/local/bin/app "${X:-dflt}" "${X-unset}" "${Y:+alt}" "${Y+set}"',
            [],
            ["dflt", "unset", "", "set"],
        ),
        ('exec /usr/local/bin/app ${X:-} ${Y:+alt} "$#"', ["a", "b"], ["2"]),
        (
            'exec /usr/local/bin/app "${1/o/0}" "${1//o/0}" "${1^^}" "${2,,}"',
            ["foo", "BAR"],
            ["f0o", "f00", "FOO", "bar"],
        ),
        (
            'set -- "$@" tail; shift; exec /usr/local/bin/app "$@" "$*"',
            ["a", "b c"],
            ["b c", "tail", "b c tail"],
        ),
        ('exec /usr/local/bin/app "${@:2}"', ["a", "b", "c"], ["b", "c"]),
        (
            'a=(x "y z"); a+=(w); exec /usr/local/bin/app "${a[@]}" "${#a[@]}" "${a[1]}"',
            [],
            ["x", "y z", "w", "3", "y z"],
        ),
        ("exec /usr/local/bin/app $((2 * (3 + 4))) $(( $# + 1 ))", ["q"], ["14", "2"]),
        (
            'v=$(basename /a/b.sh .sh); d=$(dirname /a/b.sh); exec /usr/local/bin/app "$v" "$d"',
            [],
            ["b", "/a"],
        ),
        ("exec /usr/local/bin/app 'single $x' \"dq \\$x\" $'tab\\t'", [], ["single $x", "dq $x", "tab\t"]),
        ('W="one two"; exec /usr/local/bin/app $W "$W"', [], ["one", "two", "one two"]),
        ('n=v; ref=n; exec /usr/local/bin/app "${!ref}"', [], ["v"]),
        (
            'case "$1" in a|b) r=ab;; c*) r=c;; *) r=other;; esac; exec /usr/local/bin/app "$r"',
            ["cat"],
            ["c"],
        ),
        ('case "$1" in x) r=x;& y) r="$r+y";; esac; exec /usr/local/bin/app "$r"', ["x"], ["x+y"]),
        (
            'for i in 1 2 3; do [ "$i" = 2 ] && break; last=$i; done; exec /usr/local/bin/app "$last"',
            [],
            ["1"],
        ),
        (
            'f() { local x=in; g=$x; return 3; }; x=out; f; exec /usr/local/bin/app "$x" "$g" "$?"',
            [],
            ["out", "in", "3"],
        ),
        ('cd /etc && exec /usr/local/bin/app "$PWD"', [], ["/etc"]),
        ('[[ "$1" =~ ^[0-9]+$ ]] && t=num || t=word; exec /usr/local/bin/app "$t"', ["42"], ["num"]),
        ('export A=1; unset A; exec /usr/local/bin/app "${A-gone}"', [], ["gone"]),
        ('if ! [ -e /etc/passwd ]; then r=no; else r=yes; fi; exec /usr/local/bin/app "$r"', [], ["yes"]),
        ("exec /usr/local/bin/app $(id -u) $(whoami)", [], ["0", "root"]),
        ('X=a; exec /usr/local/bin/app " $X " "  $X$X  " "$X "', [], [" a ", "  aa  ", "a "]),
        (
            'case " $1 " in *" -S "*) r=has;; "  ") r=empty;; *) r=o;; esac; exec /usr/local/bin/app "$r"',
            ["-S"],
            ["has"],
        ),
        (
            'case " $1 " in *" -S "*) r=has;; "  ") r=empty;; *) r=o;; esac; exec /usr/local/bin/app "$r"',
            [],
            ["empty"],
        ),
        ('case "$1" in a|"b c"|d*) r=yes;; *) r=no;; esac; exec /usr/local/bin/app "$r"', ["b c"], ["yes"]),
        ('while x=$(readlink /a); do :; done; exec /usr/local/bin/app "$?"', [], ["0"]),
    ],
)
def test_expansions(base: Path, script: str, argv: list[str], expected: list[str]) -> None:
    assert _run(base, script, argv)[1:] == expected
