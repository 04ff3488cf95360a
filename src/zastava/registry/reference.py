"""Image references — the one model every plane uses: ``[registry/]repository[:tag][@digest]``, normalised.

Normalisation (what the docker CLI, containerd and the kubelet resolve to the same image, and what policy must
therefore treat as one name):

* ``busybox`` → ``docker.io/library/busybox:latest``; a first component with a ``.`` or ``:``, in brackets
  (IPv6), or equal to ``localhost`` is a registry host, anything else is a Docker Hub path;
* ``docker.io``, ``index.docker.io`` and ``registry-1.docker.io`` are one registry (``docker.io``), and a
  single-component Docker Hub repository gets ``library/``;
* the host is case-insensitive (lower-cased); ``:443`` is dropped (it is where an HTTPS client connects for a
  host without a port). ``:80`` is kept: clients talk HTTPS to ``host:80`` unless that exact ``host:80`` is
  configured as a plain-HTTP registry, so it is a different endpoint — policy still cannot be bypassed with
  it, because a denylisted host is denied on every port (:func:`name_matches`);
* tag + digest together are kept; the digest pins the image (the tag is informational);
* anything odd is an :class:`InvalidReference` naming what is wrong — upper-case repository components,
  upper-case digest hex, empty components, trailing slashes, whitespace, ports with leading zeros or out of
  range — never silently a different name.

Allow/deny patterns are normalised by the same rules (:func:`normalise_pattern`) when the configuration is
loaded, and :func:`name_matches` compares normalised names only.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field

from .errors import InvalidReference

__all__ = [
    "DEFAULT_REGISTRY",
    "ImageReference",
    "canonical_host",
    "fallback_tag",
    "name_matches",
    "normalise_pattern",
    "normalise_tag",
    "parse_reference",
    "repository_name",
    "validate_digest",
]

DEFAULT_REGISTRY = "docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_HTTPS_PORT = "443"
_MAX_REFERENCE = 4096
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOSTNAME = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\]"
)
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_DIGEST_HEX = {"sha256": 64, "sha512": 128}
_GLOB = frozenset("*?")  # not "[": IPv6 hosts are bracketed
_GLOB_PATTERN_CHARS = re.compile(r"[a-z0-9._\-/:*?\[\]]")


def validate_digest(digest: str) -> str:
    """``algorithm:hex`` with a known algorithm and lowercase hex of the right length, else
    InvalidReference."""
    algorithm, sep, hexpart = digest.partition(":")
    length = _DIGEST_HEX.get(algorithm)
    if not sep or length is None or len(hexpart) != length or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise InvalidReference(
            f"invalid digest {digest[:100]!r} (sha256:<64 lowercase hex> or sha512:<128 lowercase hex>)"
        )
    return digest


def fallback_tag(digest: str, suffix: str = "") -> str:
    """The tag-schema name of a digest: ``sha256:abc…`` → ``sha256-abc…`` (+ ``.sig``/``.att``/…)."""
    validate_digest(digest)
    return digest.replace(":", "-", 1) + suffix


def canonical_host(text: str) -> str:
    """A registry host, normalised: lower case, ``:443`` dropped, Docker Hub's aliases → ``docker.io``."""
    _ascii(text)
    lowered = text.lower()
    if lowered.startswith("["):
        hostname, bracket, port = lowered.partition("]")
        if not bracket:
            raise InvalidReference(f"invalid registry host {text[:200]!r}")
        hostname += "]"
        if port and not port.startswith(":"):
            raise InvalidReference(f"invalid registry host {text[:200]!r}")
        port = port[1:] if port else ""
        has_port = bool(port) or lowered.endswith(":")
    else:
        hostname, colon, port = lowered.partition(":")
        has_port = bool(colon)
    if not _HOSTNAME.fullmatch(hostname):
        raise InvalidReference(f"invalid registry host {text[:200]!r}")
    hostname = _canonical_address(hostname, text)
    if has_port:
        if not _PORT.fullmatch(port) or int(port) > 65535:
            raise InvalidReference(
                f"invalid port in registry host {text[:200]!r} (1-65535, no leading zeros)"
            )
        if port != _HTTPS_PORT:
            return f"{hostname}:{port}"
    return DEFAULT_REGISTRY if hostname in _DOCKER_HUB_ALIASES else hostname


def _canonical_address(hostname: str, text: str) -> str:
    """An IP literal has one spelling: ``[0:0::1]`` → ``[::1]``, ``[::ffff:127.0.0.1]`` → ``127.0.0.1``; an
    IPv4 literal must be dotted decimal. A resolver (glibc's ``inet_aton``) reads ``127.1``, ``0x7f.0.0.1``
    and ``2130706433`` as 127.0.0.1, so they would get around a denylist that names ``127.0.0.1`` — they are
    invalid (a top-level domain is never numeric, so a numeric last label means an address)."""
    if hostname.startswith("["):
        try:
            address = ipaddress.IPv6Address(hostname[1:-1])
        except ValueError:
            raise InvalidReference(f"invalid IPv6 address in registry host {text[:200]!r}") from None
        mapped = address.ipv4_mapped
        return str(mapped) if mapped is not None else f"[{address.compressed}]"
    last = hostname.rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):
        try:
            return str(ipaddress.IPv4Address(hostname))
        except ValueError:
            raise InvalidReference(
                f"registry host {text[:200]!r} is not a dotted-decimal IPv4 address (write a.b.c.d)"
            ) from None
    return hostname


