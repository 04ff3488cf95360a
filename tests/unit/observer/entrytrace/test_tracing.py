"""Tracing behaviour issue #17 asks for, on small scripts: wrappers followed or kept resident, identity
switches traced as a new pass, loops summarised, resident shells only where the shell keeps running,
applets of multi-call binaries, which condition each terminal depends on, and calibrated confidence."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from zastava.observer.entrytrace import EntryTraceResult, trace_entrypoint

from .realcorpus import ELF, PASSWD, build_base

ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
WRAPPERS = [
    "/usr/local/bin/gosu",
    "/sbin/su-exec",
    "/usr/bin/tini",
    "/sbin/docker-init",
    "/usr/bin/rootlesskit",
    "/usr/bin/catatonit",
    "/usr/bin/chpst",
    "/usr/bin/s6-setuidgid",
    "/usr/bin/numactl",
    "/usr/local/bin/app",
    "/usr/local/bin/other",
]


@pytest.fixture(scope="module")
def debian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("debian")
    build_base(root, "debian")
    for path in WRAPPERS:
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(ELF)
        dest.chmod(0o755)
    (root / "etc/passwd").write_text(PASSWD + "app:x:999:999::/home/app:/bin/sh\n")
    return root


@pytest.fixture(scope="module")
def alpine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("alpine")
    build_base(root, "alpine")
    (root / "etc/passwd").write_text(PASSWD)
    return root


def _script(root: Path, text: str, shell: str = "/bin/bash") -> str:
    name = f"/s-{abs(hash((shell, text))):x}.sh"
    path = root / name.lstrip("/")
    path.write_text(f"#!{shell}\n{text}\n")
    path.chmod(0o755)
    return name


def _trace(root: Path, argv: list[str], user: str | None = "0", **kw: object) -> EntryTraceResult:
    return trace_entrypoint(argv, root=str(root), env=kw.pop("env", ENV), user=user, **kw)  # type: ignore[arg-type]


def _programs(result: EntryTraceResult) -> list[str | None]:
    return sorted(t.resolved for t in result.programs())


# ------------------------------------------------------------------------------------------------ wrappers


@pytest.mark.parametrize(
    ("argv", "wrapper", "resident"),
    [
        (["/sbin/docker-init", "--", "app", "serve"], "docker-init", True),
        (["rootlesskit", "--net=slirp4netns", "--port-driver", "builtin", "app"], "rootlesskit", True),
        (["catatonit", "-g", "--", "app"], "catatonit", True),
        (["tini", "-s", "-g", "--", "app"], "tini", True),
        (["chpst", "-u", "app:app", "-o", "1024", "app"], "chpst", False),
        (["s6-setuidgid", "app", "app"], "s6-setuidgid", False),
        (["numactl", "--interleave=all", "app"], "numactl", False),
        (["nice", "-n", "10", "ionice", "-c", "2", "-n", "7", "app"], "ionice", False),
        (["taskset", "-c", "0,1", "app"], "taskset", False),
        (["env", "-S", "app --flag", "x"], None, False),  # only splits a shebang line: not a wrapper
        (["gosu", "app", "app"], "gosu", False),
        (["su-exec", "999:999", "app"], "su-exec", False),
        (["setpriv", "--reuid=999", "--regid=999", "--clear-groups", "app"], "setpriv", False),
        (["runuser", "-u", "app", "--", "app"], "runuser", True),
        (["chroot", "--userspec=999:999", "/", "app"], "chroot", False),
    ],
)
def test_wrappers_are_followed(debian: Path, argv: list[str], wrapper: str | None, resident: bool) -> None:
    result = _trace(debian, argv)
    assert _programs(result) == ["/usr/local/bin/app"], result.to_json()
    if wrapper is None:
        assert result.programs()[0].argv == ("app", "--flag", "x") and not result.wrappers
        return
    assert wrapper in result.wrappers
    residents = [t.role for t in result.terminals if t.resident]
    assert (wrapper in residents) is resident
    assert result.confidence == 100


def test_su_c_runs_the_command_through_a_shell_as_the_user(debian: Path) -> None:
    result = _trace(debian, ["su", "app", "-c", "exec app --serve"])
    [program] = result.programs()
    assert (program.resolved, program.user) == ("/usr/local/bin/app", "app")
    assert [t.role for t in result.terminals if t.resident] == ["su"]


# ---------------------------------------------------------------------------------------- identity switches


def test_reexec_as_another_user_is_a_new_pass(debian: Path) -> None:
    """The docker-library pattern: as root, re-exec yourself through gosu; the second pass answers
    `id -u` with the new uid and takes the other branch."""
    script = _script(
        debian,
        'if [ "$(id -u)" = "0" ]; then chown -R app /data; exec gosu app "$0" "$@"; fi\n'
        'if [ "$(id -un)" != app ]; then exec other; fi\n'
        'exec app "$@"',
    )
    result = _trace(debian, [script, "serve"])
    [program] = result.programs()
    assert (program.resolved, program.user, program.argv) == ("/usr/local/bin/app", "app", ("app", "serve"))
    assert result.confidence == 100 and not result.partial
    assert "gosu" in result.wrappers


@pytest.mark.parametrize(
    ("switch", "user"),
    [
        ('gosu app "$0" "$@"', "app"),
        ('su-exec 999:999 "$0" "$@"', "app"),
        ('setpriv --reuid=999 --regid=999 --init-groups "$0" "$@"', "app"),
        ('runuser -u app -- "$0" "$@"', "app"),
        ('su app -s /bin/bash -c \'exec "$0" "$@"\' "$0" "$@"', "app"),
        ('chroot --userspec=999:999 / "$0" "$@"', "app"),
        ('s6-setuidgid app "$0" "$@"', "app"),
        ('chpst -u app "$0" "$@"', "app"),
    ],
)
def test_every_identity_switch_is_a_new_pass(debian: Path, switch: str, user: str) -> None:
    script = _script(
        debian,
        f'if [ "$(id -u)" = "0" ]; then exec {switch}; fi\n[ "$(id -u)" = 999 ] || exec other\nexec app "$@"',
    )
    result = _trace(debian, [script, "serve"])
    assert _programs(result) == ["/usr/local/bin/app"], result.to_json()
    [program] = result.programs()
    assert (program.user, program.argv) == (user, ("app", "serve"))
    assert result.confidence == 100 and not result.partial


def test_interpreter_does_not_import_the_tracer() -> None:
    """The shared vocabulary lives in its own module: no import circle between interpreter and tracer."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("zastava.observer.entrytrace.interpreter")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "tracer" not in imported and "vocabulary" in imported


