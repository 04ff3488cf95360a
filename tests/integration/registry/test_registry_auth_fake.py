"""Basic auth (real registry with htpasswd), and — with the in-test OCI server, because Debian's registry
cannot
do these — the OCI 1.1 referrers API, 429 throttling with Retry-After, and bearer-token challenges."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.harness import devstack
from tests.harness.devstack import signing
from tests.harness.real import start_real
from zastava.cli import app
from zastava.registry import (
    AuthenticationError,
    CredentialStore,
    RegistryClient,
    RegistryClientConfig,
    RegistryUnavailable,
    TooLarge,
    TrustedSigners,
    check_posture,
    load_public_key,
)

from .conftest import Image
from .ocifake import FakeRegistry

pytestmark = pytest.mark.real
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def auth_registry() -> Iterator[devstack.RegistryServer]:
    server = start_real(lambda: devstack.RegistryServer(htpasswd={"alice": "s3cret"}).start())
    yield server
    server.stop()
    server.cleanup()


def docker_config(tmp_path: Path, host: str, user: str, password: str) -> Path:
    path = tmp_path / "config.json"
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return path


async def test_basic_auth_htpasswd(auth_registry: devstack.RegistryServer, tmp_path: Path) -> None:
    pusher = signing.OciPusher(auth_registry.url, auth=("alice", "s3cret"))
    config = pusher.blob("zastava/auth", b'{"os":"linux"}', "application/vnd.oci.image.config.v1+json")
    digest = pusher.manifest(
        "zastava/auth",
        "1",
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []},
        OCI_MANIFEST,
    )
    pusher.close()
    ref = f"{auth_registry.host}/zastava/auth:1"
    async with RegistryClient() as client:
        with pytest.raises(AuthenticationError, match="no credentials"):
            await client.head_manifest(ref)
    store = CredentialStore.from_sources(docker_config(tmp_path, auth_registry.host, "alice", "s3cret"))
    async with RegistryClient(credentials=store) as client:
        assert (await client.head_manifest(ref)).digest == digest  # type: ignore[union-attr]
    secret = {
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "pull"},
        "data": {
            ".dockerconfigjson": base64.b64encode(
                json.dumps(
                    {"auths": {auth_registry.host: {"username": "alice", "password": "s3cret"}}}
                ).encode()
            ).decode()
        },
    }
    async with RegistryClient(credentials=CredentialStore.from_sources(pull_secrets=[secret])) as client:
        assert (await client.head_manifest(ref)).digest == digest  # type: ignore[union-attr]
    # per-call credentials (one pod's imagePullSecrets) on a shared client are not reused by other calls
    async with RegistryClient() as shared:
        with shared.using_credentials(store):
            assert (await shared.resolve(ref)).digest == digest
        with pytest.raises(AuthenticationError, match="no credentials"):
            await shared.resolve(ref)
        posture = await check_posture(
            shared,
            ref,
            TrustedSigners(keys=[load_public_key(signing.KeyPair.generate().public_pem)]),
            credentials=store,
        )
        assert posture.resolve == "ok" and posture.digest == digest
        anonymous = await check_posture(
            shared, ref, TrustedSigners(keys=[load_public_key(signing.KeyPair.generate().public_pem)])
        )
        assert anonymous.resolve == "unknown" and "AuthenticationError" in str(anonymous.error)
    bad = CredentialStore.from_sources(docker_config(tmp_path, auth_registry.host, "alice", "wrong"))
    async with RegistryClient(credentials=bad) as client:
        with pytest.raises(AuthenticationError, match="rejected"):
            await client.head_manifest(ref)


def _seed(fake: FakeRegistry) -> tuple[str, signing.OciPusher]:
    pusher = signing.OciPusher(fake.url)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": pusher.blob("app", b'{"os":"linux"}', "application/vnd.oci.image.config.v1+json"),
        "layers": [],
    }
    return pusher.manifest("app", "1", manifest, "application/vnd.oci.image.manifest.v1+json"), pusher


async def test_referrers_api(fake_registry: FakeRegistry) -> None:
    digest, pusher = _seed(fake_registry)
    signing.attach_sbom(pusher, "app", digest, b"{}")
    key = signing.KeyPair.generate()
    bundle = signing.dsse_bundle(signing.in_toto_statement(digest, signing.COSIGN_SIGN_V1, {}), key=key)
    signing.attach_bundle(pusher, "app", digest, bundle)
    assert (
        pusher.get_manifest("app", digest.replace(":", "-")) is None
    )  # API registry: no fallback tag written
    async with RegistryClient() as client:
        found = await client.referrers(f"{fake_registry.host}/app:1")
        assert found.source == "api" and len(found) == 2
        sboms = await client.referrers(f"{fake_registry.host}/app:1", "application/vnd.cyclonedx+json")
        assert len(sboms) == 1
        result = await check_posture(
            client,
            f"{fake_registry.host}/app:1",
            TrustedSigners(keys=[load_public_key(key.public_pem, "release")]),
        )
    assert result.signed and result.signed_by == ["release"] and result.sbom
    assert result.referrers_source == "api"


async def test_429_retry_after_then_success(fake_registry: FakeRegistry) -> None:
    digest, _ = _seed(fake_registry)
    fake_registry.throttle_remaining = 2
    fake_registry.retry_after = "0"
    async with RegistryClient() as client:
        resolved = await client.resolve(f"{fake_registry.host}/app:1")
        assert resolved.digest == digest
        assert client.stats["retries"] == 2 and fake_registry.throttled == 2


async def test_429_forever_gives_unknown_posture(fake_registry: FakeRegistry) -> None:
    _seed(fake_registry)
    fake_registry.throttle_remaining = -1
    fake_registry.retry_after = "0"
    config = RegistryClientConfig(max_retries=2, backoff_base_seconds=0.01)
    async with RegistryClient(config) as client:
        with pytest.raises(RegistryUnavailable, match="throttled"):
            await client.resolve(f"{fake_registry.host}/app:1")
        result = await check_posture(
            client,
            f"{fake_registry.host}/app:1",
            TrustedSigners(keys=[load_public_key(signing.KeyPair.generate().public_pem)]),
        )
    assert result.resolve == "unknown" and result.error and not result.signed
    assert fake_registry.throttled == 6


async def test_bearer_token_challenge() -> None:
    fake = FakeRegistry(bearer=("bob", "pw")).start()
    try:
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
        ).encode()
        fake.manifests[("app", "1")] = (body, "application/vnd.oci.image.index.v1+json")
        store = CredentialStore(
            {
                fake.host: __import__(
                    "zastava.registry.transport.auth", fromlist=["Credentials"]
                ).Credentials("bob", "pw")
            }
        )
        async with RegistryClient(credentials=store) as client:
            found = await client.head_manifest(f"{fake.host}/app:1")
            assert found is not None and found.media_type == "application/vnd.oci.image.index.v1+json"
            before = fake.requests
            await client.head_manifest(f"{fake.host}/app:1")
            assert fake.requests == before + 1  # token reused: no second challenge
        async with RegistryClient() as client:
            with pytest.raises(AuthenticationError, match="token endpoint refused"):
                await client.head_manifest(f"{fake.host}/app:1")
    finally:
        fake.stop()


def test_cli_verify_exit_codes(image: Image, tmp_path: Path) -> None:
    runner = CliRunner()
    key = signing.KeyPair.generate()
    pub = key.write_public(tmp_path / "cosign.pub")
    other = signing.KeyPair.generate().write_public(tmp_path / "other.pub")
    unsigned = runner.invoke(app, ["verify", image.ref, "--key", str(pub)])
    assert unsigned.exit_code == 1 and "unsigned" in unsigned.output
    signing.sign_legacy(image.pusher, image.repo, image.digest, key=key)
    ok = runner.invoke(app, ["verify", image.ref, "--key", str(pub), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["signed"] is True
    wrong = runner.invoke(app, ["verify", image.ref, "--key", str(other)])
    assert wrong.exit_code == 1 and "does not verify" in wrong.output
    missing_key = runner.invoke(app, ["verify", image.ref, "--key", str(tmp_path / "nope.pub")])
    assert missing_key.exit_code == 2
    down = runner.invoke(app, ["verify", "127.0.0.1:1/x/y:1", "--key", str(pub)])
    assert down.exit_code == 2 and "digest resolution failed" in down.output
    resolved = runner.invoke(app, ["registry", "resolve", image.ref])
    assert resolved.exit_code == 0 and json.loads(resolved.output)["digest"] == image.digest
    signing.attach_sbom(image.pusher, image.repo, image.digest, b"{}")
    listed = runner.invoke(
        app, ["registry", "referrers", image.ref, "--artifact-type", "application/vnd.cyclonedx+json"]
    )
    assert listed.exit_code == 0 and json.loads(listed.output)["source"] == "fallback"
    assert len(json.loads(listed.output)["referrers"]) == 1


async def test_oversized_manifest_is_refused(image: Image) -> None:
    config = RegistryClientConfig(max_manifest_bytes=64)
    async with RegistryClient(config) as client:
        with pytest.raises(TooLarge):
            await client.manifest(image.pinned)
        result = await check_posture(
            client,
            image.pinned,
            TrustedSigners(keys=[load_public_key(signing.KeyPair.generate().public_pem)]),
        )
    assert result.resolve == "unknown" and "TooLarge" in str(result.error)


async def test_per_registry_concurrency_limit(fake_registry: FakeRegistry) -> None:
    import asyncio

    digest, _ = _seed(fake_registry)
    fake_registry.delay = 0.05
    config = RegistryClientConfig(concurrency_per_registry=2, tag_cache_ttl_seconds=0)
    async with RegistryClient(config) as client:
        results = await asyncio.gather(*(client.resolve(f"{fake_registry.host}/app:1") for _ in range(10)))
    assert {r.digest for r in results} == {digest}
    assert fake_registry.max_inflight == 2


async def test_read_timeout_is_bounded(fake_registry: FakeRegistry) -> None:
    _seed(fake_registry)
    fake_registry.delay = 2.0
    config = RegistryClientConfig(read_timeout_seconds=0.2, max_retries=1, backoff_base_seconds=0.01)
    async with RegistryClient(config) as client:
        with pytest.raises(RegistryUnavailable, match="ReadTimeout"):
            await client.resolve(f"{fake_registry.host}/app:1")
        assert client.stats["retries"] == 1
