"""The publishing process of the ``kill -9`` test: publishes events START..TOTAL-1, then drains.

``python -m tests.integration.observer.publisher.publish_proc URL BUFFER_DIR PROGRESS_FILE START TOTAL``

After each ``publish()`` returns, the index is appended to PROGRESS_FILE (one ``write(2)``): the parent
restarts the process from the last recorded index + 1, so an event counts as accepted exactly when the
publisher said so. Prints ``ready`` once started and ``done corrupt=<n> replayed=<n>`` when all is delivered.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.harness.events import make_event
from zastava.config import ZastavaConfig
from zastava.observer.publisher import EventPublisher
from zastava.telemetry.metrics import ZastavaMetrics


async def main(url: str, buffer_dir: str, progress: str, start: int, total: int) -> int:
    config = ZastavaConfig(
        backend={"baseAddress": url, "allowInsecureHttp": True, "requestTimeoutSeconds": 5},
        publisher={"batchMaxEvents": 50, "flushIntervalSeconds": 0.05},
        limits={"eventsPerSecond": 1e6, "burst": 1_000_000, "perNodeQueue": 10_000},
    )
    publisher = EventPublisher(config, buffer_dir=Path(buffer_dir), metrics=ZastavaMetrics())
    await publisher.start()
    replayed = publisher.buffer.pending
    fd = os.open(progress, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    print("ready", flush=True)
    for index in range(start, total):
        await publisher.publish(make_event(index, node=f"node-{index % 3}"))
        os.write(fd, f"{index}\n".encode())
        if index % 5 == 0:
            await asyncio.sleep(0.002)  # paced, so that the parent's kills land while publishing
    delivered = await publisher.flush(60)
    corrupt = publisher.buffer.corrupt_total
    await publisher.aclose()
    print(f"{'done' if delivered else 'undelivered'} corrupt={corrupt} replayed={replayed}", flush=True)
    return 0 if delivered else 1


if __name__ == "__main__":
    url, buffer_dir, progress, start, total = sys.argv[1:6]
    sys.exit(asyncio.run(main(url, buffer_dir, progress, int(start), int(total))))
