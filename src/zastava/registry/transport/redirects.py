"""Which HTTP redirects the registry client follows (a registry named in a Pod is attacker-chosen).

Registries legitimately send blob and manifest downloads to a storage or CDN host (``307 Location:
https://bucket.s3…``). A hostile registry can instead point the webhook, the backend's verifier or
``zastava verify`` at an internal address (``http://169.254.169.254/…`` cloud metadata, ``127.0.0.1:10250``,
a ``10.x`` service). The client therefore follows redirects itself (httpx ``follow_redirects=False``),
at most :data:`MAX_HOPS` hops, only for GET/HEAD of manifests and blobs, and each target must pass
:meth:`RedirectPolicy.check`:

* ``http``/``https`` only, and never from ``https`` down to ``http``;
* a target whose host is, or resolves to, an address of an internal class (loopback, link-local, private
  RFC 1918/4193, shared/reserved, multicast, unspecified) is refused unless the registry itself has an
  address of that same class (a loopback test registry may redirect to loopback, an in-cluster registry
  on 10.x to another 10.x — a loopback registry may not redirect to 169.254.169.254), or the target is
  listed in ``zastava.registry.redirectAllowedInternal`` (CIDRs or host names).

The token realm a registry's ``WWW-Authenticate: Bearer realm=…`` names is the same kind of attacker-chosen
URL and passes the same check (``what="token realm"``) before the client GETs it.

DNS-rebinding limit: the name is resolved for the check and httpx resolves it again to connect; a name that
answers a public address to the first lookup and an internal one to the second (TTL 0) gets through. The
bound is the digest check (blobs and pinned manifests are verified by digest, so nothing forged is
accepted); what such a rebinding still achieves is one GET to the internal address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import httpx

from ..errors import RedirectRefused

__all__ = ["MAX_HOPS", "REDIRECT_STATUS", "RedirectPolicy", "address_class"]

#: hops a manifest or blob GET may take; registries use one (registry → storage), CDNs sometimes two
MAX_HOPS = 5
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_class(address: IPAddress) -> str | None:
    """The internal class of an address, or None for a public (global unicast) one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"  # 100.64.0.0/10 (shared; Alibaba's metadata is 100.100.100.200), 240/4, …
    return None


def _host_name(host: str) -> str:
    """``[::1]:5000`` → ``::1``, ``registry:5000`` → ``registry``, lower-cased."""
    if host.startswith("["):
        return host[1 : host.index("]")].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


@dataclass(slots=True)
class RedirectPolicy:
    allowed_networks: Sequence[IPNetwork] = ()
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> RedirectPolicy:
        """``redirectAllowedInternal`` entries: a CIDR or address (``10.20.0.0/16``) or a host name."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    async def addresses(self, host: str) -> list[IPAddress]:
        """The addresses ``host`` (an IP literal or a name) stands for; [] when it does not resolve."""
        name = _host_name(host)
        try:
            return [ipaddress.ip_address(name)]
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return []
        found: list[IPAddress] = []
        for info in infos:
            try:
                found.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            except ValueError:
                continue
        return found

    async def registry_classes(self, registry_host: str) -> frozenset[str]:
        """The internal classes the registry's own addresses belong to (its redirects may stay in them)."""
        return frozenset(c for a in await self.addresses(registry_host) if (c := address_class(a)))

    async def check(
        self,
        current: httpx.URL,
        target: httpx.URL,
        registry_classes: frozenset[str],
        what: str = "redirect",
    ) -> None:
        """Raise :class:`RedirectRefused` unless ``current`` may send the client to ``target`` (a redirect's
        ``Location``, or the token realm of a registry's ``WWW-Authenticate`` challenge: ``what``)."""
        if target.scheme not in ("http", "https"):
            raise RedirectRefused(f"{what} to a {target.scheme or 'relative'!s} URL refused")
        if current.scheme == "https" and target.scheme == "http":
            raise RedirectRefused(f"{what} from https down to http://{target.host} refused")
        name = target.host.lower().rstrip(".")
        if not name:
            raise RedirectRefused(f"{what} without a host refused")
        if name in self.allowed_hosts:
            return
        addresses = await self.addresses(name)
        if not addresses:
            raise RedirectRefused(f"{what} to {name}: the name does not resolve")
        for address in addresses:
            cls = address_class(address)
            if cls is None or cls in registry_classes:
                continue
            if any(address in network for network in self.allowed_networks):
                continue
            # every address the name has must be acceptable: httpx may connect to any of them
            raise RedirectRefused(f"{what} to {name} ({address}, {cls} address) refused")
