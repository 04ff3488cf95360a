"""The image run as the Docker-host observer of spec §1.2/§13, reporting to a backend container (same image).

The observer container gets exactly what docs/deploy.md prescribes: host PID namespace, root with only
DAC_READ_SEARCH + SYS_PTRACE, read-only root filesystem, no-new-privileges, host /proc mounted read-only at
/host/proc, the engine socket read-only. Both containers use the host network only because the test's private
Docker engine runs without a bridge; the backend listens on loopback, and so do the observer's /metrics and
the OTLP receiver its traces go to (the image carries the otel extra).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import devstack
from tests.harness.otlp import OtlpReceiver


def _wait_events(url: str, container_id: str, kind: str, timeout: float = 90) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            page = httpx.get(
                f"{url}/api/v1/scanner/runtime/events", params={"limit": "200"}, timeout=5
            ).json()
            last = page
            for item in page.get("items", []):
                event = item["envelope"]["event"]
                if event["kind"] == kind and event["workload"]["containerId"] == f"docker://{container_id}":
                    return event  # type: ignore[no-any-return]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(
        f"no {kind} for {container_id[:12]} within {timeout}s; last answer: {str(last)[:500]}"
    )


def test_docker_host_observer_reports_a_sibling_to_a_backend_container(
    docker_engine: devstack.DockerEngine, zastava_image: str, busybox_image: str, tmp_path: Path
) -> None:
    port = devstack.free_port()
    metrics_port = devstack.free_port()
    receiver = OtlpReceiver().start()
    backend_url = f"http://127.0.0.1:{port}"
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "zastava.yaml").write_text(
        yaml.safe_dump(
            {
                "zastava": {
                    "backend": {"baseAddress": backend_url, "allowInsecureHttp": True},
                    "runtime": {
                        "tenant": "tenant-01",
                        "engine": "docker",
                        "procfs": "/host/proc",
                        "authority": {"requireDpop": False, "requireMutualTls": False},
                        "tracing": {"otlpEndpoint": receiver.url},
                    },
                    "observer": {
                        "nodeName": "docker-host",
                        "listen": f"127.0.0.1:{metrics_port}",
                        "engines": {"dockerHost": "unix:///var/run/docker.sock"},
                    },
                    "publisher": {"bufferDir": "/var/lib/zastava/buffer", "flushIntervalSeconds": 0.5},
                }
            }
        )
    )
    config_dir.chmod(0o755)
    (config_dir / "zastava.yaml").chmod(0o644)
    started: list[str] = []

    def run(*args: str) -> str:
        container_id = docker_engine.docker("run", "-d", *args).stdout.decode().strip()
        started.append(container_id)
        return container_id

    try:
        run(
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--name",
            "zastava-backend",
            zastava_image,
            "backend",
            "serve",
            "--store",
            "sqlite:////tmp/zastava.db",
            "--listen",
            f"127.0.0.1:{port}",
        )
        devstack.wait_until(
            lambda: httpx.get(f"{backend_url}/readyz", timeout=2).status_code == 200, 90, "backend"
        )
        observer = run(
            "--network",
            "host",
            "--pid",
            "host",
            "--user",
            "0",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "DAC_READ_SEARCH",
            "--cap-add",
            "SYS_PTRACE",
            "--security-opt",
            "no-new-privileges",
            "-v",
            "/proc:/host/proc:ro",
            "-v",
            f"{docker_engine.socket}:/var/run/docker.sock:ro",
            "-v",
            f"{config_dir}:/etc/zastava:ro",
            "--tmpfs",
            "/var/lib/zastava/buffer",
            "--tmpfs",
            "/tmp",
            "-e",
            "NODE_NAME=docker-host",
            "--name",
            "zastava-observer",
            zastava_image,
            "observer",
            "run",
            "--config",
            "/etc/zastava/zastava.yaml",
        )
        time.sleep(3)  # let the observer subscribe to engine events
        sibling = run("--network", "none", busybox_image)
        event = _wait_events(backend_url, sibling, "CONTAINER_START")
        assert event["node"] == "docker-host"
        process = event["process"]
        assert isinstance(process, dict) and process["pid"] > 0
        assert process.get("buildId") == "0daa1a3855d8d19053684e2a8bd73d647939376e"  # Debian's static busybox
        libs = event["loadedLibs"]
        assert isinstance(libs, list) and any(
            lib["path"] == "/bin/busybox" and lib.get("sha256") for lib in libs
        )
        inspect = docker_engine.client().containers.get(observer).attrs
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        assert {c.removeprefix("CAP_") for c in inspect["HostConfig"]["CapAdd"]} == {
            "DAC_READ_SEARCH",
            "SYS_PTRACE",
        }
        docker_engine.docker("rm", "-f", sibling)
        started.remove(sibling)
        _wait_events(backend_url, sibling, "CONTAINER_STOP")
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/readyz", timeout=5).status_code == 200
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        samples = {
            (s.name, s.labels.get("kind", "")): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("zastava_runtime_events_total", "CONTAINER_START")] >= 1
        assert samples[("zastava_runtime_events_total", "CONTAINER_STOP")] >= 1
        assert samples[("zastava_hash_bytes_total", "")] > 0
        docker_engine.docker("stop", "--time", "10", observer)  # SIGTERM: pending spans are exported
        receiver.wait_for("observe", "batch", "post")
        assert {s.service for s in receiver.spans} == {"zastava-observer"}
    except AssertionError:
        for name in ("zastava-observer", "zastava-backend"):
            logs = docker_engine.docker("logs", "--tail", "30", name, check=False)
            print(f"--- {name}\n{logs.stdout.decode(errors='replace')}{logs.stderr.decode(errors='replace')}")
        raise
    finally:
        for container_id in started:
            docker_engine.docker("rm", "-f", container_id, check=False)
        receiver.stop()
