"""Per-exec drift judgement, the baseline built from a container root, and the quiet window (issue 22).

The roots are real directories (symlinks to a busybox file, scripts, crontabs) read through RootFS; exec
records are built as the proc connector's reader builds them (the real-engine proof is
tests/integration/observer/agent/test_drift_services.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zastava.contracts import EventKind
from zastava.observer.baseline import build_baseline, crontab_commands, script_commands
from zastava.observer.execdrift import judge_record
from zastava.observer.execsource import ExecRecord, Link
from zastava.observer.quiet import Quieter
from zastava.observer.rootfs import RootFS

BB = "/bin/busybox"
INIT = 100


@pytest.fixture
def root(tmp_path: Path) -> RootFS:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/busybox").write_bytes(b"\x7fELF")
    (tmp_path / "bin/busybox").chmod(0o755)
    for tool in ("sh", "sleep", "date", "httpd", "wget", "crond", "find", "id"):
        (tmp_path / "bin" / tool).symlink_to("busybox")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs/clean.sh").write_text("#!/bin/sh\nfind /tmp -name x\n")
    (tmp_path / "loop.sh").write_text("#!/bin/sh\nwhile true; do date; /jobs/clean.sh; sleep 1; done\n")
    (tmp_path / "etc/crontabs").mkdir(parents=True)
    (tmp_path / "etc/crontabs/root").write_text(
        "# comment\nSHELL=/bin/sh\n*/5 * * * * wget -q http://x/ %in\n"
    )
    return RootFS(str(tmp_path))


def _record(exe: str | None, applet: str | None, chain: tuple[Link, ...], **kw: object) -> ExecRecord:
    defaults: dict[str, object] = {"pid": 200, "pid_ns": "pid:[1]", "start_time": 1, "ppid": chain[0].pid}
    defaults.update(kw)
    return ExecRecord(exe=exe, exe_deleted=False, comm=applet, applet=applet, chain=chain, **defaults)  # type: ignore[arg-type]


INIT_SH = Link(INIT, BB, True, "sh")
SHIM = Link(50, "/usr/bin/containerd-shim-runc-v2", False)


def test_script_commands_and_crontabs(root: RootFS) -> None:
    assert script_commands(b"#!/bin/sh\nset -e\nwhile true; do date | cat; x=$(id); sleep 1; done\n") == [
        "set",
        "true",
        "date",
        "cat",
        "id",
        "sleep",
    ]
    # system crontabs (/etc/crontab, /etc/cron.d) have a user field; user crontabs do not; % ends the command
    assert crontab_commands(root) == [("/etc/crontabs/root", "wget -q http://x/ ")]


def test_resident_shell_loop_and_its_job_scripts(root: RootFS) -> None:
    baseline = build_baseline(root, terminals=["/bin/sh", BB], scripts=["/loop.sh"])
    assert "/jobs/clean.sh" in baseline.scripts  # a script the loop runs is read too
    # the loop's commands under the loop's shell, the job's commands under the job's shell
    assert judge_record(_record(BB, "date", (INIT_SH,)), baseline, INIT, starting=False) is None
    job = Link(150, BB, True, "sh")
    assert judge_record(_record(BB, "find", (job, INIT_SH)), baseline, INIT, starting=False) is None
    # the job script itself: a shell running one of the container's scripts
    assert (
        judge_record(_record(BB, "sh", (INIT_SH,), script="/jobs/clean.sh"), baseline, INIT, starting=False)
        is None
    )
    # a shell with no script of the container, under the job's shell: drift (not "same program as parent")
    found = judge_record(_record(BB, "sh", (job, INIT_SH)), baseline, INIT, starting=False)
    assert found is not None and found.kind is EventKind.DRIFT and found.parent == f"{BB}\0sh"
    # busybox's id applet is not allowed because busybox's date is
    assert judge_record(_record(BB, "id", (INIT_SH,)), baseline, INIT, starting=False) is not None
    # the crontab's job: under crond, and under the shell crond runs it with
    crond = Link(160, BB, True, "crond")
    assert judge_record(_record(BB, "wget", (crond, INIT_SH)), baseline, INIT, starting=False) is None


def test_entered_from_outside_is_exec_unless_declared(root: RootFS) -> None:
    baseline = build_baseline(
        root,
        terminals=["/bin/httpd", BB],
        declared_commands=[["/bin/sh", "-c", "wget -q -O /dev/null http://127.0.0.1:8080/"]],
    )
    shell = _record(BB, "sh", (SHIM,))
    assert judge_record(shell, baseline, INIT, starting=False) is None  # the health check's shell
    assert (
        judge_record(_record(BB, "wget", (Link(300, BB, True, "sh"), SHIM)), baseline, INIT, starting=False)
        is None
    )
    found = judge_record(_record(BB, "id", (SHIM,)), baseline, INIT, starting=False)
    assert found is not None and found.kind is EventKind.EXEC and found.parent == SHIM.exe
    # an ancestor gone before it was read is not "outside": nothing says the process was entered
    gone = _record("/tmp/x", None, (Link(301, None, None),))
    found = judge_record(gone, baseline, INIT, starting=False)
    assert found is not None and found.kind is EventKind.DRIFT


def test_start_up_phase_and_the_traced_chain(root: RootFS) -> None:
    baseline = build_baseline(root, terminals=["/bin/httpd", BB], chain=["/bin/sh"])
    helper = _record(BB, "id", (INIT_SH,))
    assert judge_record(helper, baseline, INIT, starting=True) is None  # init is still the entry script
    assert judge_record(helper, baseline, INIT, starting=False) is not None  # after it: drift
    # a shell of the traced chain: as init's child yes, under the web server no
    assert judge_record(_record(BB, "sh", (INIT_SH,)), baseline, INIT, starting=False) is None
    httpd = Link(INIT, BB, True, "httpd")
    worker = Link(201, BB, True, "httpd")
    found = judge_record(_record(BB, "sh", (worker, httpd)), baseline, INIT, starting=False)
    assert found is not None and found.parent == f"{BB}\0httpd"
    # the server's own re-exec (same program as its parent) is not drift
    assert judge_record(_record(BB, "httpd", (httpd,)), baseline, INIT, starting=False) is None


def test_quiet_window_reports_the_first_and_counts_the_rest() -> None:
    quiet: Quieter[str] = Quieter(10.0)
    key = ("c1", "DRIFT", "/bin/sh", "/bin/httpd")
    assert quiet.offer(key, 0.0, "a") == (True, [])
    assert [quiet.offer(key, t, "b")[0] for t in (1.0, 2.0, 9.0)] == [False, False, False]
    assert quiet.due(5.0) == []
    (summary,) = quiet.due(10.0)
    assert (summary.count, summary.sample, summary.last) == (3, "b", 9.0)
    assert quiet.offer(key, 11.0, "c") == (True, [])  # a new window
    assert quiet.due(30.0) == []  # no repeats: nothing more to say
    bounded: Quieter[int] = Quieter(10.0, max_keys=2)
    for i in range(2):
        bounded.offer((str(i),), 0.0, i)
        bounded.offer((str(i),), 1.0, i)
    first, closed = bounded.offer(("new",), 2.0, 9)
    assert first and [r.key for r in closed] == [("0",)]  # the oldest window closed early, with its count
    assert Quieter[int](0).offer(("k",), 0.0, 1) == (True, [])


def test_polling_fallback_uses_the_same_per_parent_baseline(root: RootFS) -> None:
    from zastava.observer.drift import ContainerProcess
    from zastava.observer.execdrift import judge_polled

    baseline = build_baseline(root, terminals=["/bin/sh", BB], scripts=["/loop.sh"])
    init = ContainerProcess(pid=INIT, start_time=1, ppid=1, exe=BB, applet="sh")
    date = ContainerProcess(pid=201, start_time=2, ppid=INIT, exe=BB, applet="date")  # the loop's command
    httpd = ContainerProcess(pid=202, start_time=2, ppid=INIT, exe=BB, applet="httpd")  # not the loop's
    entered = ContainerProcess(pid=203, start_time=2, ppid=50, exe=BB, applet="sh")  # parent outside
    found = judge_polled([init, date, httpd, entered], [date, httpd, entered], baseline, INIT)
    assert [p.pid for p in found] == [202, 203]


async def test_engine_exec_is_reported_only_when_the_connector_did_not_read_it(root: RootFS) -> None:
    """Docker's exec_start paired with the connector's entered reads, in either order; an unread one is an
    EXEC from the engine's word after the grace period; the health check's command is expected."""
    import time
    from datetime import UTC, datetime

    from tests.unit.observer.agent.test_drift import CTX
    from zastava.observer import execdrift

    published: list[object] = []

    async def emit(event: object) -> None:
        published.append(event)

    drift = execdrift.ExecDrift("/proc", emit, quiet_window=0)
    baseline = build_baseline(
        root, terminals=["/bin/sleep", BB], declared_commands=[["/bin/sh", "-c", "wget -q http://x/"]]
    )
    drift.watched["pid:[9]"] = execdrift.Watched("c1", INIT, "pid:[9]", baseline, CTX, "img", settled=True)
    drift._by_container["c1"] = "pid:[9]"
    now = datetime.now(UTC)
    entered = _record(BB, "id", (SHIM,), pid_ns="pid:[9]")
    # read first, then the engine's event: one EXEC (the connector's), nothing from the engine
    assert [e.kind for e in drift.handle(entered)] == [EventKind.EXEC]
    drift.engine_exec("c1", "/bin/busybox id", now)
    # the health check: expected, never pending
    drift.engine_exec("c1", "/bin/sh -c wget -q http://x/", now)
    # an exec the connector never read: reported from the engine's word once the grace period is over
    drift.engine_exec("c1", "/bin/busybox true", now)
    assert drift.flush(time.monotonic()) == []
    (late,) = drift.flush(time.monotonic() + 3)
    assert late.kind is EventKind.EXEC
    assert {e.signal: e.value for e in late.evidence}["exec.engine"] == "/bin/busybox true"
    assert drift.flush(time.monotonic() + 10) == []
    # `docker exec bash -c id`: two execs of one process (bash, id in its place) pair with one engine exec;
    # the next docker exec, which the connector missed, is still reported from the engine's word
    bash = _record("/bin/bash", None, (SHIM,), pid_ns="pid:[9]", pid=400)
    in_place = _record("/bin/id", None, (SHIM,), pid_ns="pid:[9]", pid=400)
    assert len(drift.handle(bash)) == 1 and len(drift.handle(in_place)) == 1
    drift.engine_exec("c1", "bash -c id", now)
    drift.engine_exec("c1", "/bin/busybox true", now)
    (missed,) = drift.flush(time.monotonic() + 3)
    assert {e.signal: e.value for e in missed.evidence}["exec.engine"] == "/bin/busybox true"


def test_declared_busybox_applet_is_that_applet_only(root: RootFS) -> None:
    """A HEALTHCHECK ``busybox wget …`` (Debian nginx image of the services suite: flagged as EXEC every 2 s)
    declares busybox's ``wget`` — not busybox's every applet (a ``busybox sh`` would pass anywhere)."""
    baseline = build_baseline(
        root,
        terminals=["/bin/httpd", BB],
        declared_commands=[["/bin/sh", "-c", "busybox wget -q -O /dev/null http://127.0.0.1/ || exit 1"]],
    )
    assert f"{BB}\0wget" in baseline.declared and BB not in baseline.anywhere
    health = Link(300, BB, True, "sh")
    assert judge_record(_record(BB, "wget", (health, SHIM)), baseline, INIT, starting=False) is None
    httpd = Link(INIT, BB, True, "httpd")
    found = judge_record(_record(BB, "sh", (httpd,)), baseline, INIT, starting=False)
    assert found is not None and found.kind is EventKind.DRIFT
    # (an entered `sh` is the health check's own shell here: a `docker exec sh` is reported from the
    # engine's exec event instead, its command not being the declared one — ExecDrift.engine_exec)
    # the health check's busybox reaped before anything but its name was read (comm "busybox", no exe)
    gone = ExecRecord(
        pid=200,
        pid_ns="pid:[1]",
        start_time=1,
        ppid=300,
        exe=None,
        exe_deleted=False,
        comm="busybox",
        applet=None,
        chain=(health, SHIM),
        exited=True,
    )
    assert judge_record(gone, baseline, INIT, starting=False) is None
    # the same, unknown to the baseline's applets: still an EXEC
    bare = build_baseline(root, terminals=["/bin/httpd", BB])
    found = judge_record(gone, bare, INIT, starting=False)
    assert found is not None and found.kind is EventKind.EXEC and found.program == "comm:busybox"
    # the exec form too: ["busybox", "wget", …]
    exec_form = build_baseline(
        root, terminals=["/bin/httpd", BB], declared_commands=[["busybox", "wget", "-q"]]
    )
    assert f"{BB}\0wget" in exec_form.declared and BB not in exec_form.declared


def test_cron_job_script_and_its_commands(tmp_path: Path) -> None:
    """Debian cron runs ``sh -c /usr/local/bin/rotate.sh``; the script is a shell under that shell, and its
    commands run under the script's shell (5 false positives per job run in the services suite before)."""
    for d in ("bin", "usr/sbin", "usr/local/bin", "etc/cron.d"):
        (tmp_path / d).mkdir(parents=True)
    for tool in ("sh", "mkdir", "mv", "id"):
        (tmp_path / "bin" / tool).write_bytes(b"\x7fELF")
        (tmp_path / "bin" / tool).chmod(0o755)
    (tmp_path / "usr/sbin/cron").write_bytes(b"\x7fELF")
    (tmp_path / "usr/sbin/cron").chmod(0o755)
    (tmp_path / "usr/local/bin/rotate.sh").write_text("#!/bin/sh\nmkdir -p /x\nmv /x/a /x/b\n")
    (tmp_path / "usr/local/bin/rotate.sh").chmod(0o755)
    (tmp_path / "etc/cron.d/app").write_text("* * * * * root /usr/local/bin/rotate.sh\n")
    root = RootFS(str(tmp_path))
    baseline = build_baseline(root, terminals=["/usr/sbin/cron"])
    assert "/usr/local/bin/rotate.sh" in baseline.scripts
    cron = Link(INIT, "/usr/sbin/cron", True)
    child = Link(150, "/usr/sbin/cron", True)
    job = Link(151, "/bin/sh", True)
    script = _record("/bin/sh", None, (job, child, cron), script="/usr/local/bin/rotate.sh")
    assert judge_record(script, baseline, INIT, starting=False) is None
    running = Link(152, "/bin/sh", True)
    for tool in ("mkdir", "mv"):
        record = _record(f"/bin/{tool}", None, (running, job, child, cron))
        assert judge_record(record, baseline, INIT, starting=False) is None
    found = judge_record(
        _record("/bin/id", None, (running, job, child, cron)), baseline, INIT, starting=False
    )
    assert found is not None and found.kind is EventKind.DRIFT


