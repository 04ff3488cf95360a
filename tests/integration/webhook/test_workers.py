"""``zastava webhook serve`` with ``webhook.workers: 2`` (issue 19): worker processes on one socket, run as an
operator runs it (a subprocess, stopped by PID) against the stand-in policy backend (``standins.py``).

Reviews over many connections are answered by more than one worker (each logs its ``worker`` index with
its decisions), ``/metrics`` of whichever worker answers the scrape counts every worker's decisions, every
decision record reaches the backend, and SIGTERM stops the workers and the supervisor with status 0 and
removes the private metrics directory."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from tests.harness.devstack import free_port
from tests.harness.polling import wait_ready
from tests.unit.webhook.reviews import DIGEST_A, DIGEST_B, body, pod_with, review

from .standins import PolicyBackend

ZASTAVA = [sys.executable, "-m", "zastava"]
PINNED = {"api": f"ghcr.io/acme/api@{DIGEST_A}", "worker": f"ghcr.io/acme/worker@{DIGEST_B}"}


def _config(path: Path, backend: PolicyBackend, tls: Path, port: int, **webhook: object) -> Path:
    data = {
        "zastava": {
            "backend": {"baseAddress": backend.url, "allowInsecureHttp": True, "requestTimeoutSeconds": 2},
            "runtime": {"authority": {"requireMutualTls": False}},
            "admission": {"failOpenNamespaces": ["dev"], "resolveTags": False},
            "webhook": {
                "listen": f"127.0.0.1:{port}",
                "certPath": str(tls / "tls.crt"),
                "keyPath": str(tls / "tls.key"),
                "decisionLingerSeconds": 0.05,
                **webhook,
            },
        }
    }
    path.write_text(yaml.safe_dump(data))
    return path


@contextlib.contextmanager
def serving(tmp_path: Path, config: Path, tls: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "serve.log").open("wb")
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the private metrics directory lands here
    process = subprocess.Popen(
        [*ZASTAVA, "webhook", "serve", "--config", str(config)], stdout=log, stderr=log, env=env
    )
    try:
        context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=5) as client:
            wait_ready(client, process, tmp_path / "serve.log", timeout=60)
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        assert process.wait(30) == 0, (tmp_path / "serve.log").read_text()
        log.close()


def _logged(tmp_path: Path) -> list[dict[str, Any]]:
    text = (tmp_path / "serve.log").read_text()
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_two_workers_answer_and_metrics_sum_across_them(
    tmp_path: Path, policy_backend: PolicyBackend, tls_dir: Path
) -> None:
    port = free_port()
    config = _config(tmp_path / "z.yaml", policy_backend, tls_dir, port, workers=2)
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    documents: list[dict[str, Any]] = []
    with serving(tmp_path, config, tls_dir, port) as process:
        # a new connection per review: the kernel hands each to one of the workers listening (/readyz answered
        # as soon as the first one listened, so reviews go on until both have answered some)
        deadline = time.monotonic() + 60
        while True:
            for _ in range(20):
                document = review(pod_with(PINNED))
                with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=10) as client:
                    answer = client.post("/admit?timeout=10s", content=body(document))
                assert answer.status_code == 200, answer.text
                assert orjson.loads(answer.content)["response"]["allowed"] is True
                documents.append(document)
            time.sleep(0.2)  # the decision lines are written right after the responses
            workers = {
                line["worker"] for line in _logged(tmp_path) if line.get("msg") == "admission decision"
            }
            if workers == {"0", "1"}:
                break
            assert time.monotonic() < deadline, f"only workers {workers} answered {len(documents)} reviews"
        records = policy_backend.wait_decisions(len(documents), timeout=30)
        assert sorted(r.decision.admission_id for r in records) == sorted(
            d["request"]["uid"] for d in documents
        )
        # every scrape, whichever worker answers it, counts the reviews of both workers
        for _ in range(6):
            with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=10) as client:
                text = client.get("/metrics").text
            assert f'zastava_admission_decisions_total{{decision="allow"}} {len(documents)}.0' in text, text
            assert 'zastava_meter_info{component="webhook"' in text
        metrics_dirs = list(tmp_path.glob("zastava-webhook-metrics-*"))
        assert len(metrics_dirs) == 1 and oct(metrics_dirs[0].stat().st_mode & 0o777) == "0o700"
        assert process.poll() is None
    decisions = [line for line in _logged(tmp_path) if line.get("msg") == "admission decision"]
    assert len(decisions) == len(documents)
    assert not list(tmp_path.glob("zastava-webhook-metrics-*")), "the metrics directory is removed at exit"


def test_a_worker_that_cannot_start_stops_the_webhook(
    tmp_path: Path, policy_backend: PolicyBackend, tls_dir: Path
) -> None:
    """A start-up failure in the workers (here: the serving key file is not a key — its existence is
    checked before the workers start, its content by each worker's TLS context) is not retried forever:
    the supervisor exits non-zero, as ``workers: 1`` exits."""
    port = free_port()
    config = _config(tmp_path / "z.yaml", policy_backend, tls_dir, port, workers=2)
    data = yaml.safe_load(config.read_text())
    (tmp_path / "junk.key").write_text("not a key\n")
    data["zastava"]["webhook"]["keyPath"] = str(tmp_path / "junk.key")
    config.write_text(yaml.safe_dump(data))
    process = subprocess.run(
        [*ZASTAVA, "webhook", "serve", "--config", str(config)],
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert process.returncode != 0, process.stderr.decode()
    assert b"webhook worker exited while starting" in process.stderr, process.stderr.decode()
    assert not list(tmp_path.glob("zastava-webhook-metrics-*"))


def test_a_worker_that_dies_is_replaced_and_its_counts_stay_in_the_sums(
    tmp_path: Path, policy_backend: PolicyBackend, tls_dir: Path
) -> None:
    """SIGKILL of a serving worker: the supervisor marks it dead (its live-gauge file goes), starts another
    in its place, and ``/metrics`` still counts the reviews the dead worker answered."""
    port = free_port()
    config = _config(tmp_path / "z.yaml", policy_backend, tls_dir, port, workers=2)
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))

    def admit_many(count: int) -> None:
        for _ in range(count):
            with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=10) as client:
                answer = client.post("/admit?timeout=10s", content=body(review(pod_with(PINNED))))
            assert answer.status_code == 200 and orjson.loads(answer.content)["response"]["allowed"] is True

    def allowed_total() -> float:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=10) as client:
            text = client.get("/metrics").text
        line = next(
            x
            for x in text.splitlines()
            if x.startswith('zastava_admission_decisions_total{decision="allow"}')
        )
        return float(line.rsplit(" ", 1)[1])

    with serving(tmp_path, config, tls_dir, port):
        admit_many(20)
        started = [line for line in _logged(tmp_path) if line.get("msg") == "webhook worker started"]
        victim = next(line for line in started if line["worker"] == 1)
        victim_pid = int(str(victim["pid"]))
        (metrics_dir,) = tmp_path.glob("zastava-webhook-metrics-*")
        # a worker dying within START_GRACE_SECONDS of its start counts as a failed start: wait past it
        time.sleep(11)
        assert (metrics_dir / f"gauge_livesum_{victim_pid}.db").exists()
        os.kill(victim_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not any(line.get("msg") == "webhook worker died; restarting it" for line in _logged(tmp_path)):
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        assert not (metrics_dir / f"gauge_livesum_{victim_pid}.db").exists(), (
            "the dead worker was marked dead"
        )
        assert (metrics_dir / f"counter_{victim_pid}.db").exists(), "its counts stay in the sums"
        restarted = [
            line
            for line in _logged(tmp_path)
            if line.get("msg") == "webhook worker started" and line["worker"] == 1
        ]
        assert len(restarted) == 2 and restarted[-1]["pid"] != victim_pid
        deadline = time.monotonic() + 30
        while True:  # the new worker is serving once every scrape answers (both workers render the sum)
            try:
                assert allowed_total() == 20.0
                break
            except (httpx.TransportError, StopIteration):
                assert time.monotonic() < deadline
                time.sleep(0.2)
        admit_many(20)
        assert allowed_total() == 40.0
        policy_backend.wait_decisions(40, timeout=30)
