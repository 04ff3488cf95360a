"""Real Debian-packaged services for the drift suite and benchmark (issue 22).

One image with the packages, on the debootstrapped base the Zastava image is built on
(:func:`~tests.harness.devstack.baseimage.debian_base_image`, shared in a session), ``apt-get install`` from
the same Debian mirror in a ``docker build`` on the host network; then one image per service on top of it,
each with the entrypoint, ``EXPOSE`` and ``HEALTHCHECK`` such services are shipped with:

* ``nginx`` — an official-style ``/docker-entrypoint.sh`` (runs ``/docker-entrypoint.d/*.sh`` helpers, then
  ``exec nginx -g 'daemon off;'``), port 80, a health check;
* ``postgres`` — an official-style entrypoint: as root it ``chown``s the data directory and steps down to
  ``postgres`` with ``setpriv`` (``gosu`` is not in Debian), runs ``initdb``, starts a private server, runs
  ``/docker-entrypoint-initdb.d/*.sh`` (``psql``) and ``*.sql`` while still pid 1, then ``exec postgres``;
* ``redis`` — an entrypoint that ``exec``s ``setpriv --reuid=redis … redis-server``; port 6379;
* ``cron`` — Debian ``cron -f`` with two jobs in ``/etc/cron.d/app`` (a rotation script, a heartbeat);
* ``supervisor`` — ``supervisord -n`` running two programs (a shell worker loop and ``sleep``).

Normal load comes from the host inside each container's network namespace (``nsenter --net``: the clients
are host processes): HTTP GETs, SQL over TCP (the host's ``psql``), Redis commands (busybox ``nc``).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from .devstack import DockerEngine
from .devstack.baseimage import debian_base_image
from .devstack.packages import ensure_packages

__all__ = [
    "PACKAGES",
    "SERVICES",
    "build_debian_services",
    "catalog_posture",
    "dpkg_sbom",
    "http_get",
    "pg_query",
    "redis_command",
]

#: apt packages of the services image (util-linux, with setpriv, is essential)
PACKAGES = ("nginx-light", "postgresql-15", "redis-server", "cron", "supervisor", "busybox", "procps")
BASE_TAG = "drift-debian/services-base:bookworm"

_BASE_DOCKERFILE = f"""FROM {{base}}
# no service starts during the install (no init here); no default cluster (the entrypoint makes its own)
RUN printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \\
 && mkdir -p /etc/postgresql-common \\
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {" ".join(PACKAGES)} \\
    > /dev/null \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
"""

NGINX_ENTRY = b"""#!/bin/sh
# official-image style: run the helpers in /docker-entrypoint.d, then the server
set -e
if [ "$1" = "nginx" ]; then
  for f in $(find /docker-entrypoint.d/ -type f -name '*.sh' | sort -V); do
    echo "$0: running $f"
    "$f"
  done
fi
exec "$@"
"""
NGINX_HELPER = b"""#!/bin/sh
set -e
mkdir -p /var/www/html
echo "ok from $(hostname)" > /var/www/html/index.html
sed -i 's/^user www-data;/user www-data;/' /etc/nginx/nginx.conf
"""

PG_ENTRY = b"""#!/bin/bash
# official-image style, written anew: root chowns and steps down, initdb, init scripts
set -Eeo pipefail
export PATH="/usr/lib/postgresql/15/bin:$PATH"
if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi
if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" --username=postgres --auth=trust -E UTF8 > /dev/null
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w start > /dev/null
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "$0: running $f"; . "$f" ;;
      *.sql) echo "$0: running $f"; psql -v ON_ERROR_STOP=1 --username postgres -q -f "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
fi
exec "$@"
"""
PG_INIT_SH = b"""#!/bin/bash
set -e
psql -v ON_ERROR_STOP=1 --username postgres -q <<-EOSQL
  CREATE DATABASE app;
EOSQL
psql -v ON_ERROR_STOP=1 --username postgres -q -d app \\
  -c 'CREATE TABLE items (id serial PRIMARY KEY, name text)'
"""
PG_INIT_SQL = b"\\connect app\nINSERT INTO items (name) SELECT 'seed' ;\n"

REDIS_ENTRY = b"""#!/bin/sh
set -e
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
  find /data \\! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
