"""Issue 21, attacks 2 and 3: a full disk under the publisher's buffer, and ``zastava events send`` with more
input than its buffer holds. Real ``zastava events send`` processes against the real backend; real full
filesystems (a tmpfs mounted by the test) and a real file size limit (``RLIMIT_FSIZE`` → ``EFBIG``).

On main: a full disk made the publisher spin at 100 % CPU in ``DiskBuffer.read`` (``--timeout`` never fired);
30,000 events through a 50 MB buffer with the backend up lost 3,348 of them and still exited 0."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.adversarial.disks import fill, small_tmpfs
from tests.harness.events import make_event
from tests.integration.observer.publisher.conftest import publisher_config
from tests.integration.observer.publisher.real_backend import BackendProcess
from zastava.contracts import dump_runtime_envelope
from zastava.observer.publisher import EventPublisher
from zastava.telemetry.metrics import ZastavaMetrics


@pytest.fixture
def backend(tmp_path: Path) -> object:
    server = BackendProcess(tmp_path / "backend").start()
    try:
        yield server
    finally:
        server.stop()


def _input(path: Path, count: int, padding: int = 1500) -> Path:
    path.write_bytes(
        b"".join(dump_runtime_envelope(make_event(i, padding=padding)) + b"\n" for i in range(count))
    )
    return path


def _send(
    source: Path,
    url: str,
    buffer_dir: Path,
    *,
    buffer_bytes: int = 1_000_000,
    timeout: float = 30,
    fsize: int | None = None,
    tmp: Path,
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """``zastava events send`` as a process; returns it, its wall time and its CPU time (seconds)."""
    config = tmp / "send.yaml"
    config.write_text(
        f"zastava:\n  publisher:\n    bufferMaxBytes: {buffer_bytes}\n    batchMaxEvents: 200\n"
        "    flushIntervalSeconds: 0.1\n"
    )

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "zastava",
            "events",
            "send",
            str(source),
            "--backend",
            url,
            "--buffer-dir",
            str(buffer_dir),
            "--config",
            str(config),
            "--timeout",
            str(timeout),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        preexec_fn=limit,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done, wall, cpu


def _not_delivered(stderr: str) -> int:
    match = re.search(r"(\d+) not delivered", stderr)
    assert match, stderr
    return int(match.group(1))


def test_send_blocks_on_a_full_buffer_instead_of_dropping(backend: BackendProcess, tmp_path: Path) -> None:
    """Attack 3: 3,000 events (~5.5 MB) through a 1 MB buffer with the backend up: all stored, exit 0."""
    source = _input(tmp_path / "in.ndjson", 3000)
    done, _wall, _cpu = _send(source, backend.url, tmp_path / "buf", tmp=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3000 read, 3000 delivered" in done.stderr and _not_delivered(done.stderr) == 0
    assert backend.count() == 3000


def test_send_with_the_backend_down_says_how_many_were_not_delivered(
    backend: BackendProcess, tmp_path: Path
) -> None:
    backend.stop()
    source = _input(tmp_path / "in.ndjson", 3000)
    done, wall, _cpu = _send(source, backend.url, tmp_path / "buf", timeout=1, tmp=tmp_path)
    assert done.returncode == 3, done.stderr[-2000:]
    assert _not_delivered(done.stderr) == 3000, done.stderr[-2000:]
    assert wall < 60


def test_send_through_a_full_disk_with_the_backend_up_delivers_everything(
    backend: BackendProcess, tmp_path: Path
) -> None:
    """Attack 2: the buffer directory on a 256 KiB tmpfs (a 1 MB buffer cap does not fit): writes hit ENOSPC,
    the sender frees delivered segments, nothing is lost."""
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        source = _input(tmp_path / "in.ndjson", 1000)
        done, _wall, _cpu = _send(source, backend.url, disk / "buf", tmp=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _not_delivered(done.stderr) == 0 and backend.count() == 1000


def test_send_on_a_full_disk_with_the_backend_down_ends_in_time_and_counts(
    backend: BackendProcess, tmp_path: Path
) -> None:
    """Attack 2 on main: ENOSPC left the segment shorter than tracked and ``read()`` spun forever."""
    backend.stop()
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        (disk / "buf").mkdir()
        fill(disk, leave=60_000)  # room for ~30 events
        source = _input(tmp_path / "in.ndjson", 500)
        done, wall, cpu = _send(source, backend.url, disk / "buf", timeout=1, tmp=tmp_path)
    assert done.returncode == 3, done.stderr[-2000:]
    assert _not_delivered(done.stderr) == 500
    assert wall < 60 and cpu < 30, f"wall {wall:.1f} s, cpu {cpu:.1f} s: a spin"


def test_send_under_a_file_size_limit_rolls_segments(backend: BackendProcess, tmp_path: Path) -> None:
    """``RLIMIT_FSIZE`` of 100 KB on the sending process: segment writes fail with EFBIG; a fresh segment is
    started and nothing is lost."""
    source = _input(tmp_path / "in.ndjson", 500)
    done, _wall, _cpu = _send(source, backend.url, tmp_path / "buf", fsize=100_000, tmp=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert backend.count() == 500


async def test_the_agent_publisher_on_a_full_disk_counts_and_reports_every_loss(
    backend: BackendProcess, tmp_path: Path
) -> None:
    """The observer's publisher never waits: what a full disk refuses is counted (metric) and reported by an
    ``AGENT_WARNING`` gap event whose ``count`` is exact — stored + reported lost = published."""
    metrics = ZastavaMetrics()
    config = publisher_config(backend.url, publisher={"bufferMaxBytes": 4_000_000, "batchMaxEvents": 50})
    with small_tmpfs(tmp_path / "disk", "128k") as disk:
        publisher = EventPublisher(config, buffer_dir=disk / "buf", metrics=metrics, node_name="full-disk")
        await publisher.start()
        try:
            for i in range(400):
                await publisher.publish(make_event(i, node="full-disk", padding=1500))
            for _ in range(100):  # space comes back as deliveries delete segments: the gap is reported
                if await publisher.flush(5) and publisher.buffer.gap.count == 0:
                    break
                await asyncio.sleep(0.1)
        finally:
            await publisher.aclose(timeout=5)
    lost = publisher.buffer.write_failures
    assert lost > 0, "the disk never filled: the test did not test anything"
    assert metrics.registry.get_sample_value("zastava_buffer_drops_total") == lost
    rows = backend.rows()
    stored = [r for r in rows if r[3] == "CONTAINER_START"]
    warnings = [r for r in rows if r[3] == "AGENT_WARNING"]
    reported = sum(int(re.search(rb'"count":(\d+)', r[5].encode()).group(1)) for r in warnings)  # type: ignore[union-attr]
    assert len(stored) + reported == 400, (len(stored), reported, lost)
