"""An ASGI app served by uvicorn on a loopback socket, in a thread of the test process.

The socket is bound when the object is made, so its port is known (and cannot be taken by anyone else) before
the app exists — a server whose app needs its own URL (an OIDC issuer, a registry token realm) sets ``app``
afterwards. Stopped with :meth:`stop` (``should_exit``), never by killing anything.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class ThreadedServer:
    def __init__(self, app: Any = None, **uvicorn_options: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
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

    def start(self, timeout: float = 20) -> ThreadedServer:
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
        self.sock.close()
