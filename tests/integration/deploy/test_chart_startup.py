"""The chart's defaults start, connect and refuse strangers — proven through the front door (issue 16).

``helm template`` with default values; the Authority, the backend, the webhook and the observer are started
as the real CLIs with exactly the args, env, ConfigMaps and Secrets the chart renders (Helm-generated CA and
certificates, the Authority's client secrets), only mount paths rewritten to a temp dir
(:mod:`tests.harness.chart_local`). They run in a private network namespace whose /etc/hosts maps the Service
names to 127.0.0.1, so TLS is verified against the names the chart's certificates carry. Not covered here
(no kube-apiserver or kubelet can run on this machine): RBAC, NetworkPolicy enforcement, scheduling, and the
observer's Kubernetes watch (it starts, and retries the absent API server).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.chart_local import Namespace, Workload, by_name, workload
from tests.harness.real import start_real

from .test_chart import helm, render  # noqa: F401  (the helm fixture)

NS = "stellaops"
BACKEND = f"https://zastava-backend.{NS}.svc:8080"
AUTHORITY = f"https://zastava-authority.{NS}.svc:8081"
WEBHOOK = f"https://zastava-webhook.{NS}.svc:8443"
DIGEST = "sha256:" + "ab" * 32

#: Runs inside the namespace, for the whole module: reads one JSON request a line, answers one JSON line
#: {"status", "body"} (or {"error"}). With a config: the component's own credentials through the product's
#: client (OpTok from the Authority, DPoP, client certificate), its ZASTAVA_* environment as given; without
#: one: anonymous, trusting only the given CA. One process: a Python start per call cost ~2 s here.
CLIENT = r"""
import asyncio, json, os, sys
import httpx
from zastava.auth import backend_auth
from zastava.config import load_config

async def call(request):
    for key in [k for k in os.environ if k.startswith("ZASTAVA_")]:
        del os.environ[key]
    os.environ.update(request["env"])
    method, url = request["method"], request["url"]
    kwargs = {"json": request["body"]} if request["body"] is not None else {}
    if request["config"]:
        auth = backend_auth(load_config(request["config"], warn=False), component="test")
        try:
            headers = await auth.headers_provider(method, url) if auth.headers_provider else {}
            response = await auth.http_client.request(method, url, headers=headers, **kwargs)
        finally:
            await auth.aclose()
    else:
        async with httpx.AsyncClient(verify=request["ca"], timeout=10) as client:
            response = await client.request(method, url, **kwargs)
    try:
        parsed = response.json()
    except ValueError:
        parsed = response.text
    return {"status": response.status_code, "body": parsed}

