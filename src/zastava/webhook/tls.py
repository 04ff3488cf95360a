"""Serving certificate with hot reload: the webhook keeps serving while its certificate is rotated.

The listening socket uses one :class:`ssl.SSLContext` whose ``sni_callback`` hands every new handshake the
*current* context. :meth:`CertReloader.check` notices when the certificate or key file changed (inode, size,
mtime), builds a complete new context from both files and swaps it in only if that succeeded: a half-written
pair or a key that does not match the certificate is logged and the previous certificate keeps serving.
Connections already established keep their session.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from pathlib import Path

from ..telemetry import fields

__all__ = ["CertReloader", "server_context"]

log = logging.getLogger("zastava.webhook.tls")


def server_context(cert_path: str | Path, key_path: str | Path) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2+, HTTP/1.1 ALPN) holding the certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(str(cert_path), str(key_path))
    return context


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _fingerprint(cert_path: Path) -> str:
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_path.read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError):
        return "unknown"
    return "sha256:" + hashlib.sha256(der).hexdigest()


class CertReloader:
    def __init__(self, cert_path: str | Path, key_path: str | Path, *, interval: float = 2.0) -> None:
        self.cert_path = Path(cert_path)
        self.key_path = Path(key_path)
        self.interval = interval
        self._current = server_context(self.cert_path, self.key_path)
        self._seen = (_stat(self.cert_path), _stat(self.key_path))
        self.fingerprint = _fingerprint(self.cert_path)
        self.reloads = 0
        self.failures = 0
        self.context = server_context(self.cert_path, self.key_path)
        self.context.sni_callback = self._select

    def _select(
        self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        sslobj.context = self._current

    @property
    def current(self) -> ssl.SSLContext:
        return self._current

    def check(self) -> bool:
        """Reload when the files changed; True when a new certificate is now served."""
        seen = (_stat(self.cert_path), _stat(self.key_path))
        if seen == self._seen:
            return False
        try:
            context = server_context(self.cert_path, self.key_path)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.failures += 1
            log.warning(
                "serving certificate not reloaded; the previous one stays in use",
                extra=fields(cert=str(self.cert_path), error=str(exc)),
            )
            # Leave _seen as it was so that the next check retries (e.g. the key was not written yet).
            return False
        self._current = context
        self._seen = seen
        self.fingerprint = _fingerprint(self.cert_path)
        self.reloads += 1
        log.info(
            "serving certificate reloaded",
            extra=fields(cert=str(self.cert_path), fingerprint=self.fingerprint),
        )
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()
