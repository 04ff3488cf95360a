"""The ASGI surface driven directly through the ASGI interface (no server), and malformed input."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.harness.webhook_starlette import starlette_app
from zastava.config import ZastavaConfig
from zastava.telemetry import ZastavaMetrics
from zastava.webhook.admitter import Admitter
from zastava.webhook.app import WebhookApp, query_timeout
from zastava.webhook.review import ReviewError, parse_review

from .reviews import body, review
from .test_admitter import Policy


def make_app(**webhook: Any) -> WebhookApp:
    config = ZastavaConfig(admission={"failOpenNamespaces": ["dev"]}, webhook=webhook)
    metrics = ZastavaMetrics()
    return WebhookApp(
        Admitter(config, policy=Policy(), metrics=metrics),
        metrics=metrics,
        max_body_bytes=config.webhook.max_body_bytes,
    )


async def call(
    app: Any, method: str, path: str, chunks: list[bytes] | None = None, query: bytes = b""
) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"content-type", b"application/json")],
        "scheme": "https",
        "server": ("127.0.0.1", 8443),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
    }
    pending = list(chunks or [b""])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, data


@pytest.fixture(params=["raw", "starlette"])
def asgi(request: pytest.FixtureRequest) -> tuple[WebhookApp, Any]:
    app = make_app(maxBodyBytes=64 * 1024)
    return app, (app if request.param == "raw" else starlette_app(app))


async def test_admit_in_chunks(asgi: tuple[WebhookApp, Any]) -> None:
    _, app = asgi
    data = body(review())
    status, out = await call(app, "POST", "/admit", [data[:100], data[100:2000], data[2000:]], b"timeout=5s")
    assert status == 200 and orjson.loads(out)["response"]["allowed"] is True


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"", 400),
        (b"{", 400),
        (b"null", 400),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}', 400),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', 400),
        (b"\xff\xfe\x00garbage", 400),
    ],
)
async def test_malformed_bodies_are_400(asgi: tuple[WebhookApp, Any], payload: bytes, status: int) -> None:
    _, app = asgi
    got, out = await call(app, "POST", "/admit", [payload])
    assert got == status and "error" in orjson.loads(out)


async def test_truncated_review_at_every_offset_is_400(asgi: tuple[WebhookApp, Any]) -> None:
    _, app = asgi
    data = body(review())
    for cut in range(0, len(data) - 1, 97):
        status, _ = await call(app, "POST", "/admit", [data[:cut]])
        assert status == 400


async def test_missing_fields_answer_an_admission_review(asgi: tuple[WebhookApp, Any]) -> None:
    _, app = asgi
    for field in ("kind", "resource", "operation"):
        document = review(uid="u-1")
        del document["request"][field]
        status, out = await call(app, "POST", "/admit", [body(document)])
        response = orjson.loads(out)["response"]
        assert status == 200 and response["uid"] == "u-1" and response["allowed"] is False
        assert response["status"]["code"] == 400 and field in response["status"]["message"]


async def test_oversized_body_is_413(asgi: tuple[WebhookApp, Any]) -> None:
    _, app = asgi
    status, _ = await call(app, "POST", "/admit", [b"x" * 40_000, b"x" * 40_000])
    assert status == 413


async def test_internal_error_is_not_a_500() -> None:
    app = make_app()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("bug")

    app.admitter.review = broken  # type: ignore[method-assign]
    status, out = await call(app, "POST", "/admit", [body(review(namespace="payments"))])
    response = orjson.loads(out)["response"]
    assert (
        status == 200 and response["allowed"] is False and "internal error" in response["status"]["message"]
    )
    status, out = await call(app, "POST", "/admit", [body(review(namespace="dev"))])
    assert orjson.loads(out)["response"]["allowed"] is True


async def test_probes_and_metrics(asgi: tuple[WebhookApp, Any]) -> None:
    webhook, app = asgi
    assert await call(app, "GET", "/healthz") == (200, b"ok\n")
    assert (await call(app, "GET", "/readyz"))[0] == 200
    webhook.ready = lambda: False
    assert (await call(app, "GET", "/readyz"))[0] == 503
    await call(app, "POST", "/admit", [body(review(operation="DELETE"))])
    status, text = await call(app, "GET", "/metrics")
    assert status == 200 and b'zastava_admission_decisions_total{decision="skip"} 1.0' in text


def test_query_timeout() -> None:
    assert query_timeout(b"timeout=7s") == "7s"
    assert query_timeout(b"a=1&timeout=1m") == "1m"
    assert query_timeout(b"") is None and query_timeout(b"x=1") is None


def test_parse_review_ignores_fields_a_newer_api_server_adds() -> None:
    document = review()
    document["request"]["futureField"] = {"x": 1}
    document["futureTop"] = 1
    assert parse_review(body(document)).request.uid == document["request"]["uid"]
    with pytest.raises(ReviewError, match="operation"):
        bad = review()
        bad["request"]["operation"] = "PATCH"
        parse_review(body(bad))


def test_the_pod_must_be_a_json_object_and_is_kept_as_sent() -> None:
    """``object``/``oldObject``/``options`` are type-checked, not walked: a list or a string is refused by
    name, and the Pod reaches the admitter as the very dict the parser built."""
    for field in ("object", "oldObject", "options"):
        for wrong in ([{"spec": {}}], "pod", 1):
            document = review()
            document["request"][field] = wrong
            with pytest.raises(ReviewError, match=f"request.{field}.*JSON object"):
                parse_review(body(document))
    document = review()
    document["request"]["object"]["metadata"]["annotations"] = {"nested": [[{"deep": [1, 2.5, None]}]]}
    parsed = parse_review(body(document)).request.object
    assert parsed == document["request"]["object"]
