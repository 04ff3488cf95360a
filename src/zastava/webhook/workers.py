"""Several webhook worker processes on one listening socket (``zastava.webhook.workers`` > 1).

One Python process answers reviews on one core; ``serve`` with ``workers: N`` binds the socket once and runs
N worker processes (``spawn``: each a fresh interpreter, nothing shared but the socket), each the whole
webhook of ``workers: 1`` — its own event loop, TLS context, verdict cache and warm answers, backend client
and decision recorder. Each worker listens on its own socket bound with ``SO_REUSEPORT`` to the address the
supervisor bound (and holds, not listening, so the port stays taken and start-up errors are reported before
any worker starts); the kernel spreads new connections over the workers by their addresses (only processes
of the same user can join the group). What must not be per process is made safe here:

* **Metrics.** Before the first worker starts, ``PROMETHEUS_MULTIPROC_DIR`` is set to a fresh private
  directory (``mkdtemp``, mode 0700 — whatever the variable held before is not used: stale files of another
  run would be summed in), so every worker's counters and histograms live in files there and ``/metrics`` of
  any worker renders the sum over all of them (:meth:`ZastavaMetrics.render`). A worker that exits is marked
  dead (its live gauges removed; its counters keep counting in the sum, so totals never go backwards). The
  directory is removed when the supervisor exits. Process metrics (``process_*``) are not exposed in this
  mode: one worker's memory would read as the webhook's.
* **Decision records.** Each worker spools to its own directory (a spool is one writer's):
  ``decisionSpoolDir`` for worker 0 (the directory a single worker uses, so nothing spooled before a change
  of ``workers`` is orphaned by worker 0) and ``decisionSpoolDir/worker-<i>`` for the others, each holding
  ``decisionSpoolMaxBytes / workers`` (the chart sizes the spool volume for ``decisionSpoolMaxBytes``). A
  worker that restarts replays its own spool.
* **Logs** carry ``worker`` (its index) in their scope.

The supervisor restarts a worker that dies while serving; a worker that exits within
:data:`START_GRACE_SECONDS` of its start (bad configuration, port, credentials) stops the webhook with its
exit status, as ``workers: 1`` would exit. SIGTERM/SIGINT are passed on to the workers, which finish their
requests and flush their records (``timeout_graceful_shutdown``) before the supervisor exits 0.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from ..config import ZastavaConfig
from ..telemetry import fields

__all__ = ["START_GRACE_SECONDS", "run_workers", "worker_config"]

log = logging.getLogger("zastava.webhook")

#: a worker that exits sooner than this after its start failed to start: the webhook stops with its status
START_GRACE_SECONDS = 10.0
#: restarts allowed within :data:`RESTART_WINDOW_SECONDS` before the supervisor gives up (exit 1)
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
STOP_SECONDS = 20.0


def worker_config(config: ZastavaConfig, index: int, count: int) -> ZastavaConfig:
    """Worker ``index``'s configuration (of ``count``): its own decision spool, holding its share of
    ``decisionSpoolMaxBytes`` (the webhook's total stays what the Pod's spool volume is sized for; at least
    the 64 KiB a spool needs), and ``worker`` in its logs' scope."""
    webhook = config.webhook
    spool = webhook.decision_spool_dir
    if spool is not None and index > 0:
        spool = str(Path(spool) / f"worker-{index}")
    share = max(65536, webhook.decision_spool_max_bytes // count)
    logging_ = config.runtime.logging.model_copy(
        update={"static_scope": {**config.runtime.logging.static_scope, "worker": str(index)}}
    )
    return config.model_copy(
        update={
            "webhook": webhook.model_copy(
                update={"decision_spool_dir": spool, "decision_spool_max_bytes": share}
            ),
            "runtime": config.runtime.model_copy(update={"logging": logging_}),
        }
    )


def _worker(config: ZastavaConfig, host: str, port: int, index: int) -> None:
    """One worker process: the webhook of ``workers: 1`` on its own ``SO_REUSEPORT`` socket."""
    import asyncio
    import sys

    from ..telemetry.setup import runtime_core, settle_heap
    from ..telemetry.tracing import shutdown_tracing
    from .server import ConfigurationError, bind_socket, build_configured_webhook, serve

    try:
        metrics = runtime_core(config, "webhook")
        components = build_configured_webhook(config, metrics=metrics)
        sock = bind_socket(host, port, reuse_port=True)
    except (ConfigurationError, OSError) as exc:
        print(f"worker {index}: {exc}", file=sys.stderr)
        sys.exit(2)
    settle_heap()
    try:
        asyncio.run(
            serve(components, cert_path=config.webhook.cert_path, key_path=config.webhook.key_path, sock=sock)
        )
    finally:
        shutdown_tracing()


class _Supervisor:
    def __init__(self, config: ZastavaConfig, sock: socket.socket, count: int, metrics_dir: str) -> None:
        self.config = config
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self.count = count
        self.metrics_dir = metrics_dir
        self.context = multiprocessing.get_context("spawn")
        self.processes: dict[int, tuple[BaseProcess, float]] = {}
        self.restarts: list[float] = []
        self.stopping = False
        self.status = 0

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.stopping = True

    def start(self, index: int) -> None:
        process = self.context.Process(
            target=_worker,
            args=(worker_config(self.config, index, self.count), *self.address, index),
            name=f"zastava-webhook-{index}",
            daemon=False,
        )
        process.start()
        self.processes[index] = (process, time.monotonic())
        log.info("webhook worker started", extra=fields(worker=index, pid=process.pid))

    def _reap(self, index: int, process: BaseProcess, started: float) -> None:
        from prometheus_client import multiprocess

        process.join()
        if process.pid is not None:
            multiprocess.mark_process_dead(process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
        del self.processes[index]
        if self.stopping:
            return
        code = process.exitcode
        now = time.monotonic()
        if now - started < START_GRACE_SECONDS:
            log.error(
                "webhook worker exited while starting; stopping",
                extra=fields(worker=index, pid=process.pid, exitCode=code),
            )
            self.status = code if code and code > 0 else 1
            self.stopping = True
            return
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_SECONDS] + [now]
        if len(self.restarts) > MAX_RESTARTS:
            log.error(
                "webhook workers keep dying; stopping",
                extra=fields(worker=index, restarts=len(self.restarts), windowSeconds=RESTART_WINDOW_SECONDS),
            )
            self.status = 1
            self.stopping = True
            return
        log.warning("webhook worker died; restarting it", extra=fields(worker=index, exitCode=code))
        self.start(index)

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for index in range(self.count):
                self.start(index)
            while not self.stopping:
                by_sentinel = {p.sentinel: (i, p, t) for i, (p, t) in self.processes.items()}
                for sentinel in wait(list(by_sentinel), timeout=0.5):
                    self._reap(*by_sentinel[sentinel])  # type: ignore[index]
                    if self.stopping:
                        break
            self._stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.status

    def _stop(self) -> None:
        for process, _ in self.processes.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker finishes its requests and flushes its records
        deadline = time.monotonic() + STOP_SECONDS
        for index, (process, started) in list(self.processes.items()):
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("webhook worker did not stop in time; killed", extra=fields(worker=index))
                process.kill()
            self._reap(index, process, started)


def run_workers(config: ZastavaConfig, sock: socket.socket, count: int) -> int:
    """Serve with ``count`` worker processes until SIGTERM/SIGINT; the exit status. ``sock`` is bound with
    ``SO_REUSEPORT`` (``bind_socket(…, reuse_port=True)``) and is not listened on."""
    metrics_dir = tempfile.mkdtemp(prefix="zastava-webhook-metrics-")  # 0700, empty: nothing stale summed
    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by each worker's prometheus_client import
    try:
        return _Supervisor(config, sock, count, metrics_dir).run()
    finally:
        if previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
        shutil.rmtree(metrics_dir, ignore_errors=True)
        sock.close()
