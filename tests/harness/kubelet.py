"""Run a rendered Helm chart on a private Docker engine the way a kubelet would run it.

No kube-apiserver, scheduler or kubelet can run on the test machine, so :class:`DockerKubelet` plays the node:
it takes the objects ``helm template`` rendered and starts every Pod template of every Deployment, StatefulSet
and DaemonSet as Docker containers, generically (nothing here names a Zastava component):

* the image of each container (``images`` maps a chart reference to a locally built tag, as a node whose
  image store already holds it: ``imagePullPolicy: IfNotPresent``), ``command`` → entrypoint, ``args`` → cmd,
  with ``$(VAR)`` expansion as the kubelet does;
* ``env`` with ``value`` and ``valueFrom`` (``secretKeyRef``, ``configMapKeyRef`` incl. ``optional``, the
  downward API ``fieldRef`` metadata.name/namespace/uid/labels, spec.nodeName/serviceAccountName,
  status.podIP/hostIP, and ``resourceFieldRef``), ``envFrom``;
* volumes: ConfigMap, Secret and projected (ConfigMap/Secret/downward/serviceAccountToken sources) written to
  a temporary directory and bind-mounted read-only (``items``, ``defaultMode``, files owned by ``fsGroup``),
  ``emptyDir`` (a 0777 directory, or tmpfs for ``medium: Memory``), ``hostPath`` (through ``host_paths``,
  which maps the node's paths to where this machine's private engines keep them);
* securityContext (pod and container): ``runAsUser``/``runAsGroup``, ``fsGroup`` and
  ``supplementalGroups`` (``--group-add``), ``runAsNonRoot`` (refused like the kubelet when the effective user
  is 0), ``readOnlyRootFilesystem``, ``capabilities`` drop/add, ``privileged``,
  ``allowPrivilegeEscalation: false`` (no-new-privileges), ``hostPID``/``hostNetwork``; memory and CPU limits;
* every Service: its name, ``name.namespace``, ``name.namespace.svc`` and ``name.namespace.svc.cluster.local``
  are network aliases of the containers its selector matches, on one Docker network (Docker's DNS answers
  them); :meth:`service_endpoint` resolves Service port → ``targetPort`` (named or numbered) as kube-proxy
  would for a caller outside the network (the test, acting as the API server);
* readiness: each container's ``readinessProbe`` (httpGet, tcpSocket, exec) is polled until it passes;
  meanwhile a container that exits, or fails its ``livenessProbe`` ``failureThreshold`` times in a row, is
  restarted (``restartPolicy: Always``), at most ``max_restarts`` times (then: CrashLoopBackOff, an error).

What is *not* emulated (:data:`NOT_EMULATED`: accepted and recorded, never enforced) — RBAC, NetworkPolicy,
PodDisruptionBudget, ServiceMonitor/PodMonitor, scheduling (nodeSelector, tolerations, affinity: every Pod
runs on the one node), ``replicas`` beyond what ``max_replicas`` allows, restart back-off (an exited
container is restarted at once, ``max_restarts`` times; liveness probes are run only while waiting for
readiness), ``enableServiceLinks`` variables,
PersistentVolumeClaims. The API server itself cannot run here: when a workload mounts a service-account
token, ``api_server`` (a :class:`KubeApiEndpoint`, e.g. the ``kmock`` emulator behind TLS) supplies
``KUBERNETES_SERVICE_HOST``/``PORT`` and the token directory (token, ``ca.crt``, namespace) a kubelet would
project, and ``report`` tells it of each Pod before its containers start. Service ports must equal their
``targetPort`` for callers *inside* the network (no kube-proxy translates them); :meth:`start` refuses a
chart where they differ and an in-cluster address names the port, so the gap cannot hide a defect.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .devstack import DockerEngine

__all__ = [
    "NOT_EMULATED",
    "WORKLOAD_KINDS",
    "DockerKubelet",
    "KubeApiEndpoint",
    "PodRun",
    "free_subnet",
    "render_chart",
]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
#: Kinds accepted and recorded but not enforced, and why.
NOT_EMULATED: Mapping[str, str] = {
    "ServiceAccount": "identity only; a token is projected when the Pod mounts one (api_server)",
    "ClusterRole": "no API server enforces RBAC here",
    "ClusterRoleBinding": "no API server enforces RBAC here",
    "Role": "no API server enforces RBAC here",
    "RoleBinding": "no API server enforces RBAC here",
    "NetworkPolicy": "one flat Docker network; nothing enforces policies",
    "PodDisruptionBudget": "no evictions happen",
    "ServiceMonitor": "no Prometheus operator; the test scrapes /metrics itself",
    "PodMonitor": "no Prometheus operator; the test scrapes /metrics itself",
    "ValidatingWebhookConfiguration": "no API server calls it; the test calls it as its clientConfig says",
    "MutatingWebhookConfiguration": "no API server calls it; the test calls it as its clientConfig says",
    "PersistentVolumeClaim": "not used by the rendered default workloads",
    "Certificate": "cert-manager does not run here",
}
_HANDLED = {"ConfigMap", "Secret", "Service", *WORKLOAD_KINDS}


def render_chart(
    helm: Path,
    chart: Path,
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "zastava",
    namespace: str = "zastava",
    workdir: Path,
) -> list[dict[str, Any]]:
    """``helm template`` with ``values`` (none: the chart's defaults); every rendered object, in order."""
    argv = [str(helm), "template", release, str(chart), "--namespace", namespace]
    if values:
        path = workdir / f"values-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump(dict(values)))
        argv += ["--values", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if isinstance(doc, dict)]


@dataclass(frozen=True)
class KubeApiEndpoint:
    """What a kubelet gives a Pod that mounts a service-account token: the API address and trust."""

    host: str
    port: int
    ca_pem: bytes
    token: str = "emulated-service-account-token"


@dataclass
class PodRun:
    """One Pod (one replica of a workload) and its containers on the engine."""

    name: str
    namespace: str
    workload_kind: str
    workload_name: str
    labels: dict[str, str]
    ip: str
    spec: dict[str, Any]
    #: container name → Docker container id
    containers: dict[str, str] = field(default_factory=dict)
    #: container name → (docker run arguments) for restarts and diagnosis
    argv: dict[str, list[str]] = field(default_factory=dict)
    #: exits the kubelet restarted the container after, with the logs at that time
    crashes: list[str] = field(default_factory=list)

    def api_object(self, node_name: str) -> dict[str, Any]:
        """The Pod as the API server holds it once scheduled to ``node_name`` (what the kubelet reports)."""
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, self.name)),
                "labels": dict(self.labels),
            },
            "spec": {**self.spec, "nodeName": node_name},
            "status": {"phase": "Pending", "podIP": self.ip},
        }

    def port(self, name_or_number: int | str) -> int:
        if isinstance(name_or_number, int) or str(name_or_number).isdigit():
            return int(name_or_number)
        for container in self.spec.get("containers", []):
            for port in container.get("ports") or []:
                if port.get("name") == name_or_number:
                    return int(port["containerPort"])
        raise KeyError(f"pod {self.name} has no port named {name_or_number!r}")


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion (``$$`` escapes; unknown references stay as written)."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR.sub(sub, text)