def test_reexec_as_an_unknown_user_ends(debian: Path) -> None:
    """gosu to a user the trace cannot name: the re-exec'd pass cannot be root again, so the root branch is
    not taken a second time — no recursion limit, no resident shell."""
    script = _script(
        debian,
        'if [ "$(id -u)" = "0" ]; then exec gosu "$RUN_AS" "$0" "$@"; fi\nexec app "$@"',
    )
    result = _trace(debian, [script], env={**ENV, "RUN_AS": None})  # type: ignore[dict-item]
    assert _programs(result) == ["/usr/local/bin/app"]
    assert not any(t.kind == "shell" for t in result.terminals)
    assert not any(d.code == "max-depth" for d in result.diagnostics)


def test_script_that_execs_itself_unchanged_is_the_shell_looping(debian: Path) -> None:
    script = _script(debian, 'exec "$0" "$@"')
    result = _trace(debian, [script])
    assert _programs(result) == ["/usr/bin/bash"]
    assert any(d.code == "re-exec" for d in result.diagnostics)


# ------------------------------------------------------------------------------------------------- loops


def test_counting_loop_is_summarised_not_iterated(debian: Path) -> None:
    script = _script(debian, "i=0\nwhile [ $i -lt 100000000 ]; do i=$((i+1)); done\nexec app $i")
    started = time.perf_counter()
    result = _trace(debian, [script])
    assert time.perf_counter() - started < 5
    assert _programs(result) == ["/usr/local/bin/app"]
    assert any(d.code == "loop-summarised" for d in result.diagnostics)
    assert not result.partial


def test_wait_for_loop_then_exec(debian: Path) -> None:
    """`until nc -z db 5432; do sleep 1; done` depends on the network: summarised, then the exec."""
    script = _script(debian, "until getent hosts db; do sleep 1; done\nexec app")
    result = _trace(debian, [script])
    assert _programs(result) == ["/usr/local/bin/app"]
    assert result.confidence == 100


def test_endless_loop_is_the_shell_running(debian: Path) -> None:
    script = _script(debian, "while true; do sleep 60; done")
    result = _trace(debian, [script])
    [program] = result.programs()
    assert program.resolved == "/usr/bin/bash" and program.kind == "shell"


def test_recursion_with_a_base_case_is_summarised(debian: Path) -> None:
    """A function that walks data the trace does not have (a device tree, a countdown from $N) is unrolled
    twice, then its deeper calls are summarised: what they assign becomes unknown, the script goes on."""
    script = _script(
        debian,
        'f() { if [ "$1" -gt 0 ]; then f $(( $1 - 1 )); last=$1; fi; }\nf "$N"\nexec app "$last"',
    )
    result = _trace(debian, [script], env=None)
    assert _programs(result) == ["/usr/local/bin/app"]
    assert any(d.code == "recursion-summarised" for d in result.diagnostics) and not result.partial


