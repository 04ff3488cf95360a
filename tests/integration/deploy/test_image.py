"""The image built from the Dockerfile: multi-stage, non-root, no build tools in the final stage."""

from __future__ import annotations

from pathlib import Path

from tests.harness import devstack
from zastava import __version__

ROOT = Path(__file__).resolve().parents[3]


def test_image_runs_zastava_as_non_root(docker_engine: devstack.DockerEngine, zastava_image: str) -> None:
    out = docker_engine.docker("run", "--rm", "--network", "none", zastava_image, "--version").stdout.decode()
    assert out.strip() == f"zastava {__version__}"
    ident = docker_engine.docker("run", "--rm", "--network", "none", "--entrypoint", "id", zastava_image)
    assert ident.stdout.decode().startswith("uid=65532 gid=65532")
    config = docker_engine.client().images.get(zastava_image).attrs["Config"]
    assert config["Entrypoint"] == ["/opt/zastava/bin/zastava"] and config["User"] == "65532:65532"


def test_final_stage_has_no_build_tools(docker_engine: devstack.DockerEngine, zastava_image: str) -> None:
    probe = docker_engine.docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        zastava_image,
        "-c",
        "for t in gcc cc make pip pip3 /opt/zastava/bin/pip; do command -v $t; done; "
        "ls /src 2>/dev/null; ls /opt/zastava/lib/python3*/site-packages | grep -ci '^setuptools' || true",
        check=False,
    )
    assert probe.stdout.decode().split() == ["0"], probe.stdout.decode()


def test_every_component_command_is_in_the_image(
    docker_engine: devstack.DockerEngine, zastava_image: str
) -> None:
    out = docker_engine.docker("run", "--rm", "--network", "none", zastava_image, "--help").stdout.decode()
    for command in ("contracts", "canon", "config"):
        assert command in out


def test_the_image_carries_only_the_production_package(
    docker_engine: devstack.DockerEngine, zastava_image: str
) -> None:
    """Test tooling (the stand-in Fulcio/Rekor, the package installer, the dev stack) stays out of the image:
    the installed ``zastava`` package is exactly ``src/zastava``, and no ``tests`` package is importable."""
    listing = (
        docker_engine.docker(
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/opt/zastava/bin/python",
            zastava_image,
            "-c",
            "import importlib.util, pathlib, zastava; root = pathlib.Path(zastava.__file__).parent; "
            "print(*sorted(str(p.relative_to(root)) for p in root.rglob('*.py')), sep='\\n'); "
            "print('tests importable:', importlib.util.find_spec('tests') is not None)",
        )
        .stdout.decode()
        .split()
    )
    shipped = sorted(str(p.relative_to(ROOT / "src/zastava")) for p in (ROOT / "src/zastava").rglob("*.py"))
    assert listing[-1] == "False", listing[-3:]
    assert listing[:-3] == shipped