for line in sys.stdin:
    try:
        answer = asyncio.run(call(json.loads(line)))
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer), flush=True)
"""


class Cluster:
    def __init__(
        self, ns: Namespace, pods: dict[str, Workload], ca: Path, docs: list[dict[str, Any]]
    ) -> None:
        self.ns, self.pods, self.ca, self.docs = ns, pods, ca, docs
        self.client = ns.popen_python(CLIENT)

    def call(
        self,
        method: str,
        url: str,
        *,
        as_: str | None = None,
        body: Any = None,
        env: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One HTTP call from inside the namespace; raises AssertionError when no HTTP answer came."""
        request = {
            "method": method,
            "url": url,
            "body": body,
            "config": str(self.pods[as_].path("/etc/zastava/zastava.yaml")) if as_ else "",
            "env": env if env is not None else (self.pods[as_].env if as_ else {}),
            "ca": str(self.ca),
        }
        assert self.client.stdin is not None and self.client.stdout is not None
        self.client.stdin.write(json.dumps(request) + "\n")
        self.client.stdin.flush()
        answer: dict[str, Any] = json.loads(self.client.stdout.readline() or '{"error": "client exited"}')
        if "error" in answer:
            raise AssertionError(answer["error"])
        return answer

    def wait_ok(self, url: str, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for name, process, _log in self.ns.processes:
                assert process.poll() is None, f"{name} exited {process.returncode}:\n" + self.logs()
            try:
                last = self.call("GET", url)
                if last["status"] == 200:
                    return
            except AssertionError as exc:
                last = exc
            time.sleep(0.3)
        raise AssertionError(f"{what} not ready at {url}: {last}\n" + self.logs())

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{text}" for name, text in self.ns.logs())


@pytest.fixture(scope="module")
def cluster(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:  # noqa: F811
    docs = render(helm)
    work = tmp_path_factory.mktemp("chart")
    hosts = [
        f"{svc}{suffix}"
        for svc in ("zastava-backend", "zastava-authority", "zastava-webhook")
        for suffix in ("", f".{NS}", f".{NS}.svc", f".{NS}.svc.cluster.local")
    ]
    ns = start_real(lambda: Namespace(work, hosts))
    pods = {
        "authority": workload(docs, "Deployment", "zastava-authority", work / "authority", "node-1"),
        "backend": workload(docs, "Deployment", "zastava-backend", work / "backend", "node-1"),
        "webhook": workload(docs, "Deployment", "zastava-webhook", work / "webhook", "node-1"),
        "observer": workload(docs, "DaemonSet", "zastava-observer", work / "observer", "node-1"),
    }
    # what the API server would trust: the ValidatingWebhookConfiguration's caBundle
    vwc = by_name(docs, "ValidatingWebhookConfiguration", "zastava")
    ca = work / "api-server-ca.crt"
    ca.write_bytes(base64.b64decode(vwc["webhooks"][0]["clientConfig"]["caBundle"]))
    result = Cluster(ns, pods, ca, docs)
    try:
        for name in ("authority", "backend", "webhook", "observer"):
            pod = pods[name]
            ns.start(name, pod.argv, pod.env, work / f"{name}.log")
        result.wait_ok(f"{AUTHORITY}/.well-known/openid-configuration", "authority")
        result.wait_ok(f"{BACKEND}/readyz", "backend")
        result.wait_ok(f"{WEBHOOK}/healthz", "webhook")
        yield result
    finally:
        ns.close()


def test_every_component_starts_from_the_rendered_chart(cluster: Cluster) -> None:
    """All four run; the observer's endpoint (plain HTTP, its metrics port) answers /healthz."""
    deadline = time.monotonic() + 30
    health: Any = None
    while time.monotonic() < deadline:
        try:
            health = cluster.call("GET", "http://127.0.0.1:9090/healthz")
            if health["status"] == 200:
                break
        except AssertionError as exc:
            health = exc
        time.sleep(0.3)
    assert isinstance(health, dict) and health["status"] == 200, f"{health}\n{cluster.logs()}"
    for name, process, _log in cluster.ns.processes:
        assert process.poll() is None, f"{name} exited:\n{cluster.logs()}"


def test_strangers_are_refused_and_catalog_writes_need_the_admin_client(cluster: Cluster) -> None:
    url = f"{BACKEND}/api/v1/scanner/catalog/images/{DIGEST}"
    entry = {"signed": True}
    anonymous = cluster.call("PUT", url, body=entry)
    assert anonymous["status"] == 401, anonymous
    assert cluster.call("GET", f"{BACKEND}/api/v1/scanner/runtime/events")["status"] == 401
    # observer and webhook authenticate, but hold no catalog write scope
    for component in ("observer", "webhook"):
        refused = cluster.call("PUT", url, as_=component, body=entry)
        assert refused["status"] == 403 and "api:scanner.catalog.write" in json.dumps(refused["body"]), (
            refused
        )
    # the operator client (zastava-operator, Secret zastava-clients) has it
    operator = _operator_env(cluster)
    written = cluster.call("PUT", url, as_="observer", body=entry, env=operator)
    assert written["status"] == 200 and written["body"]["digest"] == DIGEST, written


def _operator_env(cluster: Cluster) -> dict[str, str]:
    """A person's credentials as docs/deploy.md tells them to take them with kubectl: the zastava-operator
    client secret (Secret zastava-clients, key operator) and client certificate (Secret zastava-operator-tls),
    used with the observer's config file (any config naming the chart's backend and Authority will do)."""
    directory = cluster.pods["observer"].root / "operator"
    directory.mkdir(exist_ok=True)
    for secret, key, name in (
        ("zastava-clients", "operator", "client-secret"),
        ("zastava-operator-tls", "tls.crt", "tls.crt"),
        ("zastava-operator-tls", "tls.key", "tls.key"),
        ("zastava-operator-tls", "ca.crt", "ca.crt"),
    ):
        data = by_name(cluster.docs, "Secret", secret)["data"][key]
        (directory / name).write_bytes(base64.b64decode(data))
    return {
        "ZASTAVA_RUNTIME__AUTHORITY__CLIENTID": "zastava-operator",
        "ZASTAVA_RUNTIME__AUTHORITY__SCOPES": json.dumps(
            ["api:scanner.catalog.write", "api:scanner.runtime.read", "api:scanner.admission.read"]
        ),
        "ZASTAVA_RUNTIME__AUTHORITY__CLIENTSECRETPATH": str(directory / "client-secret"),
        "ZASTAVA_RUNTIME__AUTHORITY__CLIENTCERTPATH": str(directory / "tls.crt"),
        "ZASTAVA_RUNTIME__AUTHORITY__CLIENTKEYPATH": str(directory / "tls.key"),
        "ZASTAVA_RUNTIME__AUTHORITY__CABUNDLEPATH": str(directory / "ca.crt"),
    }


def test_webhook_answers_the_api_server_and_records_its_decision_in_the_backend(cluster: Cluster) -> None:
    """As the API server: POST an AdmissionReview to the webhook, TLS verified with the configuration's
    caBundle. The webhook asks the backend's /policy/runtime with its own OpTok and posts the decision record
    (scope api:scanner.admission.write); the operator reads it back."""
    from tests.unit.webhook.reviews import pod_with, review

    image = f"registry.example.com/team/app@{DIGEST}"
    request = review(pod_with({"app": image}), namespace="payments")
    answer = cluster.call("POST", f"{WEBHOOK}/admit", body=request)
    assert answer["status"] == 200, answer
    response = answer["body"]["response"]
    assert response["uid"] == request["request"]["uid"]
    # the backend answered /policy/runtime (not the outage path): its verdict is among the reasons
    assert response["allowed"] is False and "scanner policy verdict: fail" in response["status"]["message"]
    operator = _operator_env(cluster)
    deadline = time.monotonic() + 20
    page: Any = None
    while time.monotonic() < deadline:
        page = cluster.call(
            "GET", f"{BACKEND}/api/v1/scanner/admission/decisions", as_="observer", env=operator
        )
        if page["status"] == 200 and page["body"].get("items"):
            break
        time.sleep(0.5)
    assert page["status"] == 200 and page["body"]["items"], f"{page}\n{cluster.logs()}"
    assert image in json.dumps(page["body"]["items"])
