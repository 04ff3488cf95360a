"""An ASGI app served by uvicorn on a loopback socket, in a thread of the test process.

The socket is bound when the object is made, so its port is known (and cannot be taken by anyone else) before
the app exists — a server whose app needs its own URL (an OIDC issuer, a registry token realm) sets ``app``
afterwards. Stopped with :meth:`stop` (``should_exit``), never by killing anything; :meth:`start` after
:meth:`stop` serves again on the same port (outage tests: connections are refused in between).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from zastava.webhook.server import bind_socket


class ThreadedServer:
    def __init__(
        self, app: Any = None, *, port: int = 0, host: str = "127.0.0.1", **uvicorn_options: Any
    ) -> None:
        self.sock: socket.socket | None = None
        self.host = host  # another loopback address (127.0.0.2) is another host to an HTTP client
        self.port = port
        self._bind()
        self.app = app
        self.options = {
            "log_level": "warning",
            "log_config": None,
            "access_log": False,
            "lifespan": "on",
            "timeout_graceful_shutdown": 1,
            **uvicorn_options,
        }
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def _bind(self) -> None:
        # the webhook's own binding: a TCP-proto socket, so asyncio sets TCP_NODELAY on accepted connections
        # (a plain socket() here cost ~40 ms per request to Nagle + delayed ACK)
        self.sock = bind_socket(self.host, self.port)
        self.port = self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20) -> ThreadedServer:
        if self.sock is None:
            self._bind()
        self.server = uvicorn.Server(uvicorn.Config(self.app, **self.options))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True, name=f"uvicorn-{self.port}"
        )
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(15)
        self.server = self.thread = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
