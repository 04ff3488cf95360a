"""The real services of the drift suite and benchmark (issue 22), built from the host's static busybox.

* ``loop`` — a resident shell loop (``/loop.sh``: ``date``, ``cat``, ``sleep`` forever);
* ``jobs`` — a job runner (``/runner.sh`` runs ``/jobs/cleanup.sh`` and ``/jobs/report.sh`` every 0.3 s) with
  a crontab for ``crond``;
* ``web`` — a start-up script running helpers for ~1.5 s before it ``exec``s ``busybox httpd`` on the exposed
  port 8080, a Docker ``HEALTHCHECK`` every second, and a CGI script standing for an exploitable endpoint.

Used by ``tests/integration/observer/agent/test_drift_services.py`` and ``bench/bench_drift.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from . import devstack

__all__ = ["QUIET", "build_service_images", "http_get"]

TOOLS = (
    "sh",
    "sleep",
    "date",
    "cat",
    "mkdir",
    "ls",
    "wc",
    "find",
    "touch",
    "rm",
    "id",
    "nc",
    "wget",
    "httpd",
    "crond",
)
LOOP = b"#!/bin/sh\nwhile true; do\n  date > /tmp/now\n  cat /tmp/now > /dev/null\n  sleep 0.2\ndone\n"
RUNNER = b"""#!/bin/sh
mkdir -p /tmp/spool
while true; do
  /jobs/cleanup.sh
  /jobs/report.sh
  sleep 0.3
done
"""
CLEANUP = (
    b"#!/bin/sh\nrm -f /tmp/spool/*.old\ntouch /tmp/spool/run.old\nfind /tmp/spool -type f > /dev/null\n"
)
REPORT = b"#!/bin/sh\nls /tmp/spool > /tmp/report\nwc -l /tmp/report > /dev/null\n"
CRONTAB = b"# m h dom mon dow command\n*/5 * * * * /jobs/report.sh\n"
START = b"""#!/bin/sh
set -e
i=0
while [ "$i" -lt 6 ]; do
  cat /etc/hostname > /dev/null
  sleep 0.25
  i=$((i + 1))
done
mkdir -p /www
echo ok > /www/index.html
exec httpd -f -p 8080 -h /www
"""
#: the exploitable endpoint: what an attacker's request makes the web server run
CGI = b"""#!/bin/sh
echo "Content-Type: text/plain"
echo
id
nc -l -p 4444 < /dev/null > /dev/null 2>&1 &
echo done
"""
#: the quiet window the suite runs with (s)
QUIET = 4.0


def _image(engine: devstack.DockerEngine, tag: str, files: dict[str, Any], **kwargs: Any) -> str:
    busybox = shutil.which("busybox") or "/bin/busybox"
    return devstack.build_image(
        engine,
        tag,
        {"/bin/busybox": busybox, **files},
        symlinks={f"/bin/{tool}": "busybox" for tool in TOOLS},
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        **kwargs,
    )


def build_service_images(docker_engine: devstack.DockerEngine) -> dict[str, str]:
    """Build the three images; returns name → tag."""
    _image(docker_engine, "drift/loop:1", {"/loop.sh": (LOOP, 0o755)}, entrypoint=["/loop.sh"])
    _image(
        docker_engine,
        "drift/jobs:1",
        {
            "/runner.sh": (RUNNER, 0o755),
            "/jobs/cleanup.sh": (CLEANUP, 0o755),
            "/jobs/report.sh": (REPORT, 0o755),
            "/etc/crontabs/root": (CRONTAB, 0o600),
            "/etc/hostname": (b"jobs\n", 0o644),
        },
        entrypoint=["/runner.sh"],
    )
    _image(
        docker_engine,
        "drift/web:1",
        {"/start.sh": (START, 0o755), "/www/cgi-bin/run": (CGI, 0o755)},
        entrypoint=["/start.sh"],
        instructions=[
            "EXPOSE 8080",
            "HEALTHCHECK --interval=1s --timeout=3s CMD wget -q -O /dev/null http://127.0.0.1:8080/index.html",
        ],
    )
    return {"loop": "drift/loop:1", "jobs": "drift/jobs:1", "web": "drift/web:1"}


def http_get(pid: int, path: str) -> bytes:
    """A request from the host into the network namespace of ``pid`` only (the client is no process of the
    container): ``busybox wget`` under ``nsenter --net``."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    argv = ["nsenter", f"--net=/proc/{pid}/ns/net", busybox, "wget", "-q", "-O", "-"]
    result = subprocess.run(
        [*argv, f"http://127.0.0.1:8080{path}"], capture_output=True, timeout=10, check=False
    )
    return result.stdout
