"""Docker engine through the ``docker`` SDK (blocking; every call runs in a worker thread).

Events: ``start`` → start, ``die`` → stop, ``destroy`` → remove. Inspect: ``State.Pid`` (host pid),
``Config.Entrypoint + Config.Cmd`` (the argv the container was started with), ``.Image`` (config digest)
and the image's ``RepoDigests`` (manifest digest once the image was pushed to / pulled from a registry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from ...contracts import Evidence
from ...registry.reference import repository_name
from ...telemetry.logging import fields
from .base import (
    FULL,
    ContainerEvent,
    ContainerInfo,
    EngineName,
    EngineUnavailable,
    k8s_identity_from_labels,
    parse_timestamp,
)

__all__ = ["DockerEngineClient"]

log = logging.getLogger("zastava.observer.engines")

_EVENT_KINDS = {"start": "start", "die": "stop", "destroy": "remove", "exec_start": "exec"}
_QUEUE_MAX = 10_000


class DockerEngineClient:
    """The :class:`~zastava.observer.engines.base.ContainerEngine` for a Docker daemon at ``base_url``."""

    name: EngineName = "docker"
    capabilities = FULL
    degraded = False
    fallback_reason: str | None = None

    def __init__(self, base_url: str = "unix:///var/run/docker.sock", *, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._client: Any = None
        self._version: str | None = None
        self._image_cache: dict[str, dict[str, Any]] = {}
        self._streams: list[Any] = []
        self._closed = threading.Event()
        #: events lost to a full queue (the stream then yields ``resync``)
        self.dropped = 0

    def _api(self) -> Any:
        if self._client is None:
            import docker

            if self.base_url.startswith("unix://") and not _is_socket(self.base_url.removeprefix("unix://")):
                raise EngineUnavailable(f"docker socket {self.base_url} is missing")

            self._client = docker.APIClient(base_url=self.base_url, timeout=self.timeout, version="auto")
        return self._client

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import docker.errors
        import requests

        def run() -> Any:
            return fn(self._api(), *args, **kwargs)

        try:
            return await asyncio.to_thread(run)
        except docker.errors.NotFound:
            raise
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            self._client = None
            raise EngineUnavailable(f"docker at {self.base_url}: {exc}") from exc

    async def version(self) -> str | None:
        if self._version is None:
            info = await self._call(lambda api: api.version())
            self._version = str(info.get("Version") or "") or None
        return self._version

    async def ping(self) -> None:
        """One round trip to the daemon (readiness); :class:`EngineUnavailable` when it does not answer."""
        await self._call(lambda api: api.ping())

    async def list_containers(self) -> list[ContainerInfo]:
        rows = await self._call(lambda api: api.containers(filters={"status": "running"}))
        out = []
        for row in rows:
            info = await self.inspect(str(row["Id"]))
            if info is not None and info.running:
                out.append(info)
        return out

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        import docker.errors

        try:
            data = await self._call(lambda api: api.inspect_container(container_id))
        except docker.errors.NotFound:
            return None
        image_id = str(data.get("Image") or "") or None
        image: dict[str, Any] = {}
        if image_id:
            image = self._image_cache.get(image_id) or {}
            if not image:
                with contextlib.suppress(docker.errors.NotFound):
                    image = await self._call(lambda api: api.inspect_image(image_id))
                    if len(self._image_cache) > 1024:
                        self._image_cache.clear()
                    self._image_cache[image_id] = image
        return container_info(data, image, await self.version())

    async def events(self) -> AsyncIterator[ContainerEvent]:
        """Docker's event stream, read by a thread into a bounded queue."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ContainerEvent | BaseException | None] = asyncio.Queue(_QUEUE_MAX)
        since = datetime.now(UTC)
        try:
            stream = await self._call(
                lambda api: api.events(
                    decode=True,
                    since=since,
                    filters={"type": "container", "event": list(_EVENT_KINDS)},
                )
            )
        except EngineUnavailable:
            raise
        self._streams.append(stream)

        overflow = False

        def put(item: ContainerEvent | BaseException | None) -> None:
            nonlocal overflow
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                self.dropped += 1
                overflow = True

        def reader() -> None:
            try:
                for raw in stream:
                    event = parse_event(raw)
                    if event is not None:
                        loop.call_soon_threadsafe(put, event)
                loop.call_soon_threadsafe(put, None)
            except BaseException as exc:
                if not self._closed.is_set():
                    loop.call_soon_threadsafe(put, EngineUnavailable(f"docker event stream: {exc}"))
                else:
                    loop.call_soon_threadsafe(put, None)

        thread = threading.Thread(target=reader, name="zastava-docker-events", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    if self._closed.is_set():
                        return
                    raise EngineUnavailable("docker event stream ended")
                if isinstance(item, BaseException):
                    raise item
                yield item
                if overflow and queue.empty():
                    # events were dropped while the consumer was behind: have it re-list instead
                    overflow = False
                    log.warning(
                        "docker event queue overflowed; resyncing", extra=fields(dropped=self.dropped)
                    )
                    yield ContainerEvent(
                        kind="resync",
                        engine="docker",
                        id="",
                        when=datetime.now(UTC),
                        source="docker.events.overflow",
                    )
        finally:
            with contextlib.suppress(Exception):
                stream.close()
            with contextlib.suppress(ValueError):
                self._streams.remove(stream)

    async def aclose(self) -> None:
        self._closed.set()
        for stream in list(self._streams):
            with contextlib.suppress(Exception):
                stream.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)  # noqa: PTH116
    except OSError:
        return False


