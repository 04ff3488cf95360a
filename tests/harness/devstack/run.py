"""``make run``: the whole stack on one machine, observing real containers.

Starts, each as a child process stopped by PID on Ctrl-C:

1. a container engine — the machine's own Docker engine when one answers, otherwise (as root) a private
   Docker engine in ``run/`` (installing Debian's docker.io when missing) with a small demo workload built
   locally; ``ZASTAVA_RUN_PRIVATE_ENGINE=never`` opts out, ``=always`` forces the private engine;
2. the reference Authority (``zastava authority serve``) issuing DPoP-bound tokens, over TLS from a local CA;
3. the reference backend on SQLite (``zastava backend serve``) verifying those tokens (``auth: optok``);
4. the observer (``zastava observer run``) on that engine, publishing with its OpTok;
5. the admission webhook (``zastava webhook serve``) with a certificate from the same local CA;

then prints the URLs and a live view of the runtime events stored by the backend.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
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
TENANT = "demo"
OPERATOR_SCOPES = [
    "api:scanner.runtime.read",
    "api:scanner.policy.read",
    "api:scanner.catalog.read",
    "api:scanner.catalog.write",
    "api:scanner.admission.read",
    "api:scanner.policy.simulate",
]


@dataclass(frozen=True)
class StackUrls:
    issuer: str
    backend: str
    webhook: str
    ca: str
    operator_config: Path
    observer: str


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
        dynamic_image(engine, "zastava-demo/app:1")
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
        for name, image in (
            ("demo-app", "zastava-demo/app:1"),
            ("demo-entrypoint", "zastava-demo/entrypoint:1"),
        ):
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

    def pki(self) -> Path:
        """A local CA and one serving certificate for 127.0.0.1 (Authority, backend and webhook)."""
        pki = self.workdir / "pki"
        if not (pki / "tls.crt").exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "zastava",
                    "webhook",
                    "certs",
                    "--out",
                    str(pki),
                    "--service",
                    "zastava",
                    "--namespace",
                    "local",
                    "--dns",
                    "localhost",
                    "--ip",
                    "127.0.0.1",
                ],
                check=True,
                capture_output=True,
            )
        return pki

    def authority_setup(self, issuer: str) -> Path:
        directory = self.workdir / "authority"
        if directory.exists():
            import shutil

            shutil.rmtree(directory)
        from zastava.auth.authority import write_dev_setup

        write_dev_setup(directory, issuer=issuer, tenant=TENANT)
        return directory

    def write_config(self, name: str, data: dict[str, Any]) -> Path:
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"zastava": data}, sort_keys=False))
        return path

    def client_config(
        self, backend_url: str, issuer: str, client: str, pki: Path, auth_dir: Path, scopes: list[str]
    ) -> dict[str, Any]:
        return {
            "backend": {"baseAddress": backend_url},
            "runtime": {
                "tenant": TENANT,
                "environment": "local",
                "deployment": "make-run",
                "engine": "docker",
                "procfs": "/proc",
                "authority": {
                    "issuer": issuer,
                    "clientId": f"zastava-{client}",
                    "clientSecretPath": str(auth_dir / f"{client}.secret"),
                    "caBundlePath": str(pki / "ca.crt"),
                    "scopes": scopes,
                    "requireDpop": True,
                    # local stack: DPoP-bound tokens over TLS; client certificates are a deployment concern
                    "requireMutualTls": False,
                },
                "logging": {"format": "json", "level": "INFO"},
            },
            "admission": {"failOpenNamespaces": ["dev"]},
            "observer": {"nodeName": os.uname().nodename, "engines": {"dockerHost": self.docker_host}},
            "publisher": {"bufferDir": str(self.workdir / "buffer"), "flushIntervalSeconds": 1},
        }

    # ----------------------------------------------------------------------------------------- run

    def start(self) -> StackUrls:
        """Start every process (and the demo workload on a private engine); returns where they listen."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.docker_host:  # a caller (the console's browser test) may hand us an engine
            self.choose_engine()
        pki = self.pki()
        ca = str(pki / "ca.crt")
        tls = ["--tls-cert", str(pki / "tls.crt"), "--tls-key", str(pki / "tls.key")]

        authority_port = free_port()
        issuer = f"https://127.0.0.1:{authority_port}"
        auth_dir = self.authority_setup(issuer)
        authority = self.zastava(
            "authority",
            "authority",
            "serve",
            "-c",
            str(auth_dir / "authority.yaml"),
            "--port",
            str(authority_port),
            *tls,
        )
        wait_until(
            lambda: _ready(authority, f"{issuer}/.well-known/openid-configuration", ca), 60, "authority"
        )

        backend_port = free_port()
        backend_url = f"https://127.0.0.1:{backend_port}"
        backend_config = self.write_config(
            "backend",
            {
                "runtime": {
                    "tenant": TENANT,
                    "authority": {"issuer": issuer, "caBundlePath": ca, "requireMutualTls": False},
                    "logging": {"format": "json"},
                },
                "backendServer": {
                    "store": f"sqlite:///{self.workdir / 'zastava.db'}",
                    "listen": f"127.0.0.1:{backend_port}",
                    "publicBaseUrl": backend_url,
                    "auth": "optok",
                    "tenants": [TENANT],
                    "tlsCertFile": str(pki / "tls.crt"),
                    "tlsKeyFile": str(pki / "tls.key"),
                },
            },
        )
        backend = self.zastava("backend", "backend", "serve", "--config", str(backend_config))
        wait_until(lambda: _ready(backend, f"{backend_url}/readyz", ca), 60, "backend")

        observer_port = free_port()
        observer_url = f"http://127.0.0.1:{observer_port}"
        observer_settings = self.client_config(
            backend_url,
            issuer,
            "observer",
            pki,
            auth_dir,
            ["api:scanner.runtime.write", "api:scanner.policy.read", "api:scanner.catalog.read"],
        )
        observer_settings["observer"]["listen"] = f"127.0.0.1:{observer_port}"
        observer_config = self.write_config("observer", observer_settings)
        observer = self.zastava("observer", "observer", "run", "--config", str(observer_config))
        wait_until(lambda: _ready(observer, f"{observer_url}/readyz"), 60, "observer")

        webhook_port = free_port()
        webhook_config = self.write_config(
            "webhook",
            self.client_config(
                backend_url,
                issuer,
                "webhook",
                pki,
                auth_dir,
                ["api:scanner.policy.read", "api:scanner.admission.write"],
            ),
        )
        webhook = self.zastava(
            "webhook",
            "webhook",
            "serve",
            "--config",
            str(webhook_config),
            "--cert",
            str(pki / "tls.crt"),
            "--key",
            str(pki / "tls.key"),
            "--listen",
            f"127.0.0.1:{webhook_port}",
        )
        webhook_url = f"https://127.0.0.1:{webhook_port}"
        wait_until(lambda: _ready(webhook, f"{webhook_url}/healthz", ca), 60, "webhook")
        operator_config = self.write_config(
            "operator",
            self.client_config(
                backend_url,
                issuer,
                "operator",
                pki,
                auth_dir,
                OPERATOR_SCOPES,
            ),
        )
        urls = StackUrls(issuer, backend_url, webhook_url, ca, operator_config, observer_url)
        self.demo_admissions(webhook_url, ca)
        return urls

    def up(self) -> None:
        urls = self.start()
        backend_url, operator_config = urls.backend, urls.operator_config
        _say(f"authority {urls.issuer}  (DPoP-bound OpToks; clients, secrets: {self.workdir / 'authority'})")
        _say(
            f"backend   {backend_url}  (OpenAPI: {backend_url}/openapi.json, metrics: {backend_url}/metrics)"
        )
        _say(f"webhook   {urls.webhook}/admit  (metrics: {urls.webhook}/metrics)")
        _say(f"observer  {urls.observer}/metrics  ({urls.observer}/readyz)")
        _say(f"engine    {self.docker_host}")
        _say(f"CA        {urls.ca}")
        _say(f"console   {backend_url}/ui/  (trust the CA above in the browser, or accept its certificate)")
        link = self.login_link(urls)
        if link:
            _say(f"log in    {link}  (one-time; another: zastava console login --config {operator_config})")
        _say(f"try       zastava events tail --config {operator_config}")
        _say(f"          zastava runtime policy test --config {operator_config} --image <digest>")
        _say(f"simulate  zastava policy simulate --config <candidate.yaml> --credentials {operator_config}")
        _say(f"logs      {self.workdir}/*.log — Ctrl-C stops everything")
        self.live_view(backend_url, operator_config)

    def login_link(self, urls: StackUrls) -> str | None:
        """A one-time console login for the operator client (``POST /console/login-links``)."""
        import asyncio

        from zastava.auth import backend_auth
        from zastava.config import load_config

        config = load_config(urls.operator_config, warn=False)
        url = f"{urls.backend}/api/v1/scanner/console/login-links"

        async def ask() -> str | None:
            auth = backend_auth(config, component="make-run")
            try:
                headers = await auth.headers_provider("POST", url) if auth.headers_provider else {}
                response = await auth.http_client.post(url, headers=headers)
                return str(response.json()["url"]) if response.status_code == 200 else None
            finally:
                await auth.aclose()

        try:
            return asyncio.run(ask())
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            _say(f"no console login link: {exc}")
            return None

    def demo_admissions(self, webhook_url: str, ca: str) -> None:
        """Two Pods reviewed by the webhook as an API server would send them, so the console's admission page
        has a decision of each kind: ``dev`` (fail-open: the demo image's tag cannot be resolved offline) and
        ``prod`` (denied: ``:latest`` is a banned tag)."""
        pods = [
            ("dev", "demo-web", {"app": "demo-web"}, "zastava-demo/app:1"),
            ("prod", "demo-latest", {"app": "demo-latest", "env": "prod"}, "docker.io/library/nginx:latest"),
        ]
        for index, (namespace, name, labels, image) in enumerate(pods):
            review = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": f"make-run-{os.getpid()}-{index}",
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "namespace": namespace,
                    "operation": "CREATE",
                    "userInfo": {"username": "make-run"},
                    "object": {
                        "metadata": {"name": name, "namespace": namespace, "labels": labels},
                        "spec": {"containers": [{"name": "app", "image": image}]},
                    },
                },
            }
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{webhook_url}/admit?timeout=10s", json=review, verify=ca, timeout=15)

    def live_view(self, backend_url: str, operator_config: Path) -> None:
        import asyncio

        from rich.console import Console

        from zastava.auth import backend_auth
        from zastava.config import load_config

        console = Console()
        config = load_config(operator_config, warn=False)

        async def follow() -> int:
            auth = backend_auth(config, component="make-run")
            seen: set[str] = set()
            try:
                while not self.stopping.is_set():
                    for process in self.processes:
                        process.check_running()
                    url = f"{backend_url}/api/v1/scanner/runtime/events"
                    headers = await auth.headers_provider("GET", url) if auth.headers_provider else {}
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        response = await auth.http_client.get(url, params={"limit": "50"}, headers=headers)
                        if auth.provider is not None:
                            auth.provider.observe_response(response)
                        page = response.json()
                        for item in reversed(page.get("items", [])):  # newest first on the wire
                            event = (item.get("envelope") or {}).get("event") or {}
                            if event.get("eventId") in seen:
                                continue
                            seen.add(event.get("eventId", ""))
                            console.print(_event_line(event), highlight=False)
                    await asyncio.sleep(1.0)
            finally:
                await auth.aclose()
            return len(seen)

        _say(f"{asyncio.run(follow())} events seen")

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


def _event_line(event: dict[str, Any]) -> str:
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
