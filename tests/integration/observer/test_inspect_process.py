"""inspect_process against real host processes (no container engine needed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.observer.children import (
    PYTHON_EXEC_ON_DEMAND,
    PYTHON_ODD_MAPPINGS,
    PYTHON_WITH_LIBS,
    file_size,
    independent_dsos,
    python_child,
    sha256_file,
    sha256sum,
)
from zastava.contracts import Evidence, LoadedLib, Process
from zastava.observer.hashing import FileKey, HashCache
from zastava.observer.inspect import PreviousSample, ProcessGone, inspect_process
from zastava.observer.procfs import parse_cgroup, parse_stat
from zastava.telemetry.metrics import ZastavaMetrics


def _sample(metrics: ZastavaMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def _strings(value: object) -> Iterator[str]:
    """Every string in a wire document (keys and values), recursively."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _readelf_build_id(path: str) -> str | None:
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split("Build ID:")[1].strip()
    return None


def test_python_loading_extra_libraries() -> None:
    metrics = ZastavaMetrics()
    with python_child(PYTHON_WITH_LIBS) as child:
        result = inspect_process(child.pid, metrics=metrics)
        expected = independent_dsos(child.pid)
        with open(f"/proc/{child.pid}/stat") as handle:
            start_time = parse_stat(handle.read()).start_time
        with open(f"/proc/{child.pid}/cgroup") as handle:
            identity = parse_cgroup(handle.read())
    paths = {lib.path: lib for lib in result.loaded_libs}
    assert set(paths) == set(expected)
    assert {p: lib.inode for p, lib in paths.items()} == expected
    assert any("libssl" in p for p in paths) and any("libsqlite3" in p for p in paths)
    assert any("_ctypes" in p for p in paths)
    for path, lib in paths.items():
        assert lib.sha256 == sha256sum(path), path
    exe = os.path.realpath(sys.executable)
    assert result.exe_path == exe
    assert result.loaded_libs[0].path == exe  # the program first
    assert result.process.build_id == _readelf_build_id(exe)
    assert result.process.start_time == start_time
    assert result.process.pid == child.pid
    assert result.process.entrypoint == [sys.executable]  # argv[0] only: no arguments exported
    assert result.identity == identity
    assert not result.partial
    assert result.hashed_bytes == sum(file_size(p) for p in paths)
    assert _sample(metrics, "zastava_proc_maps_samples_total", result="ok") == 1
    assert _sample(metrics, "zastava_hash_bytes_total") == result.hashed_bytes
    signals = {e.signal for e in result.evidence}
    assert "procfs.maps" in signals
    # the wire form validates against the contract models
    wire = result.wire()
    Process.model_validate(wire["process"])
    [LoadedLib.model_validate(x) for x in wire["loadedLibs"]]
    [Evidence.model_validate(x) for x in wire["evidence"]]
    # the -c flag and its script are not exported (compared per value: the interpreter's own path may hold
    # "-c", as a worktree named wt-cirobust does)
    exported = list(_strings(wire))
    assert "-c" not in exported and not any("import ssl" in value for value in exported)


def test_diagnostic_mode_exports_arguments() -> None:
    with python_child(PYTHON_WITH_LIBS) as child:
        result = inspect_process(child.pid, diagnostic=True, max_libs=0)
    assert result.process.entrypoint[:2] == [sys.executable, "-c"]
    environ = json.loads({e.signal: e.value for e in result.evidence}["diagnostic.environ"])
    assert f"PATH={os.environ['PATH']}" in environ


