"""DPoP (RFC 9449): proof creation on the client, proof verification on servers.

A proof is a JWS (``typ: dpop+jwt``, ES256) whose header carries the client's public JWK and whose claims bind
it to one request: ``htm`` (method), ``htu`` (URL without query/fragment), ``iat``, a unique ``jti``, ``ath``
(SHA-256 of the access token, at resource servers) and an optional server-supplied ``nonce``. A token bound to
the key carries ``cnf.jkt`` = the key's RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from .errors import invalid_dpop_proof, use_dpop_nonce

__all__ = [
    "DpopKey",
    "DpopProof",
    "NonceIssuer",
    "ReplayCache",
    "access_token_hash",
    "b64url",
    "normalize_htu",
    "same_text",
    "verify_proof",
]

MAX_PROOF_BYTES = 8192
MAX_JTI_CHARS = 256
DPOP_ALGORITHMS = ("ES256",)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def same_text(a: str, b: str) -> bool:
    """Constant-time equality of two strings from a request (``hmac.compare_digest`` raises ``TypeError`` on
    a non-ASCII ``str``, and a client chooses these strings)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url(SHA-256(ASCII of the access token))."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def normalize_htu(url: str) -> str:
    """The URL as compared in ``htu`` (RFC 9449 §4.3): no query or fragment, lower-case scheme and host,
    default port dropped, empty path as ``/``. Raises ``ValueError`` for a URL without scheme or host."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


class DpopKey:
    """The process's DPoP key pair (ES256, P-256), generated in memory and never written anywhere."""

    def __init__(self, key: ECKey | None = None) -> None:
        self._key = key or ECKey.generate_key("P-256", private=True, auto_kid=False)
        self.public_jwk: dict[str, Any] = {
            k: v for k, v in self._key.as_dict(private=False).items() if k in ("kty", "crv", "x", "y")
        }
        self.jkt: str = self._key.thumbprint()

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        now: float | None = None,
    ) -> str:
        """A fresh proof for one request (new ``jti`` each call)."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(18),
            "htm": method.upper(),
            "htu": normalize_htu(url),
            "iat": int(time.time() if now is None else now),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk}
        payload = json.dumps(claims, separators=(",", ":"))
        return jws.serialize_compact(header, payload, self._key, algorithms=list(DPOP_ALGORITHMS))


class ReplayCache:
    """Bounded memory of seen proof ids (``jti``), each kept ``ttl`` seconds. Thread-safe.

    At most ``max_entries`` are held; expired entries are dropped first. When every entry is still live the
    cache refuses new ids (the caller refuses the request) instead of forgetting one — forgetting would
    re-open a replay window.
    """

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: str, now: float | None = None) -> bool:
        """Record ``key``; False when it was already seen (a replay) or the cache is saturated."""
        t = time.time() if now is None else now
        with self._lock:
            while self._seen:
                oldest, expires = next(iter(self._seen.items()))
                if expires > t:
                    break
                del self._seen[oldest]
            if key in self._seen:
                return False
            if len(self._seen) >= self.max_entries:
                raise invalid_dpop_proof("replay cache saturated; retry shortly")
            self._seen[key] = t + self.ttl
            return True


class NonceIssuer:
    """Stateless server nonces (RFC 9449 §8/§9): HMAC of a time bucket, valid for the current and previous
    bucket. ``secret`` is per process unless given (several replicas must share it)."""

    def __init__(self, secret: bytes | None = None, window_seconds: int = 300) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.window = window_seconds

    def _for_bucket(self, bucket: int) -> str:
        return b64url(hmac.new(self._secret, str(bucket).encode(), hashlib.sha256).digest()[:18])

    def issue(self, now: float | None = None) -> str:
        return self._for_bucket(int((time.time() if now is None else now) // self.window))

    def valid(self, nonce: str, now: float | None = None) -> bool:
        bucket = int((time.time() if now is None else now) // self.window)
        return any(same_text(nonce, self._for_bucket(b)) for b in (bucket, bucket - 1))


@functools.lru_cache(maxsize=4096)
def _public_key(crv: str, x: str, y: str) -> tuple[ECKey, str]:
    """A proof's public key and its thumbprint. Cached: a client proves with one key for its whole life, and
    importing (curve point validation) costs more than verifying the signature."""
    key = ECKey.import_key({"kty": "EC", "crv": crv, "x": x, "y": y})
    return key, key.thumbprint()


@dataclass(frozen=True)
class DpopProof:
    """A verified proof: the key's thumbprint and the request it was made for."""

    jkt: str
    jti: str
    htm: str
    htu: str
    iat: int
    nonce: str | None


