"""``/policy/runtime`` answers ``signed`` / ``hasSbom`` from cryptographic verification in the registry
(the real loopback distribution registry: no referrers API, tag-schema fallback), with the trust policies of
``zastava.admission.trustPolicies`` and the default signers of ``zastava.registry.trust``; the catalog's
``signed`` flag is evidence only. Signatures are made by the tests' own signer (cosign's formats)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import devstack
from tests.harness.devstack import free_port, signing
from tests.harness.signed import PushedImage, push_synthetic, trust_config, unique_repo
from tests.integration.backend.conftest import client_for
from zastava.backend.app import create_app
from zastava.config import BackendServer
from zastava.contracts import RuntimePolicyResponse
from zastava.registry.settings import image_verifier

POLICY = "/api/v1/scanner/policy/runtime"
CATALOG = "/api/v1/scanner/catalog/images/"
SLSA = "https://slsa.dev/provenance/v1"


@pytest.fixture
def keys() -> dict[str, signing.KeyPair]:
    return {name: signing.KeyPair.generate() for name in ("alice", "bob", "ops")}


@pytest.fixture
def images(
    registry: devstack.RegistryServer, keys: dict[str, signing.KeyPair]
) -> Iterator[dict[str, PushedImage]]:
    """``signed`` (alice + bob, SLSA attestations by both, SBOM referrer), ``one`` (alice only), ``unsigned``,
    and ``other`` outside every trust policy signed by the default key ``ops``."""
    pusher = signing.OciPusher(registry.url)
    repo = unique_repo("team-a")
    out = {
        name: push_synthetic(pusher, registry.host, repo, name.encode(), name)
        for name in ("signed", "one", "unsigned")
    }
    out["other"] = push_synthetic(pusher, registry.host, unique_repo("misc"), b"other", "1")
    for name in ("alice", "bob"):
        signing.sign_legacy(pusher, repo, out["signed"].digest, key=keys[name])
        signing.attest_legacy(pusher, repo, out["signed"].digest, SLSA, {"buildType": "t"}, key=keys[name])
    signing.attach_sbom(pusher, repo, out["signed"].digest, b'{"bomFormat":"CycloneDX","specVersion":"1.5"}')
    signing.sign_legacy(pusher, repo, out["one"].digest, key=keys["alice"])
    signing.sign_legacy(pusher, out["other"].repo, out["other"].digest, key=keys["ops"])
    pusher.close()
    yield out


def _config(
    tmp: Path, registry: devstack.RegistryServer, keys: dict[str, signing.KeyPair], threshold: int = 2
):  # type: ignore[no-untyped-def]
    keys["ops"].write_public(tmp / "ops.pub")
    policies = [
        {
            "name": "team-a",
            "images": [f"{registry.host}/team-a/**"],
            "authorities": [{"key": "alice"}, {"key": "bob"}],
            "threshold": threshold,
            "attestations": [{"predicateType": SLSA}],
        }
    ]
    return trust_config(tmp, policies, keys, registry={"trust": {"publicKeyFiles": [str(tmp / "ops.pub")]}})


async def test_policy_runtime_signed_comes_from_verification(
    tmp_path: Path,
    registry: devstack.RegistryServer,
    keys: dict[str, signing.KeyPair],
    images: dict[str, PushedImage],
) -> None:
    config, _ = _config(tmp_path, registry, keys)
    verifier = image_verifier(config)
    app = create_app(BackendServer(store=f"sqlite:///{tmp_path / 'b.db'}"), purge=False, verifier=verifier)
    down = f"127.0.0.1:{free_port()}/team-a/x@{images['signed'].digest}"
    async with client_for(app) as client:
        await client.put(CATALOG + images["unsigned"].digest, json={"signed": True})
        asked = [*(i.pinned for i in images.values()), down]
        r = await client.post(POLICY, json={"namespace": "prod", "images": asked})
        assert r.status_code == 200, r.text
        answer = RuntimePolicyResponse.model_validate(r.json())
    results = answer.results
    good = results[images["signed"].pinned]
    assert (good.signed, good.has_sbom, good.policy_verdict, good.reasons) == (True, True, "pass", [])
    one = results[images["one"].pinned]
    assert (
        not one.signed
        and one.policy_verdict == "fail"
        and one.reasons[:2]
        == [
            "trust policy team-a: 1 of 2 required signature(s) verified (bob.pub: signature does not "
            f"verify with any trusted key); attestation {SLSA}: 0 of 2 required verified",
            "unsigned",
        ]
    )
    forged = results[images["unsigned"].pinned]
    assert not forged.signed and "catalog asserts signed: not verified (evidence only)" in forged.reasons
    default = results[images["other"].pinned]  # no trust policy matches: the default signers
    assert default.signed and not default.has_sbom and default.reasons == ["missing SBOM"]
    assert down not in results  # registry unreachable: no verdict, the caller's fail-open/closed applies
    # the trust-policy revision is part of the policy revision (caches key on it)
    relaxed, _ = _config(tmp_path, registry, keys, threshold=1)
    app2 = create_app(
        BackendServer(store=f"sqlite:///{tmp_path / 'b.db'}"), purge=False, verifier=image_verifier(relaxed)
    )
    async with client_for(app2) as client:
        r2 = RuntimePolicyResponse.model_validate(
            (await client.post(POLICY, json={"images": [images["one"].pinned]})).json()
        )
    assert r2.policy_revision != answer.policy_revision
    relaxed_one = r2.results[images["one"].pinned]  # signed now (1 of 1), but the attestation is missing
    assert relaxed_one.signed and relaxed_one.policy_verdict == "fail"
    assert relaxed_one.reasons == [
        f"trust policy team-a: attestation {SLSA}: 0 of 1 required verified",
        "missing SBOM",
    ]
    for v in (verifier, app2.service.verifier):
        await v.client.close()  # type: ignore[union-attr]


@pytest.fixture
def served(
    tmp_path: Path, registry: devstack.RegistryServer, keys: dict[str, signing.KeyPair]
) -> Iterator[str]:
    """``zastava backend serve --config`` with the trust policies, as a real process."""
    _, path = _config(tmp_path, registry, keys)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")}
    log = (tmp_path / "serve.log").open("wb")
    store = f"sqlite:///{tmp_path / 'serve.db'}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zastava",
            "backend",
            "serve",
            "--config",
            str(path),
            "--store",
            store,
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"backend did not start: {(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_backend_serve_verifies_through_the_cli(served: str, images: dict[str, PushedImage]) -> None:
    def policy_test(image: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "zastava",
                "runtime",
                "policy",
                "test",
                "--image",
                image,
                "--backend",
                served,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = policy_test(images["signed"].pinned)
    assert ok.returncode == 0 and "verdict:   pass" in ok.stdout and "signed:    true" in ok.stdout, ok.stderr
    bad = policy_test(images["one"].pinned)
    assert "signed:    false" in bad.stdout and "trust policy team-a: 1 of 2" in bad.stdout
    # an image in a registry the backend cannot reach has no verdict (the caller's fail-open/closed applies)
    unreachable = policy_test(f"127.0.0.1:{free_port()}/team-a/x@{images['signed'].digest}")
    assert unreachable.returncode == 1 and "could not verify its signatures" in unreachable.stderr


def test_backend_serve_refuses_unreadable_trust_material(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "zastava:\n  admission:\n    trustPolicies:\n      - name: p\n        images: ['r.io/**']\n"
        f"        authorities: [{{key: {{path: {tmp_path / 'missing.pub'}}}}}]\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "zastava", "backend", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert (
        "zastava.admission.trustPolicies.0.authorities.0.key.path" in out.stderr
        and "cannot read" in out.stderr
    )
