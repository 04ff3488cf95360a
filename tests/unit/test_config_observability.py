"""The observability keys of the configuration: ``observer.listen`` and ``runtime.tracing`` (their effect is
tested through ``observer run`` / ``webhook serve`` in the integration suites); the mountinfo reading behind
``security.mounts``."""

from __future__ import annotations

import pytest

from zastava.config import ConfigError, load_config
from zastava.observer.mounts import mount_options, parse_mount


def test_observer_listen_defaults_to_port_9090_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config(None, warn=False).observer.listen == "0.0.0.0:9090"
    assert load_config(text="zastava: {observer: {listen: null}}").observer.listen is None
    assert load_config(text="zastava: {observer: {listen: ''}}").observer.listen is None
    monkeypatch.setenv("ZASTAVA_OBSERVER__LISTEN", "127.0.0.1:19090")
    assert load_config(None, warn=False).observer.listen == "127.0.0.1:19090"


@pytest.mark.parametrize("bad", ["9090", "host:", ":9090", "host:99999", "host:port"])
def test_observer_listen_must_be_host_port(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(text=f"zastava: {{observer: {{listen: '{bad}'}}}}")
    assert caught.value.errors[0][0] == "zastava.observer.listen"


def test_tracing_is_off_by_default_and_needs_an_http_url() -> None:
    tracing = load_config(None, warn=False).runtime.tracing
    assert tracing.otlp_endpoint is None and tracing.sample_ratio == 1.0
    on = load_config(text="zastava: {runtime: {tracing: {otlpEndpoint: 'http://collector:4318'}}}")
    assert on.runtime.tracing.otlp_endpoint == "http://collector:4318"
    for bad in ("collector:4318", "grpc://collector:4317"):
        with pytest.raises(ConfigError) as caught:
            load_config(text=f"zastava: {{runtime: {{tracing: {{otlpEndpoint: '{bad}'}}}}}}")
        assert caught.value.errors[0][0] == "zastava.runtime.tracing.otlpEndpoint"
    with pytest.raises(ConfigError):
        load_config(text="zastava: {runtime: {tracing: {sampleRatio: 1.5}}}")


def test_mountinfo_options_by_mount_point_with_escaped_names() -> None:
    text = (
        "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw\n"
        "431 29 0:21 / /host/proc ro,nosuid,nodev,noexec,relatime - proc proc rw\n"
        "432 29 0:5 / /run/with\\040space rw,relatime - tmpfs tmpfs rw\n"
        "433 29 0:21 / /host/proc rw,relatime - proc proc rw\n"  # mounted over: the last one counts
    )
    table = mount_options(text)
    assert "rw" in table["/proc"] and "ro" not in table["/proc"]
    assert "rw" in table["/run/with space"]
    assert "rw" in table["/host/proc"] and "ro" not in table["/host/proc"]


def test_mount_values_name_host_and_container_paths() -> None:
    spec = parse_mount("zastava.security.mounts.proc", "/proc:/host/proc:ro")
    assert (spec.host, spec.container) == ("/proc", "/host/proc")
    sock = parse_mount("zastava.security.mounts.containerdSock", "/run/containerd/containerd.sock:ro")
    assert sock.host == sock.container == "/run/containerd/containerd.sock"
    with pytest.raises(ValueError, match="HOST:CONTAINER:ro"):
        parse_mount("zastava.security.mounts.proc", "/a:/b:/c:ro")
