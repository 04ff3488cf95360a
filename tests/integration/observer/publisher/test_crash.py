"""``kill -9`` of the publishing process at random points, 20 times: nothing lost, nothing stored twice.

The backend is the real reference backend (``zastava backend serve`` subprocess over SQLite); the publisher
runs as a real subprocess (``publish_proc``) killed with SIGKILL; stored events are read from the backend's
store (read-only) and counted through its query API.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.events import make_event

from .real_backend import BackendProcess

REPO = Path(__file__).resolve().parents[4]
TOTAL = 20_000  # the publishing process is paced (<= ~2.5k events/s): every kill lands mid-stream
KILLS = 20


def last_progress(progress: Path) -> int:
    if not progress.exists():
        return -1
    lines = [line for line in progress.read_text().splitlines() if line.strip()]
    return int(lines[-1]) if lines else -1


def spawn(url: str, buffer_dir: Path, progress: Path) -> subprocess.Popen[str]:
    start = last_progress(progress) + 1
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.observer.publisher.publish_proc",
            url,
            str(buffer_dir),
            str(progress),
            str(start),
            str(TOTAL),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_kill_9_twenty_times_loses_nothing_and_stores_nothing_twice(
    backend: BackendProcess, tmp_path: Path
) -> None:
    rng = random.Random(20261128)
    buffer_dir, progress = tmp_path / "buffer", tmp_path / "progress"
    accepted_at_kill: list[int] = []
    for _ in range(KILLS):
        proc = spawn(backend.url, buffer_dir, progress)
        time.sleep(rng.uniform(0.02, 0.5))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        accepted_at_kill.append(last_progress(progress))
    proc = spawn(backend.url, buffer_dir, progress)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert out.startswith("done")

    # the kills happened at different points of the stream (while publishing, not only after it)
    assert len(set(accepted_at_kill)) > KILLS // 2 and max(accepted_at_kill) < TOTAL - 1

    expected = [make_event(i, node=f"node-{i % 3}").event_id for i in range(TOTAL)]
    rows = backend.rows()
    stored_ids = [row[1] for row in rows]
    assert len(stored_ids) == len(set(stored_ids)) == TOTAL  # 0 stored twice
    assert set(stored_ids) == set(expected)  # 0 lost
    _items, total = backend.query_all()
    assert total == TOTAL
    # per node, events arrive in publish order (replay after a crash resumes in order)
    for node in ("node-0", "node-1", "node-2"):
        mine = [row[1] for row in rows if row[2] == node]
        assert mine == [e for i, e in enumerate(expected) if i % 3 == int(node[-1])]
