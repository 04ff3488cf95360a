"""Engine-side parsing that needs no engine: timestamps, Docker event/inspect documents, containerd envelopes
(encoded with the generated stubs), stub generation, and the observer config section."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zastava.config import ConfigError, load_config
from zastava.observer.engines import protogen
from zastava.observer.engines.base import ContainerInfo, k8s_identity_from_labels, parse_timestamp
from zastava.observer.engines.cri import parse_containerd_envelope
from zastava.observer.engines.docker import container_info, parse_event

DIGEST = "sha256:" + "a" * 64


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("2026-11-28T12:35:22.123456789Z") == datetime(
        2026, 11, 28, 12, 35, 22, 123456, tzinfo=UTC
    )
    assert parse_timestamp("2026-11-28T12:35:22+02:00") == datetime(2026, 11, 28, 10, 35, 22, tzinfo=UTC)
    assert parse_timestamp(1_795_870_000_000_000_000) == datetime.fromtimestamp(1_795_870_000, UTC)
    assert parse_timestamp(1_795_870_000) == datetime.fromtimestamp(1_795_870_000, UTC)
    for never in ("0001-01-01T00:00:00Z", "", None, 0, "garbage", [1]):
        assert parse_timestamp(never) is None


@given(st.one_of(st.text(max_size=80), st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
def test_parse_timestamp_never_raises(value: Any) -> None:
    try:
        result = parse_timestamp(value)
    except (OverflowError, OSError, ValueError):
        # fromtimestamp range errors for absurd integers are the only accepted failures
        assert isinstance(value, int | float)
        return
    assert result is None or result.tzinfo is not None


def test_docker_event_mapping() -> None:
    base = {
        "Type": "container",
        "Actor": {"ID": "abc", "Attributes": {"exitCode": "137"}},
        "timeNano": 1_795_870_000_000_000_000,
    }
    assert parse_event({**base, "Action": "start"}).kind == "start"  # type: ignore[union-attr]
    die = parse_event({**base, "Action": "die"})
    assert die is not None and (die.kind, die.exit_code, die.id) == ("stop", 137, "abc")
    assert parse_event({**base, "Action": "destroy"}).kind == "remove"  # type: ignore[union-attr]
    # a docker exec (or a health check): the command follows the action
    started = parse_event({**base, "Action": "exec_start: /bin/sh -c wget -q http://x/"})
    assert started is not None and (started.kind, started.command) == ("exec", "/bin/sh -c wget -q http://x/")
    assert parse_event({**base, "Action": "start"}).command is None  # type: ignore[union-attr]
    for ignored in (
        {**base, "Action": "exec_create: sh"},
        {**base, "Action": "exec_die"},
        {**base, "Type": "network", "Action": "start"},
        {},
        [],
        "x",
    ):
        assert parse_event(ignored) is None


def test_docker_inspect_document() -> None:
    data = {
        "Id": "c" * 64,
        "Name": "/web",
        "Created": "2026-01-01T00:00:00.5Z",
        "Image": DIGEST,
        "State": {"Pid": 4242, "Running": True},
        "Config": {
            "Image": "127.0.0.1:5000/demo/web:1",
            "Entrypoint": ["/entry.sh"],
            "Cmd": ["--serve"],
            "Env": ["PATH=/bin", "A=b=c", "NOVALUE"],
            "WorkingDir": "/app",
            "User": "1000:1000",
            "Labels": {
                "io.kubernetes.pod.namespace": "ns",
                "io.kubernetes.pod.name": "p",
                "io.kubernetes.container.name": "c",
            },
        },
    }
    image = {
        "Created": "2025-12-31T00:00:00Z",
        "RepoDigests": ["other/repo@sha256:" + "b" * 64, "127.0.0.1:5000/demo/web@sha256:" + "e" * 64],
    }
    info = container_info(data, image, "20.10.24")
    assert info.entrypoint == ("/entry.sh", "--serve")
    assert info.env == {"PATH": "/bin", "A": "b=c", "NOVALUE": ""}
    assert info.repo_digest == "127.0.0.1:5000/demo/web@sha256:" + "e" * 64
    assert info.image_digest == "sha256:" + "e" * 64 and info.config_digest == DIGEST
    assert info.kubernetes is not None and (
        info.kubernetes.namespace,
        info.kubernetes.pod,
        info.kubernetes.container,
    ) == ("ns", "p", "c")
    assert (info.name, info.workdir, info.user, info.pid) == ("web", "/app", "1000:1000", 4242)
    bare = container_info({"Id": "d", "State": {}, "Config": {}}, {}, None)
    assert bare.pid is None and bare.missing == ("pid", "repoDigest") and bare.entrypoint == ()
    assert bare.user == "0"  # no USER, no --user: root (EntryTrace answers `id -u` with 0)


def test_image_ref_by_digest() -> None:
    info = ContainerInfo(engine="docker", id="x", image_ref="registry:5000/a/b:1", image_digest=DIGEST)
    assert info.image_ref_by_digest == f"registry:5000/a/b@{DIGEST}"
    assert (
        ContainerInfo(engine="docker", id="x", image_ref="b", repo_digest=f"r/b@{DIGEST}").image_ref_by_digest
        == f"r/b@{DIGEST}"
    )
    assert ContainerInfo(engine="docker", id="x").image_ref_by_digest is None
    assert k8s_identity_from_labels({"io.kubernetes.pod.name": "p"}) is None


def test_containerd_envelopes_with_generated_stubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from google.protobuf import any_pb2

    monkeypatch.setenv("ZASTAVA_CACHE_DIR", str(tmp_path))
    path = protogen.generate(tmp_path / "gen")
    assert path.name == "zastava_containerd_events_pb2.py" and "Envelope" in path.read_text()
    m = protogen.load_events_module()

    def envelope(type_name: str, message: Any) -> Any:
        event = any_pb2.Any(type_url=f"containerd.events.{type_name}", value=message.SerializeToString())
        env = m.Envelope(namespace="k8s.io", topic="/tasks/x", event=event)
        env.timestamp.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
        return m.Envelope.FromString(env.SerializeToString())

    start = parse_containerd_envelope(m, envelope("TaskStart", m.TaskStart(container_id="c1", pid=77)))
    assert start is not None and (start.kind, start.id, start.pid) == ("start", "c1", 77)
    assert start.when == datetime(2026, 1, 1, tzinfo=UTC)
    stop = parse_containerd_envelope(
        m, envelope("TaskExit", m.TaskExit(container_id="c1", id="c1", pid=77, exit_status=3))
    )
    assert stop is not None and (stop.kind, stop.exit_code) == ("stop", 3)
    exec_exit = m.TaskExit(container_id="c1", id="exec-9", pid=99)
    assert parse_containerd_envelope(m, envelope("TaskExit", exec_exit)) is None
    removed = parse_containerd_envelope(m, envelope("ContainerDelete", m.ContainerDelete(id="c1")))
    assert removed is not None and removed.kind == "remove"
    assert parse_containerd_envelope(m, envelope("TaskOOM", m.ContainerDelete(id="c1"))) is None


def test_observer_config_section() -> None:
    config = load_config(
        text="zastava:\n  observer:\n    nodeName: n1\n    drift:\n      network: true\n"
        "      allowedListeningPorts: [8080]\n      watchedDirs: [/srv]\n    engines:\n      dockerHost: unix:///tmp/d.sock\n",
        warn=False,
    )
    assert config.observer.node_name == "n1" and config.observer.drift.allowed_listening_ports == [8080]
    assert config.observer.drift.watched_dirs == ["/srv"]
    assert config.observer.engines.containerd_socket == "/run/containerd/containerd.sock"
    for bad in (
        "      watchedDirs: [relative]\n",
        "      allowedListeningPorts: [70000]\n",
        "      bogus: 1\n",
    ):
        with pytest.raises(ConfigError):
            load_config(text="zastava:\n  observer:\n    drift:\n" + bad, warn=False)


def test_node_name_defaults_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "from-env")
    assert load_config(text="zastava: {}\n", warn=False).observer.node_name == "from-env"


@given(st.sampled_from(["TaskStart", "TaskExit", "ContainerDelete", "Other"]), st.binary(max_size=300))
def test_hostile_containerd_payloads_are_skipped_or_parsed(type_name: str, payload: bytes) -> None:
    from google.protobuf import any_pb2
    from google.protobuf.message import DecodeError

    m = protogen.load_events_module()
    env = m.Envelope(event=any_pb2.Any(type_url=f"containerd.events.{type_name}", value=payload))
    try:
        event = parse_containerd_envelope(m, env)
    except DecodeError:
        return  # the engine skips such payloads (see CriEngine._containerd_events)
    if event is not None:
        assert event.kind in ("start", "stop", "remove")


@given(st.text(max_size=500))
def test_hostile_mountinfo_never_raises(text: str) -> None:
    import tempfile

    from zastava.observer.drift import overlay_upper_dir

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "5").mkdir()
        (Path(tmp) / "5" / "mountinfo").write_text(
            "1 2 0:3 / / rw - overlay overlay rw,upperdir=" + text + "\n"
        )
        result = overlay_upper_dir(tmp, 5)
        assert result is None or isinstance(result, str)


def test_repo_digest_is_picked_by_normalised_repository_name() -> None:
    """Engines spell one repository differently (docker: ``nginx@…`` for ``docker.io/library/nginx:1``);
    the repo digest of the repository the container came from is picked, not merely the first."""
    from zastava.observer.engines.cri import _pick
    from zastava.observer.engines.docker import _pick_repo_digest

    other, mine = f"aaa.example/other@{DIGEST}", f"nginx@sha256:{'b' * 64}"
    assert _pick_repo_digest("docker.io/library/nginx:1.25", [other, mine]) == mine
    assert _pick_repo_digest("index.docker.io/nginx:1.25", [other, mine]) == mine
    assert _pick("nginx:1.25", [other, f"docker.io/library/nginx@sha256:{'b' * 64}"]).startswith("docker.io")
    assert _pick("not a ref", [other]) == other
    info = ContainerInfo(engine="cri", id="x", image_ref="nginx:1.25", image_digest=DIGEST)
    assert info.image_ref_by_digest == f"docker.io/library/nginx@{DIGEST}"
