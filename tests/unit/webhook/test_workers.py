"""``zastava.webhook.workers``: what each worker process is configured with (the processes themselves are
proven through ``zastava webhook serve`` in ``tests/integration/webhook/test_workers.py``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from zastava.config import ZastavaConfig
from zastava.webhook.workers import worker_config


def test_each_worker_spools_its_share_in_its_own_directory() -> None:
    config = ZastavaConfig(
        webhook={"workers": 3, "decisionSpoolDir": "/var/spool/zastava", "decisionSpoolMaxBytes": 60_000_000},
        runtime={"logging": {"staticScope": {"plane": "runtime"}}},
    )
    workers = [worker_config(config, i, 3) for i in range(3)]
    # worker 0 keeps the single worker's directory: what it spooled before is replayed, not orphaned
    assert [w.webhook.decision_spool_dir for w in workers] == [
        "/var/spool/zastava",
        "/var/spool/zastava/worker-1",
        "/var/spool/zastava/worker-2",
    ]
    assert {w.webhook.decision_spool_max_bytes for w in workers} == {20_000_000}
    assert [w.runtime.logging.static_scope for w in workers] == [
        {"plane": "runtime", "worker": str(i)} for i in range(3)
    ]
    assert config.webhook.decision_spool_dir == "/var/spool/zastava"  # the shared config is not changed


def test_private_spools_and_the_smallest_share() -> None:
    config = ZastavaConfig(webhook={"workers": 64, "decisionSpoolMaxBytes": 65536})
    worker = worker_config(config, 5, 64)
    assert worker.webhook.decision_spool_dir is None  # a private temporary directory per worker
    assert worker.webhook.decision_spool_max_bytes == 65536


@pytest.mark.parametrize("workers", [0, 65, "two"])
def test_workers_is_bounded(workers: object) -> None:
    with pytest.raises(ValidationError, match="workers"):
        ZastavaConfig(webhook={"workers": workers})