def test_hash_caps_give_exact_counts() -> None:
    with python_child(PYTHON_WITH_LIBS) as child:
        total = len(independent_dsos(child.pid))
        by_libs = inspect_process(child.pid, max_libs=3)
        by_bytes_none = inspect_process(child.pid, max_hash_bytes=0)
        exe_size = file_size(os.path.realpath(sys.executable))
        by_bytes_exe = inspect_process(child.pid, max_hash_bytes=exe_size)
    assert len(by_libs.loaded_libs) == total
    assert [lib.sha256 is not None for lib in by_libs.loaded_libs] == [True] * 3 + [False] * (total - 3)
    evidence = {e.signal: e.value for e in by_libs.evidence}
    assert evidence["hash.cap.maxLibs"].startswith(f"maxLibs=3: {total - 3} of {total} objects not hashed: ")
    for lib in by_libs.loaded_libs[3:]:
        assert lib.path in evidence["hash.cap.maxLibs"]

    sizes = sum(file_size(lib.path) for lib in by_bytes_none.loaded_libs)
    evidence = {e.signal: e.value for e in by_bytes_none.evidence}
    assert all(lib.sha256 is None for lib in by_bytes_none.loaded_libs)
    assert evidence["hash.cap.maxHashBytes"].startswith(
        f"maxHashBytes=0: {total} objects ({sizes} bytes) not hashed: "
    )
    assert by_bytes_none.hashed_bytes == 0

    hashed = [lib for lib in by_bytes_exe.loaded_libs if lib.sha256]
    assert [lib.path for lib in hashed] == [os.path.realpath(sys.executable)]
    assert by_bytes_exe.hashed_bytes == exe_size
    evidence = {e.signal: e.value for e in by_bytes_exe.evidence}
    assert evidence["hash.cap.maxHashBytes"].startswith(f"maxHashBytes={exe_size}: {total - 1} objects (")


def test_warm_cache_hashes_nothing_and_gives_the_same_answer() -> None:
    cache = HashCache()
    metrics = ZastavaMetrics()
    with python_child(PYTHON_WITH_LIBS) as child:
        cold = inspect_process(child.pid, cache=cache, metrics=metrics)
        warm = inspect_process(child.pid, cache=cache, metrics=metrics)
    assert cold.hashed_bytes > 0 and cold.cache_hits == 0
    assert warm.hashed_bytes == 0
    assert warm.cache_hits == len(warm.loaded_libs)
    assert warm.wire() == cold.wire()
    assert _sample(metrics, "zastava_hash_bytes_total") == cold.hashed_bytes
    assert _sample(metrics, "zastava_proc_maps_samples_total", result="ok") == 2


#: Loads a library given on the command line, then one more per line read from stdin.
PYTHON_LOAD_ON_DEMAND = """
import ctypes, sys
ctypes.CDLL(sys.argv[1])
sys.stdout.write("ready\\n"); sys.stdout.flush()
for line in sys.stdin:
    ctypes.CDLL(line.strip())
    sys.stdout.write("loaded\\n"); sys.stdout.flush()
"""


