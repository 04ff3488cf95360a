"""Images in the real loopback registry and trust configuration for them: small synthetic OCI images pushed
by the OCI API (no Docker needed), signed by the tests' own signer
(``tests.harness.devstack.signing``, cosign's published formats), and a Zastava configuration whose trust
policies name the test's keys."""

from __future__ import annotations

import io
import itertools
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness.devstack import signing
from zastava.config import ZastavaConfig, load_config

_counter = itertools.count()


@dataclass
class PushedImage:
    host: str
    repo: str
    tag: str
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repo}:{self.tag}"

    @property
    def pinned(self) -> str:
        return f"{self.host}/{self.repo}@{self.digest}"


def push_synthetic(
    pusher: signing.OciPusher, host: str, repo: str, content: bytes, tag: str = "1"
) -> PushedImage:
    """A one-layer OCI image with ``content`` in ``/hello.txt``, pushed as ``repo:tag``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer = pusher.blob(repo, buffer.getvalue(), "application/vnd.oci.image.layer.v1.tar")
    config = pusher.blob(
        repo,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
                "config": {},
            }
        ).encode(),
        "application/vnd.oci.image.config.v1+json",
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    }
    digest = pusher.manifest(repo, tag, manifest, "application/vnd.oci.image.manifest.v1+json")
    return PushedImage(host, repo, tag, digest)


def unique_repo(prefix: str) -> str:
    return f"{prefix}/r{next(_counter)}"


def trust_config(
    tmp: Path, policies: list[dict[str, Any]], keys: dict[str, signing.KeyPair], **sections: Any
) -> tuple[ZastavaConfig, Path]:
    """A configuration file with ``admission.trustPolicies`` (key authorities written as ``{"key": NAME}`` are
    replaced by the public key file of ``keys[NAME]``); other sections merge in. Returns (config, path)."""
    for name, key in keys.items():
        key.write_public(tmp / f"{name}.pub")
    rendered = []
    for policy in policies:
        authorities = []
        for authority in policy["authorities"]:
            if isinstance(authority.get("key"), str):
                authority = {**authority, "key": {"path": str(tmp / f"{authority['key']}.pub")}}
            authorities.append(authority)
        rendered.append({**policy, "authorities": authorities})
    document: dict[str, Any] = {"zastava": {k: dict(v) for k, v in sections.items()}}
    document["zastava"].setdefault("admission", {})["trustPolicies"] = rendered
    path = tmp / "zastava.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_config(path, warn=False), path