def _quantity_bytes(value: str | int) -> int:
    text = str(value)
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def _quantity_cpus(value: str | int) -> float:
    text = str(value)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 no route of this machine uses (other engineers' private engines may hold some)."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False).stdout
    used = [
        ipaddress.ip_network(word, strict=False)
        for line in routes.splitlines()
        for word in line.split()[:1]
        if re.match(r"^\d+\.\d+\.\d+\.\d+(/\d+)?$", word)
    ]
    for _ in range(200):
        candidate = ipaddress.ip_network(f"10.{uuid.uuid4().int % 200 + 40}.{uuid.uuid4().int % 250}.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 for the pod network")


class DockerKubelet:
    """The rendered objects, run on ``engine`` (see the module docstring for what is and is not emulated)."""

    def __init__(
        self,
        engine: DockerEngine,
        objects: Sequence[Mapping[str, Any]],
        *,
        images: Mapping[str, str],
        host_paths: Mapping[str, Path | str] | None = None,
        node_name: str = "node-a",
        api_server: KubeApiEndpoint | None = None,
        max_replicas: int | None = None,
        max_restarts: int = 2,
        subnet: ipaddress.IPv4Network | None = None,
        report: Callable[[dict[str, Any]], None] | None = None,
        extra_objects: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.engine = engine
        self.objects = [dict(o) for o in [*extra_objects, *objects]]
        self.images = dict(images)
        self.host_paths = {k: Path(v) for k, v in (host_paths or {}).items()}
        self.node_name = node_name
        self.api_server = api_server
        self.max_replicas = max_replicas
        self.max_restarts = max_restarts
        #: called with each Pod object before its containers start (the API server learns of the Pod first)
        self.report = report
        self.workdir = Path(tempfile.mkdtemp(prefix="zastava-kubelet-"))
        self.workdir.chmod(0o755)
        self.run_id = uuid.uuid4().hex[:6]
        self.network = f"kubelet-{self.run_id}"
        self.subnet = subnet or free_subnet()
        hosts = list(self.subnet.hosts())
        self.gateway = str(hosts[0])
        self._free_ips = [str(h) for h in hosts[9:]]
        self.pods: list[PodRun] = []
        self.ignored: dict[str, list[str]] = {}
        self._network_created = False

    # --- objects -------------------------------------------------------------------------------------------

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.of_kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"no {kind} {name!r} among the rendered objects")

    def secret_data(self, name: str) -> dict[str, bytes]:
        secret = self.get("Secret", name)
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        data.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
        return data

    def configmap_data(self, name: str) -> dict[str, bytes]:
        cm = self.get("ConfigMap", name)
        data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self, ready_timeout: float = 120) -> DockerKubelet:
        for obj in self.objects:
            kind = str(obj.get("kind"))
            if kind not in _HANDLED:
                if kind not in NOT_EMULATED:
                    raise NotImplementedError(f"the kubelet emulation does not know kind {kind}")
                self.ignored.setdefault(kind, []).append(obj["metadata"]["name"])
        self._check_service_ports()
        self.create_network()
        for obj in self.objects:
            if obj.get("kind") in WORKLOAD_KINDS:
                self._start_workload(obj)
        self.wait_ready(ready_timeout)
        return self

    def create_network(self) -> None:
        """The pod network (its gateway is this machine: where a stand-in API server can listen)."""
        if self._network_created:
            return
        self.engine.docker(
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            str(self.subnet),
            "--gateway",
            self.gateway,
            self.network,
        )
        self._network_created = True

    def stop(self) -> None:
        for pod in self.pods:
            for container_id in pod.containers.values():
                self.engine.docker("rm", "-f", container_id, check=False, timeout=60)
        if self._network_created:
            self.engine.docker("network", "rm", self.network, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def pods_of(self, component: str) -> list[PodRun]:
        """Pods whose ``app.kubernetes.io/component`` label (the recommended label) is ``component``."""
        return [p for p in self.pods if p.labels.get("app.kubernetes.io/component") == component]

    def restart(self, pod: PodRun, *, down_seconds: float = 0) -> None:
        """Stop every container of the Pod, wait, start them again (same IP, same volumes): a container
        restart as the kubelet does it after a crash (an emptyDir survives it)."""
        for container_id in pod.containers.values():
            self.engine.docker("stop", "--time", "10", container_id)
        time.sleep(down_seconds)
        for container_id in pod.containers.values():
            self.engine.docker("start", container_id)
        self._wait_pod_ready(pod, 90)

    def stop_pod(self, pod: PodRun) -> None:
        for container_id in pod.containers.values():
            self.engine.docker("stop", "--time", "10", container_id)

    def start_pod(self, pod: PodRun) -> None:
        for container_id in pod.containers.values():
            self.engine.docker("start", container_id)
        self._wait_pod_ready(pod, 90)

    def logs(self, pod: PodRun, tail: int = 40) -> str:
        out = []
        for name, container_id in pod.containers.items():
            result = self.engine.docker("logs", "--tail", str(tail), container_id, check=False)
            text = (result.stdout + result.stderr).decode(errors="replace")
            out.append(f"--- {pod.name}/{name}\n{text}")
        return "\n".join(out)

    def all_logs(self, tail: int = 40) -> str:
        return "\n".join(self.logs(p, tail) for p in self.pods)

    # --- services ------------------------------------------------------------------------------------------

    def service_pods(self, service: Mapping[str, Any]) -> list[PodRun]:
        selector = service.get("spec", {}).get("selector") or {}
        namespace = service["metadata"].get("namespace", "default")
        return [
            p
            for p in self.pods
            if selector
            and p.namespace == namespace
            and all(p.labels.get(k) == v for k, v in selector.items())
        ]

    def service_endpoint(self, name: str, port: int) -> tuple[str, int]:
        """(pod IP, target port) behind Service ``name``'s ``port``, as the API server resolves it."""
        service = self.get("Service", name)
        pods = self.service_pods(service)
        if not pods:
            raise LookupError(f"Service {name} selects no running Pod")
        for entry in service["spec"].get("ports") or []:
            if int(entry["port"]) == port:
                target = entry.get("targetPort", port)
                return pods[0].ip, pods[0].port(target)
        raise LookupError(f"Service {name} has no port {port}")

    def _check_service_ports(self) -> None:
        """Inside the network a caller reaches ``alias:port`` directly; a Service whose port differs from its
        targetPort would only work through kube-proxy. Refuse when an in-cluster address names such a port."""
        texts = "\n".join(
            v.decode(errors="replace")
            for cm in self.of_kind("ConfigMap")
            for v in self.configmap_data(cm["metadata"]["name"]).values()
        )
        for service in self.of_kind("Service"):
            name = service["metadata"]["name"]
            for entry in service["spec"].get("ports") or []:
                target = entry.get("targetPort", entry["port"])
                if str(target).isdigit() and int(target) == int(entry["port"]):
                    continue
                selector = service["spec"].get("selector") or {}
                pods_ports = [
                    int(p["containerPort"])
                    for obj in self.of_kind_workloads()
                    if all(
                        (obj["spec"]["template"]["metadata"].get("labels") or {}).get(k) == v
                        for k, v in selector.items()
                    )
                    for c in obj["spec"]["template"]["spec"].get("containers", [])
                    for p in c.get("ports") or []
                    if p.get("name") == target
                ]
                if pods_ports and pods_ports[0] == int(entry["port"]):
                    continue
                if re.search(rf"\b{re.escape(name)}(\.[a-z0-9.-]+)?:{entry['port']}\b", texts):
                    raise NotImplementedError(
                        f"Service {name} maps port {entry['port']} → {target} and the config calls "
                        f"{name}:{entry['port']}; without kube-proxy that address cannot be emulated"
                    )

    def of_kind_workloads(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") in WORKLOAD_KINDS]

    def _aliases(self, labels: Mapping[str, str], namespace: str) -> list[str]:
        out: list[str] = []
        for service in self.of_kind("Service"):
            selector = service.get("spec", {}).get("selector") or {}
            if service["metadata"].get("namespace", "default") != namespace or not selector:
                continue
            if all(labels.get(k) == v for k, v in selector.items()):
                name = service["metadata"]["name"]
                out += [
                    name,
                    f"{name}.{namespace}",
                    f"{name}.{namespace}.svc",
                    f"{name}.{namespace}.svc.cluster.local",
                ]
        return out

    # --- workloads -----------------------------------------------------------------------------------------

    def _start_workload(self, workload: Mapping[str, Any]) -> None:
        kind = str(workload["kind"])
        meta = workload["metadata"]
        namespace = meta.get("namespace", "default")
        replicas = 1 if kind == "DaemonSet" else int(workload["spec"].get("replicas", 1))
        if self.max_replicas is not None:
            replicas = min(replicas, self.max_replicas)
        template = workload["spec"]["template"]
        for index in range(replicas):
            suffix = str(index) if kind == "StatefulSet" else uuid.uuid4().hex[:5]
            pod = PodRun(
                name=f"{meta['name']}-{suffix}",
                namespace=namespace,
                workload_kind=kind,
                workload_name=meta["name"],
                labels=dict(template.get("metadata", {}).get("labels") or {}),
                ip=self._free_ips.pop(0),
                spec=template["spec"],
            )
            if self.report is not None:
                self.report(pod.api_object(self.node_name))
            self._start_pod(pod)
            self.pods.append(pod)

    def _field(self, pod: PodRun, path: str) -> str:
        simple = {
            "metadata.name": pod.name,
            "metadata.namespace": pod.namespace,
            "metadata.uid": str(uuid.uuid5(uuid.NAMESPACE_URL, pod.name)),
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
            "status.podIP": pod.ip,
            "status.podIPs": pod.ip,
            "status.hostIP": self.gateway,
        }
        if path in simple:
            return simple[path]
        match = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
        if match:
            return pod.labels.get(match.group(1), "")
        raise NotImplementedError(f"downward API fieldRef {path!r}")

    def _key_ref(self, kind: str, ref: Mapping[str, Any]) -> str | None:
        try:
            data = self.secret_data(ref["name"]) if kind == "Secret" else self.configmap_data(ref["name"])
            return data[ref["key"]].decode()
        except KeyError:
            if ref.get("optional"):
                return None
            raise LookupError(
                f"{kind} {ref.get('name')!r} key {ref.get('key')!r} does not exist: the Pod would stay in "
                "CreateContainerConfigError"
            ) from None

    def _env(self, pod: PodRun, container: Mapping[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.api_server is not None:
            env["KUBERNETES_SERVICE_HOST"] = self.api_server.host
            env["KUBERNETES_SERVICE_PORT"] = str(self.api_server.port)
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self.configmap_data(source["configMapRef"]["name"])
            else:
                data = self.secret_data(source["secretRef"]["name"])
            env.update({prefix + k: v.decode() for k, v in data.items()})
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item:
                env[name] = expand(str(item["value"]), env)
                continue
            source = item.get("valueFrom") or {}
            value: str | None
            if "secretKeyRef" in source:
                value = self._key_ref("Secret", source["secretKeyRef"])
            elif "configMapKeyRef" in source:
                value = self._key_ref("ConfigMap", source["configMapKeyRef"])
            elif "fieldRef" in source:
                value = self._field(pod, source["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in source:
                ref = source["resourceFieldRef"]
                kind, _, what = ref["resource"].partition(".")
                quantity = (container.get("resources") or {}).get(kind, {}).get(what)
                value = str(_quantity_bytes(quantity) if "memory" in what else quantity or 0)
            else:
                value = ""
            if value is not None:
                env[name] = value
        return env

    def _write_files(self, target: Path, files: Mapping[str, bytes], mode: int, gid: int | None) -> None:
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o755 if gid is None else 0o2755)
        for rel, data in files.items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(mode)
            if gid is not None:
                import os

                os.chown(path, 0, gid)

    def _keyed(
        self, data: Mapping[str, bytes], items: Iterable[Mapping[str, Any]] | None
    ) -> dict[str, bytes]:
        if not items:
            return dict(data)
        return {item["path"]: data[item["key"]] for item in items}

    def _volume(
        self, pod: PodRun, volume: Mapping[str, Any], fs_group: int | None
    ) -> tuple[str, Path | None, bool]:
        """(kind, host path or None for tmpfs, read-only) of one Pod volume."""
        name = volume["name"]
        base = self.workdir / pod.name / "volumes" / name
        if "configMap" in volume:
            ref = volume["configMap"]
            data = self.configmap_data(ref["name"])
            self._write_files(
                base, self._keyed(data, ref.get("items")), ref.get("defaultMode", 0o644), fs_group
            )
            return "configMap", base, True
        if "secret" in volume:
            ref = volume["secret"]
            data = self.secret_data(ref["secretName"])
            self._write_files(
                base, self._keyed(data, ref.get("items")), ref.get("defaultMode", 0o644), fs_group
            )
            return "secret", base, True
        if "projected" in volume:
            files: dict[str, bytes] = {}
            for source in volume["projected"].get("sources") or []:
                if "configMap" in source:
                    ref = source["configMap"]
                    files.update(self._keyed(self.configmap_data(ref["name"]), ref.get("items")))
                elif "secret" in source:
                    ref = source["secret"]
                    files.update(self._keyed(self.secret_data(ref["name"]), ref.get("items")))
                elif "serviceAccountToken" in source:
                    token = self.api_server.token if self.api_server else "no-api-server"
                    files[source["serviceAccountToken"].get("path", "token")] = token.encode()
                elif "downwardAPI" in source:
                    for item in source["downwardAPI"].get("items") or []:
                        files[item["path"]] = self._field(pod, item["fieldRef"]["fieldPath"]).encode()
            self._write_files(base, files, volume["projected"].get("defaultMode", 0o644), fs_group)
            return "projected", base, True
        if "emptyDir" in volume:
            if (volume["emptyDir"] or {}).get("medium") == "Memory":
                return "tmpfs", None, False
            base.mkdir(parents=True, exist_ok=True)
            base.chmod(0o777)
            return "emptyDir", base, False
        if "hostPath" in volume:
            node_path = volume["hostPath"]["path"]
            real = self.host_paths.get(node_path, Path(node_path))
            kind = volume["hostPath"].get("type", "")
            if kind == "DirectoryOrCreate":
                real.mkdir(parents=True, exist_ok=True)
            elif kind == "Directory" and not real.is_dir():
                raise LookupError(f"hostPath {node_path} ({real}) is not a directory on the node")
            elif kind == "Socket" and not real.is_socket():
                raise LookupError(f"hostPath {node_path} ({real}) is not a socket on the node")
            return "hostPath", real, False
        raise NotImplementedError(f"volume {name}: {sorted(volume)}")

    def _image_user(self, image: str) -> str:
        inspect = json.loads(self.engine.docker("image", "inspect", image).stdout)
        return str(inspect[0]["Config"].get("User") or "0")

    def _start_pod(self, pod: PodRun) -> None:
        spec = pod.spec
        pod_sc = spec.get("securityContext") or {}
        fs_group = pod_sc.get("fsGroup")
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        automount = spec.get("automountServiceAccountToken", True)
        for sa in self.of_kind("ServiceAccount"):
            if (
                sa["metadata"]["name"] == spec.get("serviceAccountName")
                and "automountServiceAccountToken" in sa
            ):
                automount = spec.get("automountServiceAccountToken", sa["automountServiceAccountToken"])
        resolved: dict[str, tuple[str, Path | None, bool]] = {
            name: self._volume(pod, volume, fs_group) for name, volume in volumes.items()
        }
        aliases = self._aliases(pod.labels, pod.namespace)
        for container in spec.get("containers") or []:
            cname = container["name"]
            sc = {**pod_sc, **(container.get("securityContext") or {})}
            image = self.images.get(container["image"])
            if image is None:
                raise LookupError(f"image {container['image']} is not on the node (ErrImageNeverPull)")
            argv = ["run", "-d", "--name", f"{pod.name}-{cname}-{self.run_id}"[:120]]
            if not spec.get("hostNetwork"):
                argv += ["--hostname", pod.name[:63]]
            argv += ["--label", f"io.kubernetes.pod.name={pod.name}"]
            argv += ["--label", f"io.kubernetes.pod.namespace={pod.namespace}"]
            argv += ["--label", f"io.kubernetes.container.name={cname}"]
            if spec.get("hostNetwork"):
                argv += ["--network", "host"]
            else:
                argv += ["--network", self.network, "--ip", pod.ip]
                for alias in aliases:
                    argv += ["--network-alias", alias]
            if spec.get("hostPID"):
                argv += ["--pid", "host"]
            user = sc.get("runAsUser")
            group = sc.get("runAsGroup")
            effective = str(user) if user is not None else self._image_user(image).split(":")[0]
            if sc.get("runAsNonRoot") and effective in ("0", "root"):
                raise RuntimeError(
                    f"{pod.name}/{cname}: runAsNonRoot, image runs as root (CreateContainerConfigError)"
                )
            if user is not None or group is not None:
                image_group = self._image_user(image).partition(":")[2] or "0"
                argv += ["--user", f"{effective}:{group if group is not None else image_group}"]
            for gid in [fs_group, *(pod_sc.get("supplementalGroups") or [])]:
                if gid is not None:
                    argv += ["--group-add", str(gid)]
            if sc.get("readOnlyRootFilesystem"):
                argv.append("--read-only")
            if sc.get("privileged"):
                argv.append("--privileged")
            caps = sc.get("capabilities") or {}
            for cap in caps.get("drop") or []:
                argv += ["--cap-drop", cap]
            for cap in caps.get("add") or []:
                argv += ["--cap-add", cap]
            if sc.get("allowPrivilegeEscalation") is False:
                argv += ["--security-opt", "no-new-privileges"]
            limits = (container.get("resources") or {}).get("limits") or {}
            if "memory" in limits:
                argv += ["--memory", str(_quantity_bytes(limits["memory"]))]
            if "cpu" in limits:
                argv += ["--cpus", f"{_quantity_cpus(limits['cpu']):.3f}"]
            env = self._env(pod, container)
            for key, value in env.items():
                argv += ["--env", f"{key}={value}"]
            mounts = sorted(container.get("volumeMounts") or [], key=lambda m: m["mountPath"].count("/"))
            targets = [m["mountPath"] for m in mounts]
            for mount in mounts:
                kind, path, read_only = resolved[mount["name"]]
                if path is not None and kind in ("configMap", "secret", "projected"):
                    # nested mount points must exist in the read-only parent volume (runc cannot mkdir there)
                    for inner in targets:
                        if inner != mount["mountPath"] and inner.startswith(
                            mount["mountPath"].rstrip("/") + "/"
                        ):
                            (path / inner[len(mount["mountPath"].rstrip("/")) + 1 :]).mkdir(
                                parents=True, exist_ok=True
                            )
                ro = read_only or bool(mount.get("readOnly"))
                if path is None:
                    argv += ["--tmpfs", f"{mount['mountPath']}:mode=1777"]
                    continue
                source = path / mount["subPath"] if mount.get("subPath") else path
                option = ",readonly" if ro else ""
                argv += ["--mount", f"type=bind,source={source},target={mount['mountPath']}{option}"]
            if (
                automount
                and self.api_server is not None
                and not any(t.startswith("/var/run/secrets/kubernetes.io/serviceaccount") for t in targets)
            ):
                sa_dir = self.workdir / pod.name / "serviceaccount"
                self._write_files(
                    sa_dir,
                    {
                        "token": self.api_server.token.encode(),
                        "ca.crt": self.api_server.ca_pem,
                        "namespace": pod.namespace.encode(),
                    },
                    0o644,
                    None,
                )
                argv += [
                    "--mount",
                    f"type=bind,source={sa_dir},target=/var/run/secrets/kubernetes.io/serviceaccount,readonly",
                ]
            command = [expand(a, env) for a in container.get("command") or []]
            args = [expand(a, env) for a in container.get("args") or []]
            if command:
                argv += ["--entrypoint", command[0]]
            argv.append(image)
            argv += [*command[1:], *args]
            container_id = self.engine.docker(*argv).stdout.decode().strip()
            pod.containers[cname] = container_id
            pod.argv[cname] = argv

    # --- readiness -----------------------------------------------------------------------------------------

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for pod in self.pods:
            self._wait_pod_ready(pod, max(1.0, deadline - time.monotonic()))

    def _running(self, pod: PodRun) -> None:
        """restartPolicy Always: an exited container is started again (its logs kept in ``pod.crashes``),
        at most ``max_restarts`` times; beyond that the Pod is in CrashLoopBackOff and that is an error."""
        for cname, container_id in pod.containers.items():
            state = json.loads(
                self.engine.docker("inspect", "--format", "{{json .State}}", container_id).stdout
            )
            if state.get("Running"):
                continue
            crash = f"{pod.name}/{cname} exited ({state.get('ExitCode')})\n{self.logs(pod)}"
            pod.crashes.append(crash)
            if len(pod.crashes) > self.max_restarts:
                raise RuntimeError(f"CrashLoopBackOff: {crash}")
            self.engine.docker("start", container_id)

    def _wait_pod_ready(self, pod: PodRun, timeout: float) -> None:
        checks: list[Callable[[], bool]] = []
        for container in pod.spec.get("containers") or []:
            probe = container.get("readinessProbe")
            if probe:
                checks.append(self._probe(pod, container, probe))
        # livenessProbe: probed every periodSeconds (10) after initialDelaySeconds; failureThreshold (3)
        # failures in a row and the kubelet restarts the container
        liveness = []
        for container in pod.spec.get("containers") or []:
            probe = container.get("livenessProbe")
            if probe:
                first = time.monotonic() + float(probe.get("initialDelaySeconds", 0))
                liveness.append([container, self._probe(pod, container, probe), probe, first, 0])
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            self._running(pod)
            for entry in liveness:
                container, check, probe, due, failures = entry
                if time.monotonic() < due:
                    continue
                entry[3] = time.monotonic() + float(probe.get("periodSeconds", 10))
                try:
                    alive = check()
                except Exception:
                    alive = False
                entry[4] = 0 if alive else failures + 1
                if entry[4] >= int(probe.get("failureThreshold", 3)):
                    crash = f"{pod.name}/{container['name']} failed its liveness probe\n{self.logs(pod)}"
                    pod.crashes.append(crash)
                    if len(pod.crashes) > self.max_restarts:
                        raise RuntimeError(f"CrashLoopBackOff: {crash}")
                    self.engine.docker("restart", "--time", "10", pod.containers[container["name"]])
                    entry[4] = 0
            try:
                if all(check() for check in checks):
                    return
            except Exception as exc:  # a probe that cannot connect yet
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pod.name} not ready after {timeout:.0f}s ({last})\n{self.logs(pod)}")
            time.sleep(0.5)

    def _probe(
        self, pod: PodRun, container: Mapping[str, Any], probe: Mapping[str, Any]
    ) -> Callable[[], bool]:
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = pod.port(get["port"])
            scheme = str(get.get("scheme", "HTTP")).lower()
            path = get.get("path", "/")

            def http() -> bool:
                # the kubelet does not verify the serving certificate of an HTTPS probe
                import httpx

                response = httpx.get(f"{scheme}://{pod.ip}:{port}{path}", verify=False, timeout=3)
                return 200 <= response.status_code < 400

            return http
        if "tcpSocket" in probe:
            port = pod.port(probe["tcpSocket"]["port"])

            def tcp() -> bool:
                with socket.create_connection((pod.ip, port), timeout=3):
                    return True

            return tcp
        if "exec" in probe:
            container_id = pod.containers[container["name"]]
            command = list(probe["exec"]["command"])

            def run() -> bool:
                return self.engine.docker("exec", container_id, *command, check=False).returncode == 0

            return run
        return lambda: True


def tls_context(ca_pem: bytes) -> ssl.SSLContext:
    """A client context that trusts exactly ``ca_pem`` (a caBundle), hostname checked."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.check_hostname = True
    return context


@contextlib.contextmanager
def removing(kubelet: DockerKubelet) -> Any:
    try:
        yield kubelet
    finally:
        kubelet.stop()
