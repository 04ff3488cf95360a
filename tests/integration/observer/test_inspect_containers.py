"""inspect_process against processes in real containers (Docker engine fixture)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import devstack
from tests.harness.real import missing
from tests.integration.observer.children import independent_dsos, sha256_file
from zastava.observer.elf import read_build_id
from zastava.observer.inspect import inspect_process

pytestmark = pytest.mark.real

CTLIB_C = r"""
int ctlib_answer(void) { return 42; }
"""
PROG_C = r"""
#include <stdio.h>
#include <unistd.h>
extern int ctlib_answer(void);
int main(void) {
    printf("ready %d\n", ctlib_answer());
    fflush(stdout);
    for (;;) pause();
}
"""
PAUSE_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { puts("ready"); fflush(stdout); for (;;) pause(); }
"""


def _gcc(compiler: str, out: Path, source: str, *flags: str) -> Path:
    if shutil.which(compiler) is None:
        missing(f"{compiler} (Debian {'musl-tools' if compiler == 'musl-gcc' else 'gcc'})")
    src = out.with_suffix(".c")
    src.write_text(source)
    result = subprocess.run(
        [compiler, "-O1", "-o", str(out), str(src), *flags], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        missing(f"{compiler} build failed: {result.stderr[-400:]}")
    return out


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zastava-inspect-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def real_lib_dir() -> str:
    """The container path the library really lives at (reached through symlinks inside the image)."""
    return f"/opt/zastava-ctlib-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def ctlib_image(docker_engine: devstack.DockerEngine, workdir: Path, real_lib_dir: str) -> dict[str, Any]:
    lib = _gcc("gcc", workdir / "libctlib.so", CTLIB_C, "-shared", "-fPIC")
    prog = _gcc("gcc", workdir / "prog", PROG_C, f"-L{workdir}", "-lctlib")
    files: dict[str, Path | str | tuple[bytes, int]] = {
        path: path for path in devstack.elf_closure(["/usr/lib/x86_64-linux-gnu/libc.so.6"])
    }
    files["/usr/local/bin/prog"] = prog
    files[f"{real_lib_dir}/libctlib.so"] = lib
    files["/etc/shadow"] = (b"container shadow\n", 0o600)
    devstack.build_image(
        docker_engine,
        "zastava-test/ctlib:1",
        files,
        # LD_LIBRARY_PATH names a symlink whose target climbs with '..' and restarts at '/'
        symlinks={
            "/opt/ctlib": f"../../../../..{real_lib_dir}",
            "/opt/evil": "/etc/shadow",
            "/opt/chain": "../../../../../../etc/shadow",
        },
        entrypoint=["/usr/local/bin/prog"],
        env={"LD_LIBRARY_PATH": "/opt/ctlib"},
    )
    return {"tag": "zastava-test/ctlib:1", "lib": lib, "prog": prog}


def _run(engine: devstack.DockerEngine, image: str, exe: str, *, says_ready: bool = True) -> tuple[Any, int]:
    """Start a container; return it and its host PID once the PID runs ``exe`` (and printed "ready")."""
    container = engine.client().containers.run(image, detach=True, network_mode="none")
    deadline = time.monotonic() + 20
    while True:
        container.reload()
        pid = container.attrs["State"]["Pid"]
        if pid:
            try:
                if os.readlink(f"/proc/{pid}/exe") == exe and (
                    not says_ready or b"ready" in container.logs()
                ):
                    return container, pid
            except OSError:
                pass
        if time.monotonic() > deadline:
            logs = container.logs()[-500:]
            container.remove(force=True)
            raise AssertionError(f"container {image} did not start {exe}: {logs!r}")
        time.sleep(0.05)


@pytest.fixture
def ctlib_container(
    docker_engine: devstack.DockerEngine, ctlib_image: dict[str, Any]
) -> Iterator[tuple[Any, int]]:
    container, pid = _run(docker_engine, ctlib_image["tag"], "/usr/local/bin/prog")
    try:
        yield container, pid
    finally:
        container.remove(force=True)


@pytest.fixture
def host_decoy(real_lib_dir: str) -> Iterator[Path]:
    """A host file at the very path the container's maps shows: it must never be the one hashed."""
    decoy = Path(real_lib_dir) / "libctlib.so"
    assert not decoy.parent.exists()
    decoy.parent.mkdir(parents=True)
    decoy.write_bytes(b"host decoy, not the container's library")
    try:
        yield decoy
    finally:
        shutil.rmtree(decoy.parent)


def test_library_that_exists_only_in_the_container(
    ctlib_container: tuple[Any, int], ctlib_image: dict[str, Any], real_lib_dir: str, host_decoy: Path
) -> None:
    container, pid = ctlib_container
    result = inspect_process(pid)
    by_path = {lib.path: lib for lib in result.loaded_libs}
    lib_path = f"{real_lib_dir}/libctlib.so"
    assert by_path[lib_path].sha256 == sha256_file(ctlib_image["lib"])
    assert by_path["/usr/local/bin/prog"].sha256 == sha256_file(ctlib_image["prog"])
    assert set(by_path) == set(independent_dsos(pid))
    assert result.exe_path == "/usr/local/bin/prog"
    assert result.loaded_libs[0].path == "/usr/local/bin/prog"
    assert result.identity is not None
    assert (result.identity.engine, result.identity.container_id) == ("docker", container.id)
    assert result.identity.uri == f"docker://{container.id}"
    assert result.process.build_id == read_build_id(Path(ctlib_image["prog"]).read_bytes()).build_id
    assert result.process.entrypoint == ["/usr/local/bin/prog"]
    assert not result.partial


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="prerequisite missing: setpriv (util-linux)")
def test_container_objects_through_the_root_without_map_files(
    ctlib_container: tuple[Any, int], ctlib_image: dict[str, Any], real_lib_dir: str, host_decoy: Path
) -> None:
    """With map_files refused (no CAP_SYS_ADMIN), objects are read through /proc/<pid>/root by RootFS."""
    import json

    _, pid = ctlib_container
    with_map_files = inspect_process(pid)
    out = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-sys_admin,-checkpoint_restore",
            "--inh-caps=-sys_admin,-checkpoint_restore",
            "--",
            sys.executable,
            "-m",
            "zastava",
            "inspect",
            str(pid),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    reduced = json.loads(out)
    assert reduced["loadedLibs"] == with_map_files.wire()["loadedLibs"]
    signals = {e["signal"]: e["value"] for e in reduced["evidence"]}
    assert "map_files unavailable" in signals["procfs.map_files"]
    assert "hash.unreadable" not in signals
    libs = {lib["path"]: lib.get("sha256") for lib in reduced["loadedLibs"]}
    assert libs[f"{real_lib_dir}/libctlib.so"] == sha256_file(ctlib_image["lib"]) != sha256_file(host_decoy)
    shadow = sha256_file("/etc/shadow") if os.path.exists("/etc/shadow") else None
    assert all(lib.get("sha256") != shadow for lib in reduced["loadedLibs"])