def test_warm_sample_diffs_against_the_previous_one(tmp_path: Path) -> None:
    """A warm sample reuses what did not change (one stat per object), rehashes a library rewritten since
    the previous sample, and sees a library loaded since (its maps changed)."""
    import _sqlite3  # an extension module: a shared object ctypes can load

    first, second = tmp_path / "libfirst.so", tmp_path / "libsecond.so"
    shutil.copyfile(_sqlite3.__file__, first)
    shutil.copyfile(_sqlite3.__file__, second)
    cache = HashCache()
    with python_child(PYTHON_LOAD_ON_DEMAND, str(first)) as child:
        cold = inspect_process(child.pid, cache=cache)
        assert str(first) in {lib.path for lib in cold.loaded_libs}
        assert cache.processes == 1

        with first.open("ab") as handle:  # rewritten in place: size, mtime and ctime change
            handle.write(b"\0" * 4096)
        rewritten = inspect_process(child.pid, cache=cache)
        by_path = {lib.path: lib for lib in rewritten.loaded_libs}
        assert by_path[str(first)].sha256 == sha256_file(first) != sha256_file(second)
        assert rewritten.hashed_bytes == file_size(str(first))  # only the rewritten file was read
        assert rewritten.cache_hits == len(rewritten.loaded_libs) - 1

        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(f"{second}\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "loaded"
        grown = inspect_process(child.pid, cache=cache)
        expected = independent_dsos(child.pid)
    by_path = {lib.path: lib for lib in grown.loaded_libs}
    assert set(by_path) == set(expected)
    assert by_path[str(second)].sha256 == sha256_file(second)
    assert grown.hashed_bytes == file_size(str(second))
    assert grown.cache_hits == len(grown.loaded_libs) - 1


class _CountingCache(HashCache):
    """Counts digest lookups: a warm sample confirmed by ``stat`` alone looks nothing up."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def get(self, key: FileKey) -> str | None:
        self.lookups += 1
        return super().get(key)


def test_warm_sample_of_an_unchanged_process_is_one_stat_per_object(tmp_path: Path) -> None:
    """The previous outcome is replayed (no lookup, no model built) while maps, caps and every file key are
    the same; a changed cap or a rewritten library takes the general path again."""
    import _sqlite3

    library = tmp_path / "libreplay.so"
    shutil.copyfile(_sqlite3.__file__, library)
    cache = _CountingCache()
    with python_child(PYTHON_LOAD_ON_DEMAND, str(library)) as child:
        cold = inspect_process(child.pid, cache=cache)
        cache.lookups = 0
        warm = inspect_process(child.pid, cache=cache)
        assert cache.lookups == 0 and warm.hashed_bytes == 0
        assert warm.cache_hits == len(warm.loaded_libs)
        assert warm.wire() == cold.wire() and warm.process.build_id == cold.process.build_id
        assert [lib is old for lib, old in zip(warm.loaded_libs, cold.loaded_libs, strict=True)] == [
            True
        ] * len(cold.loaded_libs)

        capped = inspect_process(child.pid, cache=cache, max_libs=1)  # other caps: judged again
        assert [lib.sha256 is not None for lib in capped.loaded_libs].count(True) == 1
        assert any(e.signal == "hash.cap.maxLibs" for e in capped.evidence)
        assert capped.hashed_bytes == 0  # the digests themselves come from the cache

        assert inspect_process(child.pid, cache=cache).wire() == cold.wire()  # back to the default caps
        with library.open("ab") as handle:  # rewritten in place: same maps text, another file key
            handle.write(b"\0" * 4096)
        cache.lookups = 0
        rewritten = inspect_process(child.pid, cache=cache)
    by_path = {lib.path: lib for lib in rewritten.loaded_libs}
    assert by_path[str(library)].sha256 == sha256_file(library)
    assert rewritten.hashed_bytes == file_size(str(library))
    assert cache.lookups == 1  # only the rewritten file misses the previous sample


#: Maps 1 MiB of anonymous memory (a new mapping, not executable) per line read from stdin.
PYTHON_MAP_ON_DEMAND = """
import mmap, sys
kept = []
sys.stdout.write("ready\\n"); sys.stdout.flush()
for line in sys.stdin:
    kept.append(mmap.mmap(-1, 1 << 20))
    kept[-1][0] = 1
    sys.stdout.write("mapped\\n"); sys.stdout.flush()
"""


def test_warm_sample_ignores_changes_of_other_mappings() -> None:
    """A new anonymous mapping changes the maps text but not the executable lines: the warm sample still
    replays the previous outcome (no lookup) and reports the mapping count it read."""
    cache = _CountingCache()
    with python_child(PYTHON_MAP_ON_DEMAND) as child:
        cold = inspect_process(child.pid, cache=cache)
        first = cache.previous(child.pid)
        before = Path(f"/proc/{child.pid}/maps").read_bytes()
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("map\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "mapped"
        after = Path(f"/proc/{child.pid}/maps").read_bytes()
        cache.lookups = 0
        warm = inspect_process(child.pid, cache=cache)
        remembered = cache.previous(child.pid)
        again = inspect_process(child.pid, cache=cache)
    assert after != before
    # the objects were not scanned again, and the next sample compares with the new text
    assert isinstance(first, PreviousSample) and isinstance(remembered, PreviousSample)
    assert remembered.objects is first.objects and remembered.maps == after
    assert cache.lookups == 0 and warm.hashed_bytes == 0 and warm.cache_hits == len(warm.loaded_libs)
    assert warm.wire()["loadedLibs"] == cold.wire()["loadedLibs"]
    assert warm.process.build_id == cold.process.build_id
    summary = {e.signal: e.value for e in warm.evidence}["procfs.maps"]
    lines = after.count(b"\n")
    assert f"mappings={lines} " in summary
    assert {e.signal: e.value for e in cold.evidence}["procfs.maps"] != summary
    assert again.wire() == warm.wire()


#: Loads the libraries given on the command line.
PYTHON_LOAD_ALL = """
import ctypes, sys
for path in sys.argv[1:]:
    ctypes.CDLL(path)
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.read()
"""


class _RewriteOnLookup(HashCache):
    """Appends to one file when its digest is looked up, i.e. between the sample's ``stat`` of it and its
    read: the read then fails ("file changed"), on one thread as on several."""

    def __init__(self, target: Path) -> None:
        super().__init__()
        self.target = target

    def get(self, key: FileKey) -> str | None:
        if key[1] == self.target.stat().st_ino:
            with self.target.open("ab") as handle:
                handle.write(b"\0" * 4096)
        return super().get(key)


def test_hash_threads_give_the_sequential_outcome(tmp_path: Path) -> None:
    """Reading on two threads gives the event one thread gives, caps included, and when a read fails
    (a library rewritten mid-sample) its bytes go to the next object over the budget exactly as on one
    thread."""
    import _sqlite3

    copies = [tmp_path / f"lib{name}.so" for name in ("one", "two", "three")]
    for copy in copies:
        shutil.copyfile(_sqlite3.__file__, copy)
    with python_child(PYTHON_LOAD_ALL, *map(str, copies)) as child:
        one = inspect_process(child.pid)
        two = inspect_process(child.pid, hash_threads=2)
        assert two.wire() == one.wire() and all(lib.sha256 for lib in two.loaded_libs)
        order = [lib.path for lib in one.loaded_libs]
        sizes = [file_size(path) for path in order]
        assert sum(sizes) > 1 << 20  # enough to be read on two threads

        budget = sum(sizes) - sizes[-1] // 2  # the last object is over the budget …
        capped = [inspect_process(child.pid, max_hash_bytes=budget, hash_threads=n) for n in (1, 2)]
        assert capped[0].wire() == capped[1].wire()
        assert capped[1].loaded_libs[-1].sha256 is None
        assert "hash.cap.maxHashBytes" in {e.signal for e in capped[1].evidence}

        target = next(Path(path) for path in order[:-1] if Path(path) in copies)
        results = []
        for threads in (1, 2):  # … unless a read before it fails and leaves its bytes
            result = inspect_process(
                child.pid, max_hash_bytes=budget, hash_threads=threads, cache=_RewriteOnLookup(target)
            )
            results.append(result)
            by_path = {lib.path: lib for lib in result.loaded_libs}
            assert by_path[str(target)].sha256 is None
            assert result.loaded_libs[-1].sha256 == sha256_file(Path(order[-1]))
            signals = {e.signal: e.value for e in result.evidence}
            assert "hash.cap.maxHashBytes" not in signals
            assert signals["hash.unreadable"].startswith(f"1 objects not hashed: {target}: file changed")
    assert [lib.wire() for lib in results[0].loaded_libs] == [lib.wire() for lib in results[1].loaded_libs]


def test_spaces_deleted_and_memfd_mappings(tmp_path: Path) -> None:
    library = "/usr/lib/x86_64-linux-gnu/libz.so.1"
    if not os.path.exists(library):
        pytest.skip(f"prerequisite missing: {library}")
    digest = sha256_file(library)
    with python_child(PYTHON_ODD_MAPPINGS, library, str(tmp_path)) as child:
        result = inspect_process(child.pid)
    by_path = {lib.path: lib for lib in result.loaded_libs}
    spaced = str(tmp_path / "dir with space" / "lib z.so")
    gone = str(tmp_path / "gone.so")
    assert by_path[spaced].sha256 == digest
    assert by_path[gone].sha256 == digest  # read through map_files although unlinked
    assert by_path["memfd:payload"].sha256 == digest
    values = {(e.signal, e.value.split("@")[0]) for e in result.evidence}
    assert ("procfs.maps.deleted", gone) in values
    assert ("procfs.maps.memfd", "memfd:payload") in values


def test_gone_and_reused_pids_raise() -> None:
    metrics = ZastavaMetrics()
    child = subprocess.Popen(["sleep", "30"])
    with open(f"/proc/{child.pid}/stat") as handle:
        start_time = parse_stat(handle.read()).start_time
    try:
        with pytest.raises(ProcessGone):
            inspect_process(child.pid, expect_start_time=start_time + 1, metrics=metrics)
        assert inspect_process(child.pid, expect_start_time=start_time).process.start_time == start_time
    finally:
        child.kill()
        child.wait()
    with pytest.raises(ProcessGone):
        inspect_process(child.pid, metrics=metrics)
    assert _sample(metrics, "zastava_proc_maps_samples_total", result="gone") == 2


class _KillOnSecondLookup(HashCache):
    """A cache whose second lookup SIGKILLs the child: the process vanishes mid-sample, for real."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        super().__init__()
        self.child = child
        self.lookups = 0

    def get(self, key: FileKey) -> str | None:
        self.lookups += 1
        if self.lookups == 2:
            self.child.kill()
            self.child.wait()  # reaped: /proc/<pid> is gone
        return super().get(key)


def test_process_vanishing_mid_sample_is_partial() -> None:
    metrics = ZastavaMetrics()
    with python_child(PYTHON_WITH_LIBS) as child:
        expected = independent_dsos(child.pid)
        result = inspect_process(child.pid, cache=_KillOnSecondLookup(child), metrics=metrics)
    assert result.partial
    evidence = {e.signal: e.value for e in result.evidence}
    assert "procfs.partial" in evidence and "attempts=1" in evidence["procfs.partial"]
    assert {lib.path for lib in result.loaded_libs} == set(expected)  # maps were read before it went
    first = result.loaded_libs[0]
    assert first.sha256 == sha256sum(first.path)  # hashed before the process died
    assert all(lib.sha256 is None for lib in result.loaded_libs[1:])
    assert "hash.unreadable" in evidence
    assert _sample(metrics, "zastava_proc_maps_samples_total", result="partial") == 1


class _ExecOnFirstLookup(HashCache):
    """First lookup makes the child exec another program (same PID and start time, new image)."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        super().__init__()
        self.child = child
        self.fired = False

    def get(self, key: FileKey) -> str | None:
        if not self.fired:
            self.fired = True
            before = os.readlink(f"/proc/{self.child.pid}/exe")
            assert self.child.stdin is not None
            self.child.stdin.write("go\n")
            self.child.stdin.flush()
            deadline = time.monotonic() + 10
            while os.readlink(f"/proc/{self.child.pid}/exe") == before:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        return super().get(key)


def test_exec_mid_sample_is_retried_once() -> None:
    with python_child(PYTHON_EXEC_ON_DEMAND) as child:
        result = inspect_process(child.pid, cache=_ExecOnFirstLookup(child))
        expected = independent_dsos(child.pid)
    assert not result.partial
    assert result.exe_path == "/usr/bin/sleep"
    assert {lib.path for lib in result.loaded_libs} == set(expected)
    evidence = {e.signal: e.value for e in result.evidence}
    assert "new program" in evidence["procfs.retry"]


def test_kernel_thread_has_no_objects() -> None:
    with open("/proc/2/stat") as handle:
        if not parse_stat(handle.read()).kernel_thread:
            pytest.skip("prerequisite missing: pid 2 is not a kernel thread in this PID namespace")
    result = inspect_process(2)  # kthreadd
    assert result.loaded_libs == [] and result.process.build_id is None
    assert result.process.entrypoint == []
    assert {e.signal: e.value for e in result.evidence}["procfs.exe"] == "no executable (kernel thread)"


def test_zombie_is_reported_as_such() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while True:  # exited but not reaped: a zombie
        with open(f"/proc/{child.pid}/stat") as handle:
            if parse_stat(handle.read()).zombie:
                break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        result = inspect_process(child.pid)
    finally:
        child.wait()
    assert result.loaded_libs == [] and result.exe_path is None
    assert "zombie" in {e.signal: e.value for e in result.evidence}["procfs.exe"]


def test_metrics_with_common_tags() -> None:
    metrics = ZastavaMetrics(common_tags={"cluster": "c1"})
    with python_child(PYTHON_WITH_LIBS) as child:
        result = inspect_process(child.pid, metrics=metrics)
    assert _sample(metrics, "zastava_hash_bytes_total", cluster="c1") == result.hashed_bytes > 0
    assert _sample(metrics, "zastava_proc_maps_samples_total", cluster="c1", result="ok") == 1


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="prerequisite missing: setpriv (util-linux)")
@pytest.mark.skipif(os.geteuid() != 0, reason="prerequisite missing: root (to drop capabilities)")
def test_cli_without_map_files_capability_reads_through_the_root() -> None:
    """Without CAP_SYS_ADMIN/CAP_CHECKPOINT_RESTORE map_files is refused: objects come from the root."""
    with python_child(PYTHON_WITH_LIBS) as child:
        full = inspect_process(child.pid)
        out = subprocess.run(
            [
                "setpriv",
                "--bounding-set=-sys_admin,-checkpoint_restore",
                "--inh-caps=-sys_admin,-checkpoint_restore",
                "--",
                sys.executable,
                "-m",
                "zastava",
                "inspect",
                str(child.pid),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    reduced = json.loads(out)
    assert reduced["loadedLibs"] == full.wire()["loadedLibs"]
    assert reduced["process"] == full.wire()["process"]
    signals = {e["signal"]: e["value"] for e in reduced["evidence"]}
    assert "map_files unavailable" in signals["procfs.map_files"]


def test_cli_json_and_table() -> None:
    with python_child(PYTHON_WITH_LIBS) as child:
        as_json = subprocess.run(
            [sys.executable, "-m", "zastava", "inspect", str(child.pid), "--json", "--max-libs", "2"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        table = subprocess.run(
            [sys.executable, "-m", "zastava", "inspect", str(child.pid)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "COLUMNS": "250"},
        ).stdout
    wire = json.loads(as_json)
    assert set(wire) == {"process", "loadedLibs", "evidence"}
    assert sum(1 for lib in wire["loadedLibs"] if "sha256" in lib) == 2
    assert os.path.realpath(sys.executable) in table
    assert "libssl" in table


def test_cli_errors(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    gone = subprocess.run(
        [sys.executable, "-m", "zastava", "inspect", str(child.pid)], capture_output=True, text=True
    )
    assert gone.returncode == 1 and f"no process {child.pid}" in gone.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "zastava", "inspect", "1", "--procfs", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "is not a procfs mount" in bad.stderr
    # a configured runtime.procfs that is absent (the DaemonSet's /host/proc on a host): /proc, said so
    config = tmp_path / "z.yaml"
    config.write_text(f"zastava:\n  runtime:\n    procfs: {tmp_path / 'nothing'}\n")
    # a process of this test's own (pid 1 is whatever init the machine has: in a pid namespace, this pytest)
    with python_child(PYTHON_WITH_LIBS) as own:
        host = subprocess.run(
            [sys.executable, "-m", "zastava", "inspect", str(own.pid), "--json", "--config", str(config)],
            capture_output=True,
            text=True,
        )
    if _initial_pid_namespace():  # a machine (CI's): /proc is the host's, so it is read instead, said so
        assert host.returncode == 0, host.stderr
        assert "zastava.runtime.procfs" in host.stderr
        assert json.loads(host.stdout)["process"]["pid"] == own.pid
    else:  # in a container (or `unshare --pid`): /proc is not the host's, so no fallback, and why
        assert host.returncode == 2 and "PID 2 is not kthreadd" in host.stderr, host.stderr


def _initial_pid_namespace() -> bool:
    """PID 2 is kthreadd (child of PID 0) only in the initial PID namespace; read here without zastava."""
    try:
        with open("/proc/2/status") as handle:
            status = handle.read()
    except OSError:
        return False
    return "\nName:\tkthreadd\n" in "\n" + status and "\nPPid:\t0\n" in status


def test_sigstop_process_is_still_inspected() -> None:
    """A stopped process (e.g. under a debugger) is sampled without waiting for it."""
    with python_child(PYTHON_WITH_LIBS) as child:
        os.kill(child.pid, signal.SIGSTOP)
        try:
            result = inspect_process(child.pid)
        finally:
            os.kill(child.pid, signal.SIGCONT)
    assert not result.partial and result.loaded_libs


def test_cli_defaults_from_config(tmp_path: Path) -> None:
    config = tmp_path / "z.yaml"
    config.write_text("zastava:\n  runtime:\n    procfs: /proc\n    collect:\n      maxLibs: 1\n")
    with python_child(PYTHON_WITH_LIBS) as child:
        out = subprocess.run(
            [sys.executable, "-m", "zastava", "inspect", str(child.pid), "--json", "--config", str(config)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        overridden = subprocess.run(
            [
                *(sys.executable, "-m", "zastava", "inspect", str(child.pid), "--json"),
                *("--config", str(config), "--max-libs", "2", "--procfs", "/proc"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert sum(1 for lib in json.loads(out)["loadedLibs"] if "sha256" in lib) == 1
    assert sum(1 for lib in json.loads(overridden)["loadedLibs"] if "sha256" in lib) == 2
