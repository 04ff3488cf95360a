"""Log-tail fallback engine: container identity from ``/var/log/containers/*.log`` names (spec §3.1, §12).

The kubelet names each container log ``<pod>_<namespace>_<container>-<64-hex id>.log``. Without a CRI socket
this is the only inventory left: a new file is a start, a vanished file a removal. Everything it reports is
marked ``fidelity="reduced"`` with ``logtail.reduced-fidelity`` evidence: no image digest, no argv, and a pid
only when one can be found by the container id in ``/proc/<pid>/cgroup`` (bounded scan).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from ...contracts import Evidence
from .base import (
    ContainerEvent,
    ContainerInfo,
    EngineCapabilities,
    EngineName,
    EngineUnavailable,
    KubernetesIdentity,
)

__all__ = ["LogTailEngine", "find_pid_by_container_id", "parse_log_name"]

_NAME = re.compile(
    r"^(?P<pod>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)_(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)_"
    r"(?P<container>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<id>[0-9a-f]{64})\.log$"
)
_MAX_FILES = 100_000


def parse_log_name(name: str) -> tuple[KubernetesIdentity, str] | None:
    """``<pod>_<namespace>_<container>-<id>.log`` → (identity, container id); None for other names."""
    if len(name) > 512:
        return None
    match = _NAME.match(name)
    if match is None:
        return None
    identity = KubernetesIdentity(
        namespace=match["namespace"], pod=match["pod"], container=match["container"]
    )
    return identity, match["id"]


def find_pid_by_container_id(procfs: str, container_id: str, *, max_processes: int = 65_536) -> int | None:
    """The lowest pid whose cgroup path names ``container_id`` (read-only, bounded), else None."""
    if not re.fullmatch(r"[0-9a-f]{12,64}", container_id):
        return None
    best: int | None = None
    try:
        entries = os.listdir(procfs)  # noqa: PTH208
    except OSError:
        return None
    for count, entry in enumerate(entries):
        if count >= max_processes:
            break
        if not entry.isdigit():
            continue
        try:
            with open(f"{procfs}/{entry}/cgroup", "rb") as handle:
                text = handle.read(65_536)
        except OSError:
            continue
        if container_id.encode() in text:
            pid = int(entry)
            best = pid if best is None else min(best, pid)
    return best


class LogTailEngine:
    """:class:`~zastava.observer.engines.base.ContainerEngine` over a kubelet container-log directory."""

    name: EngineName = "logtail"
    #: names from the log directory, found by polling it; a pid only by container id in /proc/*/cgroup
    capabilities = EngineCapabilities(fidelity="reduced", events=False, pid=False, image_config=False)
    degraded = False
    fallback_reason: str | None = None

    def __init__(
        self,
        log_dir: str | os.PathLike[str] = "/var/log/containers",
        *,
        procfs: str = "/proc",
        poll_interval: float = 2.0,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.procfs = procfs
        self.poll_interval = poll_interval
        self._closed = False

    async def version(self) -> str | None:
        return None

    async def ping(self) -> None:
        """Readiness: the log directory can be listed."""
        if not os.access(self.log_dir, os.R_OK | os.X_OK) or not self.log_dir.is_dir():
            raise EngineUnavailable(f"log directory {self.log_dir} cannot be read")

    def _scan(self) -> dict[str, tuple[KubernetesIdentity, datetime | None]]:
        found: dict[str, tuple[KubernetesIdentity, datetime | None]] = {}
        try:
            names = os.listdir(self.log_dir)  # noqa: PTH208
        except OSError:
            return found
        for name in names[:_MAX_FILES]:
            parsed = parse_log_name(name)
            if parsed is None:
                continue
            identity, cid = parsed
            try:
                created = datetime.fromtimestamp(os.lstat(self.log_dir / name).st_mtime, UTC)
            except OSError:
                created = None
            found[cid] = (identity, created)
        return found

    def _info(self, cid: str, identity: KubernetesIdentity, created: datetime | None) -> ContainerInfo:
        pid = find_pid_by_container_id(self.procfs, cid)
        evidence = [
            Evidence(signal="logtail.reduced-fidelity", value=f"identity from {self.log_dir} file name")
        ]
        if pid is not None:
            evidence.append(Evidence(signal="logtail.pid-from-cgroup", value=f"pid={pid}"))
        missing = ["imageDigest", "imageRef", "entrypoint", "runtime"]
        if pid is None:
            missing.insert(0, "pid")
        return ContainerInfo(
            engine="logtail",
            id=cid,
            pid=pid,
            name=identity.container,
            kubernetes=identity,
            created=created,
            fidelity="reduced",
            evidence=tuple(evidence),
            missing=tuple(missing),
        )

    async def list_containers(self) -> list[ContainerInfo]:
        scanned = await asyncio.to_thread(self._scan)
        return [
            await asyncio.to_thread(self._info, cid, ident, created)
            for cid, (ident, created) in sorted(scanned.items())
        ]

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        scanned = await asyncio.to_thread(self._scan)
        if container_id not in scanned:
            return None
        identity, created = scanned[container_id]
        return await asyncio.to_thread(self._info, container_id, identity, created)

    def events(self) -> AsyncIterator[ContainerEvent]:
        """Polls the directory; the baseline is taken when this is called."""
        known = set(self._scan())

        async def stream() -> AsyncIterator[ContainerEvent]:
            nonlocal known
            while not self._closed:
                await asyncio.sleep(self.poll_interval)
                current = set(await asyncio.to_thread(self._scan))
                now = datetime.now(UTC)
                for cid in sorted(current - known):
                    yield ContainerEvent(kind="start", engine="logtail", id=cid, when=now, source="logtail")
                for cid in sorted(known - current):
                    yield ContainerEvent(kind="remove", engine="logtail", id=cid, when=now, source="logtail")
                known = current

        return stream()

    async def aclose(self) -> None:
        self._closed = True