def test_supervisord_programs_and_a_script_final_settles(tmp_path: Path) -> None:
    """supervisord (a python script) as init: its programs run under the interpreter; the interpreter counts
    as final (else the container never leaves start-up); python is still not allowed anywhere."""
    from zastava.observer.baseline import supervisor_commands

    for d in ("usr/bin", "usr/local/bin", "etc/supervisor/conf.d"):
        (tmp_path / d).mkdir(parents=True)
    for tool in ("python3.11", "bash", "sleep", "date", "id"):
        (tmp_path / "usr/bin" / tool).write_bytes(b"\x7fELF")
        (tmp_path / "usr/bin" / tool).chmod(0o755)
    (tmp_path / "usr/bin/python3").symlink_to("python3.11")
    (tmp_path / "bin").symlink_to("usr/bin")  # usr-merge
    (tmp_path / "usr/bin/supervisord").write_text("#!/usr/bin/python3\nimport supervisor\n")
    (tmp_path / "usr/local/bin/worker.sh").write_text("#!/bin/bash\nwhile true; do date; sleep 1; done\n")
    (tmp_path / "etc/supervisor/supervisord.conf").write_text(
        "[supervisord]\nnodaemon=true\n[include]\nfiles = /etc/supervisor/conf.d/*.conf\n"
    )
    (tmp_path / "etc/supervisor/conf.d/app.conf").write_text(
        "[program:worker]\ncommand=/usr/local/bin/worker.sh\n"
        "[program:idle]\ncommand=/usr/bin/sleep infinity\n"
    )
    root = RootFS(str(tmp_path))
    assert supervisor_commands(root) == [
        ("/etc/supervisor/conf.d/app.conf", ["/usr/local/bin/worker.sh"]),
        ("/etc/supervisor/conf.d/app.conf", ["/usr/bin/sleep", "infinity"]),
    ]
    baseline = build_baseline(root, terminals=["/usr/bin/supervisord"], path_env="/usr/local/bin:/usr/bin")
    assert "/usr/bin/python3.11" in baseline.finals and "/usr/bin/python3.11" not in baseline.anywhere
    sup = Link(INIT, "/usr/bin/python3.11", True)
    assert judge_record(_record("/usr/bin/sleep", None, (sup,)), baseline, INIT, starting=False) is None
    worker = _record("/usr/bin/bash", None, (sup,), script="/usr/local/bin/worker.sh")
    assert judge_record(worker, baseline, INIT, starting=False) is None
    bash = Link(201, "/usr/bin/bash", True)
    assert judge_record(_record("/usr/bin/date", None, (bash, sup)), baseline, INIT, starting=False) is None
    assert judge_record(_record("/usr/bin/id", None, (bash, sup)), baseline, INIT, starting=False) is not None
    python = judge_record(_record("/usr/bin/python3.11", None, (bash, sup)), baseline, INIT, starting=False)
    assert python is not None and python.kind is EventKind.DRIFT
