"""Contract models, envelopes, schemas and examples (spec §2)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest

from zastava.contracts import (
    RUNTIME_EVENT,
    EnvelopeError,
    EventKind,
    RuntimeEvent,
    canonical_id,
    parse_admission_envelope,
    parse_runtime_envelope,
    runtime_envelope_wire,
)
from zastava.contracts.examples import CONTRACTS, example_runtime_event


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_example_validates_against_schema_and_model(name: str) -> None:
    item = CONTRACTS[name]
    example = item.example()
    jsonschema.Draft202012Validator.check_schema(item.json_schema())
    jsonschema.validate(example, item.json_schema())
    assert item.model.model_validate(example).model_dump(mode="json", by_alias=True) == example


@pytest.mark.parametrize("name", [*CONTRACTS, "runtime-event", "admission-decision"])
def test_cli_example_and_schema(name: str) -> None:
    schema = json.loads(
        subprocess.run(
            [sys.executable, "-m", "zastava", "contracts", "schema", name], capture_output=True, check=True
        ).stdout
    )
    example = json.loads(
        subprocess.run(
            [sys.executable, "-m", "zastava", "contracts", "example", name], capture_output=True, check=True
        ).stdout
    )
    jsonschema.validate(example, schema)


def test_cli_unknown_contract() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "zastava", "contracts", "schema", "nope"], capture_output=True
    )
    assert out.returncode == 2 and b"unknown contract" in out.stderr


def test_runtime_example_has_every_seed_field() -> None:
    event = CONTRACTS[RUNTIME_EVENT].example()["event"]
    for key in [
        "eventId",
        "when",
        "kind",
        "tenant",
        "node",
        "runtime",
        "workload",
        "process",
        "loadedLibs",
        "posture",
        "delta",
        "evidence",
    ]:
        assert key in event
    assert set(event["process"]) >= {"pid", "entrypoint", "entryTrace", "buildId"}
    assert set(event["workload"]) >= {
        "platform",
        "namespace",
        "pod",
        "container",
        "containerId",
        "imageRef",
        "owner",
    }
    assert set(event["posture"]) == {"imageSigned", "sbomReferrer", "attestation"}
    assert set(event["delta"]) == {"baselineImageDigest", "changedFiles", "newBinaries"}
    assert event["when"] == "2025-10-17T12:34:56Z"


def test_event_id_is_reproducible_and_covers_content() -> None:
    a = example_runtime_event()
    b = RuntimeEvent.model_validate(copy.deepcopy(a.wire()))
    assert a.event_id == b.compute_id() == a.compute_id()
    changed = a.model_copy(update={"node": "other"})
    assert changed.compute_id() != a.event_id


def _v1_0_payload() -> dict[str, Any]:
    wire = runtime_envelope_wire(example_runtime_event(), "zastava.runtime.event@v1.0")
    assert wire["schemaVersion"] == "zastava.runtime.event@v1.0"
    return wire


def test_appended_fields_keep_old_ids_stable() -> None:
    """§2.3: a v1.0 payload read by a v1.1 build and written again hashes identically."""
    old = _v1_0_payload()
    _, event = parse_runtime_envelope(old)
    assert canonical_id(event.wire()) == canonical_id(old["event"])
    assert "startTime" not in event.wire()["process"]
    assert event.wire() == old["event"]


def test_writing_v1_0_drops_appended_fields_and_refuses_new_kinds() -> None:
    event = example_runtime_event().model_copy(update={"count": 3})
    body = runtime_envelope_wire(event, "zastava.runtime.event@v1.0")["event"]
    assert "count" not in body and "terminals" not in body["process"]
    warning = event.model_copy(update={"kind": EventKind.AGENT_WARNING})
    with pytest.raises(ValueError, match="cannot be written"):
        runtime_envelope_wire(warning, "zastava.runtime.event@v1.0")


def test_exec_kind_needs_v1_3_both_ways() -> None:
    """EXEC (a process entered from outside the container) appeared in v1.3: not written below it, and a
    payload claiming an older minor with that kind is refused with the version it needs."""
    exec_event = example_runtime_event().model_copy(update={"kind": EventKind.EXEC}).with_computed_id()
    for minor in (0, 1, 2):
        with pytest.raises(ValueError, match="cannot be written"):
            runtime_envelope_wire(exec_event, f"zastava.runtime.event@v1.{minor}")
    wire = runtime_envelope_wire(exec_event, "zastava.runtime.event@v1.3")
    assert parse_runtime_envelope(wire)[1].kind is EventKind.EXEC
    wire["schemaVersion"] = "zastava.runtime.event@v1.2"
    with pytest.raises(EnvelopeError, match=r"needs zastava.runtime.event@v1.3"):
        parse_runtime_envelope(wire)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.update(schemaVersion="zastava.runtime.event@v2.0"), "unsupported major"),
        (
            lambda e: e.update(schemaVersion="zastava.admission.decision@v1.0"),
            "expected a zastava.runtime.event",
        ),
        (lambda e: e.pop("schemaVersion"), "no schemaVersion"),
        (lambda e: e.update(extra=1), "unknown envelope field"),
        (lambda e: e["event"].update(kind="EXPLODED"), "event.kind"),
        (lambda e: e["event"].update(when="2025-10-17T12:34:56"), "event.when"),
        (lambda e: e["event"]["process"].update(buildId="XYZ"), "event.process.buildId"),
        (lambda e: e["event"]["loadedLibs"][0].update(sha256="nothex"), "event.loadedLibs.0.sha256"),
        (lambda e: e["event"].update(tenatn="x"), "event.tenatn"),
        (lambda e: e.update(event=[]), "must be an object"),
    ],
)
def test_bad_envelopes_give_clear_errors(mutate: Any, message: str) -> None:
    wire = runtime_envelope_wire(example_runtime_event())
    mutate(wire)
    with pytest.raises(EnvelopeError, match=message):
        parse_runtime_envelope(wire)


def test_v1_0_envelope_with_v1_1_fields_is_refused() -> None:
    wire = runtime_envelope_wire(example_runtime_event())
    wire["schemaVersion"] = "zastava.runtime.event@v1.0"
    with pytest.raises(EnvelopeError, match=r"process.startTime.*need zastava.runtime.event@v1.1"):
        parse_runtime_envelope(wire)


def test_timestamps_normalise_to_utc() -> None:
    wire = runtime_envelope_wire(example_runtime_event())
    wire["event"]["when"] = "2025-10-17T14:34:56.250+02:00"
    _, event = parse_runtime_envelope(wire)
    assert event.wire()["when"] == "2025-10-17T12:34:56.250000Z"


def test_admission_envelope_round_trip() -> None:
    example = CONTRACTS["zastava.admission.decision"].example()
    version, decision = parse_admission_envelope(example)
    assert str(version) == "zastava.admission.decision@v1.1"
    assert decision.decision == "Allow" and decision.images[0].policy_verdict == "pass"
    bad = copy.deepcopy(example)
    bad["decision"]["decision"] = "Maybe"
    with pytest.raises(EnvelopeError, match=r"decision\.decision"):
        parse_admission_envelope(bad)


def test_timestamps_overflowing_utc_are_a_clear_error() -> None:
    wire = runtime_envelope_wire(example_runtime_event())
    wire["event"]["when"] = "9999-12-31T23:59:59-14:00"
    with pytest.raises(EnvelopeError, match=r"event\.when"):
        parse_runtime_envelope(wire)
