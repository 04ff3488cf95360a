"""A distribution registry and a PostgreSQL server on loopback, each in its own temp dir and port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx

from .packages import ensure_packages, is_root
from .process import ManagedProcess, PrerequisiteMissing, free_port, wait_until

__all__ = ["PostgresServer", "RegistryServer"]


class RegistryServer:
    """Debian's distribution registry (2.8): no referrers API, tag-schema fallback works (spec §3.1)."""

    def __init__(
        self, workdir: Path | None = None, *, port: int | None = None, htpasswd: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="zastava-registry-"))
        self.port = port or free_port()
        self.htpasswd = htpasswd
        self.process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> RegistryServer:
        packages = ["docker-registry"] + (["apache2-utils"] if self.htpasswd else [])
        ensure_packages(packages)
        if shutil.which("docker-registry") is None:
            raise PrerequisiteMissing("docker-registry binary not found")
        self.workdir.mkdir(parents=True, exist_ok=True)
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        lines = [
            "version: 0.1",
            "log: {level: warn}",
            "storage:",
            f"  filesystem: {{rootdirectory: {storage}}}",
            "  delete: {enabled: true}",
            "http:",
            f"  addr: {self.host}",
        ]
        if self.htpasswd:
            path = self.workdir / "htpasswd"
            path.write_text("")
            for user, password in self.htpasswd.items():
                subprocess.run(
                    ["htpasswd", "-bB", str(path), user, password], check=True, capture_output=True
                )
            lines += ["auth:", "  htpasswd:", "    realm: zastava-test", f"    path: {path}"]
        config = self.workdir / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        self.process = ManagedProcess(
            "registry", ["docker-registry", "serve", str(config)], self.workdir
        ).start()

        def ready() -> bool:
            assert self.process is not None
            self.process.check_running()
            return httpx.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401)

        wait_until(ready, 30, "registry")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class PostgresServer:
    """PostgreSQL 15 from Debian, trust auth on 127.0.0.1 and a private unix socket dir.

    ``network`` (an address of this machine and a CIDR, e.g. a container network's gateway and subnet) also
    listens there, for clients of that CIDR with the ``postgres`` user's ``password`` (SCRAM): containers
    reach it as they would a database outside the cluster.
    """

    PGBIN = Path("/usr/lib/postgresql/15/bin")

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        port: int | None = None,
        network: tuple[str, str] | None = None,
        password: str | None = None,
    ) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="zastava-postgres-"))
        self.network = network
        self.password = password
        self.port = port or free_port()
        self.data = self.workdir / "data"
        self.sock = self.workdir / "sock"
        self.started = False

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def _pg(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = " ".join(args)
        argv = ["su", "postgres", "-s", "/bin/sh", "-c", cmd] if is_root() else ["/bin/sh", "-c", cmd]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> PostgresServer:
        ensure_packages(["postgresql"])
        pgbin = self._pgbin()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if is_root():
            shutil.chown(self.workdir, "postgres")
            shutil.chown(self.data, "postgres")
            shutil.chown(self.sock, "postgres")
        result = self._pg(
            f"{pgbin}/initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr}")
        listen = "127.0.0.1"
        if self.network is not None:
            address, cidr = self.network
            listen += f",{address}"
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {cidr} scram-sha-256\n")
        options = (
            f"-c listen_addresses={listen} -p {self.port} -k {self.sock} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        result = self._pg(
            f"{pgbin}/pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.sock / "pg.log"),
            "-o",
            f"'{options}'",
            "-w",
            "start",
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}{result.stdout}")
        self.started = True

        def ready() -> bool:
            probe = subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc", "select 1"],
                capture_output=True,
                text=True,
                check=False,
            )
            return probe.stdout.strip() == "1"

        wait_until(ready, 30, "postgres")
        if self.password is not None:
            escaped = self.password.replace("'", "''")
            self.psql(f"ALTER USER postgres PASSWORD '{escaped}'")
        return self

    def _pgbin(self) -> Path:
        if (self.PGBIN / "initdb").exists():
            return self.PGBIN
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise PrerequisiteMissing("PostgreSQL server binaries (initdb) not found")
        return found[-1].parent

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-tAc", sql],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if not self.started:
            return
        # pg_ctl stops the postmaster by the PID in its postmaster.pid
        self._pg(f"{self._pgbin()}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.started = False

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
