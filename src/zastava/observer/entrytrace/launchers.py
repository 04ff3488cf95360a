"""Language launchers: an interpreter binary running a script, module, jar or main class.

The interpreter is the terminal program (it is what ``/proc/<pid>/exe`` shows); what it runs is reported in
the step target and on the terminal (``script``, ``module``, ``jar``, ``main_class``, ``inline``).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

__all__ = ["Launch", "identify_launcher", "parse_launch"]

Arg = str | None  # None: a value that cannot be known statically

_LAUNCHERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?:python|pypy)[0-9.]*(?:-dbg)?m?$"), "python"),
    (re.compile(r"^(?:node|nodejs)$"), "node"),
    (re.compile(r"^java$"), "java"),
    (re.compile(r"^(?:ruby|jruby)[0-9.]*$"), "ruby"),
    (re.compile(r"^php[0-9.]*(?:-cli)?$"), "php"),
    (re.compile(r"^perl[0-9.]*$"), "perl"),
    (re.compile(r"^dotnet$"), "dotnet"),
    (re.compile(r"^(?:lua[0-9.]*|luajit)$"), "lua"),
    (re.compile(r"^Rscript$"), "r"),
    (re.compile(r"^tclsh[0-9.]*$"), "tcl"),
    (re.compile(r"^(?:deno|bun)$"), "js-runtime"),
    (re.compile(r"^pwsh$"), "powershell"),
)


def identify_launcher(name: str) -> str | None:
    """The language of an interpreter from its file name (``python3.11`` → ``python``)."""
    for pattern, language in _LAUNCHERS:
        if pattern.match(name):
            return language if language != "js-runtime" else name
    return None


@dataclass(frozen=True, slots=True)
class Launch:
    language: str
    script: str | None = None
    module: str | None = None
    jar: str | None = None
    main_class: str | None = None
    inline: bool = False
    known: bool = True  # False when the argument that names what runs is not known statically

    @property
    def target(self) -> str:
        if self.script:
            return self.script
        if self.module:
            return f"-m {self.module}"
        if self.jar:
            return self.jar
        if self.main_class:
            return self.main_class
        if self.inline:
            return "<inline>"
        return "<unknown>" if not self.known else "<stdin>"


def _path(value: str, cwd: str) -> str:
    return posixpath.normpath(value if value.startswith("/") else posixpath.join(cwd, value))


# Options that take a separate value, per language (the value is never the script).
_VALUE_OPTIONS: dict[str, frozenset[str]] = {
    "python": frozenset({"-W", "-X", "--check-hash-based-pycs"}),
    "node": frozenset({"-r", "--require", "--import", "--loader", "--experimental-loader", "--title", "-C"}),
    "ruby": frozenset({"-I", "-r", "-C", "-E", "-F", "-i", "-x"}),
    "php": frozenset({"-d", "-c", "-z", "-t"}),
    "perl": frozenset({"-I", "-M", "-m", "-x"}),
    "java": frozenset(
        {
            "-cp",
            "-classpath",
            "--class-path",
            "-p",
            "--module-path",
            "--upgrade-module-path",
            "--add-modules",
            "--add-opens",
            "--add-exports",
            "--add-reads",
            "--patch-module",
            "--limit-modules",
            "--enable-native-access",
            "-splash",
        }
    ),
    "dotnet": frozenset(
        {"--additionalprobingpath", "--depsfile", "--runtimeconfig", "--fx-version", "--roll-forward"}
    ),
}

_INLINE = {
    "python": ("-c",),
    "node": ("-e", "--eval", "-p", "--print"),
    "ruby": ("-e",),
    "perl": ("-e", "-E"),
    "php": ("-r",),
    "lua": ("-e",),
    "r": ("-e",),
}


def parse_launch(language: str, args: list[Arg], cwd: str) -> Launch:
    """What an interpreter runs, from its arguments (``args`` excludes argv[0])."""
    if language == "java":
        return _java(args, cwd)
    value_options = _VALUE_OPTIONS.get(language, frozenset())
    inline = _INLINE.get(language, ())
    i = 0
    while i < len(args):
        arg = args[i]
        if arg is None:
            return Launch(language, known=False)
        if arg == "--":
            i += 1
            break
        if language in ("deno", "bun") and arg in ("run", "x"):
            i += 1
            continue
        if language == "python" and arg.startswith("-m"):
            module = arg[2:] or (args[i + 1] if i + 1 < len(args) else None)
            return Launch(language, module=module, known=module is not None)
        if language == "php" and arg in ("-f",) and i + 1 < len(args):
            script = args[i + 1]
            return Launch(language, script=_path(script, cwd) if script else None, known=script is not None)
        if language == "php" and arg == "-S":  # built-in web server, document root from -t
            return Launch(language, module="-S (built-in server)")
        if arg in inline or any(arg.startswith(opt) and len(opt) == 2 and len(arg) > 2 for opt in inline):
            return Launch(language, inline=True)
        if arg in value_options:
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            i += 1
            continue
        break
    if i >= len(args):
        return Launch(language)  # interactive / stdin
    script = args[i]
    if script is None:
        return Launch(language, known=False)
    if script == "-":
        return Launch(language)
    if language == "dotnet" and not script.endswith(".dll"):
        return Launch(language, module=script)  # an SDK command (dotnet run, dotnet test)
    return Launch(language, script=_path(script, cwd))


def _java(args: list[Arg], cwd: str) -> Launch:
    value_options = _VALUE_OPTIONS["java"]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg is None:
            return Launch("java", known=False)
        if arg == "-jar":
            jar = args[i + 1] if i + 1 < len(args) else None
            return Launch("java", jar=_path(jar, cwd) if jar else None, known=jar is not None)
        if arg in ("-m", "--module"):
            module = args[i + 1] if i + 1 < len(args) else None
            return Launch("java", module=module, known=module is not None)
        if arg.startswith("--module="):
            return Launch("java", module=arg.split("=", 1)[1])
        if arg in value_options:
            i += 2
            continue
        if arg.startswith(("-", "@")):
            i += 1
            continue
        if arg.endswith(".java"):  # single-file source launcher (JEP 330)
            return Launch("java", script=_path(arg, cwd))
        return Launch("java", main_class=arg)
    return Launch("java")
