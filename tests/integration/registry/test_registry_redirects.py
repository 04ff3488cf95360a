"""Registry redirects (issue 15 follow-up, docs/registry.md "Redirects"): the real loopback distribution
registry behind :class:`tests.harness.registry_proxy.RegistryProxy`, which answers ``307`` where a test says
(a registry sending blob downloads to storage — or to 169.254.169.254). A second proxy bound to 127.0.0.2 is
"another host" (the storage/CDN host) for the header tests. Entry points: the library client and
``zastava verify``; the admission path is in tests/integration/webhook/test_admission_redteam.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import devstack
from tests.harness.devstack import signing
from tests.harness.registry_proxy import RegistryProxy
from tests.harness.signed import PushedImage, push_synthetic, unique_repo
from zastava.registry import (
    Credentials,
    CredentialStore,
    RedirectRefused,
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
)

pytestmark = pytest.mark.real


@pytest.fixture
def proxy(registry: devstack.RegistryServer) -> Iterator[RegistryProxy]:
    running = RegistryProxy(registry.url).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def storage(registry: devstack.RegistryServer) -> Iterator[RegistryProxy]:
    """The storage host a registry redirects to: another loopback address, so another origin."""
    running = RegistryProxy(registry.url, bind="127.0.0.2").start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def image(registry: devstack.RegistryServer, proxy: RegistryProxy) -> Iterator[PushedImage]:
    pusher = signing.OciPusher(registry.url)
    try:
        yield push_synthetic(pusher, proxy.host, unique_repo("redirects"), b"redirected", "1")
    finally:
        pusher.close()


def blobs_to(location: str) -> object:
    """A registry whose blob GETs all answer ``307 Location: location + path``."""
    return lambda method, path: location + path if "/blobs/" in path and path.startswith("/v2/") else None


async def config_digest(client: RegistryClient, image: PushedImage) -> str:
    manifest = await client.manifest(image.pinned)
    return str(manifest.data["config"]["digest"])


async def test_a_redirect_to_the_same_registry_is_followed_with_its_credentials(
    proxy: RegistryProxy, image: PushedImage
) -> None:
    proxy.basic_auth = ("u", "p")
    proxy.redirect = lambda method, path: (
        "/moved" + path if "/blobs/" in path and "/moved/" not in path else None
    )
    store = CredentialStore({proxy.host: Credentials("u", "p")})
    async with RegistryClient(credentials=store) as client:
        digest = await config_digest(client, image)
        body = await client.get_blob(image.pinned, digest)
        assert b"architecture" in body  # the real config blob, digest-verified by get_blob
        assert client.stats["redirects_followed"] == 1 and client.stats["redirects_refused"] == 0
    moved = [i for i, (_m, path) in enumerate(proxy.requests) if path.startswith("/moved/")]
    assert len(moved) == 1 and proxy.authorization[moved[0]] is not None  # same origin: credentials kept


async def test_authorization_is_not_forwarded_to_another_host(
    proxy: RegistryProxy, storage: RegistryProxy, image: PushedImage
) -> None:
    proxy.basic_auth = ("u", "p")
    proxy.redirect = blobs_to(storage.server.url)
    store = CredentialStore({proxy.host: Credentials("u", "p")})
    async with RegistryClient(credentials=store) as client:
        digest = await config_digest(client, image)
        body = await client.get_blob(image.pinned, digest)
        assert b"architecture" in body
    assert any(a is not None for a in proxy.authorization)  # the registry did get the credentials
    assert [p for _m, p in storage.requests] == [f"/v2/{image.repo}/blobs/{digest}"]
    assert storage.authorization == [None]


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("http://169.254.169.254", "link-local"),  # cloud metadata
        ("http://10.255.255.1:8080", "private"),
        ("http://100.100.100.200", "reserved"),  # shared space; a cloud's metadata address
        ("http://[::ffff:169.254.169.254]", "link-local"),
        ("file://", "scheme"),
    ],
)
async def test_a_loopback_registry_may_not_redirect_to_another_internal_class(
    proxy: RegistryProxy, image: PushedImage, location: str, kind: str
) -> None:
    proxy.redirect = blobs_to(location)
    async with RegistryClient() as client:
        digest = await config_digest(client, image)
        with pytest.raises(RedirectRefused) as refused:
            await client.get_blob(image.pinned, digest)
        assert isinstance(refused.value, RegistryUnavailable)  # fail-open/closed applies to it
        assert client.stats["redirects_refused"] == 1 and client.stats["redirects_followed"] == 0
    message = str(refused.value)
    assert (kind in message) if kind != "scheme" else ("file" in message), message


async def test_redirect_allowed_internal_lets_a_listed_cidr_through(
    proxy: RegistryProxy, image: PushedImage
) -> None:
    """``zastava.registry.redirectAllowedInternal`` (through the config model and ``client_config``): a
    10.x target refused by default is followed once listed. No registry is there, so following it ends in a
    transport error or a 404 (whatever this machine's network answers) — not in RedirectRefused."""
    from zastava.config import Registry
    from zastava.registry.settings import client_config

    target = "http://10.255.255.1:9"
    proxy.redirect = blobs_to(target)
    fast = {"connectTimeoutSeconds": 0.5, "readTimeoutSeconds": 0.5, "maxRetries": 0}
    async with RegistryClient(client_config(Registry(**fast))) as client:
        digest = await config_digest(client, image)
        with pytest.raises(RedirectRefused, match="private"):
            await client.get_blob(image.pinned, digest)
    section = Registry(**fast, redirectAllowedInternal=["10.255.0.0/16"])
    async with RegistryClient(client_config(section)) as client:
        digest = await config_digest(client, image)
        with pytest.raises(RegistryError) as failed:
            await client.get_blob(image.pinned, digest)
        assert not isinstance(failed.value, RedirectRefused)
        assert client.stats["redirects_followed"] == 1 and client.stats["redirects_refused"] == 0


async def test_redirects_stop_after_five_hops(proxy: RegistryProxy, image: PushedImage) -> None:
    proxy.redirect = lambda method, path: "/moved" + path if "/blobs/" in path else None
    async with RegistryClient() as client:
        digest = await config_digest(client, image)
        proxy.requests.clear()
        with pytest.raises(RedirectRefused, match="more than 5 redirects"):
            await client.get_blob(image.pinned, digest)
    assert len(proxy.requests) == 6  # the first request and five hops; the sixth Location is not followed


@pytest.mark.parametrize(
    ("realm", "reason"),
    [
        ("http://169.254.169.254/latest/api/token", "link-local"),
        ("http://10.0.0.7/token", "private"),
    ],
)
async def test_a_token_realm_on_another_internal_class_is_not_fetched(
    proxy: RegistryProxy, image: PushedImage, realm: str, reason: str
) -> None:
    """``WWW-Authenticate: Bearer realm=…`` is a URL the registry chooses, like a redirect's Location."""
    proxy.basic_auth = ("u", "p")
    proxy.challenge = f'Bearer realm="{realm}",service="evil"'
    async with RegistryClient() as client:
        with pytest.raises(RedirectRefused, match=reason) as refused:
            await client.resolve(image.ref)
    assert "token realm" in str(refused.value)


async def test_a_token_realm_on_the_registry_s_own_class_is_used(
    proxy: RegistryProxy, storage: RegistryProxy, image: PushedImage
) -> None:
    """A loopback registry whose token service is on another loopback address: the realm is fetched (the
    proxy on 127.0.0.2 answers it 404 — no token service there — so the failure is an authentication error,
    not a refusal)."""
    from zastava.registry import AuthenticationError

    proxy.basic_auth = ("u", "p")
    proxy.challenge = f'Bearer realm="{storage.server.url}/token",service="reg"'
    async with RegistryClient() as client:
        with pytest.raises(AuthenticationError):
            await client.resolve(image.ref)
    assert [path for _m, path in storage.requests] == ["/token"]


def test_zastava_verify_reports_a_refused_redirect(
    tmp_path: Path, proxy: RegistryProxy, image: PushedImage
) -> None:
    key = signing.KeyPair.generate()
    key.write_public(tmp_path / "k.pub")
    proxy.redirect = lambda method, path: (
        "http://169.254.169.254/latest/meta-data" if "/manifests/" in path and method == "GET" else None
    )
    out = subprocess.run(
        [sys.executable, "-m", "zastava", "verify", image.pinned, "--key", str(tmp_path / "k.pub")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0, out.stdout
    text = out.stdout + out.stderr
    assert "169.254.169.254" in text and "link-local" in text and "refused" in text, text
    assert "meta-data" not in text  # the path/query of a refused target is not echoed (presigned URLs)
