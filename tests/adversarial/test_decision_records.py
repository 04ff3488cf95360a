"""Issue 21, attack 7: admission decision records — the audit trail — must reach the store under sustained
load and across a backend outage shorter than the spool. Real parts: ``zastava backend serve`` (uvicorn,
SQLite, a subprocess stopped and restarted by PID on the same port) and the webhook served over TLS by its own
``WebhookServer`` (uvicorn), driven by concurrent AdmissionReviews.

On main the recorder kept 1,000 records in memory and dropped the rest ("decision record queue full": 2.5 %
at ~4,500 reviews/s), and a batch whose POST failed was lost."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path

import orjson

from tests.harness.polling import wait_for
from tests.integration.observer.publisher.real_backend import BackendProcess
from tests.integration.webhook.conftest import make_config, start_webhook
from tests.unit.webhook.reviews import body, pod_with, review
from zastava.webhook.certs import generate_certs, write_certs

IMAGE = "ghcr.io/acme/api@sha256:" + "a" * 64


def _stored(backend: BackendProcess) -> set[str]:
    db = sqlite3.connect(f"file:{backend.db_path}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in db.execute("SELECT admission_id FROM admission_decisions")}
    finally:
        db.close()


def test_every_decision_record_reaches_the_store_through_load_and_an_outage(tmp_path: Path) -> None:
    backend = BackendProcess(tmp_path / "backend").start()
    write_certs(generate_certs(extra_dns=["localhost"], ip_addresses=["127.0.0.1"]), tmp_path / "tls")
    config = make_config(
        backend.url,
        tmp_path / "tls",
        admission={"failOpenNamespaces": ["payments"], "resolveTags": False},
        webhook={"decisionSpoolDir": str(tmp_path / "spool")},
    )
    running = start_webhook(config, tmp_path / "tls" / "ca.crt")
    sent: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def drive() -> None:
        with running.client() as client:
            while not stop.is_set():
                uid = str(uuid.uuid4())
                document = review(pod_with({"app": IMAGE}), uid=uid)
                answer = client.post("/admit?timeout=10s", content=body(document))
                if answer.status_code != 200:
                    errors.append(f"HTTP {answer.status_code}")
                    continue
                assert orjson.loads(answer.content)["response"]["uid"] == uid
                with lock:
                    sent.append(uid)

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(4)
        backend.stop()  # an outage while reviews go on
        time.sleep(3)
        backend.start()
        time.sleep(4)
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not errors, errors[:5]
        recorder = running.components.recorder
        assert recorder is not None
        assert wait_for(lambda: recorder.pending == 0, timeout=120), f"{recorder.pending} still pending"
        stored = _stored(backend)
        rate = len(sent) / 11
        print(f"{len(sent)} reviews (~{rate:.0f}/s), {len(stored)} stored, {recorder.failed} failed posts")
        assert recorder.dropped == 0
        assert set(sent) <= stored, f"{len(set(sent) - stored)} of {len(sent)} decision records lost"
    finally:
        stop.set()
        running.stop()
        backend.stop()
