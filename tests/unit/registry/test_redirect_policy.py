"""The redirect decision (:mod:`zastava.registry.transport.redirects`) on IP literals — no DNS, no network;
the client following it against the real registry is tests/integration/registry/test_registry_redirects.py."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from zastava.registry.errors import RedirectRefused, RegistryUnavailable
from zastava.registry.transport.redirects import RedirectPolicy, address_class


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),  # RFC 4193
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.100.100.200", "reserved"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.1.2.3", "private"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_classes(address: str, expected: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == expected


async def check(
    current: str, target: str, registry: frozenset[str] = frozenset(), policy: RedirectPolicy | None = None
) -> None:
    await (policy or RedirectPolicy()).check(httpx.URL(current), httpx.URL(target), registry)


async def test_https_to_http_is_refused_and_http_to_https_is_followed() -> None:
    with pytest.raises(RedirectRefused, match="https down to http"):
        await check("https://93.184.215.14/v2/x/blobs/sha256:1", "http://93.184.215.14/b")
    await check("http://93.184.215.14/v2/x/blobs/sha256:1", "https://93.184.215.14/b")
    await check("https://93.184.215.14/v2/x/blobs/sha256:1", "https://[2606:4700::1111]:8443/b")


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://93.184.215.14/x", "gopher://1.1.1.1/"])
async def test_only_http_and_https(target: str) -> None:
    with pytest.raises(RedirectRefused, match="URL refused"):
        await check("https://93.184.215.14/v2/", target)


async def test_internal_classes_follow_the_registry_s_own_class() -> None:
    public: frozenset[str] = frozenset()
    loopback = frozenset({"loopback"})
    cluster = frozenset({"private"})
    for target in ("http://169.254.169.254/", "http://127.0.0.1:10250/", "http://10.0.0.1/", "http://[::]/"):
        with pytest.raises(RedirectRefused) as refused:
            await check("http://93.184.215.14/v2/", target, public)
        assert isinstance(refused.value, RegistryUnavailable)
    await check("http://127.0.0.1:5000/v2/", "http://127.0.0.2:9000/", loopback)
    with pytest.raises(RedirectRefused, match="link-local"):
        await check("http://127.0.0.1:5000/v2/", "http://169.254.169.254/", loopback)
    await check("http://10.96.0.10/v2/", "http://10.244.1.7:9000/", cluster)  # in-cluster registry → storage
    with pytest.raises(RedirectRefused, match="loopback"):
        await check("http://10.96.0.10/v2/", "http://127.0.0.1:10250/", cluster)


async def test_the_allow_list_admits_listed_cidrs_and_hosts_only() -> None:
    policy = RedirectPolicy.from_entries(["10.20.0.0/16", "fd00::/8", "Minio.Storage.svc."])
    await check("https://93.184.215.14/v2/", "https://10.20.3.4/", policy=policy)
    await check("https://93.184.215.14/v2/", "https://[fd00::5]/", policy=policy)
    await check("https://93.184.215.14/v2/", "https://minio.storage.svc/", policy=policy)
    with pytest.raises(RedirectRefused, match="private"):
        await check("https://93.184.215.14/v2/", "https://10.21.0.1/", policy=policy)
    with pytest.raises(RedirectRefused, match="link-local"):
        await check("https://93.184.215.14/v2/", "https://169.254.169.254/", policy=policy)


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(RedirectRefused, match="does not resolve"):
        await check("https://93.184.215.14/v2/", "https://no-such-host.invalid/")


async def test_registry_classes_of_literals_and_localhost() -> None:
    policy = RedirectPolicy()
    assert await policy.registry_classes("127.0.0.1:5000") == {"loopback"}
    assert await policy.registry_classes("[::1]:5000") == {"loopback"}
    assert await policy.registry_classes("10.96.0.10") == {"private"}
    assert await policy.registry_classes("93.184.215.14:443") == frozenset()
    assert "loopback" in await policy.registry_classes("localhost:5000")
