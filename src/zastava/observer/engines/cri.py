"""CRI v1 engine (containerd, CRI-O) over gRPC, read-only.

* Inventory: ``ListContainers`` (running), ``ContainerStatus(verbose=True)`` — its ``info["info"]`` JSON
  carries the host ``pid``, the ``sandboxID`` and the OCI runtime spec (argv, env, cwd, uid:gid) —
  ``PodSandboxStatus`` for the pod identity, ``ImageStatus(verbose=True)`` for repo digests and the image
  creation time.
* Events, best first: CRI ``GetContainerEvents`` (where implemented); else containerd's own events API
  (``/containerd.services.events.v1.Events/Subscribe`` filtered on ``/tasks/start``, ``/tasks/exit``,
  ``/containers/delete`` in the CRI namespace, stubs generated from Zastava's proto, see :mod:`.protogen`);
  else polling ``ListContainers``. ``event_source`` says which one is in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from ...contracts import Evidence
from ...registry.reference import repository_name
from ...telemetry.logging import fields
from .base import (
    FULL,
    ContainerEvent,
    ContainerInfo,
    EngineCapabilities,
    EngineName,
    EngineUnavailable,
    KubernetesIdentity,
    k8s_identity_from_labels,
    parse_timestamp,
)

__all__ = ["CriEngine", "EventSource", "probe_socket", "socket_answers"]

log = logging.getLogger("zastava.observer.engines")

EventSource = Literal["auto", "cri", "containerd", "poll"]
_UNSUPPORTED = ("UNIMPLEMENTED", "UNKNOWN")


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)  # noqa: PTH116
    except OSError:
        return False


#: a CRI runtime without an event API: everything but pushed events
_POLLED = dataclasses.replace(FULL, events=False)


class CriEngine:
    """:class:`~zastava.observer.engines.base.ContainerEngine` over a CRI v1 socket."""

    degraded = False
    fallback_reason: str | None = None

    def __init__(
        self,
        socket: str | os.PathLike[str],
        *,
        namespace: str = "k8s.io",
        poll_interval: float = 2.0,
        timeout: float = 5.0,
        event_source: EventSource = "auto",
    ) -> None:
        self.socket = str(socket)
        self.namespace = namespace
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.requested_source: EventSource = event_source
        #: the event source actually in use once :meth:`events` runs
        self.event_source: EventSource | None = None
        self.name: EngineName = "containerd"
        self._runtime_version: str | None = None
        self._channel: Any = None
        self._runtime: Any = None
        self._images: Any = None
        self._pb: Any = None
        self._closed = False
        self._image_cache: dict[str, tuple[str | None, str | None, datetime | None]] = {}

    # ------------------------------------------------------------------------------------------ plumbing

    def _connect(self) -> None:
        if self._closed:
            raise EngineUnavailable("engine closed")
        if self._channel is not None:
            return
        if not _is_socket(self.socket):
            raise EngineUnavailable(f"CRI socket {self.socket} is missing")
        import grpc
        from cri_api.v1 import api_pb2, api_pb2_grpc

        self._pb = api_pb2
        self._channel = grpc.aio.insecure_channel(f"unix://{self.socket}")
        self._runtime = api_pb2_grpc.RuntimeServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._images = api_pb2_grpc.ImageServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def _reset(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _rpc(self, method: str, request: Any, *, images: bool = False) -> Any:
        import grpc

        self._connect()
        stub = self._images if images else self._runtime
        try:
            return await getattr(stub, method)(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                await self._reset()
                raise EngineUnavailable(f"CRI {method} on {self.socket}: {exc.details()}") from exc
            raise
        except asyncio.CancelledError:
            # a concurrent call that failed reset (closed) the shared channel: grpc cancels the calls still
            # on it. That is the engine being unavailable, not this task being cancelled — raised as such, it
            # ended the agent's loops (`observer run` stopped when a readiness probe raced a timeout)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            reason = "channel reset by a failed call"
            raise EngineUnavailable(f"CRI {method} on {self.socket}: {reason}") from None

    # ----------------------------------------------------------------------------------------- inventory

    async def version(self) -> str | None:
        reply = await self._rpc("Version", self._pb_module().VersionRequest())
        runtime = str(reply.runtime_name or "").lower()
        self.name = "cri-o" if "cri-o" in runtime or runtime == "crio" else "containerd"
        self._runtime_version = str(reply.runtime_version or "") or None
        return self._runtime_version

    @property
    def capabilities(self) -> EngineCapabilities:
        """Full, but events are found by polling ``ListContainers`` when the runtime offers neither CRI nor
        containerd events (or polling was asked for)."""
        if "poll" in (self.requested_source, self.event_source):
            return _POLLED
        return FULL

    async def ping(self) -> None:
        """Readiness: CRI ``Version`` answers."""
        await self.version()

    def _pb_module(self) -> Any:
        self._connect()
        return self._pb

    async def list_containers(self) -> list[ContainerInfo]:
        pb = self._pb_module()
        if self._runtime_version is None:
            await self.version()
        reply = await self._rpc(
            "ListContainers",
            pb.ListContainersRequest(filter=pb.ContainerFilter(state=pb.ContainerStateValue(state=1))),
        )
        out = []
        for container in reply.containers:
            info = await self.inspect(str(container.id))
            if info is not None and info.running:
                out.append(info)
        return out

    async def _running_ids(self) -> set[str]:
        pb = self._pb_module()
        reply = await self._rpc("ListContainers", pb.ListContainersRequest())
        return {str(c.id) for c in reply.containers if c.state == pb.CONTAINER_RUNNING}

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        import grpc

        pb = self._pb_module()
        if self._runtime_version is None:
            await self.version()
        try:
            reply = await self._rpc(
                "ContainerStatus", pb.ContainerStatusRequest(container_id=container_id, verbose=True)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        status = reply.status
        info = _json(reply.info.get("info"))
        sandbox: Any = None
        sandbox_id = str(info.get("sandboxID") or "")
        if sandbox_id:
            with contextlib.suppress(grpc.aio.AioRpcError):
                sandbox = (
                    await self._rpc("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id))
                ).status
        image_key = str(status.image_ref or status.image.image or "")
        repo_digests, config_digest, image_created = await self._image(image_key)
        return self._container_info(status, info, sandbox, repo_digests, config_digest, image_created)

    async def _image(self, ref: str) -> tuple[str | None, str | None, datetime | None]:
        """(repo digest, image id, created) of an image, cached by reference."""
        import grpc

        if not ref:
            return None, None, None
        cached = self._image_cache.get(ref)
        if cached is not None:
            return cached
        pb = self._pb_module()
        result: tuple[str | None, str | None, datetime | None] = (None, None, None)
        with contextlib.suppress(grpc.aio.AioRpcError):
            reply = await self._rpc(
                "ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=ref), verbose=True), images=True
            )
            if reply.HasField("image"):
                digests = sorted(str(d) for d in reply.image.repo_digests)
                spec = _json(reply.info.get("info")).get("imageSpec") or {}
                result = (
                    ",".join(digests) or None,
                    str(reply.image.id or "") or None,
                    parse_timestamp(spec.get("created")),
                )
        if len(self._image_cache) > 1024:
            self._image_cache.clear()
        self._image_cache[ref] = result
        return result

    def _container_info(
        self,
        status: Any,
        info: dict[str, Any],
        sandbox: Any,
        repo_digests: str | None,
        config_digest: str | None,
        image_created: datetime | None,
    ) -> ContainerInfo:
        pb = self._pb
        labels = {str(k): str(v) for k, v in status.labels.items()}
        process = ((info.get("runtimeSpec") or {}).get("process")) or {}
        env: dict[str, str] = {}
        for item in process.get("env") or []:
            key, _, value = str(item).partition("=")
            env.setdefault(key, value)
        user = process.get("user") or {}
        user_text = f"{user.get('uid', 0)}:{user.get('gid', 0)}" if user else None
        pid = int(info.get("pid") or 0) or None
        image_ref = str(status.image.image or "") or None
        repo_digest = _pick(image_ref or "", (repo_digests or "").split(",") if repo_digests else [])
        config_digest = config_digest or (
            str(status.image_ref) if str(status.image_ref).startswith("sha256:") else None
        )
        identity = k8s_identity_from_labels(labels)
        if identity is None and sandbox is not None and sandbox.metadata.name:
            identity = KubernetesIdentity(
                namespace=str(sandbox.metadata.namespace or "default"),
                pod=str(sandbox.metadata.name),
                container=str(status.metadata.name or "") or None,
                pod_uid=str(sandbox.metadata.uid or "") or None,
            )
        missing = [n for n, v in (("pid", pid), ("repoDigest", repo_digest)) if v is None]
        evidence = [Evidence(signal="cri.container.status", value=f"pid={pid or 0}")]
        if repo_digest:
            evidence.append(Evidence(signal="cri.image.repoDigest", value=repo_digest))
        return ContainerInfo(
            engine=self.name,
            id=str(status.id),
            runtime_version=self._runtime_version,
            pid=pid,
            name=str(status.metadata.name or "") or None,
            image_ref=image_ref,
            image_digest=repo_digest.split("@", 1)[1] if repo_digest else config_digest,
            repo_digest=repo_digest,
            config_digest=config_digest,
            image_created=image_created,
            entrypoint=tuple(str(a) for a in process.get("args") or []),
            env=env,
            workdir=str(process.get("cwd") or "") or None,
            user=user_text,
            labels=labels,
            kubernetes=identity,
            created=parse_timestamp(int(status.created_at)) if status.created_at else None,
            running=status.state == pb.CONTAINER_RUNNING,
            evidence=tuple(evidence),
            missing=tuple(missing),
        )

    # -------------------------------------------------------------------------------------------- events

    async def events(self) -> AsyncIterator[ContainerEvent]:
        import grpc

        order: list[EventSource] = (
            ["cri", "containerd", "poll"] if self.requested_source == "auto" else [self.requested_source]
        )
        if self._runtime_version is None:
            await self.version()
        for source in order:
            self.event_source = source
            stream = {"cri": self._cri_events, "containerd": self._containerd_events, "poll": self._poll}[
                source
            ]
            try:
                async for event in stream():
                    yield event
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code().name in _UNSUPPORTED and source != order[-1]:
                    continue
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    await self._reset()
                    raise EngineUnavailable(f"CRI event stream on {self.socket}: {exc.details()}") from exc
                raise
            except _Unsupported:
                if source == order[-1]:
                    raise EngineUnavailable(f"no event source available on {self.socket}") from None
                continue
            except asyncio.CancelledError:
                # a unary call that failed (a deadline missed on a throttled node; the readiness probe's
                # ping) reset the shared channel, and grpc cancels the stream still on it. Raised as a
                # cancellation it ended the agent's event loop and so `observer run`: nothing was observed
                # after one slow ContainerStatus (test_agent_cri, 2 full-suite runs in 3)
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                raise EngineUnavailable(
                    f"CRI event stream on {self.socket}: channel reset by a failed call"
                ) from None

    def _subscribed(self, source: str) -> ContainerEvent:
        """Said once a stream is live: what started before it (after the agent's first list) is re-listed.
        Without it a container started in between was never observed: containerd's events are not
        replayed (Docker's ``since`` is), and the agent's first list runs while the stream is opened."""
        return ContainerEvent(
            kind="resync", engine=self.name, id="", when=datetime.now(UTC), source=f"{source}.subscribed"
        )

    async def _cri_events(self) -> AsyncIterator[ContainerEvent]:
        pb = self._pb_module()
        kinds = {
            pb.CONTAINER_STARTED_EVENT: "start",
            pb.CONTAINER_STOPPED_EVENT: "stop",
            pb.CONTAINER_DELETED_EVENT: "remove",
        }
        call = self._runtime.GetContainerEvents(pb.GetEventsRequest())
        try:
            await asyncio.sleep(0)  # the request goes out before the re-list's (see _containerd_events)
            yield self._subscribed("cri.GetContainerEvents")
            async for reply in call:
                kind = kinds.get(reply.container_event_type)
                if kind is None:
                    continue
                yield ContainerEvent(
                    kind=kind,  # type: ignore[arg-type]
                    engine=self.name,
                    id=str(reply.container_id),
                    when=parse_timestamp(int(reply.created_at)) or datetime.now(UTC),
                    source="cri.GetContainerEvents",
                )
        finally:
            call.cancel()

    async def _containerd_events(self) -> AsyncIterator[ContainerEvent]:
        from .protogen import StubsUnavailable, load_events_module

        try:
            messages = await asyncio.to_thread(load_events_module)
        except StubsUnavailable:
            raise _Unsupported() from None
        self._connect()
        subscribe = self._channel.unary_stream(
            "/containerd.services.events.v1.Events/Subscribe",
            request_serializer=messages.SubscribeRequest.SerializeToString,
            response_deserializer=messages.Envelope.FromString,
        )
        ns = self.namespace
        request = messages.SubscribeRequest(
            filters=[
                f'namespace=="{ns}",topic=="/tasks/start"',
                f'namespace=="{ns}",topic=="/tasks/exit"',
                f'namespace=="{ns}",topic=="/containers/delete"',
            ]
        )
        call = subscribe(request, metadata=(("containerd-namespace", ns),))
        try:
            # one loop turn sends the request, on the connection the re-list's calls take after it.
            # (call.wait_for_connection() cannot say more: containerd sends no headers before an event.)
            await asyncio.sleep(0)
            yield self._subscribed("containerd.events")
            async for envelope in call:
                try:
                    event = parse_containerd_envelope(messages, envelope, self.name)
                except Exception as exc:  # a malformed event payload is skipped, never fatal
                    log.warning("skipping a malformed containerd event", extra=fields(error=str(exc)[:200]))
                    continue
                if event is not None:
                    yield event
        finally:
            call.cancel()

    async def _poll(self) -> AsyncIterator[ContainerEvent]:
        known = await self._running_ids()
        yield self._subscribed("cri.poll")
        while not self._closed:
            await asyncio.sleep(self.poll_interval)
            current = await self._running_ids()
            now = datetime.now(UTC)
            for cid in sorted(current - known):
                yield ContainerEvent(kind="start", engine=self.name, id=cid, when=now, source="cri.poll")
            for cid in sorted(known - current):
                yield ContainerEvent(kind="stop", engine=self.name, id=cid, when=now, source="cri.poll")
            known = current

    async def aclose(self) -> None:
        self._closed = True
        await self._reset()


class _Unsupported(Exception):
    pass


def parse_containerd_envelope(
    messages: Any, envelope: Any, engine: EngineName = "containerd"
) -> ContainerEvent | None:
    """A containerd event envelope → :class:`ContainerEvent` (exec processes' exits are ignored)."""
    type_url = str(envelope.event.type_url)
    when = datetime.now(UTC)
    if envelope.HasField("timestamp"):
        when = envelope.timestamp.ToDatetime(tzinfo=UTC)
    if type_url.endswith("containerd.events.TaskStart"):
        start = messages.TaskStart.FromString(envelope.event.value)
        return ContainerEvent(
            kind="start",
            engine=engine,
            id=start.container_id,
            when=when,
            pid=int(start.pid) or None,
            source="containerd.events",
        )
    if type_url.endswith("containerd.events.TaskExit"):
        exit_ = messages.TaskExit.FromString(envelope.event.value)
        if exit_.id and exit_.id != exit_.container_id:
            return None  # an exec'd process exited, not the container
        return ContainerEvent(
            kind="stop",
            engine=engine,
            id=exit_.container_id,
            when=when,
            pid=int(exit_.pid) or None,
            exit_code=int(exit_.exit_status),
            source="containerd.events",
        )
    if type_url.endswith("containerd.events.ContainerDelete"):
        delete = messages.ContainerDelete.FromString(envelope.event.value)
        return ContainerEvent(
            kind="remove", engine=engine, id=delete.id, when=when, source="containerd.events"
        )
    return None


def _json(value: object) -> dict[str, Any]:
    if not isinstance(value, str) or not value or len(value) > 16 * 1024 * 1024:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _pick(image_ref: str, repo_digests: list[str]) -> str | None:
    digests = [d for d in repo_digests if "@" in d]
    if not digests:
        return None
    repo = repository_name(image_ref)  # names compared normalised (one image, several spellings)
    for digest in digests:
        if repo is not None and repository_name(digest) == repo:
            return digest
    return digests[0]


async def socket_answers(socket: str | os.PathLike[str], deadline_s: float = 2.0) -> bool:
    """True when a CRI runtime answers ``Version`` on the socket."""
    return await probe_socket(socket, deadline_s) == "answers"


async def probe_socket(
    socket: str | os.PathLike[str], deadline_s: float = 2.0
) -> Literal["answers", "slow", "absent"]:
    """What one CRI ``Version`` call on the socket says.

    ``answers``: a CRI runtime replied. ``slow``: the socket accepted the call but no reply came within
    ``deadline_s`` — a runtime that is there but busy (a throttled node at start-up), worth waiting for.
    ``absent``: no socket, nobody listening, or something that is not CRI (containerd without its CRI
    plugin answers ``UNIMPLEMENTED`` at once)."""
    import grpc

    if not _is_socket(str(socket)):
        return "absent"
    engine = CriEngine(socket, timeout=deadline_s)
    try:
        await engine.version()
        return "answers"
    except EngineUnavailable as exc:
        cause = exc.__cause__
        if isinstance(cause, grpc.aio.AioRpcError) and cause.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return "slow"
        return "absent"
    except Exception:
        return "absent"
    finally:
        await engine.aclose()
