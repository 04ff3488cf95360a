"""``make run``: the whole stack on one machine, observing real containers.

Starts, each as a child process stopped by PID on Ctrl-C:

1. a container engine — the machine's own Docker engine when one answers, otherwise (as root) a private
   Docker engine in ``run/`` (installing Debian's docker.io when missing) with a small demo workload built
   locally; ``ZASTAVA_RUN_PRIVATE_ENGINE=never`` opts out, ``=always`` forces the private engine;
2. the reference Authority (``zastava authority serve``) issuing DPoP-bound tokens;
3. the reference backend on SQLite (``zastava backend serve``);
4. the observer (``zastava observer run``) on that engine;
5. the admission webhook (``zastava webhook serve``) with a self-signed certificate;

then prints the URLs and a live view of the runtime events stored by the backend.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import yaml

from .engines import DockerEngine
from .images import build_image, busybox_image, dynamic_image
from .packages import is_root
from .process import ManagedProcess, PrerequisiteMissing, free_port, wait_until

__all__ = ["main"]

DEMO_LABEL = "org.zastava.demo"


def _say(message: str) -> None:
    print(f"[zastava run] {message}", flush=True)


def _docker_reachable(host: str) -> bool:
    try:
        import docker

        client = docker.DockerClient(base_url=host, timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means "no engine there"
        return False


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[ManagedProcess] = []
        self.engine: DockerEngine | None = None
        self.docker_host = ""
        self.stopping = threading.Event()

    # ------------------------------------------------------------------------------------- pieces

    def zastava(self, name: str, *args: str, env: dict[str, str] | None = None) -> ManagedProcess:
        argv = [sys.executable, "-m", "zastava", *args]
        process = ManagedProcess(name, argv, self.workdir, env=env).start()
        self.processes.append(process)
        return process

    def choose_engine(self) -> None:
        mode = os.environ.get("ZASTAVA_RUN_PRIVATE_ENGINE", "auto")
        candidates = [os.environ.get("DOCKER_HOST", ""), "unix:///var/run/docker.sock"]
        if mode != "always":
            for host in filter(None, candidates):
                if _docker_reachable(host):
                    self.docker_host = host
                    _say(f"using the Docker engine at {host}")
                    return
        if mode == "never":
            raise PrerequisiteMissing("no container engine answers and ZASTAVA_RUN_PRIVATE_ENGINE=never")
        if not is_root():
            raise PrerequisiteMissing("no container engine answers; run as root to start a private one")
        _say("no container engine answers: starting a private Docker engine in run/engine")
        self.engine = DockerEngine(self.workdir / "engine").start()
        self.docker_host = self.engine.host
        self.demo_workload(self.engine)

    def demo_workload(self, engine: DockerEngine) -> None:
        _say("building demo images (bash + sleep, static busybox) locally")
        dynamic = dynamic_image(engine, "zastava-demo/app:1")
        busybox_image(engine, "zastava-demo/busybox:1")
        script = b'#!/bin/sh\nset -e\nif [ "${1#-}" != "$1" ]; then set -- sleep "$@"; fi\nexec "$@"\n'
        build_image(
            engine,
            "zastava-demo/entrypoint:1",
            {"/bin/busybox": "/bin/busybox", "/docker-entrypoint.sh": (script, 0o755)},
            symlinks={"/bin/sh": "busybox", "/bin/sleep": "busybox"},
            entrypoint=["/docker-entrypoint.sh"],
            cmd=["sleep", "1000000"],
            env={"PATH": "/bin"},
        )
        client = engine.client()
        for name, image in (("demo-app", dynamic), ("demo-entrypoint", "zastava-demo/entrypoint:1")):
            client.containers.run(
                image, name=name, detach=True, network_mode="none", labels={DEMO_LABEL: "1"}
            )
        threading.Thread(target=self._churn, args=(engine,), daemon=True).start()

    def _churn(self, engine: DockerEngine) -> None:
        """A short-lived container every 20 s, so START/STOP events keep coming."""
        client = engine.client()
        while not self.stopping.wait(20):
            with contextlib.suppress(Exception):
                container = client.containers.run(
                    "zastava-demo/busybox:1", detach=True, network_mode="none", labels={DEMO_LABEL: "1"}
                )
                if self.stopping.wait(8):
                    return
                container.remove(force=True)

    def write_config(self, backend_url: str) -> Path:
        config: dict[str, Any] = {
            "zastava": {
                "backend": {"baseAddress": backend_url, "allowInsecureHttp": True},
                "runtime": {
                    "tenant": "demo",
                    "environment": "local",
                    "deployment": "make-run",
                    "engine": "docker",
                    "procfs": "/proc",
                    "authority": {"requireDpop": False, "requireMutualTls": False},
                    "logging": {"format": "json", "level": "INFO"},
                },
                "admission": {"failOpenNamespaces": ["dev"]},
                "publisher": {"bufferDir": str(self.workdir / "buffer"), "flushIntervalSeconds": 1},
            }
        }
        path = self.workdir / "zastava.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ----------------------------------------------------------------------------------------- run

    def up(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.choose_engine()
        backend_port = free_port()
        backend_url = f"http://127.0.0.1:{backend_port}"
        backend = self.zastava(
            "backend",
            "backend",
            "serve",
            "--store",
            f"sqlite:///{self.workdir / 'zastava.db'}",
            "--listen",
            f"127.0.0.1:{backend_port}",
        )
        wait_until(lambda: _ready(backend, f"{backend_url}/readyz"), 60, "backend")
        config = self.write_config(backend_url)
        env = {"DOCKER_HOST": self.docker_host, "NODE_NAME": os.uname().nodename}
        self.zastava("observer", "observer", "run", "--config", str(config), env=env)
        webhook_port = free_port()
        certs = self.workdir / "webhook-tls"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "zastava",
                "webhook",
                "certs",
                "--out",
                str(certs),
                "--ip",
                "127.0.0.1",
                "--dns",
                "localhost",
            ],
            check=True,
            capture_output=True,
        )
        webhook = self.zastava(
            "webhook",
            "webhook",
            "serve",
            "--config",
            str(config),
            "--cert",
            str(certs / "tls.crt"),
            "--key",
            str(certs / "tls.key"),
            "--listen",
            f"127.0.0.1:{webhook_port}",
        )
        webhook_url = f"https://127.0.0.1:{webhook_port}"
        wait_until(lambda: _ready(webhook, f"{webhook_url}/healthz", str(certs / "ca.crt")), 60, "webhook")
        _say(
            f"backend   {backend_url}  (OpenAPI: {backend_url}/openapi.json, metrics: {backend_url}/metrics)"
        )
        _say(f"webhook   {webhook_url}/admit  (CA: {certs / 'ca.crt'})")
        _say(f"engine    {self.docker_host}")
        _say(f"logs      {self.workdir}/*.log — Ctrl-C stops everything")
        self.live_view(backend_url)

    def live_view(self, backend_url: str) -> None:
        from rich.console import Console

        console = Console()
        cursor: str | None = None
        seen = 0
        with httpx.Client(timeout=5) as client:
            while not self.stopping.is_set():
                for process in self.processes:
                    process.check_running()
                params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    page = client.get(f"{backend_url}/api/v1/scanner/runtime/events", params=params).json()
                    for item in page.get("items", []):
                        seen += 1
                        console.print(_event_line(item), highlight=False)
                    cursor = page.get("nextCursor") or cursor
                self.stopping.wait(1.0)
        _say(f"{seen} events seen")

    def down(self) -> None:
        self.stopping.set()
        for process in reversed(self.processes):
            process.stop()
        if self.engine is not None:
            _say("stopping the private Docker engine")
            self.engine.stop()


def _ready(process: ManagedProcess, url: str, verify: str | bool = True) -> bool:
    process.check_running()
    return httpx.get(url, timeout=2, verify=verify).status_code == 200


def _event_line(item: dict[str, Any]) -> str:
    event = item.get("event", item)
    workload = event.get("workload", {})
    process = event.get("process") or {}
    libs = event.get("loadedLibs") or []
    terminals = ",".join(process.get("terminals") or [])
    image = (workload.get("imageRef") or "?").split("@")[0]
    return (
        f"{event.get('when', '?')}  [bold]{event.get('kind', '?'):<18}[/] "
        f"{workload.get('containerId', '?')[:24]:<24} {image:<32} pid={process.get('pid', '-')} "
        f"exe={terminals or '-'} libs={len(libs)} buildId={(process.get('buildId') or '-')[:12]}"
    )


def main(argv: list[str]) -> int:
    workdir = Path(os.environ.get("ZASTAVA_RUN_DIR", "run")).resolve()
    stack = Stack(workdir)

    def interrupt(signum: int, frame: object) -> None:
        stack.stopping.set()

    signal.signal(signal.SIGTERM, interrupt)
    try:
        stack.up()
    except KeyboardInterrupt:
        pass
    except (PrerequisiteMissing, RuntimeError, TimeoutError) as exc:
        _say(f"error: {exc}")
        for process in stack.processes:
            if not process.running():
                _say(f"{process.name} log tail:\n{process.log_tail()}")
        return 1
    finally:
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
