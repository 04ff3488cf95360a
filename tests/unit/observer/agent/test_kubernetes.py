"""Kubernetes pod metadata for the observer.

The watch tests run against ``kmock``'s KubernetesEmulator — a *fake* Kubernetes API server (list/watch/create
of Pods over real HTTP) — because no kube-apiserver can run on the test machine.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zastava.observer.engines.kubernetes import PodWatcher, pod_meta_from_dict

NODE = "node-a"


def pod(
    name: str,
    namespace: str = "payments",
    node: str = NODE,
    *,
    container_id: str | None = None,
    running: bool = True,
    owner: tuple[str, str] | None = ("ReplicaSet", "api-7c9fbbd8b7"),
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": {"app": "api", "pod-template-hash": "7c9fbbd8b7"},
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "api",
                    "image": "ghcr.io/acme/api:1",
                    "livenessProbe": {"exec": {"command": ["/bin/health", "--live"]}},
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                    "startupProbe": {"exec": {"command": ["cat", "/tmp/started"]}},
                    "lifecycle": {"preStop": {"exec": {"command": ["/bin/drain"]}}},
                },
                {"name": "sidecar", "image": "busybox"},
            ],
        },
        "status": {},
    }
    if owner:
        body["metadata"]["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "x", "controller": True}
        ]
    if container_id:
        state = {"running": {"startedAt": "2026-01-01T00:00:00Z"}} if running else {"terminated": {}}
        body["status"]["containerStatuses"] = [
            {
                "name": "api",
                "containerID": container_id,
                "state": state,
                "image": "ghcr.io/acme/api:1",
                "imageID": "ghcr.io/acme/api@sha256:" + "a" * 64,
                "ready": running,
                "restartCount": 0,
            }
        ]
    return body


def test_pod_meta_declared_commands_owner_and_container_ids() -> None:
    meta = pod_meta_from_dict(pod("api-7c9fbbd8b7-ktd84", container_id="containerd://abc"))
    assert meta is not None
    assert (meta.namespace, meta.name, meta.uid, meta.node) == (
        "payments",
        "api-7c9fbbd8b7-ktd84",
        "uid-api-7c9fbbd8b7-ktd84",
        NODE,
    )
    assert (meta.owner_kind, meta.owner_name) == ("Deployment", "api")
    api = meta.containers["api"]
    assert api.declared_commands == (
        ("livenessProbe", ("/bin/health", "--live")),
        ("startupProbe", ("cat", "/tmp/started")),
        ("lifecycle.preStop", ("/bin/drain",)),
    )
    assert api.probe_programs == ("/bin/health", "cat", "/bin/drain")
    assert api.container_id == "containerd://abc" and api.running
    assert meta.containers["sidecar"].declared_commands == ()


def test_owner_kinds_other_than_replicaset_are_kept() -> None:
    meta = pod_meta_from_dict(pod("web-0", owner=("StatefulSet", "web")))
    assert meta is not None and (meta.owner_kind, meta.owner_name) == ("StatefulSet", "web")
    bare = pod_meta_from_dict(pod("bare", owner=None))
    assert bare is not None and bare.owner_kind is None


@pytest.mark.parametrize(
    "hostile",
    [
        {},
        {"metadata": None},
        {"metadata": {"name": 5}},
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [None, 3, {"name": "c", "livenessProbe": {"exec": {"command": [1, 2]}}}]},
        },
        {"metadata": {"name": "p", "ownerReferences": ["x"]}, "status": {"containerStatuses": [None]}},
    ],
)
def test_malformed_pods_never_raise(hostile: dict[str, Any]) -> None:
    meta = pod_meta_from_dict(hostile)
    if meta is not None:
        assert all(not c.declared_commands for c in meta.containers.values())


async def test_watch_against_kmock_indexes_pods_of_this_node_only(kmock: Any) -> None:
    """kmock is a fake API server: list + watch of Pods over HTTP, objects created with POST."""
    from lightkube import AsyncClient, KubeConfig

    config = KubeConfig.from_dict(
        {
            "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url)}}],
            "users": [{"name": "observer", "user": {"token": "test"}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "observer"}}],
            "current-context": "kmock",
        }
    )
    client = AsyncClient(config=config)
    watcher = PodWatcher(NODE, client=client, backoff_initial=0.05)
    await kmock.post(
        "/api/v1/namespaces/payments/pods", json=pod("before-start", container_id="containerd://c0")
    )
    task = asyncio.create_task(watcher.run())
    events = watcher.events()
    try:
        await asyncio.wait_for(watcher.synced.wait(), 10)
        assert watcher.pod("payments", "before-start") is not None
        found = watcher.by_container_id("containerd://c0")
        assert found is not None and found[1].name == "api"

        await kmock.post(
            "/api/v1/namespaces/payments/pods",
            json=pod("api-7c9fbbd8b7-ktd84", container_id="containerd://c1"),
        )
        await kmock.post("/api/v1/namespaces/other/pods", json=pod("elsewhere", "other", node="node-b"))
        meta = await watcher.wait_for("payments", "api-7c9fbbd8b7-ktd84", wait_s=10)
        assert meta is not None and meta.owner_name == "api"
        # the initial list reports what already runs, then the watch reports the new container
        initial = await asyncio.wait_for(anext(events), 10)
        assert (initial.kind, initial.id) == ("start", "c0")
        start = await asyncio.wait_for(anext(events), 10)
        assert (start.kind, start.id, start.engine, start.source) == (
            "start",
            "c1",
            "containerd",
            "kubernetes.pods",
        )
        # a pod scheduled on another node is never indexed
        assert await watcher.wait_for("other", "elsewhere", wait_s=0.5) is None
        assert {p.name for p in watcher.pods()} == {"before-start", "api-7c9fbbd8b7-ktd84"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await events.aclose()
        await watcher.aclose()


async def test_apply_tracks_running_to_terminated_as_stop_and_delete() -> None:
    watcher = PodWatcher(NODE, client=object())
    events = watcher.events()
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    await watcher.apply("ADDED", pod("p", container_id="cri-o://c9"))
    assert (await asyncio.wait_for(first, 1)).kind == "start"
    await watcher.apply("MODIFIED", pod("p", container_id="cri-o://c9", running=False))
    stop = await asyncio.wait_for(anext(events), 1)
    assert (stop.kind, stop.id, stop.engine) == ("stop", "c9", "cri-o")
    await watcher.apply("DELETED", pod("p"))
    assert watcher.pod("payments", "p") is None and watcher.by_container_id("c9") is None
    await events.aclose()


async def test_pod_metadata_engine_is_a_reduced_fidelity_engine(tmp_path: Any) -> None:
    from zastava.observer.engines.kubernetes import PodMetadataEngine

    watcher = PodWatcher(NODE, client=object())
    engine = PodMetadataEngine(watcher, procfs=str(tmp_path))
    events = engine.events()
    await watcher.apply("ADDED", pod("api-7c9fbbd8b7-ktd84", container_id="containerd://" + "e" * 64))
    [info] = await engine.list_containers()
    assert (info.engine, info.id, info.fidelity, info.pid) == ("containerd", "e" * 64, "reduced", None)
    assert info.kubernetes is not None and info.kubernetes.pod == "api-7c9fbbd8b7-ktd84"
    assert info.image_ref == "ghcr.io/acme/api:1" and "pid" in info.missing
    assert any(e.signal == "kubernetes.metadata-only" for e in info.evidence)
    assert (await engine.inspect("containerd://" + "e" * 64)) == info
    assert await engine.inspect("unknown") is None
    start = await asyncio.wait_for(anext(events), 1)
    assert (start.kind, start.id) == ("start", "e" * 64)
    await events.aclose()
