"""The API the observer calls, the ``zastava entrytrace`` command, and bounded work on arbitrary input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zastava.contracts import Process, RuntimeEvent
from zastava.observer.entrytrace import Limits, trace_entrypoint
from zastava.observer.rootfs import RootFS
from zastava.telemetry import ZastavaMetrics

from .corpus import Case


def _case(corpus_roots: dict[str, tuple[Case, Path]], name: str) -> tuple[Case, Path]:
    return corpus_roots[name]


def test_spec_example_process_fields(corpus_roots: dict[str, tuple[Case, Path]]) -> None:
    _, root = _case(corpus_roots, "py-spec-server")
    result = trace_entrypoint(["/entrypoint.sh", "--serve"], root=RootFS(root), env={"PATH": "/usr/bin:/bin"})
    fields = result.process_fields()
    assert fields["terminals"] == ["/usr/bin/python3", "/usr/bin/python3.11"]
    assert fields["entry_trace_confidence"] == 100
    wire = Process(pid=7, entrypoint=["/entrypoint.sh", "--serve"], **fields).wire()
    steps = wire["entryTrace"]
    assert {"file": "/entrypoint.sh", "line": 3, "op": "exec", "target": "/usr/bin/python3"} in steps
    assert {"file": "<argv>", "op": "python", "target": "/opt/app/server.py"} in steps
    assert wire["entryTraceConfidence"] == 100
    # the fields are accepted by the full runtime event contract too
    from zastava.contracts.examples import example_runtime_event

    event = example_runtime_event()
    process = event.process.model_copy(update=fields)
    RuntimeEvent.model_validate(event.model_copy(update={"process": process}).wire())


def test_metric_depth_is_observed(corpus_roots: dict[str, tuple[Case, Path]]) -> None:
    case, root = _case(corpus_roots, "db-postgres-gosu-reexec")
    metrics = ZastavaMetrics()
    result = trace_entrypoint(case.spec["argv"], metrics=metrics, **case.trace_kwargs(root))
    text = metrics.render().decode()
    assert "zastava_entrytrace_depth_count 1.0" in text
    assert f"zastava_entrytrace_depth_sum {float(result.depth)}" in text
    assert result.depth >= 5  # entrypoint → env → bash → gosu → entrypoint → bash → postgres


def test_max_depth_is_a_parameter(corpus_roots: dict[str, tuple[Case, Path]]) -> None:
    case, root = _case(corpus_roots, "db-postgres-gosu-reexec")
    result = trace_entrypoint(case.spec["argv"], max_depth=3, **case.trace_kwargs(root))
    assert result.partial and any(d.code == "max-depth" for d in result.diagnostics)
    assert result.confidence <= 60


def test_operation_budget_gives_partial_result(corpus_roots: dict[str, tuple[Case, Path]]) -> None:
    case, root = _case(corpus_roots, "db-mysql-main-function")
    result = trace_entrypoint(case.spec["argv"], limits=Limits(max_operations=50), **case.trace_kwargs(root))
    assert result.partial
    assert [d.code for d in result.diagnostics if d.partial] == ["operation-budget"]


def test_empty_argv_and_missing_root(tmp_path: Path) -> None:
    result = trace_entrypoint([], root=str(tmp_path))
    assert result.partial and result.terminals == []
    gone = trace_entrypoint(["/bin/app"], root=str(tmp_path / "nope"))
    # execve of a program that is not there fails: nothing runs, and the answer is not a confident one
    assert gone.terminals == [] and gone.confidence <= 50
    assert any(d.code == "not-found" for d in gone.diagnostics)


def test_never_executes_anything(tmp_path: Path) -> None:
    """A root whose entrypoint would create a marker if it were run: tracing leaves no trace on disk."""
    (tmp_path / "bin").mkdir()
    script = tmp_path / "entry.sh"
    marker = tmp_path / "ran"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexec /bin/true\n")
    script.chmod(0o755)
    trace_entrypoint(["/entry.sh"], root=str(tmp_path))
    assert not marker.exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zastava", "entrytrace", *args], capture_output=True, text=True
    )


def test_cli_json(corpus_roots: dict[str, tuple[Case, Path]]) -> None:
    case, root = _case(corpus_roots, "java-tini-jar")
    env = [f"--env={k}={v}" for k, v in (case.spec.get("env") or {}).items()]
    out = _cli("--root", str(root), *env, "--workdir", "/app", "--json", "--", *case.spec["argv"])
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["wrappers"] == ["tini"]
    assert "/usr/lib/jvm/java-17/bin/java" in data["terminalPaths"]
    assert {"file": "<argv>", "op": "java", "target": "/app/service.jar"} in data["entryTrace"]


def test_cli_text_and_errors(corpus_roots: dict[str, tuple[Case, Path]], tmp_path: Path) -> None:
    _, root = _case(corpus_roots, "sh-ambiguous-env")
    out = _cli("--root", str(root), "--", "/entrypoint.sh")
    assert out.returncode == 0, out.stderr
    assert "/usr/sbin/nginx" in out.stdout and "ambiguous" in out.stdout
    bad = _cli("--root", str(tmp_path / "missing"), "--", "/x")
    assert bad.returncode == 2 and "not a directory" in bad.stderr
    bad_env = _cli("--root", str(root), "--env", "NOEQUALS", "--", "/x")
    assert bad_env.returncode == 2 and "K=V" in bad_env.stderr


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .corpus import build_base

    return build_base(tmp_path_factory.mktemp("fuzz"))


_WORDS = (
    'exec $@ "$@" $1 ${1#-} set -- shift if then fi case esac in ;; for do done while true ( ) { } ; '
    "&& || | & "
    "$( ` eval . source $0 f() gosu tini -- /usr/local/bin/app nginx python3 -m x ' \" \\ = X=1 ${X:-y} [ ] "
    "[[ ]] -f ! exit return"
)
_SHELL_WORDS = st.sampled_from([*_WORDS.split(" "), "\n"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(_SHELL_WORDS, max_size=60), raw=st.binary(max_size=200))
def test_arbitrary_scripts_end_bounded(fuzz_root: Path, words: list[str], raw: bytes) -> None:
    script = fuzz_root / "fuzz.sh"
    script.write_bytes(b"#!/bin/sh\n" + " ".join(words).encode() + b"\n" + raw)
    script.chmod(0o755)
    result = trace_entrypoint(
        ["/fuzz.sh", "-x", "arg"], root=str(fuzz_root), limits=Limits(time_budget=5.0, max_operations=20_000)
    )
    assert 0 <= result.confidence <= 100
    assert len(result.steps) <= 1024
    assert not (result.partial and result.confidence > 60)
    Process(pid=1, **result.process_fields())


def test_no_descriptor_is_left_open(corpus_roots: dict[str, tuple[Case, Path]]) -> None:
    import os

    before = len(os.listdir("/proc/self/fd"))
    for name in ("wrap-chroot-jail", "db-postgres-gosu-reexec", "hostile-symlink-escape", "sup-s6-overlay"):
        case, root = corpus_roots[name]
        trace_entrypoint(case.spec["argv"], **case.trace_kwargs(root))
    assert len(os.listdir("/proc/self/fd")) == before


def test_cached_root_stays_confined(tmp_path: Path) -> None:
    """Directory symlinks (merged /usr) resolve inside the root; climbing or absolute links never leave it."""
    from zastava.observer.entrytrace.tracer import CachedRoot

    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "sh").write_bytes(b"\x7fELF")
    (tmp_path / "usr" / "bin" / "sh").chmod(0o755)
    (tmp_path / "bin").symlink_to("usr/bin")
    (tmp_path / "etc").symlink_to("/../../../../etc")  # would be the host's /etc if followed naively
    root = CachedRoot(tmp_path)
    try:
        assert root.resolve("/bin/sh") == "/usr/bin/sh"
        assert root.is_executable("/bin/sh") and root.which("sh", "/sbin:/bin") == "/bin/sh"
        assert not root.exists("/etc/passwd")  # the host's /etc/passwd is not reachable
        assert not root.exists("/bin/../../etc/hostname")
    finally:
        root.close()