def test_loop_over_arguments_is_iterated(debian: Path) -> None:
    script = _script(debian, 'for a in "$@"; do case "$a" in -v) v=1;; esac; done\nexec app "${v:-0}"')
    [program] = _trace(debian, [script, "-x", "-v"]).programs()
    assert program.argv == ("app", "1")


# ----------------------------------------------------------------------------------------------- precision


def test_exec_of_a_shell_that_waits_is_the_shell(debian: Path) -> None:
    result = _trace(debian, ["/bin/bash", "-c", "exec /bin/bash -c 'read -r _'"])
    [program] = result.programs()
    assert program.resolved == "/usr/bin/bash" and program.kind == "shell"
    assert result.confidence == 100


def test_sh_c_last_command_is_execd(debian: Path) -> None:
    """bash and dash exec the last simple command of `-c`: no resident shell."""
    result = _trace(debian, ["/bin/sh", "-c", "mkdir -p /run/app && app --serve"])
    assert [t.resolved for t in result.terminals] == ["/usr/local/bin/app"]


def test_background_job_and_wait_keeps_the_shell(debian: Path) -> None:
    script = _script(debian, "app &\nother &\nwait")
    result = _trace(debian, [script])
    assert _programs(result) == ["/usr/local/bin/app", "/usr/local/bin/other"]
    [shell] = [t for t in result.terminals if t.resident]
    assert (shell.kind, shell.resolved) == ("shell", "/usr/bin/bash")


def test_terminals_say_which_condition_they_depend_on(debian: Path) -> None:
    script = _script(debian, 'if [ -n "$MODE" ]; then\n  exec app\nfi\nexec other')
    result = _trace(debian, [script], env=None)
    assert result.ambiguous and result.confidence == 50
    by_path = {t["resolved"]: t for t in result.to_json()["terminals"]}
    [[app_when]] = by_path["/usr/local/bin/app"]["when"]
    [[other_when]] = by_path["/usr/local/bin/other"]["when"]
    assert app_when["line"] == other_when["line"] == 2
    assert app_when["file"] == script and '"$MODE"' in app_when["condition"]
    assert (app_when["branch"], other_when["branch"]) == ("true", "false")


def test_certain_answer_has_no_conditions(debian: Path) -> None:
    result = _trace(debian, [_script(debian, "exec app")])
    assert result.confidence == 100 and "when" not in result.to_json()["terminals"][0]


def test_unknown_program_is_a_low_confidence_guess(debian: Path) -> None:
    result = _trace(debian, [_script(debian, 'exec "$SOMETHING"')], env=None)
    assert result.confidence <= 30


def test_missing_program_is_not_a_terminal(debian: Path) -> None:
    result = _trace(debian, ["/nonexistent"])
    assert result.terminals == [] and any(d.code == "not-found" for d in result.diagnostics)


# ----------------------------------------------------------------------------------------------- applets


def test_busybox_applets(alpine: Path) -> None:
    shell = _trace(alpine, ["/bin/sh", "-c", "sleep 1; sleep 2"])
    [program] = shell.programs()
    assert (program.resolved, program.applet) == ("/bin/busybox", "sleep")
    direct = _trace(alpine, ["busybox", "httpd", "-f"])
    [program] = direct.programs()
    assert (program.resolved, program.applet) == ("/bin/busybox", "httpd")
    assert direct.to_json()["terminals"][0]["applet"] == "httpd"


def test_script_ending_in_a_utility_exits(debian: Path) -> None:
    """A path that ends after `chown` (no exec, no server) ends the container: no terminal, no shell."""
    script = _script(debian, 'if [ "$1" = init ]; then chown -R app /srv; exit 0; fi\nexec app')
    assert _trace(debian, [script, "init"]).terminals == []
    assert _programs(_trace(debian, [script])) == ["/usr/local/bin/app"]


def test_cli_shows_applets_and_conditions(debian: Path, alpine: Path) -> None:
    def cli(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "zastava", "entrytrace", *args], capture_output=True, text=True, check=True
        )
        return out.stdout

    assert "/bin/sleep -> /bin/busybox [sleep]" in cli("--root", str(alpine), "--", "sleep", "1")
    script = _script(debian, 'if [ -n "$MODE" ]; then\n  exec app\nfi\nexec other')
    text = cli("--root", str(debian), "--", script)
    assert f'when {script}:2 `[ -n "$MODE" ]` true' in text
    assert f'when {script}:2 `[ -n "$MODE" ]` false' in text
