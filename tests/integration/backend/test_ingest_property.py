"""Property: whatever bad lines are mixed into an ND-JSON batch, every good envelope is stored exactly once
and every bad one is reported at its index (SQLite and real PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.events import envelope, make_event
from tests.integration.backend.conftest import AppFactory, client_for
from zastava.backend.store import Store

EVENTS = "/api/v1/scanner/runtime/events"
_counter = itertools.count()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
bad_line = st.one_of(
    st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b.strip() != b""),
    json_values.map(orjson.dumps),
    st.sampled_from(["zastava.runtime.event@v2.0", "zastava.runtime.event@v1.9", "nonsense"]).map(
        lambda v: orjson.dumps({"schemaVersion": v, "event": {}})
    ),
)


def _json_or_none(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def test_good_lines_survive_any_bad_lines(make_app: AppFactory, store: Store) -> None:
    app = make_app()

    @given(plan=st.lists(st.one_of(st.just(None), bad_line), min_size=1, max_size=25))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def check(plan: list[bytes | None]) -> None:
        lines: list[bytes] = []
        good: set[str] = set()
        bad: set[int] = set()
        for index, item in enumerate(plan):
            if item is None:
                event = make_event(next(_counter))
                good.add(event.event_id)
                lines.append(orjson.dumps(envelope(event)))
            else:
                bad.add(index)
                lines.append(item)
        before = store.count_events()

        async def post() -> dict[str, object]:
            async with client_for(app) as c:
                r = await c.post(EVENTS, content=b"\n".join(lines) + b"\n")
                assert r.status_code == (400 if not good else 202), r.text
                return r.json()  # type: ignore[no-any-return]

        data = asyncio.run(post())
        if "error" in data:  # the whole body was unreadable: only possible when it held no good line
            assert not good and store.count_events() == before
            return
        assert data["accepted"] == len(good)
        whole = _json_or_none(b"\n".join(lines))
        if isinstance(whole, list):
            # a lone bad line that is itself a JSON array is the array form: one rejection per element
            assert not good
            bad = set(range(len(whole)))
        assert {rej["index"] for rej in data["rejected"]} == bad  # type: ignore[attr-defined]
        assert store.count_events() == before + len(good)

    check()
