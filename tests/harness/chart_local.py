"""Run the workloads of a rendered Helm chart as local processes, the way a kubelet would start them.

For each workload: its container's volumes are written under a private directory (ConfigMap and Secret keys,
``items``, ``subPath`` and projected volumes; emptyDirs; hostPaths as symlinks to the host path), every string
naming a mount path — in args, env and the mounted zastava YAML — is rewritten to that directory (nothing else
changes), env comes from ``value``, ``secretKeyRef``/``configMapKeyRef`` and the downward API.

Every process runs in one private network and mount namespace (``unshare``; needs root): the chart's fixed
ports cannot clash with anything else on the machine, and ``/etc/hosts`` there maps every Service's DNS
names to 127.0.0.1, so the certificates the chart made for ``<svc>.<ns>.svc`` verify as in a cluster.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.harness.devstack import PrerequisiteMissing

__all__ = ["Namespace", "Workload", "by_name", "workload"]


def by_name(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise KeyError(f"{kind}/{name} not rendered")


def _key_data(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, bytes]:
    doc = by_name(docs, kind, name)
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (doc.get("data") or {}).items()}
    return {k: v.encode() for k, v in (doc.get("data") or {}).items()}


@dataclass
class Workload:
    """One workload's container, materialised under ``root``: ``argv`` and ``env`` ready to run."""

    name: str
    root: Path
    argv: list[str]
    env: dict[str, str]
    mounts: list[str] = field(default_factory=list)

    def path(self, mount_path: str) -> Path:
        """Where a path inside the container is on this machine."""
        return Path(self.rewrite(mount_path))

    def rewrite(self, value: str) -> str:
        for prefix in ("sqlite:///", ""):  # a SQLite URL names a path, too
            if not value.startswith(prefix):
                continue
            rest = value[len(prefix) :]
            for mount in self.mounts:
                if rest == mount or rest.startswith(mount.rstrip("/") + "/"):
                    return prefix + str(self.root) + rest
        return value


def _rewrite_tree(node: Any, workload: Workload) -> Any:
    if isinstance(node, dict):
        return {k: _rewrite_tree(v, workload) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_tree(v, workload) for v in node]
    if isinstance(node, str):
        return workload.rewrite(node)
    return node


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(0o600)


def _source_files(docs: list[dict[str, Any]], source: dict[str, Any], kind: str) -> dict[str, bytes]:
    name = source.get("name") or source.get("secretName")
    data = _key_data(docs, kind, str(name))
    if "items" in source:
        return {item["path"]: data[item["key"]] for item in source["items"]}
    return data


def workload(docs: list[dict[str, Any]], kind: str, name: str, root: Path, node_name: str) -> Workload:
    """Materialise the first container of ``kind``/``name`` under ``root``."""
    spec = by_name(docs, kind, name)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = sorted((m["mountPath"] for m in container.get("volumeMounts", [])), key=len, reverse=True)
    result = Workload(name, root, [], {}, mounts)
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        files: dict[str, bytes] = {}
        if "configMap" in volume:
            files = _source_files(docs, volume["configMap"], "ConfigMap")
        elif "secret" in volume:
            files = _source_files(docs, volume["secret"], "Secret")
        elif "projected" in volume:
            for source in volume["projected"]["sources"]:
                kind_key = "secret" if "secret" in source else "configMap"
                files.update(
                    _source_files(docs, source[kind_key], "Secret" if kind_key == "secret" else "ConfigMap")
                )
        elif "emptyDir" in volume or "persistentVolumeClaim" in volume:
            target.mkdir(parents=True, exist_ok=True)
            continue
        elif "hostPath" in volume:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(volume["hostPath"]["path"])
            continue
        else:
            raise ValueError(f"volume {mount['name']}: unsupported kind {sorted(volume)}")
        if "subPath" in mount:
            _write(target, files[mount["subPath"]])
        else:
            for key, data in files.items():
                _write(target / key, data)
    # the mounted zastava YAML names container paths: rewrite them as the mounts were
    for config in root.rglob("zastava.yaml"):
        document = yaml.safe_load(config.read_text())
        config.write_text(yaml.safe_dump(_rewrite_tree(document, result), sort_keys=False))
    result.argv = [result.rewrite(str(a)) for a in container.get("args", [])]
    for item in container.get("env", []):
        if "value" in item:
            result.env[item["name"]] = result.rewrite(str(item["value"]))
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            result.env[item["name"]] = _key_data(docs, "Secret", ref["name"])[ref["key"]].decode()
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            result.env[item["name"]] = _key_data(docs, "ConfigMap", ref["name"])[ref["key"]].decode()
        elif source.get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            result.env[item["name"]] = node_name
        else:
            raise ValueError(f"env {item['name']}: unsupported valueFrom {source}")
    return result


class Namespace:
    """A private network + mount namespace whose /etc/hosts maps ``hosts`` to 127.0.0.1."""

    def __init__(self, workdir: Path, hosts: list[str]) -> None:
        if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
            raise PrerequisiteMissing("root with unshare and nsenter (util-linux) for a private namespace")
        self.hosts_file = workdir / "hosts"
        self.hosts_file.write_text("127.0.0.1 localhost " + " ".join(hosts) + "\n::1 localhost\n")
        self.holder = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"ip link set lo up && mount --bind {self.hosts_file} /etc/hosts"
                " && echo ready && exec sleep 3600",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != "ready":
            _, stderr = self.holder.communicate(timeout=5)
            raise PrerequisiteMissing(f"cannot make a private namespace with unshare: {stderr.strip()}")
        self.processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.helpers: list[subprocess.Popen[str]] = []

    def prefix(self) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "--net", "--mount", "--"]

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """``python -m zastava ARGV`` inside the namespace, with only ``env`` of the ZASTAVA_* variables."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")}
        handle = log.open("wb")
        process = subprocess.Popen(
            [*self.prefix(), sys.executable, "-m", "zastava", *argv],
            env={**base, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        self.processes.append((name, process, log))
        return process

    def popen_python(self, code: str) -> subprocess.Popen[str]:
        """A Python snippet running inside the namespace, talking over text stdin/stdout (killed by close)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")}
        process = subprocess.Popen(
            [*self.prefix(), sys.executable, "-c", code],
            env=base,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.helpers.append(process)
        return process

    def logs(self) -> Iterator[tuple[str, str]]:
        for name, _process, log in self.processes:
            yield name, log.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        for helper in self.helpers:
            helper.kill()
            helper.wait()
        for _name, process, _log in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 10
        for _name, process, _log in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.holder.kill()
        self.holder.wait()
