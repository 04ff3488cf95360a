"""Acceptance test of the Helm chart (issue 16): the rendered chart, run the way a kubelet would, on Docker.

``helm template`` renders the chart (its default values, and a second set with PostgreSQL as the store —
cert-manager stays off in both: the chart's own generated CA is what is tested); :class:`DockerKubelet`
(tests/harness/kubelet.py) starts every Deployment/StatefulSet/DaemonSet on a private Docker engine with the
image built here, each container's args, env (``valueFrom`` Secrets/ConfigMaps/downward API), ConfigMap and
Secret volumes, emptyDirs, the DaemonSet's hostPaths, the securityContext, and every Service name as a network
alias. The node's container runtime — what the observer DaemonSet's ``criSocket``/``runtimeState`` hostPaths
name — is a private containerd with the CRI plugin, on which the test starts a Pod as a kubelet would.

Fakes, because nothing real can run here: the Kubernetes API server is ``kmock``'s emulator behind TLS
(tests/harness/kubeapi.py; the observer's pod watch lists and watches it); the test itself plays the API
server calling the admission webhook, exactly as the rendered ``clientConfig`` says (Service, path, port,
caBundle verified against the Service's DNS name). Nothing enforces RBAC or NetworkPolicies (docs/deploy.md).

Against the running set: (a) AdmissionReviews — a denied Pod (the default config bans ``:latest``; and an
unsigned image, denied by the backend's verdict, which proves the webhook → Authority → backend chain) and an
allowed one (an UPDATE that adds no image); (b) a container started on the node is observed and its
CONTAINER_START is stored in the backend, read back by ``zastava events tail`` run as an operator with the
chart's operator credentials; (c) ``/metrics`` of every Pod shows those events and decisions; (d) catalog
writes without a token are refused, with and without a client certificate; (e) the backend is stopped,
a container starts meanwhile, and the observer's buffered event arrives once the backend is back.

``OVERRIDES`` lists values the test still has to set: each one is a defect of the defaults.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import devstack
from tests.harness.devstack.cri import CriClient
from tests.harness.devstack.helm import ensure_helm
from tests.harness.kubeapi import KmockApiServer
from tests.harness.kubelet import DockerKubelet, PodRun, render_chart
from tests.harness.real import start_real

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "zastava"
RELEASE = "zastava"
NAMESPACE = "zastava"
NODE = "node-a"

#: Values the test must still set for the chart to start, connect and authenticate: each is a defect of the
#: chart's defaults (issue 16). Empty means the default install works as is.
OVERRIDES: dict[str, Any] = {}
#: Components whose Pods serve no ``/metrics`` (a defect each; the test checks they still do not, so fixing
#: one fails here until its entry is removed).
#: Empty since the Authority serves /metrics (issue 16, item 2): every component is scraped.
NO_METRICS: dict[str, str] = {}


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
            else value
        )
    return out


# ------------------------------------------------------------------------------------------------ helpers


class Cluster:
    """The running chart: the kubelet, its objects, and clients built from what the chart rendered."""

    def __init__(
        self, kubelet: DockerKubelet, api: KmockApiServer, cri: devstack.ContainerdService, image: str
    ):
        self.kubelet = kubelet
        self.api = api
        self.cri = cri
        self.image = image
        self.workdir = Path(tempfile.mkdtemp(prefix="zastava-operator-"))
        self.workdir.chmod(0o755)

    @property
    def config(self) -> dict[str, Any]:
        data = self.kubelet.configmap_data(f"{RELEASE}-config")["zastava.yaml"]
        return yaml.safe_load(data)["zastava"]  # type: ignore[no-any-return]

    @property
    def ca_pem(self) -> bytes:
        return self.kubelet.secret_data(f"{RELEASE}-ca")["tls.crt"]

    def client_cert(self, secret: str) -> tuple[str, str]:
        data = self.kubelet.secret_data(secret)
        base = self.workdir / secret
        base.mkdir(exist_ok=True)
        (base / "tls.crt").write_bytes(data["tls.crt"])
        (base / "tls.key").write_bytes(data["tls.key"])
        return str(base / "tls.crt"), str(base / "tls.key")

    def https(
        self,
        pod: PodRun,
        port: int,
        method: str,
        path: str,
        *,
        cert: tuple[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """A request to the Pod over TLS verified with the chart's CA against the name of the Service that
        selects it (``<service>.<namespace>.svc``), as an in-cluster client would see it."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        if cert:
            context.load_cert_chain(*cert)
        service = next(
            s["metadata"]["name"]
            for s in self.kubelet.of_kind("Service")
            if pod in self.kubelet.service_pods(s)
        )
        with httpx.Client(verify=context, timeout=10) as client:
            return client.request(
                method,
                f"https://{pod.ip}:{port}{path}",
                extensions={"sni_hostname": f"{service}.{pod.namespace}.svc"},
                **kw,
            )

    def operator(self, *args: str, timeout: float = 60) -> str:
        """``zastava <args>`` run in a one-off container on the pod network as the operator (docs/deploy.md:
        the ``operator`` client secret of Secret <release>-clients and the certificate <release>-operator-tls,
        the Authority and backend addresses of the chart's config)."""
        creds = self.workdir / "operator"
        if not creds.exists():
            creds.mkdir()
            tls = self.kubelet.secret_data(f"{RELEASE}-operator-tls")
            (creds / "client-secret").write_bytes(self.kubelet.secret_data(f"{RELEASE}-clients")["operator"])
            for name in ("tls.crt", "tls.key", "ca.crt"):
                (creds / name).write_bytes(tls[name])
            authority = self.config["runtime"]["authority"]
            (creds / "zastava.yaml").write_text(
                yaml.safe_dump(
                    {
                        "zastava": {
                            "backend": {"baseAddress": self.config["backend"]["baseAddress"]},
                            "runtime": {
                                "tenant": self.config["runtime"]["tenant"],
                                "authority": {
                                    "issuer": authority["issuer"],
                                    "audience": authority["audience"],
                                    "clientId": "zastava-operator",
                                    "scopes": ["api:scanner.runtime.read", "api:scanner.catalog.write"],
                                    "clientSecretPath": "/operator/client-secret",
                                    "clientCertPath": "/operator/tls.crt",
                                    "clientKeyPath": "/operator/tls.key",
                                    "caBundlePath": "/operator/ca.crt",
                                },
                            },
                        }
                    }
                )
            )
            for path in creds.iterdir():
                path.chmod(0o644)
        result = self.kubelet.engine.docker(
            "run",
            "--rm",
            "--network",
            self.kubelet.network,
            "--read-only",
            "--mount",
            f"type=bind,source={creds},target=/operator,readonly",
            self.image,
            *args,
            "--config",
            "/operator/zastava.yaml",
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"zastava {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    def stored_events(self) -> list[dict[str, Any]]:
        out = self.operator("events", "tail", "--once", "--backlog", "1000")
        return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]

    def wait_event(self, kind: str, container_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            for envelope in self.stored_events():
                event = envelope.get("event", envelope)
                seen.append(f"{event.get('kind')} {event.get('workload', {}).get('containerId')}")
                if event.get("kind") == kind and event.get("workload", {}).get("containerId") == container_id:
                    return event  # type: ignore[no-any-return]
            time.sleep(2)
        raise AssertionError(f"no {kind} of {container_id} stored; seen: {seen[-10:]}")

    def run_node_container(self, name: str, busybox: str) -> str:
        """A Pod of a Deployment, known to the API server first (as once scheduled), then started on the
        node's CRI runtime as the kubelet starts it."""
        self.api.create_pod(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": "payments",
                    "uid": str(uuid.uuid4()),
                    "labels": {"app": name, "pod-template-hash": "5d8f7"},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": f"{name}-5d8f7",
                            "uid": "x",
                            "controller": True,
                        }
                    ],
                },
                "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": busybox}]},
                "status": {"phase": "Pending"},
            }
        )
        with CriClient(self.cri.socket) as cri:
            sandbox_id, sandbox = cri.run_pod(name, "payments", labels={"app": name})
            container_id = cri.run_container(sandbox_id, sandbox, "main", busybox, labels={"app": name})
        return f"containerd://{container_id}"

    def metrics(self, pod: PodRun) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """``/metrics`` on every declared port of the Pod, with the scheme its readinessProbe uses there."""
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        operator_cert = self.client_cert(f"{RELEASE}-operator-tls")
        for container in pod.spec["containers"]:
            probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
            for port in container.get("ports") or []:
                scheme = (
                    str(probe.get("scheme", "HTTP"))
                    if probe.get("port") in (port.get("name"), port["containerPort"])
                    else "HTTP"
                )
                number = int(port["containerPort"])
                if scheme == "HTTPS":
                    response = self.https(pod, number, "GET", "/metrics", cert=operator_cert)
                else:
                    response = httpx.get(f"http://{pod.ip}:{number}/metrics", timeout=10)
                assert response.status_code == 200, (
                    pod.name,
                    number,
                    response.status_code,
                    response.text[:200],
                )
                for family in text_string_to_metric_families(response.text):
                    for s in family.samples:
                        samples[(s.name, frozenset(s.labels.items()))] = s.value
        return samples


