"""Hypothesis fuzzing of ``/admit``: whatever the body, the answer is a well-formed AdmissionReview response
(HTTP 200, the request's uid, a boolean ``allowed``, a message when denied) or an HTTP 400 — never an
exception, never a 500.

CI runs a small sample. The long-run target (≥ 100k cases per property) is
``ZASTAVA_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/unit/webhook/test_fuzz.py -p no:timeout``.
"""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zastava.webhook.app import WebhookApp

from .reviews import POD, body, pod_with, review
from .test_app import make_app

EXAMPLES = int(os.environ.get("ZASTAVA_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
images = st.one_of(
    st.sampled_from(
        ["nginx", "nginx:latest", "ghcr.io/acme/api:1", "x@sha256:" + "a" * 64, "", "UPPER", "a:b:c"]
    ),
    st.text(max_size=40),
)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def app() -> WebhookApp:
    return make_app()


def check(loop: asyncio.AbstractEventLoop, app: WebhookApp, data: bytes, timeout: str | None = None) -> None:
    status, out = loop.run_until_complete(app.admit(data, timeout))
    assert status in (200, 400)
    document = orjson.loads(out)
    if status == 400:
        assert isinstance(document["error"], str) and document["error"]
        return
    assert document["apiVersion"] == "admission.k8s.io/v1" and document["kind"] == "AdmissionReview"
    response = document["response"]
    sent = orjson.loads(data)["request"]["uid"]
    assert response["uid"] == sent
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        assert response["status"]["message"]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(_paths(item, (*prefix, index)))
    return out


BASE = review(pod_with(None, ephemeralContainers=[{"name": "dbg", "image": "busybox:1"}]), uid="fuzz-uid")
BASE_PATHS = [p for p in _paths(BASE) if p]


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(loop: asyncio.AbstractEventLoop, app: WebhookApp, data: bytes) -> None:
    check(loop, app, data)


@FUZZ
@given(json_values)
def test_arbitrary_json(loop: asyncio.AbstractEventLoop, app: WebhookApp, value: Any) -> None:
    check(loop, app, orjson.dumps(value) if _dumpable(value) else b"{}")


def _dumpable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True


@FUZZ
@given(st.data())
def test_mutated_reviews(loop: asyncio.AbstractEventLoop, app: WebhookApp, data: st.DataObject) -> None:
    document = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(BASE_PATHS))
        parent: Any = document
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = data.draw(st.sampled_from(["delete", "replace", "image"]))
            if action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif action == "image":
                parent[path[-1]] = data.draw(images)
            else:
                parent[path[-1]] = data.draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue
    if not _dumpable(document):
        return
    check(
        loop, app, orjson.dumps(document), data.draw(st.none() | st.sampled_from(["1s", "10s", "bad", "0s"]))
    )


@FUZZ
@given(st.integers(0, len(body(BASE)) - 1))
def test_truncated(loop: asyncio.AbstractEventLoop, app: WebhookApp, cut: int) -> None:
    check(loop, app, body(BASE)[:cut])


def test_pod_fixture_itself_is_allowed(loop: asyncio.AbstractEventLoop, app: WebhookApp) -> None:
    status, out = loop.run_until_complete(app.admit(body(review(POD)), None))
    assert status == 200 and orjson.loads(out)["response"]["allowed"] is True
