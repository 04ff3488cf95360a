"""Registry credentials and the ``WWW-Authenticate`` challenge flow.

Credentials come from a docker ``config.json`` (``auths.<host>.auth`` = base64 ``user:password``, or
``username``/``password``, or ``identitytoken``) and from Kubernetes ``kubernetes.io/dockerconfigjson`` image
pull secrets (the ``.dockerconfigjson`` data key, base64 as stored in the Secret or already decoded; the
legacy
``.dockercfg`` layout is accepted too). Credential helpers (``credsStore``/``credHelpers``) are not executed:
Zastava never runs programs named by configuration files.

Secrets never appear in ``repr`` or log output.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AuthenticationError

__all__ = [
    "Challenge",
    "CredentialStore",
    "Credentials",
    "parse_challenge",
]

_MAX_CONFIG_BYTES = 1_000_000
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _normalise_host(key: str) -> str:
    host = re.sub(r"^[a-z]+://", "", key.strip().lower()).split("/", 1)[0]
    if key.strip().lower() in _HUB_KEYS or host in _HUB_KEYS:
        return "docker.io"
    return host


def _entry(value: Any, origin: str) -> Credentials | None:
    if not isinstance(value, Mapping):
        raise ValueError(f"{origin}: auth entry must be an object")
    token = value.get("identitytoken") or ""
    if value.get("auth"):
        try:
            decoded = base64.b64decode(str(value["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(f"{origin}: 'auth' is not base64 of 'user:password'") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise ValueError(f"{origin}: 'auth' does not contain 'user:password'")
        return Credentials(user, password, str(token))
    if value.get("username") or token:
        return Credentials(str(value.get("username", "")), str(value.get("password", "")), str(token))
    return None


class CredentialStore:
    """Host → credentials. Later sources override earlier ones for the same host."""

    def __init__(self, entries: Mapping[str, Credentials] | None = None) -> None:
        self._by_host: dict[str, Credentials] = {}
        self._fingerprint: str | None = None
        for host, creds in (entries or {}).items():
            self.add(host, creds)

    def add(self, host: str, credentials: Credentials) -> None:
        self._by_host[_normalise_host(host)] = credentials
        self._fingerprint = None

    @property
    def fingerprint(self) -> str:
        """Stable id of the credential set (a hash; never the secrets) for keying caches."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for host in sorted(self._by_host):
                c = self._by_host[host]
                digest.update(f"{host}\0{c.username}\0{c.password}\0{c.identity_token}\n".encode())
            self._fingerprint = digest.hexdigest()
        assert self._fingerprint is not None
        return self._fingerprint

    def get(self, host: str) -> Credentials | None:
        return self._by_host.get(_normalise_host(host))

    def hosts(self) -> list[str]:
        return sorted(self._by_host)

    def __repr__(self) -> str:
        return f"CredentialStore(hosts={self.hosts()!r})"

    # ------------------------------------------------------------------------------------------- loaders

    def load_docker_config(self, data: bytes | str | Mapping[str, Any], origin: str = "config.json") -> None:
        """Merge a docker ``config.json`` document (``{"auths": {...}}``) or a legacy ``.dockercfg``."""
        document: Any = data
        if isinstance(data, bytes | str):
            if len(data) > _MAX_CONFIG_BYTES:
                raise ValueError(f"{origin}: larger than {_MAX_CONFIG_BYTES} bytes")
            try:
                document = json.loads(data)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError(f"{origin}: not valid JSON: {exc}") from None
        if not isinstance(document, Mapping):
            raise ValueError(f"{origin}: must be a JSON object")
        auths = document.get("auths", None)
        if auths is None:
            # legacy .dockercfg: the host map is the document itself
            auths = {k: v for k, v in document.items() if k not in ("credsStore", "credHelpers")}
        if not isinstance(auths, Mapping):
            raise ValueError(f"{origin}: 'auths' must be an object")
        for host, value in auths.items():
            creds = _entry(value, f"{origin}: auths[{host!r}]")
            if creds is not None:
                self.add(str(host), creds)

    def load_docker_config_file(self, path: str | Path) -> None:
        path = Path(path)
        try:
            with path.open("rb") as handle:
                data = handle.read(_MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
        self.load_docker_config(data, str(path))

    def load_pull_secret(self, secret: Mapping[str, Any]) -> None:
        """A Kubernetes Secret (dict as returned by the API) of type ``kubernetes.io/dockerconfigjson``
        or ``kubernetes.io/dockercfg``. ``data`` values are base64 (as in the API); ``stringData`` plain."""
        name = str((secret.get("metadata") or {}).get("name", "<secret>"))
        kind = secret.get("type", "kubernetes.io/dockerconfigjson")
        key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if kind not in ("kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"):
            raise ValueError(f"secret {name}: type {kind!r} is not an image pull secret")
        plain = (secret.get("stringData") or {}).get(key)
        if plain is not None:
            self.load_docker_config(str(plain), f"secret {name}")
            return
        encoded = (secret.get("data") or {}).get(key)
        if encoded is None:
            raise ValueError(f"secret {name}: no {key} key")
        try:
            raw = base64.b64decode(str(encoded), validate=True)
        except binascii.Error:
            raise ValueError(f"secret {name}: {key} is not base64") from None
        self.load_docker_config(raw, f"secret {name}")

    @classmethod
    def from_sources(
        cls,
        docker_config: str | Path | None = None,
        pull_secrets: Iterable[Mapping[str, Any]] = (),
    ) -> CredentialStore:
        store = cls()
        if docker_config is not None:
            store.load_docker_config_file(docker_config)
        for secret in pull_secrets:
            store.load_pull_secret(secret)
        return store


# ----------------------------------------------------------------------------------------- challenges

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*,?')


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "basic" | "bearer"
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str) -> Challenge:
    """Parse one ``WWW-Authenticate`` value (``Bearer realm="…",service="…",scope="…"``)."""
    if len(header) > 8192:
        raise AuthenticationError("WWW-Authenticate header too long")
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("basic", "bearer"):
        raise AuthenticationError(f"unsupported authentication scheme {scheme[:40]!r}")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            break
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = match.end()
    if scheme == "bearer" and not params.get("realm", "").lower().startswith(("https://", "http://")):
        raise AuthenticationError("bearer challenge without an http(s) realm")
    return Challenge(scheme, params)