def total(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(
        v for (n, ls), v in samples.items() if n == name and all((k, val) in ls for k, val in labels.items())
    )


def admission_review(
    pod: Mapping[str, Any], operation: str = "CREATE", old: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    meta = pod["metadata"]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": meta["name"],
            "namespace": meta["namespace"],
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": old,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def api_pod(name: str, namespace: str, image: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {"app": name})},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }


def call_webhook(cluster: Cluster, kind: str, namespace: str, review: Mapping[str, Any]) -> dict[str, Any]:
    """POST as the API server does: the entry whose namespaceSelector takes ``namespace``; its clientConfig's
    Service → endpoint, path and port; TLS verified with its caBundle against ``<service>.<ns>.svc``."""
    config = cluster.kubelet.of_kind(kind)[0]
    entry = next(
        w
        for w in config["webhooks"]
        if all(
            (namespace in e["values"]) == (e["operator"] == "In")
            for e in w.get("namespaceSelector", {}).get("matchExpressions", [])
            if e["key"] == "kubernetes.io/metadata.name"
        )
    )
    client_config = entry["clientConfig"]
    service = client_config["service"]
    ca_bundle = client_config.get("caBundle")
    assert ca_bundle, (
        f"{kind} {config['metadata']['name']} has no caBundle: the API server could not verify it"
    )
    ip, port = cluster.kubelet.service_endpoint(service["name"], int(service.get("port", 443)))
    context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
    with httpx.Client(verify=context, timeout=entry.get("timeoutSeconds", 10)) as client:
        response = client.post(
            f"https://{ip}:{port}{service.get('path', '/')}",
            json=review,
            extensions={"sni_hostname": f"{service['name']}.{service['namespace']}.svc"},
        )
    assert response.status_code == 200, response.text[:500]
    answer: dict[str, Any] = response.json()["response"]
    assert answer["uid"] == review["request"]["uid"]
    return answer


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def helm() -> Path:
    return start_real(ensure_helm)


def chart_cluster(
    values: Mapping[str, Any],
    docker_engine: devstack.DockerEngine,
    zastava_image: str,
    cri: devstack.ContainerdService,
    helm: Path,
    prepare: Callable[[DockerKubelet], list[dict[str, Any]]] | None = None,
) -> Iterator[Cluster]:
    """The chart rendered with ``values`` and running; ``prepare`` (given the kubelet once its network exists)
    returns objects the operator creates before ``helm install`` (e.g. the store Secret)."""
    workdir = Path(tempfile.mkdtemp(prefix="zastava-chart-"))
    objects = render_chart(
        helm, CHART, _merge(OVERRIDES, values), release=RELEASE, namespace=NAMESPACE, workdir=workdir
    )
    refs = {
        c["image"]
        for o in objects
        if o.get("kind") in ("Deployment", "DaemonSet", "StatefulSet")
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert refs and all(r.startswith("stellaops/zastava:") for r in refs), refs
    node_logs = workdir / "node-logs"
    node_logs.mkdir()
    kubelet = DockerKubelet(
        docker_engine,
        objects,
        images=dict.fromkeys(refs, zastava_image),
        host_paths={
            "/run/containerd/containerd.sock": cri.socket,
            "/var/lib/containerd": cri.root,
            # the node's container-log directory (every kubelet's; this test machine has none)
            "/var/log/containers": node_logs,
        },
        node_name=NODE,
    )
    api: KmockApiServer | None = None
    try:
        kubelet.create_network()
        if prepare is not None:
            kubelet.objects[:0] = prepare(kubelet)
        api = KmockApiServer(kubelet.gateway).start()
        kubelet.api_server = api.endpoint
        kubelet.report = api.create_pod
        kubelet.start(ready_timeout=150)
        yield Cluster(kubelet, api, cri, zastava_image)
    except BaseException:
        print(kubelet.all_logs(60))
        raise
    finally:
        kubelet.stop()
        if api is not None:
            api.stop()
        # the workload pods _exercise ran on the node's (session-shared) containerd: left running, every later
        # CRI suite's agent found and observed them first (4 containers in test_agent_cri)
        cri.remove_all_pods()


# ------------------------------------------------------------------------------------------------ the test


def _exercise(cluster: Cluster, busybox: str) -> dict[str, float]:
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    # (a) admission, as the API server calls it
    denied = call_webhook(
        cluster,
        "ValidatingWebhookConfiguration",
        "payments",
        admission_review(api_pod("web-latest", "payments", "registry.example.com/team/web:latest")),
    )
    assert denied["allowed"] is False
    assert ":latest is banned" in json.dumps(denied), denied
    unsigned = call_webhook(
        cluster,
        "ValidatingWebhookConfiguration",
        "payments",
        admission_review(
            api_pod("web-unsigned", "payments", "registry.example.com/team/web@sha256:" + "ab" * 32)
        ),
    )
    assert unsigned["allowed"] is False
    # the backend answered (the webhook authenticated): a verdict, not an unreachable backend
    assert "signature not verified" in json.dumps(unsigned), unsigned
    old = api_pod("web-1", "payments", "registry.example.com/team/web@sha256:" + "cd" * 32)
    relabelled = _merge(old, {"metadata": {"labels": {"app": "web-1", "tier": "front"}}})
    allowed = call_webhook(
        cluster, "ValidatingWebhookConfiguration", "payments", admission_review(relabelled, "UPDATE", old)
    )
    assert allowed["allowed"] is True, allowed
    mutated = call_webhook(
        cluster,
        "MutatingWebhookConfiguration",
        "payments",
        admission_review(api_pod("web-2", "payments", "registry.example.com/team/web@sha256:" + "ef" * 32)),
    )
    assert mutated["allowed"] is True, mutated
    timings["admission"] = time.monotonic() - t0

    # (b) a container on the node is observed; its CONTAINER_START is stored in the backend
    t0 = time.monotonic()
    first = cluster.run_node_container("api-one", busybox)
    event = cluster.wait_event("CONTAINER_START", first)
    assert event["node"] == NODE
    assert event["workload"].get("namespace") == "payments" and event["workload"].get("pod") == "api-one"
    # the pod metadata of the observer's watch (kubernetesWatch, on by default): owner and labels
    assert event["workload"].get("owner") == {"kind": "Deployment", "name": "api-one"}, event["workload"]
    assert (event["workload"].get("labels") or {}).get("app") == "api-one", event["workload"]
    timings["observe"] = time.monotonic() - t0

    # (d) catalog writes without a token are refused — with no client certificate, and with the observer's
    backend = cluster.kubelet.pods_of("backend")[0]
    port = backend.port("https")
    digest = "sha256:" + "12" * 32
    body = {"image": f"registry.example.com/team/web@{digest}", "sbom": {"format": "cyclonedx"}}
    for cert in (None, cluster.client_cert(f"{RELEASE}-observer-tls")):
        try:
            status = cluster.https(
                backend, port, "PUT", f"/api/v1/scanner/catalog/images/{digest}", cert=cert, json=body
            ).status_code
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, ssl.SSLError) as exc:
            status = 0  # the TLS handshake refused a caller without a client certificate
            refusal = repr(exc)
        else:
            refusal = ""
        assert status in (0, 401), (cert, status)
        assert cert is None or status == 401, (
            f"a client certificate without a token got {status} {refusal}, not 401"
        )

    # (e) the backend goes away; the observer buffers what happens meanwhile and delivers it afterwards
    t0 = time.monotonic()
    cluster.kubelet.stop_pod(backend)
    second = cluster.run_node_container("api-two", busybox)
    observer = cluster.kubelet.pods_of("observer")[0]
    devstack.wait_until(
        lambda: total(cluster.metrics(observer), "zastava_runtime_events_total", kind="CONTAINER_START") >= 2,
        30,
        "the observer to see the second container while the backend is down",
        interval=1,
    )
    time.sleep(3)  # a flush or two fails while the backend is away (flushIntervalSeconds: 2)
    cluster.kubelet.start_pod(backend)
    cluster.wait_event("CONTAINER_START", second, timeout=90)
    timings["buffered"] = time.monotonic() - t0

    # (c) /metrics of every component shows the events and decisions
    by_component = {}
    for pod in cluster.kubelet.pods:
        component = pod.labels.get("app.kubernetes.io/component", pod.name)
        if component in NO_METRICS:
            port = pod.port(pod.spec["containers"][0]["ports"][0]["containerPort"])
            status = cluster.https(pod, port, "GET", "/metrics").status_code
            assert status == 404, f"{component} now answers /metrics ({status}): remove it from NO_METRICS"
            continue
        by_component[component] = cluster.metrics(pod)
    observer_samples = by_component["observer"]
    assert total(observer_samples, "zastava_runtime_events_total", kind="CONTAINER_START") >= 2
    webhook_decisions = sum(
        total(cluster.metrics(p), "zastava_admission_decisions_total")
        for p in cluster.kubelet.pods_of("webhook")
    )
    assert webhook_decisions >= 3, webhook_decisions
    denies = sum(
        total(cluster.metrics(p), "zastava_admission_decisions_total", decision="deny")
        for p in cluster.kubelet.pods_of("webhook")
    )
    assert denies >= 2, denies
    assert total(by_component["backend"], "zastava_backend_ingest_events_total") >= 1
    # the observer's, webhook's and operator's tokens came from the Authority: it counted them
    issued = total(by_component["authority"], "zastava_authority_tokens_total", result="issued")
    assert issued >= 1, issued
    for component, samples in by_component.items():
        assert samples, f"{component} serves no metrics"
    return timings


def test_default_values_start_connect_and_authenticate(
    docker_engine: devstack.DockerEngine,
    zastava_image: str,
    cri: devstack.ContainerdService,
    cri_images: dict[str, str],
    helm: Path,
) -> None:
    started = time.monotonic()
    for cluster in chart_cluster({}, docker_engine, zastava_image, cri, helm):
        up = time.monotonic() - started
        restarted = {p.name: len(p.crashes) for p in cluster.kubelet.pods if p.crashes}
        try:
            timings = _exercise(cluster, cri_images["busybox"])
        except AssertionError:
            print(cluster.kubelet.all_logs(60))
            raise
        print(
            f"chart up in {up:.1f}s (restarts {restarted}); {timings}; "
            f"total {time.monotonic() - started:.1f}s"
        )


def test_postgres_store_values(
    docker_engine: devstack.DockerEngine,
    zastava_image: str,
    cri: devstack.ContainerdService,
    cri_images: dict[str, str],
    helm: Path,
) -> None:
    """The second values set: PostgreSQL as the backend's store, its URL in a Secret the operator created
    (``backend.store.existingSecret``). PostgreSQL runs on this machine, reachable from the pod network as a
    database outside the cluster would be; the events the test stores land in its tables."""
    password = uuid.uuid4().hex
    database: dict[str, devstack.PostgresServer] = {}

    def prepare(kubelet: DockerKubelet) -> list[dict[str, Any]]:
        server = start_real(
            lambda: devstack.PostgresServer(
                network=(kubelet.gateway, str(kubelet.subnet)), password=password
            ).start()
        )
        database["server"] = server
        server.create_database("zastava")
        url = f"postgresql://postgres:{password}@{kubelet.gateway}:{server.port}/zastava"
        return [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "zastava-backend-store", "namespace": NAMESPACE},
                "stringData": {"url": url},
            }
        ]

    values = {"backend": {"store": {"type": "postgres", "existingSecret": "zastava-backend-store"}}}
    started = time.monotonic()
    try:
        for cluster in chart_cluster(values, docker_engine, zastava_image, cri, helm, prepare):
            up = time.monotonic() - started
            try:
                timings = _exercise(cluster, cri_images["busybox"])
            except AssertionError:
                print(cluster.kubelet.all_logs(60))
                raise
            rows = database["server"].psql("SELECT count(*) FROM runtime_events", database="zastava")
            assert int(rows) >= 2, rows
            print(f"postgres: chart up in {up:.1f}s; {timings}; total {time.monotonic() - started:.1f}s")
    except RuntimeError as exc:
        raise AssertionError(str(exc)) from exc
    finally:
        if "server" in database:
            database["server"].stop()
            database["server"].cleanup()
