"""A small CRI v1 client for creating host-network pods in tests and demos (read/write)."""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["CriClient"]


class CriClient:
    def __init__(self, socket: Path | str) -> None:
        import grpc
        from cri_api.v1 import api_pb2, api_pb2_grpc

        self.pb: Any = api_pb2
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.runtime: Any = api_pb2_grpc.RuntimeServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.images: Any = api_pb2_grpc.ImageServiceStub(self.channel)  # type: ignore[no-untyped-call]

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def version(self) -> Any:
        return self.runtime.Version(self.pb.VersionRequest(), timeout=10)

    def list_pods(self) -> list[Any]:
        return list(self.runtime.ListPodSandbox(self.pb.ListPodSandboxRequest(), timeout=10).items)

    def pull(self, image: str) -> str:
        reply = self.images.PullImage(
            self.pb.PullImageRequest(image=self.pb.ImageSpec(image=image)), timeout=120
        )
        return str(reply.image_ref)

    def remove_pod(self, sandbox_id: str) -> None:
        """Stop and remove one pod sandbox (its containers go with it); a pod already gone is no error."""
        with contextlib.suppress(Exception):
            self.runtime.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=30)
        with contextlib.suppress(Exception):
            self.runtime.RemovePodSandbox(
                self.pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=30
            )

    def run_pod(
        self, name: str, namespace: str = "default", labels: dict[str, str] | None = None
    ) -> tuple[str, Any]:
        """A host-network pod sandbox (no CNI needed); returns (sandbox id, sandbox config)."""
        pb = self.pb
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, namespace=namespace, uid=str(uuid.uuid4()), attempt=0),
            labels=labels or {},
            log_directory="",
            linux=pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE)
                )
            ),
        )
        reply = self.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120)
        return str(reply.pod_sandbox_id), config

    def run_container(
        self,
        sandbox_id: str,
        sandbox_config: Any,
        name: str,
        image: str,
        command: list[str] | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> str:
        pb = self.pb
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=0),
            image=pb.ImageSpec(image=image),
            command=command or [],
            args=args or [],
            envs=[pb.KeyValue(key=k, value=v) for k, v in (env or {}).items()],
            labels=labels or {},
        )
        created = self.runtime.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config
            ),
            timeout=120,
        )
        self.runtime.StartContainer(pb.StartContainerRequest(container_id=created.container_id), timeout=60)
        return str(created.container_id)

    def container_pid(self, container_id: str, timeout: float = 10) -> int:
        import json

        deadline = time.monotonic() + timeout
        while True:
            status = self.runtime.ContainerStatus(
                self.pb.ContainerStatusRequest(container_id=container_id, verbose=True), timeout=10
            )
            info = json.loads(status.info.get("info", "{}"))
            pid = int(info.get("pid") or 0)
            if pid > 0 or time.monotonic() > deadline:
                return pid
            time.sleep(0.05)
