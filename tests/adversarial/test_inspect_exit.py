"""Issue 21, attack 6: a process that exits during inspection. On main a process that turned zombie mid-read
(exited, not yet reaped: ``/proc/<pid>`` stays, its maps and exe are gone) was reported as a complete sample
with 0 libraries (``partial: false``). Real processes, real ``/proc``; the hash cache's lookup is the only
hook, used to make the exit happen at a known point of the read."""

from __future__ import annotations

import subprocess
import sys
import time

import orjson

from tests.integration.observer.test_inspect_process import PYTHON_WITH_LIBS, python_child
from zastava.observer.hashing import FileKey, HashCache
from zastava.observer.inspect import inspect_process
from zastava.observer.procfs import parse_stat
from zastava.telemetry.metrics import ZastavaMetrics


def _wait_zombie(pid: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        with open(f"/proc/{pid}/stat") as handle:
            if parse_stat(handle.read()).zombie:
                return
        assert time.monotonic() < deadline, "child did not exit"
        time.sleep(0.005)


class _ZombieOnSecondLookup(HashCache):
    """Kills the child at the second hash lookup and waits until it is a zombie (not reaped)."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        super().__init__()
        self.child = child
        self.lookups = 0

    def get(self, key: FileKey) -> str | None:
        self.lookups += 1
        if self.lookups == 2:
            self.child.kill()
            _wait_zombie(self.child.pid)
        return super().get(key)


def test_a_process_turning_zombie_mid_read_is_partial_with_the_reason() -> None:
    metrics = ZastavaMetrics()
    with python_child(PYTHON_WITH_LIBS) as child:
        result = inspect_process(child.pid, cache=_ZombieOnSecondLookup(child), metrics=metrics)
    assert result.partial
    evidence = {e.signal: e.value for e in result.evidence}
    assert "zombie" in evidence["procfs.partial"] and "exited during the sample" in evidence["procfs.partial"]
    assert result.loaded_libs, "what was read before the exit is kept"
    assert metrics.registry.get_sample_value("zastava_proc_maps_samples_total", {"result": "partial"}) == 1


def test_zastava_inspect_of_an_exited_process_says_partial() -> None:
    """Through the CLI: ``zastava inspect PID --json`` of a zombie carries the ``procfs.partial`` evidence."""
    child = subprocess.Popen(["true"])
    try:
        _wait_zombie(child.pid)
        out = subprocess.run(
            [sys.executable, "-m", "zastava", "inspect", str(child.pid), "--json"],
            capture_output=True,
            timeout=60,
            check=True,
        )
    finally:
        child.wait()
    evidence = {e["signal"]: e["value"] for e in orjson.loads(out.stdout)["evidence"]}
    assert "before the sample" in evidence["procfs.partial"], evidence