def _is_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


def _repository(registry: str, path: list[str]) -> str:
    if registry == DEFAULT_REGISTRY and len(path) == 1:
        path = ["library", *path]
    for part in path:
        if not _COMPONENT.fullmatch(part):
            if part and _COMPONENT.fullmatch(part.lower()):
                raise InvalidReference(f"repository {'/'.join(path)[:200]!r} must be lowercase")
            raise InvalidReference(
                f"invalid repository name {'/'.join(path)[:200]!r} (empty component or forbidden character)"
            )
    repository = "/".join(path)
    if len(repository) > 255:
        raise InvalidReference("repository name longer than 255 characters")
    return repository


@dataclass(frozen=True, slots=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    #: the text named no tag and no digest, so ``tag`` is the implied ``latest`` (same image either way)
    implicit_tag: bool = field(default=False, compare=False)

    @property
    def api_host(self) -> str:
        """Host to talk to (Docker Hub's API lives at ``registry-1.docker.io``)."""
        return "registry-1.docker.io" if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def pinned(self) -> str | None:
        """``registry/repository@digest`` when the reference carries a digest."""
        return f"{self.name}@{self.digest}" if self.digest else None

    @property
    def portless_name(self) -> str:
        """``name`` on the registry host without its port (a denylisted host is denied on every port)."""
        registry = self.registry
        bracket = registry.find("]")
        host = registry[: bracket + 1] if bracket >= 0 else registry.partition(":")[0]
        if host == registry:
            return self.name
        host = canonical_host(host)
        path = self.repository.split("/")
        if host == DEFAULT_REGISTRY and len(path) == 1:
            path = ["library", *path]
        return f"{host}/{'/'.join(path)}"

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, None, validate_digest(digest))

    def with_tag(self, tag: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, tag, None)

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest when known, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str, *, default_registry: str = DEFAULT_REGISTRY) -> ImageReference:
    """Parse and normalise; a reference with neither tag nor digest gets ``latest`` (``implicit_tag``)."""
    if not isinstance(text, str) or not text or len(text) > _MAX_REFERENCE:
        raise InvalidReference("image reference must be a non-empty string of at most 4096 characters")
    try:
        return _parse(text, default_registry)
    except InvalidReference as exc:
        raise InvalidReference(f"invalid image reference {text[:200]!a}: {exc}") from None


def _ascii(text: str) -> None:
    """References are ASCII (the distribution grammar); a non-ASCII character is never normalised away —
    ``str.lower`` folds the Kelvin sign ``\u212a`` to ``k``, so ``\u212aube.io`` would otherwise become the
    host ``kube.io`` here while the container runtime refuses it, and confusables (Cyrillic ``е``) must not
    pass a denylist that names the Latin spelling."""
    bad = next((ch for ch in text if not ch.isascii()), None)
    if bad is not None:
        raise InvalidReference(f"contains the non-ASCII character U+{ord(bad):04X} (references are ASCII)")


def _parse(text: str, default_registry: str) -> ImageReference:
    _ascii(text)
    if any(ch.isspace() for ch in text):
        raise InvalidReference("contains whitespace")
    rest = text
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        validate_digest(digest)
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"invalid tag {tag[:200]!r}")
    parts = rest.split("/")
    if len(parts) > 1 and _is_host(parts[0]):
        registry, path = canonical_host(parts[0]), parts[1:]
    else:
        registry, path = canonical_host(default_registry), parts
    repository = _repository(registry, path)
    implicit = tag is None and digest is None
    return ImageReference(
        registry=registry,
        repository=repository,
        tag="latest" if implicit else tag,
        digest=digest,
        implicit_tag=implicit,
    )


def repository_name(text: str) -> str | None:
    """``registry/repository`` of a reference (tag and digest dropped), normalised; None when invalid.
    Engines spell one image's names differently (``nginx`` vs ``docker.io/library/nginx``): compare these."""
    try:
        return parse_reference(text).name
    except InvalidReference:
        return None


