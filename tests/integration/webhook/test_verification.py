"""Admission that verifies: the webhook checks signatures and attestations itself against the trust policies
(``zastava.admission.trustPolicies``), in the real loopback distribution registry (no referrers API: the
tag-schema fallback), with no backend at all (``backend.baseAddress: ""``). Signatures are made by the tests'
own signer in cosign's formats (``tests.harness.devstack.signing``), independently of the code under test.

Through the front doors: ``zastava webhook review FILE --config CFG`` (a subprocess) and ``zastava webhook
serve``'s server over HTTPS (``/admit`` and ``/mutate``); the pinned digest is what a real container engine
runs after the tag moved.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.harness import devstack
from tests.harness.devstack import free_port, signing
from tests.harness.signed import PushedImage, push_synthetic, unique_repo
from tests.unit.webhook.reviews import body, pod_with, review
from zastava.config import load_config

from .conftest import RunningWebhook, start_webhook

SLSA = "https://slsa.dev/provenance/v1"


@pytest.fixture(scope="module")
def keys() -> dict[str, signing.KeyPair]:
    return {name: signing.KeyPair.generate() for name in ("alice", "bob", "mallory")}


@pytest.fixture(scope="module")
def world(registry: devstack.RegistryServer, keys: dict[str, signing.KeyPair]) -> Iterator[dict[str, Any]]:
    """Images in ``team-a/…`` (policy: alice or bob), ``strict/…`` (2 of 2) and ``misc/…`` (no policy)."""
    pusher = signing.OciPusher(registry.url)
    team = unique_repo("team-a")
    strict = unique_repo("strict")
    img: dict[str, PushedImage] = {}
    for name in ("api", "side", "unsigned", "attested", "wrongpred", "replayed"):
        img[name] = push_synthetic(pusher, registry.host, team, name.encode(), name)
    for name in ("both", "one"):
        img[name] = push_synthetic(pusher, registry.host, strict, name.encode(), name)
    img["misc"] = push_synthetic(pusher, registry.host, unique_repo("misc"), b"misc", "1")
    for name in ("api", "side", "attested", "wrongpred"):
        signing.sign_legacy(pusher, team, img[name].digest, key=keys["alice"])
    signing.attest_legacy(pusher, team, img["attested"].digest, SLSA, {"buildType": "t"}, key=keys["alice"])
    signing.attest_legacy(
        pusher, team, img["wrongpred"].digest, "https://slsa.dev/provenance/v0.2", {}, key=keys["alice"]
    )
    signing.sign_legacy(pusher, strict, img["both"].digest, key=keys["alice"])
    signing.sign_legacy(pusher, strict, img["both"].digest, key=keys["bob"])
    signing.sign_legacy(pusher, strict, img["one"].digest, key=keys["alice"])
    # replay: api's valid .sig manifest copied under replayed's .sig tag
    sig_tag = img["api"].digest.replace(":", "-") + ".sig"
    manifest = pusher.http.get(
        f"/v2/{team}/manifests/{sig_tag}", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    )
    manifest.raise_for_status()
    pusher.manifest(
        team,
        img["replayed"].digest.replace(":", "-") + ".sig",
        manifest.content,
        manifest.headers["content-type"],
    )
    yield {"images": img, "pusher": pusher, "team": team, "strict": strict, "host": registry.host}
    pusher.close()


def write_config(
    tmp: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any], **admission: Any
) -> Path:
    for name, key in keys.items():
        key.write_public(tmp / f"{name}.pub")
    host = world["host"]
    policies = [
        {
            "name": "team-a",
            "images": [f"{host}/team-a/**"],
            "authorities": [
                {"key": {"path": str(tmp / "alice.pub")}},
                {"key": {"path": str(tmp / "bob.pub")}},
            ],
        },
        {
            "name": "strict",
            "images": [f"{host}/strict/**"],
            "authorities": [
                {"name": "alice", "key": {"path": str(tmp / "alice.pub")}},
                {"name": "bob", "key": {"path": str(tmp / "bob.pub")}},
            ],
            "threshold": 2,
        },
    ]
    config = {
        "zastava": {
            "backend": {"baseAddress": ""},
            "admission": {
                "failOpenNamespaces": ["dev"],
                "trustPolicies": admission.pop("policies", policies),
                "verify": {"sbomReferrer": False},
                **admission,
            },
            "registry": {"maxRetries": 0, "connectTimeoutSeconds": 1},
            "runtime": {"authority": {"requireMutualTls": False}},
        }
    }
    path = tmp / "zastava.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cli_review(config: Path, document: dict[str, Any], tmp: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    source = tmp / "review.json"
    source.write_bytes(body(document))
    out = subprocess.run(
        [sys.executable, "-m", "zastava", "webhook", "review", str(source), "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)["response"]


def test_review_allows_signed_and_denies_with_reasons_naming_the_policy(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    img = world["images"]
    config = write_config(tmp_path, keys, world)
    code, ok = cli_review(
        config, review(pod_with({"api": img["api"].ref, "side": img["side"].pinned})), tmp_path
    )
    assert code == 0 and ok["allowed"], ok
    code, denied = cli_review(
        config, review(pod_with({"api": img["api"].ref, "bad": img["unsigned"].ref})), tmp_path
    )
    message = denied["status"]["message"]
    assert code == 1 and not denied["allowed"]
    assert (
        f"containers[bad] {img['unsigned'].ref}: trust policy team-a: 0 of 1 required signature(s) verified"
        in message
    )
    assert "containers[api]" not in message  # per-container: only the failing one is named
    # no trust policy matches misc/…: verify.imageSignature against the (empty) default signers
    code, misc = cli_review(config, review(pod_with({"m": img["misc"].pinned})), tmp_path)
    assert code == 1 and "zastava.registry.trust" in misc["status"]["message"]


def test_k_of_n_threshold(tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]) -> None:
    img = world["images"]
    config = write_config(tmp_path, keys, world)
    code, both = cli_review(config, review(pod_with({"c": img["both"].ref})), tmp_path)
    assert code == 0, both
    code, one = cli_review(config, review(pod_with({"c": img["one"].ref})), tmp_path)
    assert (
        code == 1
        and "trust policy strict: 1 of 2 required signature(s) verified (bob: " in one["status"]["message"]
    )


def test_attestation_present_absent_wrong_predicate(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    img = world["images"]
    host = world["host"]
    policies = [
        {
            "name": "provenance",
            "images": [f"{host}/team-a/**"],
            "authorities": [{"key": {"path": str(tmp_path / "alice.pub")}}],
            "attestations": [{"predicateType": SLSA}],
        }
    ]
    config = write_config(tmp_path, keys, world, policies=policies)
    code, present = cli_review(config, review(pod_with({"c": img["attested"].ref})), tmp_path)
    assert code == 0, present
    for name in ("api", "wrongpred"):  # absent; present with another predicate type
        code, answer = cli_review(config, review(pod_with({"c": img[name].ref})), tmp_path)
        assert code == 1
        assert (
            f"trust policy provenance: attestation {SLSA}: 0 of 1 required verified"
            in answer["status"]["message"]
        )


def test_signature_replayed_from_another_image_is_refused(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    img = world["images"]
    config = write_config(tmp_path, keys, world)
    code, answer = cli_review(config, review(pod_with({"c": img["replayed"].ref})), tmp_path)
    assert code == 1
    assert f"payload signs {img['api'].digest}, not {img['replayed'].digest}" in answer["status"]["message"]


def test_warn_mode_admits_with_a_warning(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    img = world["images"]
    host = world["host"]
    policies = [
        {
            "name": "audit",
            "images": [f"{host}/team-a/**"],
            "authorities": [{"key": {"path": str(tmp_path / "bob.pub")}}],
            "mode": "warn",
        }
    ]
    config = write_config(tmp_path, keys, world, policies=policies)
    code, answer = cli_review(config, review(pod_with({"c": img["api"].ref})), tmp_path)
    assert code == 0 and any("trust policy audit (warn): 0 of 1" in w for w in answer["warnings"]), answer


def test_registry_down_is_fail_open_or_closed_per_namespace(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    img = world["images"]
    down = f"127.0.0.1:{free_port()}"
    policies = [
        {
            "name": "gone",
            "images": [f"{down}/**"],
            "authorities": [{"key": {"path": str(tmp_path / "alice.pub")}}],
        }
    ]
    config = write_config(tmp_path, keys, world, policies=policies)
    image = f"{down}/team-a/api@{img['api'].digest}"
    code, dev = cli_review(config, review(pod_with({"c": image}), namespace="dev"), tmp_path)
    assert code == 0 and dev["auditAnnotations"]["decision"] == "fail-open"
    assert any("registry unavailable" in w for w in dev["warnings"])
    code, prod = cli_review(config, review(pod_with({"c": image}), namespace="prod"), tmp_path)
    assert code == 1 and prod["auditAnnotations"]["decision"] == "fail-closed"
    assert "registry unavailable" in prod["status"]["message"]


@pytest.fixture
def served(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> Iterator[Callable[..., RunningWebhook]]:
    from zastava.webhook.certs import generate_certs, write_certs

    write_certs(generate_certs(extra_dns=["localhost"], ip_addresses=["127.0.0.1"]), tmp_path / "tls")
    started: list[RunningWebhook] = []

    def start(**admission: Any) -> RunningWebhook:
        path = write_config(tmp_path, keys, world, pinDigests=True, **admission)
        document = yaml.safe_load(path.read_text())
        document["zastava"]["webhook"] = {
            "listen": "127.0.0.1:0",
            "certPath": str(tmp_path / "tls" / "tls.crt"),
            "keyPath": str(tmp_path / "tls" / "tls.key"),
        }
        path.write_text(yaml.safe_dump(document))
        running = start_webhook(load_config(path, warn=False), tmp_path / "tls" / "ca.crt", configured=True)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def post(running: RunningWebhook, path: str, document: dict[str, Any]) -> dict[str, Any]:
    with running.client() as client:
        answer = client.post(f"{path}?timeout=10s", content=body(document))
    assert answer.status_code == 200, answer.text
    return dict(orjson.loads(answer.content)["response"])


def apply_patch(pod: dict[str, Any], patch: str) -> dict[str, Any]:
    pod = json.loads(json.dumps(pod))
    for op in json.loads(base64.b64decode(patch)):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        target = pod
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = int(parts[-1]) if isinstance(target, list) else parts[-1]
        if op["op"] == "test":
            assert target[last] == op["value"]
        else:
            assert op["op"] == "replace"
            target[last] = op["value"]
    return pod


def test_served_admit_and_mutate_pin_the_verified_digest(
    served: Callable[..., RunningWebhook], world: dict[str, Any]
) -> None:
    img = world["images"]
    running = served()
    pod = pod_with({"api": img["api"].ref, "side": img["side"].pinned})
    mutated = post(running, "/mutate", review(pod))
    assert mutated["allowed"] and mutated["patchType"] == "JSONPatch"
    pinned = apply_patch(review(pod)["request"]["object"], mutated["patch"])
    images = [c["image"] for c in pinned["spec"]["containers"]]
    assert images == [f"{img['api'].ref}@{img['api'].digest}", img["side"].pinned]
    admitted = post(
        running, "/admit", review(pod_with({c["name"]: c["image"] for c in pinned["spec"]["containers"]}))
    )
    assert admitted["allowed"], admitted
    # an unsigned image is not pinned; /admit denies it
    unsigned = post(running, "/mutate", review(pod_with({"bad": img["unsigned"].ref})))
    assert unsigned["allowed"] and "patch" not in unsigned
    assert not post(running, "/admit", review(pod_with({"bad": img["unsigned"].ref})))["allowed"]


def test_tag_moved_after_admission_the_pinned_digest_is_what_runs(
    served: Callable[..., RunningWebhook],
    world: dict[str, Any],
    keys: dict[str, signing.KeyPair],
    docker_engine: devstack.DockerEngine,
    busybox_image: str,
) -> None:
    """A runnable (busybox) image is signed and admitted by tag; the tag then moves to another image. The Pod
    as the API server stores it (the /mutate patch applied) names the admitted digest, and that is what a real
    container engine pulls and runs."""
    host, team = world["host"], world["team"]
    pinned = devstack.push_image(docker_engine, busybox_image, host, f"{team}:moving")
    digest = pinned.rsplit("@", 1)[1]
    signing.sign_legacy(world["pusher"], team, digest, key=keys["alice"])
    ref = f"{host}/{team}:moving"
    running = served()
    document = review(pod_with({"app": ref}))
    mutated = post(running, "/mutate", document)
    pod = apply_patch(document["request"]["object"], mutated["patch"])
    image = pod["spec"]["containers"][0]["image"]
    assert image == f"{ref}@{digest}"
    assert post(running, "/admit", review(pod_with({"app": image})))["allowed"]
    moved = push_synthetic(world["pusher"], host, team, b"evil", "moving")  # the tag moves
    assert moved.digest != digest
    docker_engine.docker("rmi", ref)  # forget the local tag: the engine must pull what the Pod names
    docker_engine.docker("pull", image)
    container = (
        docker_engine.docker("create", "--entrypoint", "/bin/busybox", image, "true").stdout.decode().strip()
    )
    try:
        image_id = (
            docker_engine.docker("inspect", "--format", "{{.Image}}", container).stdout.decode().strip()
        )
        digests = docker_engine.docker(
            "image", "inspect", "--format", "{{json .RepoDigests}}", image_id
        ).stdout
        assert f"{host}/{team}@{digest}" in json.loads(digests)
        docker_engine.docker("start", "--attach", container)
        state = docker_engine.docker("inspect", "--format", "{{.State.ExitCode}}", container).stdout.decode()
        assert state.strip() == "0"
    finally:
        docker_engine.docker("rm", "--force", container)
