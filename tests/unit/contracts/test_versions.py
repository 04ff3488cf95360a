"""Schema version parsing and negotiation (spec §2.3)."""

from __future__ import annotations

import pytest

from zastava.contracts.versions import (
    ADMISSION_DECISION,
    RUNTIME_EVENT,
    ContractVersionError,
    SchemaVersion,
    UnsupportedSchemaVersion,
    ZastavaContractVersions,
    versions,
)


def test_parse_and_format() -> None:
    v = SchemaVersion.parse("zastava.runtime.event@v1.7")
    assert (v.schema, v.major, v.minor) == (RUNTIME_EVENT, 1, 7)
    assert str(v) == "zastava.runtime.event@v1.7"


@pytest.mark.parametrize(
    "bad", ["", "zastava.runtime.event", "zastava.runtime.event@1.0", "x@v1", "@v1.0", "a@v1.0.0"]
)
def test_malformed_versions_are_refused(bad: str) -> None:
    with pytest.raises(ContractVersionError, match="malformed"):
        SchemaVersion.parse(bad)


def test_negotiation_picks_highest_common_minor_on_same_major() -> None:
    local = ZastavaContractVersions({"s": [(1, 0), (1, 1), (1, 2)]})
    assert str(local.negotiate("s", ["s@v1.0", "s@v1.1", "s@v1.5"])) == "s@v1.1"
    assert str(local.negotiate("s", ["s@v1.2", "s@v1.0"])) == "s@v1.2"


def test_negotiation_without_overlap_falls_back_to_local_default() -> None:
    local = ZastavaContractVersions({"s": [(1, 0), (1, 1)]})
    assert str(local.negotiate("s", ["s@v2.0", "s@v2.1"])) == "s@v1.0"
    assert str(local.negotiate("s", [])) == "s@v1.0"
    assert str(local.negotiate("s", ["garbage", "other@v1.1"])) == "s@v1.0"
    assert str(local.negotiate_header("s", None)) == "s@v1.0"
    assert str(local.negotiate_header("s", " s@v1.1 , s@v1.0")) == "s@v1.1"


def test_unknown_major_is_refused_with_clear_error() -> None:
    with pytest.raises(UnsupportedSchemaVersion, match=r"unsupported major.*v2\.0.*speaks v1\.x"):
        versions.check("zastava.runtime.event@v2.0")
    with pytest.raises(UnsupportedSchemaVersion, match="unsupported minor"):
        versions.check("zastava.runtime.event@v1.9")
    with pytest.raises(ContractVersionError, match="unknown schema"):
        versions.check("zastava.other@v1.0")
    with pytest.raises(ContractVersionError, match=r"expected a zastava\.admission\.decision"):
        versions.check("zastava.runtime.event@v1.0", ADMISSION_DECISION)


def test_this_build_speaks() -> None:
    assert [str(v) for v in versions.supported(RUNTIME_EVENT)] == [
        "zastava.runtime.event@v1.0",
        "zastava.runtime.event@v1.1",
        "zastava.runtime.event@v1.2",
        "zastava.runtime.event@v1.3",
    ]
    assert str(versions.default(RUNTIME_EVENT)) == "zastava.runtime.event@v1.0"
    assert str(versions.current(ADMISSION_DECISION)) == "zastava.admission.decision@v1.1"
    assert versions.header_value(RUNTIME_EVENT) == (
        "zastava.runtime.event@v1.0,zastava.runtime.event@v1.1,zastava.runtime.event@v1.2,"
        "zastava.runtime.event@v1.3"
    )
