"""Schema versions of Zastava's enveloped contracts and their negotiation (spec §2.3).

A version is written ``<schema>@v<major>.<minor>``. Peers keep the major line in lockstep and use the highest
minor both support; with no overlap they fall back to the local default ``@v1.0``. A major this build does not
know is refused with :class:`UnsupportedSchemaVersion`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ADMISSION_DECISION",
    "RUNTIME_EVENT",
    "SCHEMA_VERSIONS_HEADER",
    "ContractVersionError",
    "SchemaVersion",
    "UnsupportedSchemaVersion",
    "ZastavaContractVersions",
    "versions",
]

RUNTIME_EVENT = "zastava.runtime.event"
ADMISSION_DECISION = "zastava.admission.decision"

#: HTTP header in which a peer lists the schema versions it accepts (comma separated).
SCHEMA_VERSIONS_HEADER = "Zastava-Schema-Versions"

_VERSION_RE = re.compile(r"^(?P<schema>[a-z][a-z0-9_.-]*)@v(?P<major>\d{1,4})\.(?P<minor>\d{1,4})$")


class ContractVersionError(ValueError):
    """A schema version string is malformed or names an unknown schema."""


class UnsupportedSchemaVersion(ContractVersionError):
    """The schema is known but this build does not speak that major (or that minor)."""


@dataclass(frozen=True, order=True)
class SchemaVersion:
    schema: str
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> SchemaVersion:
        if not isinstance(text, str):
            raise ContractVersionError(f"schemaVersion must be a string, got {type(text).__name__}")
        match = _VERSION_RE.match(text.strip())
        if match is None:
            raise ContractVersionError(
                f"malformed schemaVersion {text!r}: expected '<schema>@v<major>.<minor>', "
                f"e.g. '{RUNTIME_EVENT}@v1.0'"
            )
        return cls(match["schema"], int(match["major"]), int(match["minor"]))

    def __str__(self) -> str:
        return f"{self.schema}@v{self.major}.{self.minor}"


class ZastavaContractVersions:
    """The versions this build supports, and negotiation against a peer's list."""

    def __init__(self, supported: dict[str, Iterable[tuple[int, int]]]) -> None:
        self._supported: dict[str, tuple[SchemaVersion, ...]] = {
            schema: tuple(sorted(SchemaVersion(schema, major, minor) for major, minor in pairs))
            for schema, pairs in supported.items()
        }

    @property
    def schemas(self) -> tuple[str, ...]:
        return tuple(self._supported)

    def supported(self, schema: str) -> tuple[SchemaVersion, ...]:
        try:
            return self._supported[schema]
        except KeyError:
            raise ContractVersionError(
                f"unknown schema {schema!r}; known: {', '.join(sorted(self._supported))}"
            ) from None

    def default(self, schema: str) -> SchemaVersion:
        """The local default: ``@v1.0`` of the current major."""
        current = self.current(schema)
        return SchemaVersion(schema, current.major, 0)

    def current(self, schema: str) -> SchemaVersion:
        """The newest version this build writes."""
        return self.supported(schema)[-1]

    def header_value(self, schema: str | None = None) -> str:
        schemas = [schema] if schema else list(self._supported)
        return ",".join(str(v) for s in schemas for v in self.supported(s))

    def check(self, version: str | SchemaVersion, schema: str | None = None) -> SchemaVersion:
        """Validate a received version: known schema, same major, a minor we can read."""
        parsed = version if isinstance(version, SchemaVersion) else SchemaVersion.parse(version)
        if schema is not None and parsed.schema != schema:
            raise ContractVersionError(f"expected a {schema} payload, got schemaVersion {parsed}")
        local = self.supported(parsed.schema)
        majors = sorted({v.major for v in local})
        if parsed.major not in majors:
            raise UnsupportedSchemaVersion(
                f"unsupported major in schemaVersion {parsed}: this build speaks "
                f"{' '.join(f'v{m}.x' for m in majors)} of {parsed.schema}"
            )
        if parsed not in local:
            raise UnsupportedSchemaVersion(
                f"unsupported minor in schemaVersion {parsed}: supported are "
                f"{', '.join(str(v) for v in local)}"
            )
        return parsed

    def negotiate(self, schema: str, remote: Iterable[str | SchemaVersion]) -> SchemaVersion:
        """Highest minor both sides support on our major line; the local default when none overlaps.

        Unparseable entries in ``remote`` are ignored, so a peer advertising something new cannot break us.
        """
        local = self.supported(schema)
        major = local[-1].major
        theirs: set[SchemaVersion] = set()
        for item in remote:
            try:
                parsed = item if isinstance(item, SchemaVersion) else SchemaVersion.parse(item)
            except ContractVersionError:
                continue
            if parsed.schema == schema and parsed.major == major:
                theirs.add(parsed)
        common = [v for v in local if v in theirs]
        return common[-1] if common else self.default(schema)

    def negotiate_header(self, schema: str, header: str | None) -> SchemaVersion:
        """Negotiate from a peer's :data:`SCHEMA_VERSIONS_HEADER` value (absent → local default)."""
        if not header:
            return self.default(schema)
        return self.negotiate(schema, (part.strip() for part in header.split(",") if part.strip()))


#: What this build speaks. v1.1 of the runtime event appends optional fields (see ``runtime_event``).
versions = ZastavaContractVersions(
    {RUNTIME_EVENT: [(1, 0), (1, 1), (1, 2), (1, 3)], ADMISSION_DECISION: [(1, 0), (1, 1)]}
)