def test_musl_program_in_a_container(docker_engine: devstack.DockerEngine, workdir: Path) -> None:
    musl_libc = "/lib/ld-musl-x86_64.so.1"
    if not os.path.exists(musl_libc):
        missing("musl loader /lib/ld-musl-x86_64.so.1 (Debian musl)")
    prog = _gcc("musl-gcc", workdir / "muslprog", PAUSE_C, "-Wl,--build-id=sha1")
    devstack.build_image(
        docker_engine,
        "zastava-test/musl:1",
        {"/app/prog": prog, musl_libc: musl_libc},
        entrypoint=["/app/prog"],
    )
    container, pid = _run(docker_engine, "zastava-test/musl:1", "/app/prog")
    try:
        result = inspect_process(pid)
        expected = independent_dsos(pid)
    finally:
        container.remove(force=True)
    assert {lib.path for lib in result.loaded_libs} == set(expected) == {"/app/prog", musl_libc}
    by_path = {lib.path: lib.sha256 for lib in result.loaded_libs}
    assert by_path["/app/prog"] == sha256_file(prog)
    assert by_path[musl_libc] == sha256_file(musl_libc)
    assert result.process.build_id == read_build_id(prog.read_bytes()).build_id is not None
    assert result.identity is not None and result.identity.container_id == container.id


def test_static_program_without_build_id(docker_engine: devstack.DockerEngine, workdir: Path) -> None:
    prog = _gcc("gcc", workdir / "static", PAUSE_C, "-static", "-Wl,--build-id=none")
    devstack.build_image(docker_engine, "zastava-test/static:1", {"/static": prog}, entrypoint=["/static"])
    container, pid = _run(docker_engine, "zastava-test/static:1", "/static")
    try:
        result = inspect_process(pid)
    finally:
        container.remove(force=True)
    assert [(lib.path, lib.sha256) for lib in result.loaded_libs] == [("/static", sha256_file(prog))], (
        result.evidence
    )
    assert result.process.build_id is None
    evidence = {e.signal: e.value for e in result.evidence}
    assert evidence["elf.build_id.absent"].startswith("/static: no NT_GNU_BUILD_ID note")


def test_static_busybox_image(docker_engine: devstack.DockerEngine, busybox_image: str) -> None:
    container, pid = _run(docker_engine, busybox_image, "/bin/busybox", says_ready=False)
    try:
        deadline = time.monotonic() + 10
        while open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0] != b"sleep":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        result = inspect_process(pid)
    finally:
        container.remove(force=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    assert [(lib.path, lib.sha256) for lib in result.loaded_libs] == [("/bin/busybox", sha256_file(busybox))]
    assert result.exe_path == "/bin/busybox"
    assert result.process.entrypoint == ["sleep"]  # argv[0] as exec'd by /entry.sh; "1000000" not exported
    assert result.process.build_id == read_build_id(Path(busybox).read_bytes()).build_id is not None
    assert result.identity is not None and result.identity.uri == f"docker://{container.id}"


def test_dynamic_image(docker_engine: devstack.DockerEngine, dynamic_image: str) -> None:
    container, pid = _run(docker_engine, dynamic_image, "/usr/bin/sleep", says_ready=False)
    try:
        deadline = time.monotonic() + 10
        while not any("libc.so" in p for p in independent_dsos(pid)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        result = inspect_process(pid)
        expected = independent_dsos(pid)
        through_root = {p: sha256_file(f"/proc/{pid}/root{p}") for p in expected}
    finally:
        container.remove(force=True)
    assert {lib.path: lib.inode for lib in result.loaded_libs} == expected
    assert {lib.path: lib.sha256 for lib in result.loaded_libs} == through_root
    assert result.identity is not None and result.identity.container_id == container.id
