"""Image references through the webhook's entry points: one reference model (``zastava.registry.reference``)
for images and for the allow/deny patterns, so no spelling of a denied image or a banned tag is admitted.

Every review goes through the ASGI app (:class:`WebhookApp`, what ``zastava webhook serve`` runs) and through
``zastava webhook review`` (the typer command, in process). No backend is configured and the namespace is
fail-open (``review --no-backend``): an image that no local gate denies is admitted "fail-open", so a deny
can only come from the reference gates under test (no fake policy source is involved).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from zastava.config import ZastavaConfig, load_config
from zastava.telemetry import ZastavaMetrics
from zastava.webhook.admitter import Admitter
from zastava.webhook.app import WebhookApp

from .reviews import body, pod_with, review
from .test_app import call

DIGEST = "sha256:" + "c" * 64
DENIED = ["docker.io/library/nginx", "evil.io"]
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def make_app(**admission: Any) -> WebhookApp:
    config = ZastavaConfig(
        admission={"failOpenNamespaces": ["dev"], "resolveTags": False, **admission},
    )
    return WebhookApp(Admitter(config, policy=None, metrics=ZastavaMetrics()))


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def admit(loop: asyncio.AbstractEventLoop, app: WebhookApp, image: str) -> dict[str, Any]:
    document = review(pod_with({"app": image}), namespace="dev")
    status, out = loop.run_until_complete(call(app, "POST", "/admit", [body(document)]))
    assert status == 200, out
    return dict(orjson.loads(out)["response"])


def message(response: dict[str, Any]) -> str:
    return str((response.get("status") or {}).get("message", ""))


# ------------------------------------------------------------------------------ the reproduction


@pytest.mark.parametrize(
    "image",
    [
        "docker.io/nginx:1.25",
        "index.docker.io/library/nginx:1.25",
        "docker.io:443/library/nginx:1.25",
        "registry-1.docker.io/nginx:1.25",
        "nginx:1.25",
        "Docker.IO/library/nginx:1.25",
        f"nginx:1.25@{DIGEST}",
        "evil.io:443/x:1",
        "EVIL.io/x:1",
        "evil.io:5000/x:1",
    ],
)
def test_denylisted_images_are_denied_however_spelled(loop: asyncio.AbstractEventLoop, image: str) -> None:
    response = admit(loop, make_app(registryDenylist=DENIED), image)
    assert response["allowed"] is False, response
    assert response["status"]["code"] == 403 and "is denied" in message(response)
    assert response["auditAnnotations"]["decision"] == "deny"


@pytest.mark.parametrize(
    "image", ["docker.io/library/nginx-unprivileged:1", "docker.io/nginxinc/nginx:1", "evil.io.example/x:1"]
)
def test_neighbours_of_a_denied_name_are_not_denied(loop: asyncio.AbstractEventLoop, image: str) -> None:
    response = admit(loop, make_app(registryDenylist=DENIED), image)
    assert response["allowed"] is True and response["auditAnnotations"]["decision"] == "fail-open"


@pytest.mark.parametrize(
    "pattern",
    ["docker.io/nginx", "index.docker.io/library/nginx", "Docker.io:443/nginx", "nginx", "library/nginx"],
)
def test_patterns_are_normalised_like_images(loop: asyncio.AbstractEventLoop, pattern: str) -> None:
    response = admit(loop, make_app(registryDenylist=[pattern]), "docker.io/library/nginx:1.25")
    assert response["allowed"] is False and "is denied" in message(response)


@pytest.mark.parametrize(
    ("image", "error"),
    [
        ("ghcr.io/acme/api/:1", "invalid repository"),
        ("ghcr.io//acme/api:1", "invalid repository"),
        ("ghcr.io/Acme/api:1", "lowercase"),
        (f"ghcr.io/acme/api@sha256:{'C' * 64}", "invalid digest"),
        ("ghcr.io/acme/api@sha256:abc", "invalid digest"),
        ("ghcr.io/acme/api:1 ", "whitespace"),
        ("ghcr.io/acme/ api:1", "whitespace"),
        ("ghcr.io:0443/acme/api:1", "port"),
        ("ghcr.io:99999/acme/api:1", "port"),
        ("ghcr.io/acme/api:", "invalid tag"),
        ("evil.io./x:1", "invalid registry host"),
    ],
)
def test_odd_spellings_are_a_clear_error(loop: asyncio.AbstractEventLoop, image: str, error: str) -> None:
    response = admit(loop, make_app(), image)
    assert response["allowed"] is False and response["status"]["code"] == 403
    assert "invalid image reference" in message(response) and error in message(response), message(response)


# --------------------------------------------------------------------------- spellings (property tests)


def _case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(ch.upper() if flip else ch for ch, flip in zip(text, flips, strict=True))


@st.composite
def hub_spellings(draw: st.DrawFn, repository: str, tag: str | None) -> str:
    """A spelling of ``docker.io/library/<repository>[:tag]``: every Hub alias, any host case, ``:443``,
    with or without ``library/``, with or without a digest (a digest never un-denies a name)."""
    host = draw(st.sampled_from([None, "docker.io", "index.docker.io", "registry-1.docker.io"]))
    path = draw(st.sampled_from([repository, f"library/{repository}"]))
    out = path
    if host is not None:
        host = _case(draw, host) + draw(st.sampled_from(["", ":443"]))
        out = f"{host}/{path}"
    if tag is not None:
        out += f":{tag}"
    return out


@st.composite
def host_spellings(draw: st.DrawFn, host: str, path: str) -> str:
    """A spelling of ``<host>/<path>:<tag>``: any host case and any port (a denied host is denied on all)."""
    port = draw(st.sampled_from(["", ":443", ":80", ":5000", ":8443"]))
    tag = draw(st.sampled_from(["1", "v2.0", "latest"]))
    return f"{_case(draw, host)}{port}/{path}:{tag}"


@st.composite
def denylist_patterns(draw: st.DrawFn) -> list[str]:
    """The denylist spelled in any equivalent way."""
    nginx = draw(
        st.sampled_from(
            [
                "docker.io/library/nginx",
                "docker.io/nginx",
                "index.docker.io/nginx",
                "registry-1.docker.io:443/library/nginx",
                "nginx",
                "library/nginx",
            ]
        )
    )
    evil = draw(st.sampled_from(["evil.io", "evil.io:443"]))
    host, slash, path = nginx.partition("/")
    if "." in host:  # the host is case-insensitive; repositories are lowercase
        nginx = _case(draw, host) + slash + path
    return [nginx, _case(draw, evil)]


@PROPERTY
@given(
    patterns=denylist_patterns(),
    image=st.one_of(
        hub_spellings("nginx", "1.25"),
        hub_spellings("nginx", None),
        hub_spellings("nginx", f"1.25@{DIGEST}"),
        host_spellings("evil.io", "x"),
        host_spellings("evil.io", "team/x"),
    ),
)
def test_no_spelling_bypasses_the_denylist(
    loop: asyncio.AbstractEventLoop, patterns: list[str], image: str
) -> None:
    response = admit(loop, make_app(registryDenylist=patterns, bannedTags=[]), image)
    assert response["allowed"] is False, (patterns, image, response)
    assert "is denied" in message(response), (patterns, image, message(response))


@st.composite
def latest_spellings(draw: st.DrawFn) -> str:
    """``:latest`` written out, in any case, or implied by leaving the tag off."""
    repository = draw(st.sampled_from(["ghcr.io/acme/api", "nginx", "docker.io/library/redis"]))
    tag = draw(st.sampled_from([None, "latest"]))
    return repository if tag is None else f"{repository}:{_case(draw, tag)}"


@PROPERTY
@given(
    image=latest_spellings(),
    banned=st.sampled_from([["latest"], ["LATEST"], ["Latest", "edge"]]),
    deny_untagged=st.booleans(),
)
def test_no_spelling_bypasses_a_tag_ban(
    loop: asyncio.AbstractEventLoop, image: str, banned: list[str], deny_untagged: bool
) -> None:
    response = admit(loop, make_app(bannedTags=banned, denyUntagged=deny_untagged), image)
    assert response["allowed"] is False, (image, banned, response)
    assert "banned" in message(response) or "no tag" in message(response), message(response)


@PROPERTY
@given(
    image=st.one_of(hub_spellings("nginx", "1.25"), host_spellings("ghcr.io", "acme/api")),
    pattern=st.sampled_from(["ghcr.io/acme", "GHCR.io:443/acme", "docker.io/nginx", "index.docker.io/nginx"]),
)
def test_allowlist_admits_every_spelling_of_an_allowed_image_and_nothing_else(
    loop: asyncio.AbstractEventLoop, image: str, pattern: str
) -> None:
    response = admit(loop, make_app(registryAllowlist=[pattern], bannedTags=[]), image)
    allowed_hub = "nginx" in pattern.lower()
    listed = ("nginx" in image) == allowed_hub and not any(
        f":{port}/" in image for port in ("80", "5000", "8443")
    )
    if listed:
        assert response["allowed"] is True, (pattern, image, message(response))
    else:
        assert response["allowed"] is False and "not in the registry allowlist" in message(response)


# ------------------------------------------------------------------------ ``zastava webhook review`` CLI

runner = CliRunner()


def write_config(path: Path, **admission: Any) -> Path:
    data = {
        "zastava": {
            "admission": {"failOpenNamespaces": ["dev"], "resolveTags": False, **admission},
        }
    }
    path.write_text(yaml.safe_dump(data))
    load_config(path)  # the file is a valid configuration
    return path


def cli_review(config: Path, image: str, tmp: Path) -> tuple[int, dict[str, Any]]:
    from zastava.cli import app

    source = tmp / "review.json"
    source.write_bytes(body(review(pod_with({"app": image}), namespace="dev")))
    result = runner.invoke(app, ["webhook", "review", str(source), "--config", str(config), "--no-backend"])
    return result.exit_code, dict(orjson.loads(result.stdout)["response"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=st.one_of(hub_spellings("nginx", "1.25"), host_spellings("evil.io", "x"), latest_spellings()))
def test_cli_review_denies_every_spelling(tmp_path: Path, image: str) -> None:
    config = write_config(tmp_path / "z.yaml", registryDenylist=["docker.io/nginx", "evil.io"])
    code, response = cli_review(config, image, tmp_path)
    assert code == 1 and response["allowed"] is False, (image, response)
    text = message(response)
    assert "is denied" in text or "banned" in text or "no tag" in text, text


def test_cli_review_admits_the_neighbour(tmp_path: Path) -> None:
    config = write_config(tmp_path / "z.yaml", registryDenylist=["docker.io/nginx", "evil.io"])
    code, response = cli_review(config, "docker.io/nginxinc/nginx-unprivileged:1.25", tmp_path)
    assert code == 0 and response["auditAnnotations"]["decision"] == "fail-open"