def parse_event(raw: Any) -> ContainerEvent | None:
    if not isinstance(raw, dict) or raw.get("Type", "container") != "container":
        return None
    action = str(raw.get("Action") or raw.get("status") or "")
    # "exec_start: /bin/sh -c wget …": the command follows the action (a docker exec or a health check)
    action, _, command = action.partition(": ")
    kind = _EVENT_KINDS.get(action)
    container_id = str((raw.get("Actor") or {}).get("ID") or raw.get("id") or "")
    if kind is None or not container_id:
        return None
    nanos = raw.get("timeNano")
    when = parse_timestamp(int(nanos)) if nanos else parse_timestamp(raw.get("time"))
    attributes = (raw.get("Actor") or {}).get("Attributes") or {}
    exit_code = attributes.get("exitCode")
    return ContainerEvent(
        kind=kind,  # type: ignore[arg-type]
        engine="docker",
        id=container_id,
        when=when or datetime.now(UTC),
        exit_code=int(exit_code) if isinstance(exit_code, str) and exit_code.isdigit() else None,
        source="docker.events",
        command=command[:4096] if kind == "exec" else None,
    )


def _pick_repo_digest(config_image: str, repo_digests: list[str]) -> str | None:
    """The repo digest of the repository the container was started from (names compared normalised:
    docker reports ``nginx@sha256:…`` for ``docker.io/library/nginx:1``), else the first."""
    if not repo_digests:
        return None
    repo = repository_name(config_image)
    for digest in repo_digests:
        if repo is not None and repository_name(digest) == repo:
            return digest
    return sorted(repo_digests)[0]


def container_info(data: dict[str, Any], image: dict[str, Any], version: str | None) -> ContainerInfo:
    """``docker inspect`` of a container (and of its image) → :class:`ContainerInfo`."""
    config = data.get("Config") or {}
    state = data.get("State") or {}
    labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        env.setdefault(key, value)
    argv = [str(a) for a in (config.get("Entrypoint") or [])] + [str(a) for a in (config.get("Cmd") or [])]
    config_digest = str(data.get("Image") or "") or None
    image_ref = str(config.get("Image") or "") or None
    repo_digest = _pick_repo_digest(image_ref or "", [str(d) for d in image.get("RepoDigests") or []])
    pid = int(state.get("Pid") or 0) or None
    missing = []
    if pid is None:
        missing.append("pid")
    if repo_digest is None:
        missing.append("repoDigest")
    evidence = [Evidence(signal="docker.inspect", value=f"pid={pid or 0}")]
    if config_digest:
        evidence.append(Evidence(signal="docker.image", value=f"config={config_digest}"))
    if repo_digest:
        evidence.append(Evidence(signal="docker.image.repoDigest", value=repo_digest))
    return ContainerInfo(
        engine="docker",
        id=str(data.get("Id") or ""),
        runtime_version=version,
        pid=pid,
        name=str(data.get("Name") or "").lstrip("/") or None,
        image_ref=image_ref,
        image_digest=repo_digest.split("@", 1)[1] if repo_digest else config_digest,
        repo_digest=repo_digest,
        config_digest=config_digest,
        image_created=parse_timestamp(image.get("Created")),
        entrypoint=tuple(argv),
        env=env,
        workdir=str(config.get("WorkingDir") or "") or None,
        user=str(config.get("User") or "") or "0",  # an empty User is root, as Docker runs it
        labels=labels,
        kubernetes=k8s_identity_from_labels(labels),
        created=parse_timestamp(data.get("Created")),
        running=bool(state.get("Running")),
        evidence=tuple(evidence),
        missing=tuple(missing),
        exposed_ports=_exposed_ports(config.get("ExposedPorts")),
        healthcheck=_healthcheck(config.get("Healthcheck")),
    )


def _exposed_ports(value: Any) -> frozenset[int]:
    """``{"8080/tcp": {}, "53/udp": {}}`` → {8080, 53}; malformed keys are ignored."""
    out: set[int] = set()
    for key in value or {} if isinstance(value, dict) else {}:
        port = str(key).split("/", 1)[0]
        if port.isdigit() and 0 < int(port) < 65536:
            out.add(int(port))
    return frozenset(out)


def _healthcheck(value: Any) -> tuple[str, ...]:
    """Docker's ``Healthcheck.Test``: ``["CMD", argv…]``; ``["CMD-SHELL", cmd]`` runs ``/bin/sh -c``."""
    test = value.get("Test") if isinstance(value, dict) else None
    if not isinstance(test, list) or len(test) < 2:
        return ()
    if test[0] == "CMD":
        return tuple(str(a) for a in test[1:])
    if test[0] == "CMD-SHELL":
        return ("/bin/sh", "-c", str(test[1]))
    return ()
