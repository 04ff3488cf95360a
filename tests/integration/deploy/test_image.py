"""The image built from the Dockerfile: multi-stage, non-root, no build tools in the final stage."""

from __future__ import annotations

from zastava import __version__, devstack


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
