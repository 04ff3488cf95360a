"""The ingest path's typed event dicts name exactly the fields of the contract models they stand for, so a
field added to (or dropped from) the runtime-event contract cannot go unnoticed by the backend's types."""

from __future__ import annotations

from typing import get_type_hints

import pytest
from pydantic import BaseModel

from zastava.backend import event_fields as f
from zastava.backend.fastpath import fast_runtime_envelope
from zastava.contracts import runtime_envelope_wire
from zastava.contracts import runtime_event as contract
from zastava.contracts.examples import example_runtime_event


@pytest.mark.parametrize(
    ("fields", "model"),
    [
        (f.EventFields, contract.RuntimeEvent),
        (f.WorkloadFields, contract.Workload),
        (f.OwnerFields, contract.Owner),
        (f.ProcessFields, contract.Process),
        (f.LoadedLibFields, contract.LoadedLib),
        (f.RuntimeInfoFields, contract.RuntimeInfo),
        (f.PostureFields, contract.Posture),
        (f.AttestationFields, contract.Attestation),
        (f.AgentWarningFields, contract.AgentWarning),
    ],
)
def test_typed_dict_names_the_model_fields(fields: type, model: type[BaseModel]) -> None:
    assert set(get_type_hints(fields)) == set(model.model_fields)
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    assert fields.__required_keys__ == required  # type: ignore[attr-defined]


def test_the_fast_path_returns_those_fields() -> None:
    envelope = runtime_envelope_wire(example_runtime_event())
    fast = fast_runtime_envelope(envelope)
    assert fast is not None
    _, event, _ = fast
    assert set(event) <= set(get_type_hints(f.EventFields))
    assert set(event["workload"]) <= set(get_type_hints(f.WorkloadFields))
