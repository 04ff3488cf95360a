"""Attacks on the admission path, each through a front door: ``zastava webhook review FILE --config CFG`` (a
subprocess), ``zastava webhook serve``'s server over HTTPS (``/admit``, ``/mutate``), ``zastava config
validate``. Images live in the real loopback distribution registry, signed by the tests' own signer
(``tests.harness.devstack.signing``); the attacker's registry is :class:`tests.harness.registry_proxy.
RegistryProxy`, a reverse proxy in front of that real registry that counts requests and can trickle bytes.

Each test names the hole it closes (docs/webhook.md, "What an attacker tries").
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import devstack
from tests.harness.devstack import signing
from tests.harness.registry_proxy import RegistryProxy
from tests.harness.signed import push_synthetic, unique_repo
from tests.unit.webhook.reviews import body, pod_with, review
from zastava.config import load_config

from .conftest import RunningWebhook
from .test_verification import apply_patch, cli_review, keys, post, served, world, write_config

__all__ = ["keys", "served", "world"]  # fixtures shared with test_verification


@pytest.fixture
def proxy(registry: devstack.RegistryServer) -> Iterator[RegistryProxy]:
    running = RegistryProxy(registry.url).start()
    try:
        yield running
    finally:
        running.stop()


def validate(tmp: Path, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp / "validate.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return subprocess.run(
        [sys.executable, "-m", "zastava", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def key_policy(tmp: Path, images: list[str], *keys_: str, threshold: int = 1) -> dict[str, Any]:
    return {
        "name": "p",
        "images": images,
        "authorities": [{"name": k, "key": {"path": str(tmp / f"{k}.pub")}} for k in keys_],
        "threshold": threshold,
    }


# ------------------------------------------------------------------------------- 1. image volumes


def test_image_volume_is_verified_like_a_container(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    """An ImageVolume (``spec.volumes[].image.reference``) is pulled by the kubelet like a container image;
    an unsigned one in a Pod of signed containers was admitted."""
    img = world["images"]
    config = write_config(tmp_path, keys, world)
    volume = {"name": "payload", "image": {"reference": img["unsigned"].ref, "pullPolicy": "IfNotPresent"}}
    code, answer = cli_review(config, review(pod_with({"api": img["api"].ref}, volumes=[volume])), tmp_path)
    assert code == 1 and not answer["allowed"], answer
    assert (
        f"volumes[payload] {img['unsigned'].ref}: trust policy team-a: 0 of 1 required signature(s) verified"
        in answer["status"]["message"]
    )
    # volumes of other sources are not images; a signed image volume passes
    signed = {"name": "data", "image": {"reference": img["side"].ref}}
    other = {"name": "cfg", "configMap": {"name": "x"}}
    pod = pod_with({"api": img["api"].ref}, volumes=[other, signed])
    code, answer = cli_review(config, review(pod), tmp_path)
    assert code == 0 and answer["allowed"], answer
    # a malformed image volume is invalid, not skipped
    broken = {"name": "b", "image": {"pullPolicy": "Always"}}
    code, answer = cli_review(config, review(pod_with({"api": img["api"].ref}, volumes=[broken])), tmp_path)
    assert code == 1 and "volumes[b].image.reference is missing" in answer["status"]["message"]


def test_image_volume_goes_through_local_gates_and_is_pinned(
    served: Callable[..., RunningWebhook], world: dict[str, Any]
) -> None:
    img = world["images"]
    running = served(registryDenylist=["evil.example.com"])
    pod = pod_with(
        {"api": img["api"].pinned},
        volumes=[{"name": "data", "image": {"reference": img["side"].ref}}],
    )
    mutated = post(running, "/mutate", review(pod))
    patched = apply_patch(review(pod)["request"]["object"], mutated["patch"])
    assert patched["spec"]["volumes"][0]["image"]["reference"] == f"{img['side'].ref}@{img['side'].digest}"
    assert post(running, "/admit", review({**pod, "spec": patched["spec"]}))["allowed"]
    evil = pod_with(
        {"api": img["api"].pinned}, volumes=[{"name": "x", "image": {"reference": "evil.example.com/p:1"}}]
    )
    denied = post(running, "/admit", review(evil))
    assert (
        not denied["allowed"]
        and "volumes[x] evil.example.com/p:1: registry evil.example.com" in (denied["status"]["message"])
    )


# ------------------------------------------------------------- 2. glob normalisation, config errors


def test_registry_only_and_invalid_globs_are_config_errors(
    tmp_path: Path, keys: dict[str, signing.KeyPair]
) -> None:
    keys["alice"].write_public(tmp_path / "alice.pub")
    cases = [
        (["registry.example.com"], "zastava.admission.trustPolicies.0.images.0", "names a registry only"),
        (["ok.io/**", "library/*"], "zastava.admission.trustPolicies.0.images.1", "not a registry host"),
        (["ok.io/a$b/*"], "zastava.admission.trustPolicies.0.images.0", "unexpected character"),
    ]
    for images, where, what in cases:
        document = {"zastava": {"admission": {"trustPolicies": [key_policy(tmp_path, images, "alice")]}}}
        out = validate(tmp_path, document)
        assert out.returncode == 2, (images, out.stdout, out.stderr)
        assert where in out.stderr and what in out.stderr, out.stderr
    out = validate(tmp_path, {"zastava": {"admission": {"registryDenylist": ["ok.io", "library/*"]}}})
    assert out.returncode == 2 and "registryDenylist" in out.stderr and "not a registry host" in out.stderr


def test_trust_glob_without_port_governs_every_port_of_the_host(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    """A policy for ``127.0.0.1/**`` (bob must sign) also governs ``127.0.0.1:<port>/…``: the image signed
    only by alice was admitted as matched by no policy (``imageSignature: false``)."""
    img = world["images"]
    hostname = world["host"].partition(":")[0]
    spelled = hostname.upper() if hostname != "127.0.0.1" else hostname
    policies = [key_policy(tmp_path, [f"{spelled}:443/team-a/**"], "bob")]
    config = write_config(
        tmp_path, keys, world, policies=policies, verify={"imageSignature": False, "sbomReferrer": False}
    )
    code, answer = cli_review(config, review(pod_with({"c": img["api"].ref})), tmp_path)
    assert (
        code == 1 and "trust policy p: 0 of 1 required signature(s) verified" in answer["status"]["message"]
    )


# ------------------------------------------------------------------------------ 3. distinct signers


def test_the_same_key_twice_is_a_config_error(tmp_path: Path, keys: dict[str, signing.KeyPair]) -> None:
    keys["alice"].write_public(tmp_path / "alice.pub")
    pem = (tmp_path / "alice.pub").read_text()
    policy = {
        "name": "two",
        "images": ["ok.io/**"],
        "authorities": [
            {"name": "a1", "key": {"path": str(tmp_path / "alice.pub")}},
            {"name": "a2", "key": {"pem": pem}},
        ],
        "threshold": 2,
    }
    out = validate(tmp_path, {"zastava": {"admission": {"trustPolicies": [policy]}}})
    assert out.returncode == 2, out.stdout
    assert "zastava.admission.trustPolicies.0.authorities.1" in out.stderr
    assert "the same key or identity as authorities.0" in out.stderr


# --------------------------------------------------------------------- 4. pinDigests at /admit


def test_with_pin_digests_admit_refuses_a_tag_the_mutation_did_not_pin(
    served: Callable[..., RunningWebhook], world: dict[str, Any]
) -> None:
    """If ``/mutate`` is bypassed (failurePolicy Ignore, reordered, another webhook rewrote the image), a
    signed tag reaching ``/admit`` could move between the review and the pull: it is refused."""
    img = world["images"]
    running = served()
    denied = post(running, "/admit", review(pod_with({"api": img["api"].ref})))
    assert (
        not denied["allowed"]
        and "is not pinned to a digest (admission.pinDigests" in (denied["status"]["message"])
    )
    pinned = f"{img['api'].ref}@{img['api'].digest}"
    assert post(running, "/admit", review(pod_with({"api": pinned})))["allowed"]


# ------------------------------------------------------------ 5. denied images are never looked up


def test_images_denied_locally_never_reach_the_registry(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any], proxy: RegistryProxy
) -> None:
    img = world["images"]
    repo = unique_repo("team-a")  # pushed to the registry, reviewed through the proxy in front of it
    pushed = push_synthetic(world["pusher"], proxy.host, repo, b"proxied", "1")
    signing.sign_legacy(world["pusher"], repo, pushed.digest, key=keys["alice"])
    policies = [key_policy(tmp_path, [f"{proxy.host}/**"], "alice")]
    config = write_config(
        tmp_path,
        keys,
        world,
        policies=policies,
        registryDenylist=[f"{proxy.host}/denied"],
        bannedTags=["latest", "dev"],
    )
    proxy.reset()
    denied = [
        f"{proxy.host}/denied/app:1",  # denylist
        f"{proxy.host}/{repo}:dev",  # banned tag
        f"{proxy.host}/{repo}",  # implicit latest
        f"{proxy.host}/{repo}:latest",
    ]
    for image in denied:
        code, answer = cli_review(config, review(pod_with({"c": image})), tmp_path)
        assert code == 1 and not answer["allowed"], (image, answer)
    assert proxy.requests == []
    # in one Pod with an allowed image, only the allowed one is looked up
    code, answer = cli_review(config, review(pod_with({"ok": pushed.ref, "bad": denied[1]})), tmp_path)
    assert code == 1 and "containers[bad]" in answer["status"]["message"]
    assert "containers[ok]" not in answer["status"]["message"]
    assert proxy.requests and not any(":dev" in path or "/denied/" in path for _, path in proxy.requests)
    assert img["api"].ref  # the module's world is shared


# -------------------------------------------------------------------- 6. time-bounded verification


def test_a_trickling_registry_is_bounded_and_fail_open_closed_applies(
    tmp_path: Path,
    keys: dict[str, signing.KeyPair],
    world: dict[str, Any],
    proxy: RegistryProxy,
) -> None:
    repo = unique_repo("team-a")
    pushed = push_synthetic(world["pusher"], proxy.host, repo, b"slow", "1")
    signing.sign_legacy(world["pusher"], repo, pushed.digest, key=keys["alice"])
    policies = [key_policy(tmp_path, [f"{proxy.host}/**"], "alice")]
    config = write_config(tmp_path, keys, world, policies=policies)
    document = yaml.safe_load(config.read_text())
    document["zastava"]["registry"].update({"verifyTimeoutSeconds": 1, "readTimeoutSeconds": 5})
    config.write_text(yaml.safe_dump(document))
    proxy.trickle_seconds = 0.2  # each byte well inside readTimeoutSeconds
    started = time.monotonic()
    code, dev = cli_review(config, review(pod_with({"c": pushed.pinned}), namespace="dev"), tmp_path)
    assert code == 0 and dev["auditAnnotations"]["decision"] == "fail-open", dev
    assert any("within 1 s" in w for w in dev["warnings"]), dev
    code, prod = cli_review(config, review(pod_with({"c": pushed.pinned}), namespace="prod"), tmp_path)
    assert code == 1 and prod["auditAnnotations"]["decision"] == "fail-closed", prod
    # two reviews of a manifest of ~500 bytes at 5 bytes/s would take minutes without the bound
    assert time.monotonic() - started < 60
    proxy.trickle_seconds = None
    code, fine = cli_review(config, review(pod_with({"c": pushed.pinned}), namespace="prod"), tmp_path)
    assert code == 0 and fine["allowed"], fine


def test_a_registry_redirecting_to_cloud_metadata_is_unavailable_not_followed(
    tmp_path: Path,
    keys: dict[str, signing.KeyPair],
    world: dict[str, Any],
    proxy: RegistryProxy,
) -> None:
    """A Pod names a registry (here on 127.0.0.1) whose manifest GETs redirect to the link-local metadata
    address: the webhook never sends that GET; the refusal is "registry unavailable" (fail-open in dev,
    fail-closed in prod). The same registry redirecting to itself (``/moved/…``) is followed and admitted."""
    repo = unique_repo("team-a")
    pushed = push_synthetic(world["pusher"], proxy.host, repo, b"metadata", "1")
    signing.sign_legacy(world["pusher"], repo, pushed.digest, key=keys["alice"])
    config = write_config(
        tmp_path, keys, world, policies=[key_policy(tmp_path, [f"{proxy.host}/**"], "alice")]
    )
    proxy.redirect = lambda method, path: (
        "http://169.254.169.254/latest/meta-data/iam/" if method == "GET" and "/manifests/" in path else None
    )
    code, dev = cli_review(config, review(pod_with({"c": pushed.pinned}), namespace="dev"), tmp_path)
    assert code == 0 and dev["auditAnnotations"]["decision"] == "fail-open", dev
    assert any("link-local" in w and "refused" in w for w in dev["warnings"]), dev
    assert not any("meta-data" in w for w in dev["warnings"]), dev  # the target's path is not echoed
    code, prod = cli_review(config, review(pod_with({"c": pushed.pinned}), namespace="prod"), tmp_path)
    assert code == 1 and prod["auditAnnotations"]["decision"] == "fail-closed", prod
    proxy.redirect = lambda method, path: "/moved" + path if path.startswith("/v2/") else None
    code, fine = cli_review(config, review(pod_with({"c": pushed.pinned}), namespace="prod"), tmp_path)
    assert code == 0 and fine["allowed"], fine
    assert any(path.startswith("/moved/v2/") for _m, path in proxy.requests)


# -------------------------------------------------------------------- 8. non-ASCII references


def test_non_ascii_and_confusable_references_are_invalid(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    config = write_config(tmp_path, keys, world, registryDenylist=["evil.io"])
    for image in ("\u0435vil.io/x:1", "\u212aube.io/x:1", "evil.io/\u0430pp:1", "ok.io/app:1\u00a0"):
        code, answer = cli_review(config, review(pod_with({"c": image})), tmp_path)
        assert code == 1 and not answer["allowed"], (image, answer)
        assert "non-ASCII character" in answer["status"]["message"], answer
        assert answer["status"]["message"].isascii()  # shown escaped (\u0435), as written nowhere raw
    # control characters: denied, and never echoed raw into what kubectl prints to a terminal
    code, answer = cli_review(config, review(pod_with({"c": "ok.io/x\x1b[2J:1"})), tmp_path)
    message = answer["status"]["message"]
    assert code == 1 and "\x1b" not in message and "ok.io/x\\x1b[2J:1" in message, message
    keys["alice"].write_public(tmp_path / "alice.pub")
    document = {
        "zastava": {"admission": {"trustPolicies": [key_policy(tmp_path, ["\u212aube.io/**"], "alice")]}}
    }
    out = validate(tmp_path, document)
    assert out.returncode == 2 and "trustPolicies.0.images.0" in out.stderr and "ASCII" in out.stderr


# ---------------------------------------------------------------- 7. every platform of an index


def push_index(
    world: dict[str, Any],
    repo: str,
    tag: str,
    children: list[tuple[str, str]],
    disguised: tuple[str, ...] = (),
    media_type: str = "application/vnd.oci.image.manifest.v1+json",
) -> str:
    """An OCI index over ``(digest, architecture)`` manifests already in ``repo``, plus a buildx-style
    attestation manifest (``unknown/unknown``), which no node runs and which is never required signed.
    ``disguised`` children carry the attestation annotation on a real platform (an arm64 node runs them)."""
    pusher = world["pusher"]
    entries = []
    for digest, arch in children:
        head = pusher.http.head(f"/v2/{repo}/manifests/{digest}", headers={"Accept": media_type})
        entry: dict[str, Any] = {
            "mediaType": media_type if arch != "amd64" else "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": int(head.headers["content-length"]),
            "platform": {"os": "linux", "architecture": arch},
        }
        if digest in disguised:
            entry["annotations"] = {"vnd.docker.reference.type": "attestation-manifest"}
        entries.append(entry)
    attestation = push_synthetic(pusher, world["host"], repo, b"attestation " + tag.encode(), f"{tag}-att")
    head = pusher.http.head(
        f"/v2/{repo}/manifests/{attestation.digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    entries.append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": attestation.digest,
            "size": int(head.headers["content-length"]),
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": children[0][0],
            },
        }
    )
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    return str(pusher.manifest(repo, tag, index, "application/vnd.oci.image.index.v1+json"))


def test_digest_policy_checks_every_platform_of_an_index(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    """An index whose amd64 manifest is signed and whose arm64 manifest is not: with ``platform`` only the
    webhook's own platform (linux/amd64) was checked, and an arm64 node pulled the unsigned build of the
    pinned index."""
    host, pusher = world["host"], world["pusher"]
    repo = unique_repo("team-a")
    amd = push_synthetic(pusher, host, repo, b"amd64 build", "amd")
    arm = push_synthetic(pusher, host, repo, b"arm64 build", "arm")
    half = push_index(world, repo, "half", [(amd.digest, "amd64"), (arm.digest, "arm64")])
    signing.sign_legacy(pusher, repo, amd.digest, key=keys["alice"])
    both_arm = push_synthetic(pusher, host, repo, b"arm64 build 2", "arm2")
    both = push_index(world, repo, "both", [(amd.digest, "amd64"), (both_arm.digest, "arm64")])
    signing.sign_legacy(pusher, repo, both_arm.digest, key=keys["alice"])
    indexed = push_index(world, repo, "indexed", [(amd.digest, "amd64"), (arm.digest, "arm64")][::-1])
    signing.sign_legacy(pusher, repo, indexed, key=keys["alice"])

    def decide(policy: str, tag: str) -> tuple[int, dict[str, Any]]:
        config = write_config(tmp_path, keys, world)
        document = yaml.safe_load(config.read_text())
        document["zastava"]["registry"]["digestPolicy"] = policy
        config.write_text(yaml.safe_dump(document))
        return cli_review(config, review(pod_with({"c": f"{host}/{repo}:{tag}"})), tmp_path)

    code, answer = decide("platform", "half")
    assert code == 1, answer
    assert "trust policy team-a: 0 of 1 required signature(s) verified" in answer["status"]["message"]
    assert decide("platform", "both")[0] == 0  # every platform signed (the attestation manifest is not)
    assert decide("any", "both")[0] == 0  # no index signature, but every platform
    assert decide("any", "half")[0] == 1
    assert decide("any", "indexed")[0] == 0  # the index signature covers every manifest it lists
    assert decide("all", "indexed")[0] == 1  # ... but "all" also wants each platform
    assert decide("index", "indexed")[0] == 0 and decide("index", "both")[0] == 1
    assert half != both
    # an unsigned arm64 manifest disguised by the attestation annotation is still what an arm64 node runs
    push_index(world, repo, "disguised", [(amd.digest, "amd64"), (arm.digest, "arm64")], (arm.digest,))
    code, answer = decide("platform", "disguised")
    assert code == 1 and "0 of 1 required signature(s) verified" in answer["status"]["message"], answer
    # a nested index (containerd walks it) beside a signed manifest is refused, not half-verified
    inner = push_index(world, repo, "inner", [(amd.digest, "amd64"), (arm.digest, "arm64")])
    oci_index = "application/vnd.oci.image.index.v1+json"
    push_index(world, repo, "nested", [(amd.digest, "amd64"), (inner, "arm64")], media_type=oci_index)
    code, answer = decide("platform", "nested")
    assert code == 1 and "nested indexes" in answer["status"]["message"], answer


# ------------------------------------------------------------------- 9. caches keyed by the context


def test_dev_fail_open_with_warm_caches_does_not_pre_approve_prod(
    served: Callable[..., RunningWebhook], tmp_path: Path, world: dict[str, Any]
) -> None:
    """The pre-approval attack: make the verification fail while deploying to a fail-open namespace, then
    deploy the same digest to prod while every cache (verifier outcomes, failure cache, local gates) is warm.
    The verifier's cache holds the *outcome* (unavailable), never the namespace's decision. (The backend's
    verdict cache is keyed by namespace and labels: ``test_cache_context.py``.)"""
    img = world["images"]
    down = f"127.0.0.1:{devstack.free_port()}"
    policies = [key_policy(tmp_path, [f"{down}/**"], "alice")]
    running = served(policies=policies)
    image = f"{down}/team-a/api@{img['api'].digest}"
    unsigned = img["unsigned"].pinned
    for _ in range(2):  # cold, then warm
        dev = post(running, "/admit", review(pod_with({"c": image}), namespace="dev"))
        assert dev["allowed"] and dev["auditAnnotations"]["decision"] == "fail-open", dev
        prod = post(running, "/admit", review(pod_with({"c": image}), namespace="prod"))
        assert not prod["allowed"] and prod["auditAnnotations"]["decision"] == "fail-closed", prod
        # a verified denial in dev is a denial in prod (and the reverse): no namespace is cached
        for namespace in ("dev", "prod"):
            answer = post(running, "/admit", review(pod_with({"c": unsigned}), namespace=namespace))
            assert not answer["allowed"] and answer["auditAnnotations"]["decision"] == "deny"
    verifier = running.components.admitter.verifier
    # the unsigned digest was verified once (cached 300 s); the down registry at most once per failure TTL
    assert verifier is not None and verifier.verifications <= 3


# ------------------------------------------------------------------------------------ and more


def test_allowlist_host_glob_does_not_span_into_the_path(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    """``*.corp.io/*`` allowed ``evil.io/x.corp.io/payload``: the host ``*`` ran across the ``/``."""
    config = write_config(tmp_path, keys, world, registryAllowlist=["*.corp.io/*"])
    code, answer = cli_review(config, review(pod_with({"c": "evil.io/x.corp.io/payload:1"})), tmp_path)
    assert code == 1, answer
    assert "evil.io/x.corp.io/payload is not in the registry allowlist" in answer["status"]["message"]


def test_operations_subresources_dry_run_and_sizes_do_not_talk_past_the_guard(
    served: Callable[..., RunningWebhook], world: dict[str, Any]
) -> None:
    """What an attacker tries on the envelope (these held before the red team; kept as regression tests)."""
    img = world["images"]
    signed, unsigned = img["api"].pinned, img["unsigned"].pinned
    running = served()

    def admit(document: dict[str, Any]) -> dict[str, Any]:
        return post(running, "/admit", document)

    # UPDATE that swaps a container's image is gated; one that changes nothing is not re-verified
    swapped = admit(review(pod_with({"c": unsigned}), operation="UPDATE", old=pod_with({"c": signed})))
    assert not swapped["allowed"] and "containers[c]" in swapped["status"]["message"]
    same = review(pod_with({"c": signed}), operation="UPDATE", old=pod_with({"c": signed}))
    assert admit(same)["allowed"]
    # the ephemeralcontainers subresource adds a debug container: gated
    debug = pod_with({"c": signed}, ephemeralContainers=[{"name": "dbg", "image": unsigned}])
    added = admit(
        review(debug, operation="UPDATE", old=pod_with({"c": signed}), sub_resource="ephemeralcontainers")
    )
    assert not added["allowed"] and "ephemeralContainers[dbg]" in added["status"]["message"]
    # a dry-run request is decided like any other (only its record is not kept)
    assert not admit(review(pod_with({"c": unsigned}), dry_run=True))["allowed"]
    # DELETE, CONNECT (exec) and the status subresource cannot start an image: allowed without work
    assert admit(review(pod_with({"c": unsigned}), operation="DELETE"))["allowed"]
    connect = review(pod_with({"c": unsigned}), operation="UPDATE", sub_resource="exec")
    connect["request"]["operation"] = "CONNECT"
    assert admit(connect)["allowed"]
    status = review(
        pod_with({"c": unsigned}), operation="UPDATE", old=pod_with({"c": signed}), sub_resource="status"
    )
    assert admit(status)["allowed"]
    # more containers and image volumes than allowed: invalid (400), not verified one by one
    many = pod_with({f"c{i}": signed for i in range(600)})
    many["spec"]["volumes"] = [{"name": f"v{i}", "image": {"reference": signed}} for i in range(600)]
    crowded = admit(review(many))
    assert not crowded["allowed"] and crowded["status"]["code"] == 400
    assert "more than 1024 containers and image volumes" in crowded["status"]["message"]
    # an oversized body is refused before it is parsed
    with running.client() as client:
        answer = client.post("/admit", content=b" " * (9 * 1024 * 1024))
    assert answer.status_code == 413


def test_ip_literal_spellings_do_not_get_around_a_denylist(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    """A resolver reads ``127.1``, ``0x7f.0.0.1`` and ``2130706433`` as 127.0.0.1, and ``[::ffff:127.0.0.1]``
    connects there too: each passed a denylist naming ``127.0.0.1``."""
    config = write_config(tmp_path, keys, world, registryDenylist=["127.0.0.1"])
    for image in ("127.1:5000/x:1", "0x7f.0.0.1/x:1", "2130706433:5000/x:1", "127.000.0.1/x:1"):
        code, answer = cli_review(config, review(pod_with({"c": image})), tmp_path)
        assert code == 1 and "is not a dotted-decimal IPv4 address" in answer["status"]["message"], answer
    for image in ("[::ffff:127.0.0.1]:5000/x:1", "[::ffff:7f00:1]/x:1"):
        code, answer = cli_review(config, review(pod_with({"c": image})), tmp_path)
        assert code == 1 and "registry 127.0.0.1" in answer["status"]["message"], answer


def test_with_pin_digests_an_unpinned_tag_during_an_outage_is_fail_open_closed(
    served: Callable[..., RunningWebhook], tmp_path: Path, world: dict[str, Any]
) -> None:
    """/mutate cannot pin while the registry is down: /admit then treats the tag as any outage (fail-open in
    dev, fail-closed elsewhere), not as a bypassed mutation."""
    down = f"127.0.0.1:{devstack.free_port()}"
    running = served(policies=[key_policy(tmp_path, [f"{down}/**"], "alice")])
    pod = pod_with({"c": f"{down}/team-a/api:1"})
    assert "patch" not in post(running, "/mutate", review(pod, namespace="dev"))
    dev = post(running, "/admit", review(pod, namespace="dev"))
    assert dev["allowed"] and dev["auditAnnotations"]["decision"] == "fail-open", dev
    prod = post(running, "/admit", review(pod, namespace="prod"))
    assert not prod["allowed"] and prod["auditAnnotations"]["decision"] == "fail-closed", prod
    assert world["images"]["api"].ref


def test_duplicate_json_keys_resolve_as_the_api_server_resolves_them(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any]
) -> None:
    """A body with ``"image"`` twice in one container: Go's encoding/json (the API server) keeps the last
    value, and so does the webhook's parser — the unsigned image written last is the one reviewed (the API
    server re-encodes the Pod, so a real review never carries duplicates; this pins the agreement)."""
    img = world["images"]
    config = write_config(tmp_path, keys, world)
    raw = body(review(pod_with({"c": "PLACEHOLDER"}))).decode()
    doubled = f'"image":"{img["side"].pinned}","image":"{img["unsigned"].pinned}"'
    source = tmp_path / "dup.json"
    source.write_text(raw.replace('"image":"PLACEHOLDER"', doubled))
    out = subprocess.run(
        [sys.executable, "-m", "zastava", "webhook", "review", str(source), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert f"containers[c] {img['unsigned'].pinned}" in out.stdout


def test_a_trickling_registry_does_not_hold_the_served_webhook(
    tmp_path: Path, keys: dict[str, signing.KeyPair], world: dict[str, Any], proxy: RegistryProxy
) -> None:
    """The served webhook answers at the API server's deadline (fail-closed in prod), and the verification it
    left running ends at ``verifyTimeoutSeconds`` (its failure is then what the cache holds) instead of
    trickling on for minutes."""
    from zastava.registry.reference import parse_reference
    from zastava.webhook.certs import generate_certs, write_certs

    from .conftest import start_webhook

    repo = unique_repo("team-a")
    pushed = push_synthetic(world["pusher"], proxy.host, repo, b"slow served", "1")
    signing.sign_legacy(world["pusher"], repo, pushed.digest, key=keys["alice"])
    write_certs(generate_certs(extra_dns=["localhost"], ip_addresses=["127.0.0.1"]), tmp_path / "tls")
    path = write_config(tmp_path, keys, world, policies=[key_policy(tmp_path, [f"{proxy.host}/**"], "alice")])
    document = yaml.safe_load(path.read_text())
    document["zastava"]["registry"].update({"verifyTimeoutSeconds": 2, "readTimeoutSeconds": 5})
    document["zastava"]["webhook"] = {
        "listen": "127.0.0.1:0",
        "certPath": str(tmp_path / "tls" / "tls.crt"),
        "keyPath": str(tmp_path / "tls" / "tls.key"),
        "failureTtlSeconds": 30,
    }
    path.write_text(yaml.safe_dump(document))
    running = start_webhook(load_config(path, warn=False), tmp_path / "tls" / "ca.crt", configured=True)
    try:
        proxy.trickle_seconds = 0.2
        with running.client() as client:
            answer = client.post("/admit?timeout=2s", content=body(review(pod_with({"c": pushed.pinned}))))
        response = answer.json()["response"]
        assert not response["allowed"] and response["auditAnnotations"]["decision"] == "fail-closed"
        verifier = running.components.admitter.verifier
        assert verifier is not None
        ref = parse_reference(pushed.pinned)
        devstack.wait_until(lambda: verifier.cached(ref) is not None, 20, "the verification to end")
        outcome = verifier.cached(ref)
        assert outcome is not None and outcome.unavailable and "within 2 s" in (outcome.error or "")
    finally:
        running.stop()
