"""observer/events.py is the one place the observer builds a RuntimeEvent (issue 20): the agent, drift
detection and the publisher's gap warning go through ``EventContext.event``, so what the observer sends
changes in one module. Checked on the source (a call to ``RuntimeEvent(...)`` anywhere else fails), and the
builder's output for an observer warning is the contract's own."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import zastava.observer
from zastava.contracts import AgentWarning, EventKind, RuntimeEvent, RuntimeInfo, Workload
from zastava.observer.events import observer_context

OBSERVER = Path(zastava.observer.__file__).parent


def _constructs_runtime_event(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "RuntimeEvent")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "RuntimeEvent")
        )
    ]


def test_only_events_py_constructs_runtime_events() -> None:
    found = {
        str(path.relative_to(OBSERVER)): lines
        for path in sorted(OBSERVER.rglob("*.py"))
        if (lines := _constructs_runtime_event(path))
    }
    assert found == {"events.py": found.get("events.py", [])}
    assert found["events.py"], "events.py no longer builds events: update this test's idea of the builder"


def test_the_check_sees_a_construction(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from zastava import contracts\ne = contracts.RuntimeEvent(event_id='x')\n")
    assert _constructs_runtime_event(probe) == [2]


def test_observer_warning_is_the_contracts_event() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    warning = AgentWarning(code="buffer.drop", message="dropped 3", count=3)
    built = observer_context(tenant="t", node="n", engine="docker", container_id="host://n").event(
        EventKind.AGENT_WARNING, when=when, warning=warning
    )
    direct = RuntimeEvent(
        event_id="pending",
        when=when,
        kind=EventKind.AGENT_WARNING,
        tenant="t",
        node="n",
        runtime=RuntimeInfo(engine="docker"),
        workload=Workload(platform="host", container_id="host://n"),
        warning=warning,
    ).with_computed_id()
    assert built.wire() == direct.wire() and built.event_id == direct.event_id
