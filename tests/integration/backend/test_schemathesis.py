"""Property-based API test: schemathesis drives ``/openapi.json`` in-process against the ASGI app, on SQLite
and on real PostgreSQL (where column limits and NUL characters would surface as 5xx). No response may be a
server error, and every response must match the documented status codes and schemas.

The operations are driven with hypothesis directly (``operation.as_strategy()``) because schemathesis' pytest
fixture loader does not run on this pytest; the bound is ``max_examples`` per operation.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.integration.backend.conftest import AppFactory

MAX_EXAMPLES = 15


def test_api_has_no_server_errors(make_app: AppFactory) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", make_app())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(
                checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
            )

        check()