def normalise_pattern(text: str) -> str:
    """An allow/deny pattern normalised like an image name: a registry host (``evil.io``, ``Evil.io:443``
    → ``evil.io``), a ``registry/repository`` prefix (``docker.io/nginx``, ``index.docker.io/library/nginx``
    and ``nginx`` → ``docker.io/library/nginx``) or a glob (``*`` any run of characters, ``/`` included,
    ``?`` one character; its host part normalised, matched against normalised names). Tags, digests and odd
    spellings are an :class:`InvalidReference`."""
    if not isinstance(text, str) or not text or len(text) > _MAX_REFERENCE:
        raise InvalidReference("pattern must be a non-empty string of at most 4096 characters")
    try:
        _ascii(text)
    except InvalidReference as exc:
        raise InvalidReference(f"pattern {text[:200]!r} {exc}") from None
    if any(ch.isspace() for ch in text):
        raise InvalidReference(f"pattern {text[:200]!r} contains whitespace")
    if "@" in text:
        raise InvalidReference(
            f"pattern {text[:200]!r} names a digest; patterns name registries or repositories"
        )
    first, slash, rest = text.partition("/")
    if _GLOB & set(text):
        return _normalise_glob(text, first, slash, rest)
    try:
        if not slash and _is_host(first):
            return canonical_host(first)
        if ":" in text.rsplit("/", 1)[-1] and slash:
            raise InvalidReference("names a tag; patterns name registries or repositories")
        parts = text.split("/")
        if len(parts) > 1 and _is_host(parts[0]):
            registry, path = canonical_host(parts[0]), parts[1:]
        else:
            registry, path = DEFAULT_REGISTRY, parts
        return f"{registry}/{_repository(registry, path)}"
    except InvalidReference as exc:
        raise InvalidReference(f"invalid pattern {text[:200]!r}: {exc}") from None


def _normalise_glob(text: str, first: str, slash: str, rest: str) -> str:
    """A glob's first component is always the registry: a literal host is normalised like an image's
    (``Evil.IO:443`` → ``evil.io``, ``index.docker.io`` → ``docker.io``), a first component with a wildcard
    is matched against registry hosts, and a first component that cannot be a host (``library/*``) is an
    error — it would silently match nothing, since every normalised name starts with a host. A glob without
    ``/`` (``*.evil.io``) is matched against the registry host. One literal path component on Docker Hub
    gets ``library/`` (``docker.io/ngin?`` → ``docker.io/library/ngin?``), as docker resolves it."""
    lowered = text.lower()
    bad = sorted({ch for ch in lowered if not _GLOB_PATTERN_CHARS.fullmatch(ch)})
    if bad:
        raise InvalidReference(
            f"pattern {text[:200]!r}: unexpected character(s) {''.join(bad)!r} in a glob (letters, digits, "
            "'.', '_', '-', '/', ':' in the host, '*', '?')"
        )
    if not slash:
        return lowered
    if not rest or rest.endswith("/") or "//" in rest:
        raise InvalidReference(f"pattern {text[:200]!r}: empty path component")
    if rest != rest.lower():
        raise InvalidReference(f"pattern {text[:200]!r}: repositories are lowercase")
    if ":" in rest:
        raise InvalidReference(
            f"pattern {text[:200]!r} names a tag; patterns name registries or repositories"
        )
    if _GLOB & set(first):
        host = lowered.partition("/")[0]
    elif _is_host(first):
        try:
            host = canonical_host(first)
        except InvalidReference as exc:
            raise InvalidReference(f"invalid pattern {text[:200]!r}: {exc}") from None
    else:
        raise InvalidReference(
            f"pattern {text[:200]!r}: a glob's first component is the registry and {first!r} is not a "
            f"registry host (for Docker Hub write docker.io/{text})"
        )
    if host == DEFAULT_REGISTRY and "/" not in rest and "*" not in rest:
        rest = f"library/{rest}"
    return f"{host}/{rest}"


def normalise_tag(text: str) -> str:
    """A tag for a tag ban, lower-cased: registries treat ``LATEST`` as another tag, but a ban is about the
    name's meaning, so bans compare case-insensitively (``tag_banned``)."""
    if not isinstance(text, str) or not _TAG.fullmatch(text):
        raise InvalidReference(f"invalid tag {str(text)[:200]!r}")
    return text.lower()


def name_matches(ref: ImageReference, pattern: str, *, any_port: bool = False) -> bool:
    """Whether ``ref``'s normalised name falls under a :func:`normalise_pattern` pattern: the same host, a
    ``host/path`` prefix by whole components, or the glob. ``any_port`` (denylists): a pattern without a port
    also matches the host on every other port."""
    names: tuple[str, ...] = (ref.name, ref.portless_name) if any_port else (ref.name,)
    if _GLOB & set(pattern):
        glob = _glob(pattern)
        if "/" not in pattern:  # a host glob (``*.evil.io``): the registry host, every path under it
            names = tuple(name.partition("/")[0] for name in names)
        return any(glob.fullmatch(name) is not None for name in names)
    return any(name == pattern or name.startswith(pattern + "/") for name in names)


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` spans ``/`` in the path only: in the host (a glob's first component is the registry) it stays
    within the host, else the allowlist glob ``*.corp.io/*`` would allow ``evil.io/x.corp.io/payload``."""
    host, slash, path = pattern.partition("/")
    out = ["[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in host]
    out.append(slash)
    out += [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in path]
    return re.compile("".join(out))
