"""The inventory's merge rule: whatever order a container's events arrive in (resends, batches out of
order), its row ends the same — newest start facts, newest stop, running from the newer of the two."""

from __future__ import annotations

import itertools
from typing import Any

from zastava.backend.inventory import ContainerFacts, event_facts, merge_container


def facts(image: str = "ghcr.io/acme/api@sha256:" + "a" * 64, terminal: str | None = None) -> ContainerFacts:
    return ContainerFacts(
        container_id="containerd://c1",
        platform="kubernetes",
        namespace="payments",
        pod="api-1",
        container="api",
        workload="Deployment/api",
        image=image,
        image_name="ghcr.io/acme/api:1",
        image_digest="sha256:" + "a" * 64,
        labels='{"app":"api"}',
        terminal=terminal,
        build_id="ab12",
        libs=4,
        posture=None,
    )


EVENTS = [
    ("CONTAINER_START", 100, facts(terminal="/usr/bin/old")),
    ("DRIFT", 150, facts()),
    ("CONTAINER_STOP", 200, facts()),
    ("CONTAINER_START", 300, facts(terminal="/usr/bin/new")),
]


def fold(order: tuple[tuple[str, int, ContainerFacts], ...]) -> dict[str, Any]:
    row: dict[str, Any] | None = None
    for kind, when, f in order:
        row = merge_container(row, f, kind, when, "node-1")
    assert row is not None
    return row


def test_any_arrival_order_gives_the_same_row() -> None:
    rows = [fold(order) for order in itertools.permutations(EVENTS)]
    assert all(row == rows[0] for row in rows)
    row = rows[0]
    assert row["running"] is True and row["started_us"] == 300 and row["stopped_us"] == 200
    assert row["terminal"] == "/usr/bin/new" and row["last_drift_us"] == 150 and row["last_seen_us"] == 300


def test_stopped_after_its_last_start() -> None:
    row = fold(tuple(EVENTS[:3]))
    assert row["running"] is False
    assert row["sort_key"].split("\x1f")[:3] == ["payments", "Deployment/api", "api-1"]


def test_agent_warnings_and_host_events_make_no_container() -> None:
    from zastava.contracts import EventKind

    warning = {
        "event_id": "e1",
        "kind": EventKind.AGENT_WARNING,
        "node": "n",
        "runtime": {"engine": "docker"},
        "workload": {"platform": "host", "container_id": "host://n"},
        "warning": {"code": "buffer.drop", "message": "full", "count": 7},
    }
    out = event_facts(warning, None, 1)
    assert out.container is None and out.warning == ("buffer.drop", "full", 7)
