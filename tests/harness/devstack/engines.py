"""Private container engines in a temporary directory: containerd (optionally with CRI) and Docker.

Each instance has its own root, state, sockets and PID files, so several can run side by side with the
machine's own engine (if any). Docker runs bridge-free (``--bridge=none``, no iptables): containers use
``--network none`` or ``--network host``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .packages import ensure_packages, is_root
from .process import ManagedProcess, PrerequisiteMissing, kill_pids_referencing, stop_pid, wait_until

__all__ = ["PAUSE_IMAGE", "ContainerdService", "DockerEngine"]

PAUSE_IMAGE = "registry.k8s.io/pause:3.6"


def _require_root(what: str) -> None:
    if not is_root():
        raise PrerequisiteMissing(f"{what} needs root (it runs containers)")


class ContainerdService:
    """containerd with its own root/state/socket; ``cri=True`` enables the CRI v1 plugin (spec §3.1)."""

    def __init__(self, workdir: Path | None = None, *, cri: bool = True) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="zastava-containerd-"))
        self.cri = cri
        self.socket = self.workdir / "containerd.sock"
        self.root = self.workdir / "root"
        self.state = self.workdir / "state"
        self.process: ManagedProcess | None = None

    def config_toml(self) -> str:
        lines = [
            "version = 2",
            f'root = "{self.root}"',
            f'state = "{self.state}"',
            "[grpc]",
            f'  address = "{self.socket}"',
            "[ttrpc]",
            f'  address = "{self.socket}.ttrpc"',
            "[debug]",
            f'  address = "{self.socket}.debug"',
        ]
        if self.cri:
            lines += [
                '[plugins."io.containerd.grpc.v1.cri"]',
                "  restrict_oom_score_adj = true",
                f'  sandbox_image = "{PAUSE_IMAGE}"',
                '  stream_server_address = "127.0.0.1"',
                '  stream_server_port = "0"',
                '  [plugins."io.containerd.grpc.v1.cri".cni]',
                '    bin_dir = "/usr/lib/cni"',
                f'    conf_dir = "{self.workdir / "cni"}"',
            ]
        else:
            lines.insert(1, 'disabled_plugins = ["io.containerd.grpc.v1.cri"]')
        return "\n".join(lines) + "\n"

    def start(self) -> ContainerdService:
        _require_root("containerd")
        ensure_packages(["docker.io"])
        for d in (self.root, self.state, self.workdir / "cni"):
            d.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "containerd.toml"
        config.write_text(self.config_toml())
        self.process = ManagedProcess(
            "containerd", ["containerd", "--config", str(config)], self.workdir
        ).start()

        def ready() -> bool:
            assert self.process is not None
            self.process.check_running()
            return self.socket.exists() and self.ctr("version").returncode == 0

        wait_until(ready, 30, "containerd")
        return self

    def ctr(
        self, *args: str, namespace: str = "k8s.io", input_bytes: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", namespace, *args],
            input=input_bytes,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def import_image(self, tar: bytes, namespace: str = "k8s.io") -> None:
        """Import a ``docker save`` archive into containerd's image store."""
        result = self.ctr("images", "import", "--all-platforms", "-", namespace=namespace, input_bytes=tar)
        if result.returncode != 0:
            raise RuntimeError(f"ctr images import failed: {result.stderr.decode(errors='replace')}")

    def remove_all_pods(self) -> None:
        """Stop and remove every CRI pod sandbox (their containers go with them)."""
        if not self.cri or self.process is None or not self.process.running():
            return
        from .cri import CriClient

        with contextlib.suppress(Exception), CriClient(self.socket) as cri:
            for pod in cri.list_pods():
                cri.remove_pod(pod.id)

    def stop(self) -> None:
        self.remove_all_pods()
        if self.process is not None:
            self.process.stop()
        # shims daemonise away from containerd; they carry our private socket path in their command line
        kill_pids_referencing(str(self.workdir))
        _unmount_under(self.workdir)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _unmount_under(path: Path) -> None:
    """Unmount leftovers (overlay rootfs, shm) below our private directory, deepest first."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    targets = sorted(
        (line.split()[1] for line in mounts if line.split()[1].startswith(str(path))), key=len, reverse=True
    )
    for target in targets:
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


class DockerEngine:
    """A private Docker engine (dockerd + its own containerd) in a temporary directory."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="zastava-docker-"))
        self.containerd = ContainerdService(self.workdir / "containerd", cri=False)
        self.socket = self.workdir / "docker.sock"
        self.process: ManagedProcess | None = None
        self._client: Any = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> DockerEngine:
        _require_root("the Docker engine")
        ensure_packages(["docker.io"])
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.containerd.start()
        argv = [
            "dockerd",
            f"--containerd={self.containerd.socket}",
            f"--data-root={self.workdir / 'data'}",
            f"--exec-root={self.workdir / 'exec'}",
            f"--pidfile={self.workdir / 'dockerd.pid'}",
            f"--host={self.host}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            f"--config-file={self._daemon_json()}",
        ]
        self.process = ManagedProcess("dockerd", argv, self.workdir).start()

        def ready() -> bool:
            assert self.process is not None
            self.process.check_running()
            return bool(self.socket.exists() and self.client().ping())

        wait_until(ready, 60, "dockerd")
        return self

    def _daemon_json(self) -> Path:
        path = self.workdir / "daemon.json"
        path.write_text('{"features": {"buildkit": false}}\n')
        return path

    def client(self) -> Any:
        if self._client is None:
            import docker

            self._client = docker.DockerClient(base_url=self.host, timeout=120)
        return self._client

    def docker(
        self, *args: str, input_bytes: bytes | None = None, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the docker CLI against this engine."""
        result = subprocess.run(
            ["docker", "--host", self.host, *args],
            input=input_bytes,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
        return result

    def remove_all_containers(self) -> None:
        if self.process is None or not self.process.running():
            return
        with contextlib.suppress(Exception):
            for container in self.client().containers.list(all=True):
                with contextlib.suppress(Exception):
                    container.remove(force=True)

    def stop(self) -> None:
        self.remove_all_containers()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        if self.process is not None:
            self.process.stop(timeout=20)
        pidfile = self.workdir / "dockerd.pid"
        if pidfile.exists():  # a dockerd we did not start ourselves in this object (should not happen)
            with contextlib.suppress(ValueError, OSError):
                stop_pid(int(pidfile.read_text().strip()))
        self.containerd.stop()
        kill_pids_referencing(str(self.workdir))
        _unmount_under(self.workdir)
        time.sleep(0.1)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
