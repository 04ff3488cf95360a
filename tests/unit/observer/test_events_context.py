"""What the observer puts in an event's workload for admission replay (runtime event v1.2): the labels the
gates match on, sent with CONTAINER_START only, and the image as the workload names it."""

from __future__ import annotations

from datetime import UTC, datetime

from zastava.contracts import EventKind, parse_runtime_envelope, runtime_envelope_wire
from zastava.observer.engines.base import ContainerInfo
from zastava.observer.events import context_for

DIGEST = "sha256:" + "c" * 64
WHEN = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def info(image_ref: str = "zastava-demo/app:1") -> ContainerInfo:
    return ContainerInfo(
        engine="docker", id="a" * 64, pid=10, name="web", image_ref=image_ref, image_digest=DIGEST
    )


def test_labels_only_on_start_and_the_image_name_beside_the_digest() -> None:
    ctx = context_for(info(), tenant="t", node="n", labels={"app": "web", "env": "prod"})
    start = ctx.event(EventKind.CONTAINER_START, when=WHEN)
    stop = ctx.event(EventKind.CONTAINER_STOP, when=WHEN)
    assert start.workload.labels == {"app": "web", "env": "prod"}
    assert stop.workload.labels is None
    assert start.workload.image_ref is not None and start.workload.image_ref.endswith(
        f"zastava-demo/app@{DIGEST}"
    )
    assert start.workload.image_name == "zastava-demo/app:1"
    # the wire round trip keeps them at v1.2, and writing for a v1.1 peer drops them
    version, parsed = parse_runtime_envelope(runtime_envelope_wire(start, "zastava.runtime.event@v1.2"))
    assert str(version) == "zastava.runtime.event@v1.2" and parsed.workload.labels == {
        "app": "web",
        "env": "prod",
    }
    old = runtime_envelope_wire(start, "zastava.runtime.event@v1.1")
    assert "labels" not in old["event"]["workload"] and "imageName" not in old["event"]["workload"]
    parse_runtime_envelope(old)


def test_no_image_name_when_the_engine_only_knows_an_id() -> None:
    ctx = context_for(info(image_ref=DIGEST), tenant="t", node="n")
    assert ctx.event(EventKind.CONTAINER_START, when=WHEN).workload.image_name is None