def _segment(part: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise invalid_dpop_proof("DPoP proof is not a JWS") from None
    if not isinstance(value, dict):
        raise invalid_dpop_proof("DPoP proof is not a JWS")
    return value


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    replay: ReplayCache | None = None,
    nonces: NonceIssuer | None = None,
    max_age: float = 60.0,
    clock_skew: float = 5.0,
    now: float | None = None,
) -> DpopProof:
    """Check a DPoP proof for ``method url``; raise :class:`AuthError` (``invalid_dpop_proof`` /
    ``use_dpop_nonce``) with the precise reason. ``access_token`` given: ``ath`` must match it.
    ``nonces`` given: a valid server nonce is required. ``replay`` given: a ``jti`` is accepted once."""
    t = time.time() if now is None else now
    if len(proof) > MAX_PROOF_BYTES:
        raise invalid_dpop_proof("DPoP proof too large")
    parts = proof.split(".")
    if len(parts) != 3:
        raise invalid_dpop_proof("DPoP proof is not a compact JWS")
    header = _segment(parts[0])
    if header.get("typ") != "dpop+jwt":
        raise invalid_dpop_proof("DPoP proof typ must be dpop+jwt")
    if header.get("alg") not in DPOP_ALGORITHMS:
        raise invalid_dpop_proof(f"DPoP proof alg must be one of {', '.join(DPOP_ALGORITHMS)}")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC":
        raise invalid_dpop_proof("DPoP proof header lacks an EC public jwk")
    if "d" in jwk:
        raise invalid_dpop_proof("DPoP proof jwk contains a private key")
    try:
        key, jkt = _public_key(str(jwk.get("crv")), str(jwk.get("x")), str(jwk.get("y")))
        compact = jws.deserialize_compact(proof, key, algorithms=list(DPOP_ALGORITHMS))
    except JoseError as exc:
        raise invalid_dpop_proof(f"DPoP proof signature does not verify ({exc.error})") from None
    except (ValueError, TypeError, KeyError):  # KeyError: joserfc on an unknown "crv"
        raise invalid_dpop_proof("DPoP proof jwk is not a valid P-256 key") from None
    try:
        claims = json.loads(compact.payload)
    except ValueError:
        raise invalid_dpop_proof("DPoP proof payload is not JSON") from None
    if not isinstance(claims, dict):
        raise invalid_dpop_proof("DPoP proof payload is not a JSON object")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= MAX_JTI_CHARS:
        raise invalid_dpop_proof("DPoP proof jti missing or malformed")
    if claims.get("htm") != method.upper():
        raise invalid_dpop_proof(
            f"DPoP proof htm {claims.get('htm')!r} does not match method {method.upper()}"
        )
    htu = claims.get("htu")
    try:
        same_url = isinstance(htu, str) and normalize_htu(htu) == normalize_htu(url)
    except ValueError:
        same_url = False
    if not same_url:
        raise invalid_dpop_proof(f"DPoP proof htu does not match the request URL {normalize_htu(url)}")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise invalid_dpop_proof("DPoP proof iat missing")
    if iat > t + clock_skew:
        raise invalid_dpop_proof("DPoP proof iat is in the future")
    if iat < t - max_age:
        raise invalid_dpop_proof(f"DPoP proof is older than {int(max_age)}s")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not same_text(ath, access_token_hash(access_token)):
            raise invalid_dpop_proof("DPoP proof ath does not match the access token")
    nonce = claims.get("nonce")
    if nonces is not None and (not isinstance(nonce, str) or not nonces.valid(nonce, t)):
        raise use_dpop_nonce(
            nonces.issue(t),
            "DPoP nonce missing" if nonce is None else "DPoP nonce stale or invalid",
        )
    if replay is not None and not replay.add(f"{jkt}:{jti}", t):
        raise invalid_dpop_proof("DPoP proof replayed (jti already used)")
    return DpopProof(
        jkt=jkt,
        jti=jti,
        htm=method.upper(),
        htu=normalize_htu(url),
        iat=int(iat),
        nonce=nonce if isinstance(nonce, str) else None,
    )