"""

#: two jobs, every minute (cron's finest grain): a rotation script, and a heartbeat as another user
CRON_D = b"""SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin
* * * * * root /usr/local/bin/rotate.sh
* * * * * www-data date -u > /tmp/heartbeat
"""
ROTATE = b"""#!/bin/sh
mkdir -p /var/log/app
touch /var/log/app/current.log
find /var/log/app -name '*.old' -delete
mv /var/log/app/current.log /var/log/app/rotated.old
date > /tmp/rotated
"""

SUPERVISOR_CONF = b"""[program:worker]
command=/usr/local/bin/worker.sh
autorestart=true
[program:idle]
command=/bin/sleep infinity
"""
WORKER = b"""#!/bin/bash
while true; do
  date > /tmp/worker
  cat /tmp/worker > /dev/null
  sleep 0.5
done
"""

#: name → (Dockerfile lines after FROM, files: container path → (bytes, mode))
SERVICES: dict[str, tuple[list[str], dict[str, tuple[bytes, int]]]] = {
    "nginx": (
        [
            "EXPOSE 80",
            "HEALTHCHECK --interval=2s --timeout=3s"
            " CMD busybox wget -q -O /dev/null http://127.0.0.1/ || exit 1",
            'ENTRYPOINT ["/docker-entrypoint.sh"]',
            'CMD ["nginx", "-g", "daemon off;"]',
        ],
        {
            "/docker-entrypoint.sh": (NGINX_ENTRY, 0o755),
            "/docker-entrypoint.d/10-index.sh": (NGINX_HELPER, 0o755),
        },
    ),
    "postgres": (
        [
            "ENV PGDATA=/var/lib/postgresql/data",
            "EXPOSE 5432",
            'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
            'CMD ["postgres", "-c", "listen_addresses=127.0.0.1"]',
        ],
        {
            "/usr/local/bin/docker-entrypoint.sh": (PG_ENTRY, 0o755),
            "/docker-entrypoint-initdb.d/10-app.sh": (PG_INIT_SH, 0o755),
            "/docker-entrypoint-initdb.d/20-seed.sql": (PG_INIT_SQL, 0o644),
        },
    ),
    "redis": (
        [
            "RUN mkdir -p /data && chown redis:redis /data",
            "EXPOSE 6379",
            'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
            'CMD ["redis-server", "--protected-mode", "no", "--dir", "/data", "--save", "5 1"]',
        ],
        {"/usr/local/bin/docker-entrypoint.sh": (REDIS_ENTRY, 0o755)},
    ),
    "cron": (
        ['CMD ["cron", "-f"]'],
        {"/etc/cron.d/app": (CRON_D, 0o644), "/usr/local/bin/rotate.sh": (ROTATE, 0o755)},
    ),
    "supervisor": (
        ['CMD ["/usr/bin/supervisord", "-n", "-c", "/etc/supervisor/supervisord.conf"]'],
        {
            "/etc/supervisor/conf.d/app.conf": (SUPERVISOR_CONF, 0o644),
            "/usr/local/bin/worker.sh": (WORKER, 0o755),
        },
    ),
}


def _build(engine: DockerEngine, tag: str, dockerfile: str, files: dict[str, tuple[bytes, int]]) -> None:
    with tempfile.TemporaryDirectory(prefix="zastava-drift-debian-") as tmp:
        context = Path(tmp)
        lines = dockerfile.splitlines()
        if files:
            rootfs = context / "rootfs"
            for target, (data, mode) in files.items():
                dest = rootfs / target.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
                dest.chmod(mode)
            lines.insert(1, "COPY rootfs/ /")
        (context / "Dockerfile").write_text("\n".join(lines) + "\n")
        # the host network: apt reaches the Debian mirror (the engine runs bridge-free)
        engine.docker("build", "--quiet", "--network", "host", "--tag", tag, str(context), timeout=900)


def build_debian_services(engine: DockerEngine) -> dict[str, str]:
    """The five service images (built once per engine); returns name → tag."""
    ensure_packages(["busybox-static", "postgresql"])  # the host-side clients: busybox wget/nc, psql
    if engine.docker("image", "inspect", BASE_TAG, check=False).returncode != 0:
        _build(engine, BASE_TAG, _BASE_DOCKERFILE.format(base=debian_base_image(engine)), {})
    tags = {}
    for name, (instructions, files) in SERVICES.items():
        tag = f"drift-debian/{name}:1"
        _build(engine, tag, "\n".join([f"FROM {BASE_TAG}", *instructions]), files)
        tags[name] = tag
    return tags


def _netns(pid: int, *argv: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", *argv],
        input=stdin,
        capture_output=True,
        timeout=20,
        check=False,
    )
    return result.stdout


def pg_query(pid: int, sql: str) -> bytes:
    """SQL from the host's ``psql`` over TCP inside the container's network namespace."""
    psql = shutil.which("psql") or "/usr/bin/psql"
    return _netns(pid, psql, "-h", "127.0.0.1", "-U", "postgres", "-d", "app", "-Atqc", sql)


def redis_command(pid: int, *commands: str) -> bytes:
    """Inline Redis commands over TCP (the host's busybox ``nc``) inside the container's network namespace."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    payload = "".join(f"{c}\r\n" for c in (*commands, "QUIT")).encode()
    return _netns(pid, busybox, "nc", "127.0.0.1", "6379", stdin=payload)


def http_get(pid: int, path: str, port: int = 80) -> bytes:
    """A GET from the host's busybox ``wget`` inside the container's network namespace."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    return _netns(pid, busybox, "wget", "-q", "-O", "-", f"http://127.0.0.1:{port}{path}")


#: the dpkg file lists read for an SBOM: 64 MiB of tar at most (the services image's are ~3 MiB)
_MAX_DPKG_TAR = 64 << 20


def dpkg_sbom(engine: DockerEngine, tag: str) -> dict[str, Any]:
    """A CycloneDX SBOM of the image's Debian packages, as a scanner reading the dpkg database writes it: one
    component per package, its shared objects as ``evidence.occurrences`` — with the paths dpkg lists
    (``/lib/x86_64-linux-gnu/libc.so.6``; usr-merge makes them ``/usr/lib/…`` at run time). Read with
    ``docker create`` + ``docker cp`` (nothing runs in the image)."""
    created = engine.docker("create", tag).stdout.decode().strip()
    try:
        raw = engine.docker("cp", f"{created}:/var/lib/dpkg/info", "-").stdout[:_MAX_DPKG_TAR]
    finally:
        engine.docker("rm", "-f", created, check=False)
    components = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".list"):
                continue
            handle = tar.extractfile(member)
            lines = handle.read().decode("utf-8", "replace").splitlines() if handle else []
            libraries = sorted({p for p in lines if ".so" in p.rsplit("/", 1)[-1] and "/lib" in p})
            if not libraries:
                continue
            package = member.name.rsplit("/", 1)[-1].removesuffix(".list")
            name = package.split(":", 1)[0]
            components.append(
                {
                    "bom-ref": f"pkg:deb/debian/{name}",
                    "type": "library",
                    "name": name,
                    "evidence": {"occurrences": [{"location": p} for p in libraries]},
                }
            )
    return {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components}


async def catalog_posture(engine: DockerEngine, images: dict[str, str], db: Path) -> tuple[Any, Any]:
    """(posture, http client): the observer's posture client on the real reference backend (in-process
    ASGI, SQLite at ``db``) whose catalog holds, for every image, the :func:`dpkg_sbom` of the services
    image (all share its packages). Close the client when done."""
    import asyncio

    import httpx

    from zastava.backend.app import create_app
    from zastava.config import BackendServer
    from zastava.observer.posture_client import BackendPosture

    app = create_app(BackendServer(store=f"sqlite:///{db}", static_tenant="t"), purge=False, verifier=None)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backend")
    sbom = await asyncio.to_thread(dpkg_sbom, engine, images["nginx"])
    for tag in images.values():
        digest = engine.client().images.get(tag).id
        put = await client.put(f"/api/v1/scanner/catalog/images/{digest}", json={"sbom": sbom})
        if put.status_code != 200:
            raise RuntimeError(f"catalog PUT {digest}: {put.status_code} {put.text[:300]}")
    return BackendPosture("http://backend", client=client), client
