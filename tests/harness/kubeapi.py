"""A stand-in Kubernetes API server for containers: ``kmock``'s KubernetesEmulator, served over TLS.

A *fake*: no kube-apiserver can run on the test machine. kmock keeps objects in memory and serves list, watch,
get, create over HTTP; here it runs in its own thread and event loop, behind TLS with a certificate for the
address the containers reach it at (the pod network's gateway), so a Pod's in-cluster client (lightkube's
``KubeConfig.from_env``: ``KUBERNETES_SERVICE_HOST``/``PORT``, the token and ``ca.crt`` the kubelet
projects) talks to it exactly as to an API server. It checks no token and enforces no RBAC.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import tempfile
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .kubelet import KubeApiEndpoint

__all__ = ["KmockApiServer"]


def _self_signed(ip: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver (kmock)")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(ip)), x509.DNSName("kubernetes.default.svc")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class KmockApiServer:
    """kmock over TLS on ``host`` (a random port), in a background thread."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.cert_pem, key_pem = _self_signed(host)
        self._dir = Path(tempfile.mkdtemp(prefix="zastava-kmock-"))
        (self._dir / "tls.crt").write_bytes(self.cert_pem)
        (self._dir / "tls.key").write_bytes(key_pem)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kmock", daemon=True)
        self._emulator: Any = None
        self._server: Any = None
        self.port = 0

    def start(self) -> KmockApiServer:
        import aiohttp.test_utils
        import kmock

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._dir / "tls.crt", self._dir / "tls.key")

        class TlsServer(aiohttp.test_utils.RawTestServer):
            async def start_server(self, **kwargs: Any) -> None:
                await super().start_server(ssl=context, **kwargs)

        async def enter() -> None:
            emulator = kmock.KubernetesEmulator()
            await emulator.__aenter__()
            server = kmock.Server(emulator, host=self.host, server_cls=TlsServer)
            await server.__aenter__()
            self._emulator = emulator
            self._server = server
            self.port = int(server.port)

        self._thread.start()
        self._call(enter())
        return self

    def _call(self, coro: Any, timeout: float = 30) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    @property
    def endpoint(self) -> KubeApiEndpoint:
        return KubeApiEndpoint(host=self.host, port=self.port, ca_pem=self.cert_pem)

    def create_pod(self, pod: Mapping[str, Any]) -> None:
        """What the kubelet reports: a Pod object (with its status) stored in the emulator."""
        import httpx

        namespace = pod["metadata"]["namespace"]
        context = ssl.create_default_context(cadata=self.cert_pem.decode())
        response = httpx.post(
            f"https://{self.host}:{self.port}/api/v1/namespaces/{namespace}/pods",
            json=dict(pod),
            verify=context,
            timeout=10,
        )
        response.raise_for_status()

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            self._call(server.__aexit__(None, None, None))
        if self._emulator is not None:
            emulator, self._emulator = self._emulator, None
            self._call(emulator.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)
