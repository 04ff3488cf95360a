"""Tag resolution by the real ``zastava.registry.RegistryClient`` (through :class:`RegistryTagResolver`)
against the real distribution registry fixture, and registry throttling.

The policy backend here is the stand-in (it records exactly which references were asked); the throttling is
a proxy in front of the real registry (Debian's registry has no rate limit to provoke). Gating against the
real backend: ``test_real_backend.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import orjson
import pytest

from tests.harness import devstack
from tests.unit.webhook.reviews import body, pod_with, review
from zastava.registry import RegistryClient, RegistryClientConfig
from zastava.webhook.resolve import RegistryTagResolver

from .conftest import RunningWebhook
from .standins import PolicyBackend, ThrottlingProxy

Factory = Callable[..., RunningWebhook]


@pytest.fixture(scope="module")
def pushed(
    docker_engine: devstack.DockerEngine, registry: devstack.RegistryServer, busybox_image: str
) -> tuple[str, str]:
    """(tag reference, pinned reference) of busybox pushed to the loopback registry."""
    pinned = devstack.push_image(docker_engine, busybox_image, registry.host, "webhook/busybox:1.36")
    return f"{registry.host}/webhook/busybox:1.36", pinned


@pytest.fixture
def proxy(registry: devstack.RegistryServer) -> Iterator[ThrottlingProxy]:
    running = ThrottlingProxy(registry.url).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def resolver() -> AsyncIterator[RegistryTagResolver]:
    """No retries: a throttled registry is reported at once (the retry budget is the client's own test)."""
    client = RegistryClient(RegistryClientConfig(max_retries=0, tag_cache_ttl_seconds=0))
    try:
        yield RegistryTagResolver(client)
    finally:
        await client.close()


def admit(running: RunningWebhook, document: dict) -> dict:
    with running.client() as client:
        answer = client.post("/admit?timeout=10s", content=body(document))
    assert answer.status_code == 200
    return orjson.loads(answer.content)["response"]


def test_tag_resolved_to_digest_and_sent_pinned(
    webhook: Factory, policy_backend: PolicyBackend, pushed: tuple[str, str], resolver: RegistryTagResolver
) -> None:
    tag_ref, pinned = pushed
    running = webhook(resolver=resolver)
    result = admit(running, review(pod_with({"app": tag_ref})))
    assert result["allowed"] is True
    assert policy_backend.policy_calls[0].images == [pinned]
    record = policy_backend.wait_decisions(1)[0].decision
    assert record.images[0].name == tag_ref and record.images[0].resolved == pinned
    # the pinned result is cached: the next review of the same tag resolves again but asks no backend
    admit(running, review(pod_with({"app": tag_ref})))
    assert len(policy_backend.policy_calls) == 1


def test_unknown_tag_is_a_registry_failure(
    webhook: Factory,
    policy_backend: PolicyBackend,
    registry: devstack.RegistryServer,
    resolver: RegistryTagResolver,
) -> None:
    running = webhook(resolver=resolver)
    result = admit(running, review(pod_with({"app": f"{registry.host}/webhook/missing:9"})))
    assert result["allowed"] is False
    assert (
        "registry could not resolve the tag" in result["status"]["message"]
        and "not found" in result["status"]["message"]
    )
    assert policy_backend.policy_calls == []


@pytest.mark.parametrize(("namespace", "allowed"), [("dev", True), ("payments", False)])
def test_registry_throttling_fails_open_or_closed_per_namespace(
    webhook: Factory,
    policy_backend: PolicyBackend,
    registry: devstack.RegistryServer,
    proxy: ThrottlingProxy,
    pushed: tuple[str, str],
    resolver: RegistryTagResolver,
    namespace: str,
    allowed: bool,
) -> None:
    tag_ref, pinned = pushed
    # the image names the proxy as its registry: the client talks to it like to any loopback registry
    proxy_host = proxy.url.removeprefix("http://")
    tag_ref = tag_ref.replace(registry.host, proxy_host)
    pinned = pinned.replace(registry.host, proxy_host)
    running = webhook(resolver=resolver)
    proxy.throttle = True
    result = admit(running, review(pod_with({"app": tag_ref}), namespace=namespace))
    assert result["allowed"] is allowed
    text = result.get("status", {}).get("message", "") + " ".join(result.get("warnings", []))
    assert "throttled" in text and "429" in text
    proxy.throttle = False
    recovered = admit(running, review(pod_with({"app": tag_ref}), namespace=namespace))
    assert recovered["allowed"] is True
    assert policy_backend.policy_calls[-1].images == [pinned]
